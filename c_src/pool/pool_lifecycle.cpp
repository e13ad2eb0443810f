// The life of a pool's connections: start, connect, backoff, loss, replacement after max_lifetime_ms, health
// checks, idle closing and adaptive capacity, destroy; and the dispatch of the pool's deadlines.
#include "pool/pool.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace dpool::pool {

Pool::Pool(PoolContext& context, std::uint64_t id, PoolConfig config)
    : context_(context),
      id_(id),
      config_(std::move(config)),
      core_(config_.max_connections, context.lease_counter),
      label_(pool_label(config_.name, id_)),
      connect_failures_(fmt::format("connecting to {}", config_.target), context.log_repeat_interval),
      lost_connections_(fmt::format("connections to {}", config_.target), context.log_repeat_interval),
      capacity_(config_.min_connections)
{
    connections_.reserve(config_.max_connections);
}

Pool::~Pool()
{
    close_now();
    for (const auto& c : connections_) {
        context_.names.release(config_.target, c->name_number());
    }
}

PooledConnection& Pool::open_connection()
{
    const auto slot = *core_.add_slot();
    if (slot == connections_.size()) {
        ConnectionEvents& events = *this; // a private base: converted here, where it is accessible
        connections_.push_back(
            std::make_unique<PooledConnection>(events, slot, context_.names.acquire(config_.target)));
    }
    return *connections_[slot]; // a closed slot reopens under the name it kept
}

void Pool::start(Caller creator)
{
    schedule_maintenance();
    if (config_.min_connections == 0) {
        answers().pool_started(creator.view(), id_);
        return;
    }
    creator_ = std::move(creator);
    start_remaining_ = config_.min_connections;
    for (std::uint32_t i = 0; i < config_.min_connections; ++i) {
        connect(open_connection());
    }
}

void Pool::start_in_background()
{
    schedule_maintenance();
    for (std::uint32_t i = 0; i < config_.min_connections; ++i) {
        connect(open_connection());
    }
}

void Pool::connect(PooledConnection& c)
{
    c.slot.connecting = true;
    ++c.slot.attempt;
    std::uniform_int_distribution<std::uint32_t> creation(4, UINT32_MAX);
    const auto self_creation = creation(context_.random);
    auto self = c.begin_attempt(context_.host, self_creation, creation(context_.random));
    const auto timeout = std::chrono::milliseconds(config_.connect_timeout_ms);
    // A pool's own cookie (a target in another cookie domain) is used for its handshakes only.
    const std::string& cookie = config_.cookie.empty() ? context_.cookie : config_.cookie;
    auto attempt = context_.connect ? context_.connect(config_.target, std::move(self), timeout)
                                    : transport::connect_node(context_.ports, config_.target, std::move(self),
                                                              cookie, timeout, config_.tls_context,
                                                              context_.link_limits.recorder);
    asio::co_spawn(context_.executor, std::move(attempt),
                   [weak = weak_from_this(), index = c.index(), attempt = c.slot.attempt](
                       std::exception_ptr error, transport::ConnectOutcome out) {
                       auto pool = weak.lock();
                       if (!pool || pool->draining_) {
                           return; // the socket, if any, closes here
                       }
                       auto& conn = *pool->connections_[index];
                       if (conn.slot.attempt != attempt) {
                           return;
                       }
                       conn.slot.connecting = false;
                       if (!error && out.stream) {
                           pool->on_connected(conn, std::move(*out.stream), out.peer_flags);
                       } else {
                           pool->on_connect_failed(conn, out.kind, error ? "internal error" : out.error);
                       }
                   });
}

void Pool::on_connected(PooledConnection& c, transport::DistStream stream, std::uint64_t peer_flags)
{
    // Distribution headers with an atom cache when the target announced them too (we always do).
    const bool atom_cache = (peer_flags & protocol::kDflagDistHdrAtomCache) != 0;
    c.attach(std::move(stream), config_.target, context_.link_limits, atom_cache);
    if ((peer_flags & transport::kDflagSpawn) != 0) {
        learn_group_leader(c);
    }
    c.slot.failures = 0;
    ++c.slot.generation;
    target_down_ = false;
    ++counters_.connections_created;
    close_retiring(c); // its successor is up
    const auto now = Clock::now();
    c.slot.expires_at = Clock::time_point::max();
    if (config_.max_lifetime_ms > 0) {
        // Up to 1/8 earlier, so connections opened together are not all replaced together.
        std::uniform_int_distribution<std::uint32_t> lifetime(config_.max_lifetime_ms - config_.max_lifetime_ms / 8,
                                                              config_.max_lifetime_ms);
        c.slot.expires_at = now + std::chrono::milliseconds(lifetime(context_.random));
        context_.scheduler->schedule(
            Deadline{c.slot.expires_at, DeadlineKind::lifetime, id_, connection_key(c.index(), c.slot.generation)});
    }
    if (config_.health_check_interval_ms > 0) {
        context_.scheduler->schedule(Deadline{now + std::chrono::milliseconds(config_.health_check_interval_ms),
                                              DeadlineKind::health, id_,
                                              connection_key(c.index(), c.slot.generation)});
    }
    report("connection_up", c, [] { return std::string(); });
    log::write(spdlog::level::debug, about(&c), "connected{}",
               atom_cache ? " (distribution headers with atom cache)" : "");
    // The end of a run is a warning too: whoever saw the failures at their level sees that they ended.
    for (auto* run : {&connect_failures_, &lost_connections_}) {
        if (auto line = run->succeeded(Clock::now())) {
            log::write(spdlog::level::warn, about(), "{}", *line);
        }
    }
    if (auto g = core_.slot_ready(c.index())) {
        grant_to_waiter(*g);
    } else {
        c.slot.idle_since = now;
    }
    start_progress(true);
    if (group_ != nullptr) {
        group_->on_member_progress(*this);
    }
}

void Pool::on_connect_failed(PooledConnection& c, transport::ConnectError kind, const std::string& error)
{
    ++c.slot.failures;
    target_down_ = true;
    c.slot.down = Failure("connection_failed", transport::error_kind_name(kind), error);
    last_failure_ = c.slot.down;
    close_retiring(c);
    if (auto line = connect_failures_.failed(Clock::now(), error)) {
        log::write(spdlog::level::warn, about(), "{}", *line);
    }
    if (creator_) {
        start_progress(false);
        return;
    }
    if (live_connections() == 0) {
        fail_waiters(no_connection());
    }
    schedule_reconnect(c);
    if (group_ != nullptr) {
        group_->on_member_progress(*this);
    }
}

Failure Pool::no_connection() const
{
    // The last failure is the cause only while no attempt has succeeded since (connections can also be down
    // for want of demand: closed as idle above min_connections).
    if (!target_down_ || last_failure_.kind.empty()) {
        return Failure("connection_failed", "connection_lost", fmt::format("no connection to {} is up", config_.target));
    }
    return last_failure_;
}

void Pool::start_progress(bool ok)
{
    if (!creator_) {
        return;
    }
    if (!ok) {
        start_failed_ = true;
        answers().error(creator_->view(), no_connection());
        creator_.reset();
        close_now();
        context_.post_drop(id_);
        return;
    }
    if (--start_remaining_ == 0) {
        answers().pool_started(creator_->view(), id_);
        creator_.reset();
    }
}

void Pool::on_link_closed(PooledConnection& c, transport::DistLink& l, std::string_view reason)
{
    if (&l != c.link()) {
        return; // a link the pool already let go of
    }
    if (!destroyed_) {
        if (auto line = lost_connections_.failed(Clock::now(), reason)) {
            log::write(spdlog::level::warn, about(&c), "{}", *line);
        }
    }
    drop_link(c, CloseReason::target_down, reason);
    if (c.slot.one_shot && core_.state(c.index()) == SlotState::leased) {
        // The pool's own lease for a one-shot request, whose caller has just been answered connection_failed.
        end_lease(c, core_.lease_of(c.index()), true);
        return;
    }
    if (!draining_) {
        after_link_lost(c);
    }
}

void Pool::drop_link(PooledConnection& c, CloseReason reason, std::string_view detail)
{
    if (!c.close_link(close_reason_name(reason))) {
        return;
    }
    counters_.count_closed(reason);
    report("connection_down", c, [&] { return fmt::format("{}: {}", close_reason_name(reason), detail); });
    c.slot.health_check_in_flight = false;
    c.slot.down = Failure("connection_failed", "connection_lost",
                          fmt::format("the connection {} to {} was closed: {}", c.node_name(), config_.target, detail));
    if (reason == CloseReason::target_down || reason == CloseReason::health) {
        last_failure_ = c.slot.down;
    }
    const Failure failure = destroyed_ ? Failure("invalid_pool") : c.slot.down;
    fail_pending(c, failure);
    fail_parked(c, failure);
}

void Pool::close_retiring(PooledConnection& c)
{
    const std::string retired = c.retiring_node_name(); // the name goes with the link
    const bool destroying = draining_ || destroyed_;
    if (const auto name = c.close_retired(destroying ? "the pool was destroyed" : "replaced after max_lifetime_ms")) {
        counters_.count_closed(CloseReason::lifetime);
        report("connection_down", c,
               [&] {
                   return std::string(destroying ? "destroy: the pool was destroyed"
                                                 : "lifetime: replaced after max_lifetime_ms");
               },
               retired);
        context_.names.release(config_.target, *name);
    }
}

void Pool::after_link_lost(PooledConnection& c)
{
    switch (core_.state(c.index())) {
    case SlotState::idle:
        core_.slot_lost(c.index());
        schedule_reconnect(c);
        break;
    case SlotState::leased:
        if (c.slot.validating) {
            // The checkout that was validating this connection tries again, in its place in line.
            auto v = std::move(*c.slot.validating);
            c.slot.validating.reset();
            core_.release(c.index(), core_.lease_of(c.index()), false);
            schedule_reconnect(c);
            const auto job = view_of(v.job);
            serve(Attempt{.waiter = v.waiter,
                          .started = v.started,
                          .deadline = v.deadline,
                          .may_wait = v.may_wait,
                          .first_try = false,
                          .failover = v.failover},
                  v.caller.view(), job ? &*job : nullptr);
        }
        break;
    default:
        break;
    }
}

void Pool::retire(PooledConnection& c)
{
    if (core_.state(c.index()) == SlotState::idle) {
        core_.slot_lost(c.index());
    }
    close_retiring(c);
    if (!c.link()) {
        schedule_reconnect(c);
        return;
    }
    log::write(spdlog::level::info, about(&c), "reached its max_lifetime_ms, replacing it");
    fail_pending(c, Failure("connection_failed", "connection_lost",
                            fmt::format("the connection {} was replaced after max_lifetime_ms", c.node_name())));
    release_parked(c); // their data stays queued on the retiring link, which is flushed before it closes
    c.slot.health_check_in_flight = false;
    // The successor needs a name of its own: the target would take the same name for a reconnect of the old
    // connection and drop that one before the new one is up.
    c.retire_link(context_.names.acquire(config_.target));
    c.slot.expires_at = Clock::time_point::max();
    connect(c);
}

std::chrono::milliseconds Pool::backoff(std::uint32_t failures)
{
    const std::int64_t doubled =
        std::int64_t{config_.backoff_min_ms} << std::min<std::uint32_t>(failures, 20);
    const std::chrono::milliseconds delay(std::min<std::int64_t>(doubled, config_.backoff_max_ms));
    // Jitter, so connections that failed together do not retry together.
    std::uniform_int_distribution<std::int64_t> jitter(delay.count() / 2, delay.count());
    return std::chrono::milliseconds(jitter(context_.random));
}

void Pool::schedule_reconnect(PooledConnection& c)
{
    if (draining_) {
        return;
    }
    context_.scheduler->schedule(
        Deadline{Clock::now() + backoff(c.slot.failures), DeadlineKind::reconnect, id_, c.index()});
}

void Pool::reconnect(std::uint64_t conn)
{
    if (conn >= connections_.size()) {
        return;
    }
    auto& c = *connections_[conn];
    if (!c.slot.connecting && !c.link() && core_.state(c.index()) == SlotState::connecting) {
        ++counters_.reconnect_attempts;
        connect(c);
    }
}

void Pool::start_health_check(PooledConnection& c)
{
    if (!c.live()) {
        return;
    }
    ++counters_.health_checks;
    c.slot.health_check_in_flight = true;
    // What net_adm:ping asks: it needs nothing of ours on the target, and an answer proves the target's
    // scheduler and its net_kernel are alive, not only its socket.
    const Destination net_kernel{true, protocol::kNetKernel};
    const std::uint64_t ref = c.write_gen_call(net_kernel, [&c](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("is_auth");
        w.atom(c.node_name());
    });
    auto& entry = c.pending().add(ref, Purpose::health, false, Clock::now());
    entry.destination.assign(protocol::kNetKernel);
    schedule_request_deadline(c, entry, config_.health_check_timeout_ms);
    c.link()->write_now(); // a checkout may wait for it (validate_on_checkout)
}

void Pool::on_health_result(PooledConnection& c, bool ok)
{
    c.slot.health_check_in_flight = false;
    if (ok) {
        if (c.slot.validating) {
            auto v = std::move(*c.slot.validating);
            c.slot.validating.reset();
            const auto job = view_of(v.job);
            grant(Grant{c.index(), core_.lease_of(c.index()), v.waiter}, v.caller.view(),
                  Asked{v.started, v.deadline, v.failover}, job ? &*job : nullptr);
        }
        return;
    }
    log::write(spdlog::level::warn, about(&c), "failed its health check, replacing it");
    drop_link(c, CloseReason::health, "it failed its health check");
    after_link_lost(c);
}

void Pool::check_health(std::uint64_t key)
{
    const auto conn = key_connection(key);
    if (conn >= connections_.size()) {
        return;
    }
    auto& c = *connections_[conn];
    if (key_number(c.slot.generation) != key_number(key) || !c.live()) {
        return; // that connection is gone; its successor has its own schedule
    }
    // Only idle connections are checked: a leased one is being used, and its operations tell.
    if (core_.state(conn) == SlotState::idle && !c.slot.health_check_in_flight) {
        start_health_check(c);
    }
    context_.scheduler->schedule(Deadline{Clock::now() + std::chrono::milliseconds(config_.health_check_interval_ms),
                                          DeadlineKind::health, id_, key});
}

void Pool::end_lifetime(std::uint64_t key)
{
    const auto conn = key_connection(key);
    if (conn < connections_.size()) {
        auto& c = *connections_[conn];
        // A leased connection is replaced when it comes back (end_lease).
        if (key_number(c.slot.generation) == key_number(key) && c.live() && core_.state(conn) == SlotState::idle) {
            retire(c);
        }
    }
}

void Pool::on_deadline(const Deadline& d)
{
    // A pool being destroyed still answers its requests, ends its drain and watches the holders it waits for.
    if (destroyed_ || (draining_ && d.kind != DeadlineKind::request && d.kind != DeadlineKind::drain &&
                       d.kind != DeadlineKind::holder)) {
        return;
    }
    switch (d.kind) {
    case DeadlineKind::waiter:
        expire_waiter(d.key);
        break;
    case DeadlineKind::request:
        expire_request(d.key);
        break;
    case DeadlineKind::reconnect:
        reconnect(d.key);
        break;
    case DeadlineKind::lifetime:
        end_lifetime(d.key);
        break;
    case DeadlineKind::health:
        check_health(d.key);
        break;
    case DeadlineKind::holder:
        watch_holder_now(d.key);
        break;
    case DeadlineKind::waiter_watch:
        watch_waiter_now(d.key);
        break;
    case DeadlineKind::maintenance:
        maintain();
        schedule_maintenance();
        break;
    case DeadlineKind::drain:
        finish_destroy();
        break;
    case DeadlineKind::barrier:
    case DeadlineKind::owner:
    case DeadlineKind::spare_pipes:
        break; // served by the service: a barrier ends even when its pool is gone; owners and pipes are its own
    }
}

bool Pool::deadline_wanted(const Deadline& d) const
{
    switch (d.kind) {
    case DeadlineKind::request: {
        // A search of the connection's requests in flight, as the answer of each makes (PendingRequests).
        const auto conn = key_connection(d.key);
        return conn < connections_.size() && connections_[conn]->pending().find(key_number(d.key)) != nullptr;
    }
    case DeadlineKind::waiter:
        return waiters_.contains(d.key);
    case DeadlineKind::holder:
        return unwatched_holder(d.key) != nullptr;
    case DeadlineKind::waiter_watch: {
        const auto it = waiters_.find(d.key);
        return it != waiters_.end() && !it->second.watched;
    }
    default:
        return true; // a few per connection or pool, whatever the traffic
    }
}

namespace {

// How often a pool looks at its idle connections and samples its idle share.
std::chrono::milliseconds maintenance_period(const PoolConfig& config)
{
    std::uint32_t ms = std::clamp<std::uint32_t>(config.resize_window_ms / 10, 10, 1000);
    if (config.max_idle_ms > 0) {
        ms = std::min(ms, std::max<std::uint32_t>(config.max_idle_ms / 4, 10));
    }
    return std::chrono::milliseconds(ms);
}

} // namespace

void Pool::schedule_maintenance()
{
    // With min = max the pool never grows nor shrinks: nothing to look at.
    if (config_.min_connections == config_.max_connections || draining_) {
        return;
    }
    context_.scheduler->schedule(
        Deadline{Clock::now() + maintenance_period(config_), DeadlineKind::maintenance, id_, 0});
}

void Pool::maintain()
{
    const auto now = Clock::now();
    if (config_.max_idle_ms > 0) {
        // Coldest first; never below the minimum.
        const std::vector<std::uint32_t> idle = core_.idle_slots();
        for (const auto slot : idle) {
            if (core_.open_slots() <= config_.min_connections) {
                break;
            }
            auto& c = *connections_[slot];
            if (now - c.slot.idle_since >= std::chrono::milliseconds(config_.max_idle_ms)) {
                log::write(spdlog::level::debug, about(&c), "closing it, idle for {} ms", config_.max_idle_ms);
                core_.close_idle(slot);
                drop_link(c, CloseReason::idle, "closed as idle");
                capacity_ = std::max(config_.min_connections, core_.open_slots());
            }
        }
    }
    const auto counts = core_.counts();
    const auto open = core_.open_slots();
    window_idle_share_ += open == 0 ? 1.0 : static_cast<double>(counts.idle) / open;
    window_saw_waiters_ = window_saw_waiters_ || counts.waiting > 0;
    ++window_samples_;
    if (window_samples_ * maintenance_period(config_) >= std::chrono::milliseconds(config_.resize_window_ms)) {
        adapt();
    }
}

void Pool::adapt()
{
    // Adaptive capacity (docs/PROTOCOL.md, "Lifecycle"): grow when callers waited or fewer than 20% of the
    // connections sat idle over the window, shrink when more than 80% did.
    const double idle_share = window_idle_share_ / std::max<std::uint32_t>(window_samples_, 1);
    if ((window_saw_waiters_ || idle_share < 0.2) && capacity_ < config_.max_connections && !target_down_) {
        ++capacity_;
        while (core_.open_slots() < capacity_) {
            connect(open_connection());
        }
    } else if (!window_saw_waiters_ && idle_share > 0.8 && capacity_ > config_.min_connections &&
               !core_.idle_slots().empty()) {
        --capacity_;
        const auto coldest = core_.idle_slots().front();
        core_.close_idle(coldest);
        drop_link(*connections_[coldest], CloseReason::idle, "closed as idle");
    }
    window_samples_ = 0;
    window_idle_share_ = 0;
    window_saw_waiters_ = false;
}

void Pool::destroy(std::optional<Caller> destroyer, std::uint32_t drain_timeout_ms, bool answer_id)
{
    if (!may_begin_destroy(draining_, destroyer, answers())) {
        return;
    }
    draining_ = true;
    destroyer_ = std::move(destroyer);
    destroyer_wants_id_ = answer_id;
    log::write(spdlog::level::info, about(), "destroying; waiting up to {} ms for {} leases", drain_timeout_ms,
               core_.counts().leased);
    fail_waiters("invalid_pool");
    for (auto& c : connections_) {
        if (c->slot.validating) {
            // Its checkout never started: a member being removed hands it to another member.
            unserve_validation(*c, Failure("invalid_pool"));
            core_.release(c->index(), core_.lease_of(c->index()), true);
        }
        if (core_.state(c->index()) == SlotState::idle) {
            core_.close_idle(c->index());
            drop_link(*c, CloseReason::destroy, "the pool was destroyed");
        }
        close_retiring(*c);
    }
    if (core_.counts().leased == 0) {
        finish_destroy();
        return;
    }
    context_.scheduler->schedule(
        Deadline{Clock::now() + std::chrono::milliseconds(drain_timeout_ms), DeadlineKind::drain, id_, 0});
}

void Pool::finish_destroy()
{
    if (destroyed_) {
        return;
    }
    close_now();
    if (destroyer_) {
        if (destroyer_wants_id_) {
            answers().pool_started(destroyer_->view(), id_); // {ok, Id}
        } else {
            answers().ok(destroyer_->view());
        }
        destroyer_.reset();
    }
    if (group_ != nullptr) {
        group_->on_member_closed(*this);
    }
    context_.post_drop(id_);
}

void Pool::close_now()
{
    if (destroyed_) {
        return;
    }
    draining_ = true;
    destroyed_ = true;
    fail_waiters("invalid_pool");
    for (auto& c : connections_) {
        if (c->slot.validating) {
            unserve_validation(*c, Failure("invalid_pool"));
        }
        fail_pending(*c, "invalid_pool");
        fail_parked(*c, "invalid_pool");
        if (core_.state(c->index()) == SlotState::leased) {
            end_lease(*c, core_.lease_of(c->index()), true);
        }
        drop_link(*c, CloseReason::destroy, "the pool was destroyed");
        close_retiring(*c);
    }
    // Stats reads still waiting for their barrier get the last stats (the barrier's end finds no pool).
    if (!held_stats_.empty()) {
        const PoolStats last = snapshot();
        for (const auto& [key, caller] : held_stats_) {
            answers().stats(caller.view(), last);
        }
        held_stats_.clear();
    }
}

} // namespace dpool::pool
