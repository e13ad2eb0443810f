#include "pool/pool.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/control.hpp"
#include "protocol/dist_header.hpp"
#include "transport/connector.hpp"

namespace dpool::pool {

namespace {

// An owner of `payload` when it is big and lies in the packet of `caller` being handled now (so that it is
// forwarded without a copy); nullptr otherwise.
std::shared_ptr<const void> payload_owner(const CallerView& caller, std::string_view payload)
{
    if (payload.size() < transport::kMinBorrowedBytes || !caller.link) {
        return nullptr;
    }
    return caller.link->share_packet(payload);
}

// The owner of a one-shot job's payload: the one it was kept with (it waited for a lease), else as above.
std::shared_ptr<const void> payload_owner(const CallerView& caller, const OneShotView& job)
{
    return job.owner ? job.owner : payload_owner(caller, job.payload);
}

// A job kept for later (its caller waits for a lease): a big payload stays shared with its packet.
std::optional<OneShot> keep_job(const CallerView& caller, const OneShotView* job)
{
    if (!job) {
        return std::nullopt;
    }
    return OneShot(*job, payload_owner(caller, *job));
}

// Deadline keys of one connection: its index above, a reference or generation number below.
constexpr unsigned kRefBits = 40;
constexpr std::uint64_t kRefMask = (std::uint64_t{1} << kRefBits) - 1;

std::uint64_t connection_key(std::uint32_t conn, std::uint64_t number)
{
    return (std::uint64_t{conn} << kRefBits) | (number & kRefMask);
}
std::uint32_t key_connection(std::uint64_t key) { return static_cast<std::uint32_t>(key >> kRefBits); }
std::uint64_t key_number(std::uint64_t key) { return key & kRefMask; }

// A lease holder is monitored only once it has held its lease this long: most leases (a one-shot call, a
// with_connection around one call) come back sooner, and then cost no MONITOR_P and DEMONITOR_P packets to the
// holder's node, whose process would handle both signals in the middle of its call. A holder that exits
// before is noticed when the monitor is set (it fires at once, noproc), so its lease comes back within this.
constexpr auto kHolderWatchDelay = std::chrono::milliseconds(5);

// How long a held answer waits for a return barrier (see ReturnBarriers): far above a round trip to a caller
// node, even one busy with a big transfer, and well inside the library's margin over the C-node's own
// deadlines (5 s), so a caller node that stopped reading delays an answer, never loses it.
constexpr auto kReturnBarrierBound = std::chrono::milliseconds(1000);

// The name a return barrier's probe monitors on a caller node: registered by nobody, so that node's runtime
// answers MONITOR_P_EXIT noproc at once, with no process of its own involved (SMALL_ATOM_UTF8_EXT).
constexpr std::string_view kProbeName{"\x77\x18" "$distribute_pool_barrier", 26};

std::uint64_t micros(Clock::duration d)
{
    return static_cast<std::uint64_t>(std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

// The atom net_kernel, encoded (SMALL_ATOM_UTF8_EXT): a health check is net_adm:ping's request to it.
constexpr std::string_view kNetKernel{"\x77\x0a" "net_kernel", 12};
// rex, where calls go on a target that cannot spawn for us (no DFLAG_SPAWN) or whose `user` is not known yet.
constexpr std::string_view kRex{"\x77\x03" "rex", 5};

constexpr std::string_view close_reason_name(CloseReason r)
{
    switch (r) {
    case CloseReason::idle:
        return "idle";
    case CloseReason::lifetime:
        return "lifetime";
    case CloseReason::broken:
        return "broken";
    case CloseReason::health:
        return "health";
    case CloseReason::destroy:
        return "destroy";
    case CloseReason::target_down:
        return "target_down";
    case CloseReason::count_:
        break;
    }
    return "unknown";
}

} // namespace

PooledConnection::PooledConnection(Pool& owner, std::uint32_t idx, ConnectionNames::Name name)
    : pool(owner), index(idx), name_number(name.number), node_name(std::move(name.node_name))
{
}

PooledConnection::~PooledConnection()
{
    for (auto* l : {&link, &retiring}) {
        if (*l) {
            (*l)->detach();
            (*l)->close("pool destroyed");
        }
    }
}

PooledConnection::PendingRequest* PooledConnection::find_pending(std::uint64_t ref)
{
    for (auto& p : pending) {
        if (p.ref == ref) {
            return &p;
        }
    }
    return nullptr;
}

void PooledConnection::on_packet(transport::DistLink&, std::string_view packet)
{
    const auto control = protocol::parse_packet(packet);
    if (!control) {
        spdlog::debug("{}: unparsable packet of {} bytes", node_name, packet.size());
        return;
    }
    spdlog::trace("{}: control op {}", node_name, static_cast<int>(control->op));
    switch (control->op) {
    case protocol::ControlOp::send:
    case protocol::ControlOp::send_tt:
    case protocol::ControlOp::send_sender:
    case protocol::ControlOp::send_sender_tt:
        pool.answer_reply(*this, control->payload);
        break;
    case protocol::ControlOp::monitor_p_exit:
        pool.answer_down(*this, control->ref, control->reason);
        break;
    case protocol::ControlOp::spawn_reply:
    case protocol::ControlOp::spawn_reply_tt:
        pool.answer_spawn_reply(*this, control->ref, control->reason);
        break;
    case protocol::ControlOp::monitor_p: {
        // A process on the target monitors our sender pid, which is no process: it learns so at once.
        auto w = link->begin_packet();
        w.version();
        protocol::write_monitor_exit(w, control->to, control->from, control->ref, "noproc");
        link->end_packet();
        break;
    }
    default:
        break; // messages to other names, links and exits have no meaning for a pooled connection
    }
}

void PooledConnection::on_drained(transport::DistLink&)
{
    pool.release_parked(*this);
}

void PooledConnection::on_closed(transport::DistLink& l, std::string_view reason)
{
    pool.on_link_closed(*this, l, reason);
}

Pool::Pool(PoolContext& context, std::uint64_t id, PoolConfig config)
    : context_(context),
      id_(id),
      config_(std::move(config)),
      core_(config_.max_connections, context.lease_counter),
      capacity_(config_.min_connections)
{
    connections_.reserve(config_.max_connections);
}

Pool::~Pool()
{
    close_now();
    for (const auto& c : connections_) {
        context_.names.release(config_.target, c->name_number);
    }
}

PooledConnection& Pool::open_connection()
{
    const auto slot = *core_.add_slot();
    if (slot == connections_.size()) {
        connections_.push_back(
            std::make_unique<PooledConnection>(*this, slot, context_.names.acquire(config_.target)));
    }
    return *connections_[slot]; // a closed slot reopens under the name it kept
}

void Pool::start(Caller creator)
{
    schedule_maintenance();
    if (config_.min_connections == 0) {
        const auto id = id_;
        reply(creator.view(), [id](protocol::TermWriter& w) {
            w.tuple(2);
            w.atom("ok");
            w.integer(static_cast<std::int64_t>(id));
        });
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
    c.connecting = true;
    ++c.attempt;
    // A fresh creation per attempt: the target then treats a reconnected name as a new incarnation, and
    // stale pids of the old one cannot reach the new connection.
    std::uniform_int_distribution<std::uint32_t> creation(4, UINT32_MAX);
    c.identity.emplace(c.node_name, creation(context_.random), creation(context_.random));
    c.head.clear(); // it names the sender pid of the previous identity
    transport::HandshakeIdentity self;
    self.node_name = c.node_name;
    self.alive = c.node_name.substr(0, c.node_name.find('@'));
    self.host = context_.host;
    self.creation = c.identity->creation();
    asio::co_spawn(context_.executor,
                   transport::connect_node(context_.handshakes, config_.target, std::move(self), context_.cookie,
                                           std::chrono::milliseconds(config_.connect_timeout_ms)),
                   [weak = weak_from_this(), index = c.index, attempt = c.attempt](std::exception_ptr error,
                                                                                   transport::ConnectOutcome out) {
                       auto self = weak.lock();
                       if (!self || self->draining_) {
                           return; // the socket, if any, closes here
                       }
                       auto& conn = *self->connections_[index];
                       if (conn.attempt != attempt) {
                           return;
                       }
                       conn.connecting = false;
                       if (!error && out.socket) {
                           self->on_connected(conn, std::move(*out.socket), out.peer_flags);
                       } else {
                           self->on_connect_failed(conn, out.kind, error ? "internal error" : out.error);
                       }
                   });
}

void Pool::on_connected(PooledConnection& c, tcp::socket socket, std::uint64_t peer_flags)
{
    // Distribution headers with an atom cache when the target announced them too (we always do).
    const bool atom_cache = (peer_flags & protocol::kDflagDistHdrAtomCache) != 0;
    c.link = std::make_shared<transport::DistLink>(std::move(socket), config_.target, context_.link_limits,
                                                   atom_cache);
    c.link->start(c);
    c.group_leader.clear();
    if ((peer_flags & transport::kDflagSpawn) != 0) {
        learn_group_leader(c);
    }
    c.failures = 0;
    ++c.generation;
    target_down_ = false;
    ++counters_.connections_created;
    close_retiring(c); // its successor is up
    const auto now = Clock::now();
    c.expires_at = Clock::time_point::max();
    if (config_.max_lifetime_ms > 0) {
        // Up to 1/8 earlier, so connections opened together are not all replaced together.
        std::uniform_int_distribution<std::uint32_t> lifetime(config_.max_lifetime_ms - config_.max_lifetime_ms / 8,
                                                              config_.max_lifetime_ms);
        c.expires_at = now + std::chrono::milliseconds(lifetime(context_.random));
        context_.scheduler->schedule(
            Deadline{c.expires_at, DeadlineKind::lifetime, id_, connection_key(c.index, c.generation)});
    }
    if (config_.health_check_interval_ms > 0) {
        context_.scheduler->schedule(Deadline{now + std::chrono::milliseconds(config_.health_check_interval_ms),
                                              DeadlineKind::health, id_, connection_key(c.index, c.generation)});
    }
    spdlog::debug("pool {}: {} connected to {}{}", label(), c.node_name, config_.target,
                  atom_cache ? " (distribution headers with atom cache)" : "");
    if (auto g = core_.slot_ready(c.index)) {
        grant_to_waiter(*g);
    } else {
        c.idle_since = now;
    }
    start_progress(true);
}

void Pool::on_connect_failed(PooledConnection& c, transport::ConnectError kind, const std::string& error)
{
    ++c.failures;
    target_down_ = true;
    c.down = Failure("connection_failed", transport::error_kind_name(kind), error);
    last_failure_ = c.down;
    close_retiring(c);
    spdlog::info("pool {}: {} cannot connect to {}: {}", label(), c.node_name, config_.target, error);
    if (creator_) {
        start_progress(false);
        return;
    }
    if (live_connections() == 0) {
        fail_waiters(no_connection());
    }
    schedule_reconnect(c);
}

std::string Pool::label() const
{
    return config_.name.empty() ? std::to_string(id_) : config_.name;
}

Failure Pool::closed_under_writes(const PooledConnection& c) const
{
    return Failure("connection_failed", "connection_lost",
                   fmt::format("the connection {} to {} closed while the messages were queued", c.node_name,
                               config_.target));
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
        reply_error(creator_->view(), no_connection());
        creator_.reset();
        close_now();
        if (context_.drop_pool) {
            asio::post(context_.executor, [drop = context_.drop_pool, id = id_] { drop(id); });
        }
        return;
    }
    if (--start_remaining_ == 0) {
        const auto id = id_;
        reply(creator_->view(), [id](protocol::TermWriter& w) {
            w.tuple(2);
            w.atom("ok");
            w.integer(static_cast<std::int64_t>(id));
        });
        creator_.reset();
    }
}

void Pool::on_link_closed(PooledConnection& c, transport::DistLink& l, std::string_view reason)
{
    if (&l != c.link.get()) {
        return; // a link the pool already let go of
    }
    if (!destroyed_) {
        spdlog::warn("pool {}: {} lost its connection to {}: {}", label(), c.node_name, config_.target, reason);
    }
    drop_link(c, CloseReason::target_down, reason);
    if (c.one_shot && core_.state(c.index) == SlotState::leased) {
        // The pool's own lease for a pooled_request, whose caller has just been answered connection_failed.
        end_lease(c, core_.lease_of(c.index), true);
        return;
    }
    if (!draining_) {
        after_link_lost(c);
    }
}

void Pool::drop_link(PooledConnection& c, CloseReason reason, std::string_view detail)
{
    if (!c.link) {
        return;
    }
    count_closed(reason);
    const auto link = std::move(c.link);
    link->detach();
    link->close(close_reason_name(reason));
    c.health_check_in_flight = false;
    c.down = Failure("connection_failed", "connection_lost",
                     fmt::format("the connection {} to {} was closed: {}", c.node_name, config_.target, detail));
    if (reason == CloseReason::target_down || reason == CloseReason::health) {
        last_failure_ = c.down;
    }
    const Failure failure = destroyed_ ? Failure("invalid_pool") : c.down;
    fail_pending(c, failure);
    fail_parked(c, failure);
}

void Pool::release_parked(PooledConnection& c)
{
    while (!c.parked.empty()) {
        auto& a = c.parked.front();
        if (!a.batch) {
            reply_atom(a.caller.view(), "ok");
            counters_.successful_operations += a.counted ? 0 : 1;
        } else if (!a.batch->answered && --a.batch->links_left == 0) {
            a.batch->answered = true;
            const auto count = a.batch->count;
            reply(a.batch->caller.view(), [count](protocol::TermWriter& w) {
                w.tuple(2);
                w.atom("ok");
                w.integer(count);
            });
            counters_.successful_operations += static_cast<std::uint64_t>(count);
        }
        c.parked.pop_front();
    }
}

void Pool::fail_parked(PooledConnection& c, const Failure& reason)
{
    while (!c.parked.empty()) {
        auto& a = c.parked.front();
        if (!a.batch) {
            reply_error(a.caller.view(), reason);
            counters_.failed_operations += a.counted ? 0 : 1;
        } else if (!a.batch->answered) {
            // Part of the batch may have gone out on other connections: the caller learns it did not all go.
            a.batch->answered = true;
            reply_error(a.batch->caller.view(), reason);
            ++counters_.failed_operations;
        }
        c.parked.pop_front();
    }
}

void Pool::close_retiring(PooledConnection& c)
{
    if (!c.retiring) {
        return;
    }
    count_closed(CloseReason::lifetime);
    c.retiring->close("replaced after max_lifetime_ms");
    c.retiring.reset();
    context_.names.release(config_.target, c.retiring_name_number);
}

void Pool::after_link_lost(PooledConnection& c)
{
    switch (core_.state(c.index)) {
    case SlotState::idle:
        core_.slot_lost(c.index);
        schedule_reconnect(c);
        break;
    case SlotState::leased:
        if (c.validating) {
            // The checkout that was validating this connection tries again, in its place in line.
            auto v = std::move(*c.validating);
            c.validating.reset();
            core_.release(c.index, core_.lease_of(c.index), false);
            schedule_reconnect(c);
            const auto job = v.job ? std::optional<OneShotView>(v.job->view()) : std::nullopt;
            serve(v.waiter, v.caller.view(), v.started, v.deadline, v.may_wait, false, job ? &*job : nullptr);
        }
        break;
    default:
        break;
    }
}

void Pool::retire(PooledConnection& c)
{
    if (core_.state(c.index) == SlotState::idle) {
        core_.slot_lost(c.index);
    }
    close_retiring(c);
    if (!c.link) {
        schedule_reconnect(c);
        return;
    }
    spdlog::info("pool {}: {} reached its max_lifetime_ms, replacing it", label(), c.node_name);
    fail_pending(c, Failure("connection_failed", "connection_lost",
                            fmt::format("the connection {} was replaced after max_lifetime_ms", c.node_name)));
    release_parked(c); // their data stays queued on the retiring link, which is flushed before it closes
    c.health_check_in_flight = false;
    c.retiring = std::move(c.link);
    c.retiring->detach();
    c.retiring_name_number = c.name_number;
    // The successor needs a name of its own: the target would take the same name for a reconnect of the old
    // connection and drop that one before the new one is up.
    auto name = context_.names.acquire(config_.target);
    c.name_number = name.number;
    c.node_name = std::move(name.node_name);
    c.expires_at = Clock::time_point::max();
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
        Deadline{Clock::now() + backoff(c.failures), DeadlineKind::reconnect, id_, c.index});
}

void Pool::checkout(const CallerView& caller, std::optional<std::uint32_t> timeout_ms, const OneShotView* job)
{
    if (draining_) {
        reply_error(caller, "invalid_pool");
        return;
    }
    const std::uint32_t timeout = timeout_ms.value_or(config_.acquire_timeout_ms);
    if (target_down_ && live_connections() == 0) {
        ++counters_.acquires;
        ++counters_.misses;
        ++counters_.failed_operations;
        reply_error(caller, no_connection());
        return;
    }
    const auto now = Clock::now();
    // Waiter numbers come from the lease counter: a monitor's reference then names a lease or a waiter, never
    // both.
    const std::uint64_t waiter = ++context_.lease_counter;
    serve(waiter, caller, now, now + std::chrono::milliseconds(timeout), timeout > 0, true, job);
}

void Pool::serve(std::uint64_t waiter, const CallerView& caller, Clock::time_point started,
                 Clock::time_point deadline, bool may_wait, bool first_try, const OneShotView* job,
                 bool returns_checked)
{
    if (first_try) {
        ++counters_.acquires;
    }
    // max_lifetime_ms holds at checkout too, not only when the timer fires: an expired connection is replaced,
    // never leased.
    const auto now = Clock::now();
    while (!core_.idle_slots().empty() && connections_[core_.idle_slots().back()]->expires_at <= now) {
        retire(*connections_[core_.idle_slots().back()]);
    }
    if (!core_.idle_slots().empty()) {
        const auto got = core_.acquire(waiter, may_wait);
        if (first_try) {
            ++counters_.hits;
        }
        PooledConnection& c = *connections_[got.grant.slot];
        if (config_.validate_on_checkout) {
            c.validating = PooledConnection::Validation{waiter, Caller(caller), started, deadline, may_wait,
                                                        keep_job(caller, job)};
            if (!c.health_check_in_flight) {
                start_health_check(c);
            }
            return;
        }
        grant(got.grant, caller, started, job);
        return;
    }
    if (first_try) {
        ++counters_.misses;
    }
    if (!may_wait || deadline <= now) {
        // A lease returned before this request was sent may still be on its way over another link: the
        // checkout waits in line for a return barrier (on_barrier_done) before it can be refused.
        if (!returns_checked && hold_for_returns(caller.link.get(), waiter)) {
            enqueue_waiter(waiter, caller, started, deadline, first_try, job).held_for_returns = true;
            return;
        }
        ++counters_.acquire_timeouts;
        ++counters_.failed_operations;
        reply_error(caller, "pool_exhausted");
        return;
    }
    enqueue_waiter(waiter, caller, started, deadline, first_try, job);
    context_.scheduler->schedule(Deadline{deadline, DeadlineKind::waiter, id_, waiter});
    window_saw_waiters_ = true;
    // Callers wait: open one more connection if below the maximum and fewer are opening than callers wait.
    const auto counts = core_.counts();
    const std::size_t opening = static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c->connecting; }));
    if (core_.open_slots() < config_.max_connections && opening < std::max<std::size_t>(counts.waiting, 1)) {
        connect(open_connection());
        capacity_ = std::max(capacity_, core_.open_slots());
    }
}

Pool::Waiter& Pool::enqueue_waiter(std::uint64_t waiter, const CallerView& caller, Clock::time_point started,
                                   Clock::time_point deadline, bool first_try, const OneShotView* job)
{
    if (first_try) {
        core_.acquire(waiter, true);
    } else {
        core_.requeue_first(waiter); // back in its place in line
    }
    auto& entry =
        waiters_.emplace(waiter, Waiter{Caller(caller), started, deadline, keep_job(caller, job)}).first->second;
    monitor_caller(caller, waiter);
    return entry;
}

void Pool::grant(const Grant& g, const CallerView& caller, Clock::time_point started, const OneShotView* job)
{
    PooledConnection& c = *connections_[g.slot];
    if (!caller.link || !caller.link->is_open()) {
        end_lease(c, g.lease, false); // its node is gone: nobody could ever return this lease
        return;
    }
    acquire_wait_.record(micros(Clock::now() - started));
    if (job) {
        run_one_shot(c, g.lease, caller, *job);
        return;
    }
    c.holder.assign(caller);
    const CallerView holder = c.holder.view();
    // Watch the holder: if it exits, or its node goes, the lease comes back without anyone asking.
    watch_holder(c, g.lease);
    const std::string_view node = c.node_name;
    reply(holder, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.tuple(3);
        w.integer(g.slot);
        w.integer(static_cast<std::int64_t>(g.lease));
        w.atom(node); // as stats name it: a node name is an atom
    });
}

void Pool::grant_to_waiter(const Grant& g)
{
    grants_to_make_.push_back(g);
    if (granting_) {
        return; // the loop below, further up the stack, makes it
    }
    granting_ = true;
    while (!grants_to_make_.empty()) {
        const Grant next = grants_to_make_.front();
        grants_to_make_.pop_front();
        grant_queued(next);
    }
    granting_ = false;
}

void Pool::grant_queued(const Grant& g)
{
    auto node = waiters_.extract(g.waiter);
    if (node.empty()) {
        // The waiter left (exited, cancelled, or the pool is closing) between its grant and now.
        end_lease(*connections_[g.slot], g.lease, false);
        return;
    }
    demonitor_caller(node.mapped().caller.view(), g.waiter);
    const auto job = node.mapped().job ? std::optional<OneShotView>(node.mapped().job->view()) : std::nullopt;
    grant(g, node.mapped().caller.view(), node.mapped().started, job ? &*job : nullptr);
}

void Pool::run_one_shot(PooledConnection& c, std::uint64_t lease, const CallerView& caller, const OneShotView& job)
{
    if (!c.live()) {
        reply_error(caller, c.down);
        ++counters_.failed_operations;
        end_lease(c, lease, false);
        return;
    }
    if (job.kind == OneShotKind::send) {
        // Queued in order on the connection: the lease can go back before the bytes are written.
        write_message(c, job.to, job.payload, payload_owner(caller, job));
        if (c.link->busy()) {
            c.parked.push_back({Caller(caller), nullptr});
        } else {
            reply_atom(caller, "ok");
            ++counters_.successful_operations;
        }
        end_lease(c, lease, false);
        return;
    }
    // Held until the answer: the caller is watched meanwhile, so that the lease comes back if it exits.
    c.holder.assign(caller);
    c.one_shot = true;
    watch_holder(c, lease);
    if (job.kind == OneShotKind::call) {
        start_call(c, caller, job.payload, job.timeout_ms, lease);
    } else {
        start_request(c, caller, job.to, job.timeout_ms, [&](protocol::TermWriter& w) { w.raw(job.payload); }, lease);
    }
}

void Pool::end_one_shot(PooledConnection& c, std::uint64_t lease)
{
    if (lease != 0 && c.one_shot && core_.lease_current(c.index, lease)) {
        end_lease(c, lease, true);
    }
}

void Pool::cast_batch(const CallerView& caller, const Destination& to, const std::vector<BatchMessage>& messages,
                      bool keyed)
{
    if (draining_) {
        reply_error(caller, "invalid_pool");
        return;
    }
    std::vector<PooledConnection*> live;
    for (const auto& c : connections_) {
        if (c->live()) {
            live.push_back(c.get());
        }
    }
    if (live.empty()) {
        ++counters_.failed_operations;
        reply_error(caller, no_connection());
        return;
    }
    const std::size_t n = live.size();
    const std::size_t start = keyed ? 0 : static_cast<std::size_t>(batch_cursor_++ % n);
    for (std::size_t i = 0; i < messages.size(); ++i) {
        // Keyed: the same hash always picks the same connection while the set of live connections stays.
        PooledConnection& c = *live[keyed ? messages[i].hash % n : (start + i) % n];
        write_message(c, to, messages[i].term, payload_owner(caller, messages[i].term));
    }
    std::uint32_t busy = 0;
    for (auto* c : live) {
        if (!c->link->is_open()) {
            // Closed under the write (its peer stopped reading): what was queued on it is lost.
            ++counters_.failed_operations;
            reply_error(caller, closed_under_writes(*c));
            return;
        }
        busy += c->link->busy() ? 1 : 0;
    }
    const auto count = static_cast<std::int64_t>(messages.size());
    if (busy == 0) {
        reply(caller, [count](protocol::TermWriter& w) {
            w.tuple(2);
            w.atom("ok");
            w.integer(count);
        });
        counters_.successful_operations += messages.size();
        return;
    }
    // Back-pressure, as for send: answered when every busy connection has drained.
    auto batch = std::make_shared<ParkedBatch>(ParkedBatch{Caller(caller), count, busy, false});
    for (auto* c : live) {
        if (c->link->busy()) {
            c->parked.push_back({Caller{}, batch});
        }
    }
}

// The monitor is the identity's the caller came in on (its lane): its exit comes back over that link.
void Pool::monitor_caller(const CallerView& caller, std::uint64_t number)
{
    if (caller.link && caller.link->is_open() && caller.self) {
        auto w = caller.link->begin_packet();
        w.version();
        protocol::write_monitor(w, caller.self->self_pid(), caller.from, *caller.self, number);
        caller.link->end_packet();
    }
}

void Pool::watch_holder(PooledConnection& c, std::uint64_t lease)
{
    c.holder_watched = false;
    context_.scheduler->schedule(
        Deadline{Clock::now() + kHolderWatchDelay, DeadlineKind::holder, id_, connection_key(c.index, lease)});
}

void Pool::demonitor_caller(const CallerView& caller, std::uint64_t number)
{
    if (caller.link && caller.link->is_open() && caller.self) {
        auto w = caller.link->begin_packet();
        w.version();
        protocol::write_demonitor(w, caller.self->self_pid(), caller.from, *caller.self, number);
        caller.link->end_packet();
    }
}

bool Pool::checkin(std::uint32_t conn, std::uint64_t lease, bool discard)
{
    if (conn >= connections_.size() || !core_.lease_current(conn, lease)) {
        return false;
    }
    PooledConnection& c = *connections_[conn];
    if (discard && c.link) {
        spdlog::info("pool {}: {} discarded by its lease holder, reopening it", label(), c.node_name);
        // Closed before the lease ends, so the slot comes back as one to reconnect, never as idle.
        drop_link(c, CloseReason::broken, "its holder discarded it as broken");
    }
    end_lease(c, lease, true);
    return true;
}

void Pool::end_lease(PooledConnection& c, std::uint64_t lease, bool notify_holder)
{
    if (notify_holder && c.holder_watched) {
        demonitor_caller(c.holder.view(), lease);
    }
    c.holder_watched = false;
    c.holder.link.reset();
    c.one_shot = false;
    const bool healthy = c.live();
    if (draining_) {
        // Destroying: a connection that comes back is closed, and the last one to come back ends the drain.
        if (core_.release(c.index, lease, healthy).ended && !destroyed_) {
            core_.close_idle(c.index);
            drop_link(c, CloseReason::destroy, "the pool was destroyed");
            if (core_.counts().leased == 0) {
                finish_destroy();
            }
        }
        return;
    }
    const bool expired = healthy && c.expires_at <= Clock::now();
    const auto released = core_.release(c.index, lease, healthy && !expired);
    if (!released.ended) {
        return;
    }
    if (expired) {
        retire(c);
    } else if (!healthy && !c.connecting) {
        schedule_reconnect(c);
    } else if (core_.state(c.index) == SlotState::idle) {
        c.idle_since = Clock::now();
    }
    if (released.next) {
        grant_to_waiter(*released.next);
    }
}

void Pool::cancel(std::string_view pid, std::string_view tag)
{
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->second.caller.from == pid && it->second.caller.tag == tag) {
            core_.cancel(it->first);
            demonitor_caller(it->second.caller.view(), it->first);
            waiters_.erase(it);
            return;
        }
    }
    for (auto& c : connections_) {
        if (c->validating && c->validating->caller.from == pid && c->validating->caller.tag == tag) {
            c->validating.reset();
            end_lease(*c, core_.lease_of(c->index), false);
            return;
        }
        if (core_.state(c->index) == SlotState::leased && c->holder.from == pid && c->holder.tag == tag) {
            end_lease(*c, core_.lease_of(c->index), true);
            return;
        }
    }
}

std::optional<Failure> Pool::lease_error(std::uint32_t conn, std::uint64_t lease) const
{
    if (conn >= connections_.size() || !core_.lease_current(conn, lease) || connections_[conn]->validating) {
        return Failure("invalid_connection");
    }
    if (const auto& c = *connections_[conn]; !c.live()) {
        return c.down;
    }
    return std::nullopt;
}

bool Pool::validate_lease(const CallerView& caller, std::uint32_t conn, std::uint64_t lease)
{
    const auto error = lease_error(conn, lease);
    if (!error) {
        return true;
    }
    reply_error(caller, *error);
    ++counters_.failed_operations;
    return false;
}

namespace {

// Atom cache entries of a pooled connection's own packets: its node name (in every sender pid) in entry 0, a
// destination name in one of the others, picked by its hash (two names on one entry take turns).
constexpr std::uint16_t kOwnNodeEntry = 0;
std::uint16_t name_entry(std::string_view name)
{
    return static_cast<std::uint16_t>(1 + std::hash<std::string_view>{}(name) % (protocol::kAtomCacheSize - 1));
}

// The text of an encoded atom (the destination names of sends are atoms, checked by parse_destination).
std::string_view atom_text(std::string_view encoded)
{
    protocol::TermReader r(encoded);
    return r.atom().value_or(std::string_view{});
}

} // namespace

void Pool::write_message(PooledConnection& c, const Destination& to, std::string_view message,
                         const std::shared_ptr<const void>& owner)
{
    transport::DistLink& link = *c.link;
    const bool cached = !c.head.empty() && c.head_to_name == to.is_name && c.head_destination == to.encoded &&
                        (!link.uses_atom_cache() || c.head_atoms == link.atoms_sent().changes());
    if (!cached) {
        ByteBuffer head;
        bool defines = false; // the head sends atom text along: good for this packet only
        const std::string_view self_pid = c.identity->self_pid();
        if (link.uses_atom_cache() && to.is_name) {
            // A distribution header naming our node (in the sender pid) and the destination by cache
            // entry: sent as text the first time, as references after that.
            const std::string_view node = c.identity->node_name();
            const std::string_view name = atom_text(to.encoded);
            const protocol::AtomRef refs[2] = {
                {kOwnNodeEntry, node, link.atoms_sent().define(kOwnNodeEntry, node)},
                {name_entry(name), name, link.atoms_sent().define(name_entry(name), name)}};
            defines = refs[0].is_new || refs[1].is_new;
            protocol::write_dist_header(head, refs);
            protocol::TermWriter w(head, false);
            // REG_SEND {6, FromPid, '', ToName}; the pid's fields after its node atom are its last 12 bytes.
            w.tuple(4);
            w.integer(static_cast<int>(protocol::ControlOp::reg_send));
            const char pid_with_ref[3] = {static_cast<char>(protocol::tag::new_pid),
                                          static_cast<char>(protocol::kAtomCacheRef), 0};
            head.append(pid_with_ref, sizeof pid_with_ref);
            head.append(self_pid.substr(self_pid.size() - 12));
            w.atom("");
            const char name_ref[2] = {static_cast<char>(protocol::kAtomCacheRef), 1};
            head.append(name_ref, sizeof name_ref);
        } else {
            if (link.uses_atom_cache()) {
                protocol::write_dist_header(head, {});
            } else {
                head.push_back(protocol::kPassThrough);
            }
            protocol::TermWriter w(head, !link.uses_atom_cache());
            w.version();
            if (to.is_name) {
                protocol::write_reg_send(w, self_pid, to.encoded);
            } else {
                protocol::write_send(w, to.encoded);
            }
            w.version();
        }
        if (defines) {
            c.head.clear();
            link.write_packet(head.view(), message, owner);
            return;
        }
        c.head.assign(head.view());
        c.head_destination.assign(to.encoded);
        c.head_to_name = to.is_name;
        c.head_atoms = link.atoms_sent().changes();
    }
    link.write_packet(c.head, message, owner);
}

void Pool::send(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                std::string_view message)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    PooledConnection& c = *connections_[conn];
    write_message(c, to, message, payload_owner(caller, message));
    if (c.link->busy()) {
        // Answered when the output drains: the caller is held back as distribution holds a sender back.
        c.parked.push_back({Caller(caller), nullptr});
        return;
    }
    reply_atom(caller, "ok");
    ++counters_.successful_operations;
}

void Pool::send_many(const CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                     const std::vector<std::pair<std::optional<Destination>, std::string_view>>& messages)
{
    if (const auto error = lease_error(conn, lease)) {
        // The sender learns it from this answer; the messages count as dropped, as casts that found no lease.
        counters_.dropped_sends += messages.size();
        counters_.failed_operations += std::max<std::size_t>(messages.size(), 1);
        reply_error(caller, *error);
        return;
    }
    PooledConnection& c = *connections_[conn];
    for (const auto& [to, message] : messages) {
        if (!to) {
            ++counters_.dropped_sends;
            ++counters_.failed_operations;
            continue;
        }
        write_message(c, *to, message, payload_owner(caller, message));
        ++counters_.successful_operations;
    }
    if (!c.link->is_open()) {
        reply_error(caller, closed_under_writes(c)); // its queue is lost
        return;
    }
    if (c.link->busy()) {
        c.parked.push_back({Caller(caller), nullptr, true});
        return;
    }
    reply_atom(caller, "ok");
}

namespace {

// As gen_server:call does: monitor the server, then send {'$gen_call', {From, Ref}, Request}, all over `link`
// as the pooled connection's own process.
template <class WriteRequest>
void write_gen_call(transport::DistLink& link, const protocol::NodeIdentity& me, const Destination& to,
                    std::uint64_t ref, WriteRequest&& write_request)
{
    auto monitor = link.begin_packet();
    monitor.version();
    protocol::write_monitor(monitor, me.self_pid(), to.encoded, me, ref);
    link.end_packet();

    auto w = link.begin_packet();
    w.version();
    if (to.is_name) {
        protocol::write_reg_send(w, me.self_pid(), to.encoded);
    } else {
        protocol::write_send(w, to.encoded);
    }
    w.version();
    w.tuple(3);
    w.atom("$gen_call");
    w.tuple(2);
    w.raw(me.self_pid());
    me.write_ref(w, ref);
    write_request(w);
    link.end_packet();
}

// SPAWN_REQUEST of erpc:execute_call(Ref, M, F, A) with the request id as Ref, monitored; `write_mfa` writes
// M, F and A.
template <class WriteMfa>
void spawn_execute_call(transport::DistLink& link, const protocol::NodeIdentity& me, std::uint64_t ref,
                        std::string_view group_leader, WriteMfa&& write_mfa)
{
    auto w = link.begin_packet();
    w.version();
    protocol::write_spawn_request(w, me, ref, group_leader, "erpc", "execute_call", 4);
    w.version();
    w.list(4);
    me.write_ref(w, ref);
    write_mfa(w);
    w.nil();
    link.end_packet();
}

PooledConnection::PendingRequest& free_pending_entry(std::vector<PooledConnection::PendingRequest>& pending)
{
    auto free_entry = std::find_if(pending.begin(), pending.end(), [](const auto& p) { return p.ref == 0; });
    if (free_entry == pending.end()) {
        pending.emplace_back();
        return pending.back();
    }
    return *free_entry;
}

} // namespace

void Pool::request(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                   std::optional<std::uint32_t> timeout_ms, std::string_view request)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    start_request(*connections_[conn], caller, to, timeout_ms, [request](protocol::TermWriter& w) { w.raw(request); },
                  0);
}

void Pool::call(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, std::string_view mfa,
                std::optional<std::uint32_t> timeout_ms)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    start_call(*connections_[conn], caller, mfa, timeout_ms, 0);
}

PooledConnection::PendingRequest& Pool::add_pending(PooledConnection& c, std::uint64_t ref,
                                                    PooledConnection::Purpose purpose, bool spawned)
{
    auto& entry = free_pending_entry(c.pending);
    entry.ref = ref;
    entry.purpose = purpose;
    entry.spawned = spawned;
    entry.caller.link.reset();
    entry.destination.clear();
    entry.one_shot_lease = 0;
    entry.written = Clock::now();
    ++c.pending_count;
    return entry;
}

template <class WriteRequest>
void Pool::start_request(PooledConnection& c, const CallerView& caller, const Destination& to,
                         std::optional<std::uint32_t> timeout_ms, WriteRequest&& write_request,
                         std::uint64_t one_shot_lease)
{
    const std::uint64_t ref = c.next_ref++;
    write_gen_call(*c.link, *c.identity, to, ref, write_request);

    auto& entry = add_pending(c, ref, PooledConnection::Purpose::caller, false);
    entry.caller.assign(caller);
    entry.destination.assign(to.encoded);
    entry.one_shot_lease = one_shot_lease;
    if (timeout_ms) {
        context_.scheduler->schedule(Deadline{entry.written + std::chrono::milliseconds(*timeout_ms),
                                              DeadlineKind::request, id_, connection_key(c.index, ref)});
    }
}

void Pool::start_call(PooledConnection& c, const CallerView& caller, std::string_view mfa,
                      std::optional<std::uint32_t> timeout_ms, std::uint64_t one_shot_lease)
{
    if (c.group_leader.empty()) {
        // rex's {call, M, F, A, user}: what rpc:call sends; rex runs it in a process of its own.
        start_request(c, caller, Destination{true, kRex}, timeout_ms,
                      [mfa](protocol::TermWriter& w) {
                          w.tuple(5);
                          w.atom("call");
                          w.raw(mfa);
                          w.atom("user");
                      },
                      one_shot_lease);
        return;
    }
    // What erpc:call does: one SPAWN_REQUEST of erpc:execute_call(Ref, M, F, A), monitored, whose exit reason
    // {Ref, return | throw | exit | error, ...} is the answer. No process of the target's is in the way.
    const std::uint64_t ref = c.next_ref++;
    spawn_execute_call(*c.link, *c.identity, ref, c.group_leader, [&](protocol::TermWriter& w) { w.raw(mfa); });
    auto& entry = add_pending(c, ref, PooledConnection::Purpose::caller, true);
    entry.caller.assign(caller);
    entry.one_shot_lease = one_shot_lease;
    if (timeout_ms) {
        context_.scheduler->schedule(Deadline{entry.written + std::chrono::milliseconds(*timeout_ms),
                                              DeadlineKind::request, id_, connection_key(c.index, ref)});
    }
}

void Pool::learn_group_leader(PooledConnection& c)
{
    // erlang:whereis(user), spawned with our own process as group leader (it does no I/O).
    const std::uint64_t ref = c.next_ref++;
    spawn_execute_call(*c.link, *c.identity, ref, c.identity->self_pid(), [](protocol::TermWriter& w) {
        w.atom("erlang");
        w.atom("whereis");
        w.list(1);
        w.atom("user");
        w.nil();
    });
    add_pending(c, ref, PooledConnection::Purpose::group_leader, true);
    context_.scheduler->schedule(
        Deadline{Clock::now() + std::chrono::milliseconds(config_.connect_timeout_ms), DeadlineKind::request, id_,
                 connection_key(c.index, ref)});
}

void Pool::start_health_check(PooledConnection& c)
{
    if (!c.live()) {
        return;
    }
    ++counters_.health_checks;
    c.health_check_in_flight = true;
    // What net_adm:ping asks: it needs nothing of ours on the target, and an answer proves the target's
    // scheduler and its net_kernel are alive, not only its socket.
    const std::uint64_t ref = c.next_ref++;
    const std::string_view self_name = c.node_name;
    write_gen_call(*c.link, *c.identity, Destination{true, kNetKernel}, ref, [self_name](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("is_auth");
        w.atom(self_name);
    });
    auto& entry = add_pending(c, ref, PooledConnection::Purpose::health, false);
    entry.destination.assign(kNetKernel);
    context_.scheduler->schedule(
        Deadline{entry.written + std::chrono::milliseconds(config_.health_check_timeout_ms), DeadlineKind::request,
                 id_, connection_key(c.index, ref)});
}

void Pool::on_health_result(PooledConnection& c, bool ok)
{
    c.health_check_in_flight = false;
    if (ok) {
        if (c.validating) {
            auto v = std::move(*c.validating);
            c.validating.reset();
            const auto job = v.job ? std::optional<OneShotView>(v.job->view()) : std::nullopt;
            grant(Grant{c.index, core_.lease_of(c.index), v.waiter}, v.caller.view(), v.started, job ? &*job : nullptr);
        }
        return;
    }
    spdlog::warn("pool {}: {} failed its health check, replacing it", label(), c.node_name);
    drop_link(c, CloseReason::health, "it failed its health check");
    after_link_lost(c);
}

void Pool::answer_reply(PooledConnection& c, std::string_view message)
{
    protocol::TermReader r(message);
    if (!r.version() || r.tuple_header() != 2u) {
        return;
    }
    const auto ref = r.ref();
    if (!ref || !c.identity) {
        return;
    }
    const auto number = c.identity->ref_number(*ref);
    auto* p = number ? c.find_pending(*number) : nullptr;
    if (p == nullptr || p->spawned) {
        return; // a reply after its timeout (a spawned call answers by its exit, never by a message)
    }
    const std::string_view answer = r.rest();
    write_demonitor(c, p->destination, p->ref);
    if (p->purpose == PooledConnection::Purpose::health) {
        protocol::TermReader a(answer);
        const auto yes = a.atom();
        finish_request(c, *p);
        on_health_result(c, yes && *yes == "yes");
        return;
    }
    reply(p->caller.view(), [answer](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.raw(answer);
    });
    request_rtt_.record(micros(Clock::now() - p->written));
    ++counters_.successful_operations;
    const auto lease = p->one_shot_lease;
    finish_request(c, *p);
    end_one_shot(c, lease);
}

void Pool::answer_down(PooledConnection& c, std::string_view ref_term, std::string_view reason)
{
    protocol::TermReader r(ref_term);
    const auto ref = r.ref();
    if (!ref || !c.identity) {
        return;
    }
    const auto number = c.identity->ref_number(*ref);
    auto* p = number ? c.find_pending(*number) : nullptr;
    if (p == nullptr) {
        return;
    }
    if (p->spawned) {
        answer_call_exit(c, *p, reason);
        return;
    }
    if (p->purpose == PooledConnection::Purpose::health) {
        finish_request(c, *p);
        on_health_result(c, false);
        return;
    }
    reply(p->caller.view(), [reason](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        w.tuple(2);
        w.atom("down");
        w.raw(reason);
    });
    request_rtt_.record(micros(Clock::now() - p->written));
    ++counters_.failed_operations;
    const auto lease = p->one_shot_lease;
    finish_request(c, *p);
    end_one_shot(c, lease);
}

namespace {

// {error, {badrpc, {'EXIT', Reason}}}, Reason written by `write_reason`: rex's answer to a call that raised.
template <class WriteReason>
void write_badrpc_exit(protocol::TermWriter& w, WriteReason&& write_reason)
{
    w.tuple(2);
    w.atom("error");
    w.tuple(2);
    w.atom("badrpc");
    w.tuple(2);
    w.atom("EXIT");
    write_reason(w);
}

} // namespace

void Pool::answer_spawn_reply(PooledConnection& c, std::string_view ref_term, std::string_view result)
{
    protocol::TermReader r(ref_term);
    const auto ref = r.ref();
    const auto number = ref && c.identity ? c.identity->ref_number(*ref) : std::nullopt;
    auto* p = number ? c.find_pending(*number) : nullptr;
    if (p == nullptr || !p->spawned) {
        return;
    }
    protocol::TermReader res(result);
    const auto error = res.atom();
    if (!error) {
        return; // spawned: the answer is its exit
    }
    // The target could not spawn it (system_limit, ...): as rex answers a spawn it cannot make.
    if (p->purpose == PooledConnection::Purpose::caller) {
        reply(p->caller.view(), [result](protocol::TermWriter& w) {
            write_badrpc_exit(w, [result](protocol::TermWriter& x) { x.raw(result); });
        });
        ++counters_.failed_operations;
    }
    const auto lease = p->one_shot_lease;
    finish_request(c, *p);
    end_one_shot(c, lease);
}

void Pool::answer_call_exit(PooledConnection& c, PooledConnection::PendingRequest& p, std::string_view reason)
{
    // erpc:execute_call(Ref, M, F, A) exits with {Ref, return, Value}, {Ref, throw, Value}, {Ref, exit, Reason},
    // {Ref, error, {erpc, Reason}} (M:F/A itself is undefined or the arguments are bad) or
    // {Ref, error, Reason, Stack}; any other reason came from outside (a kill). Answered in rex's terms, which
    // this call has always had: the value of return and throw, else {badrpc, {'EXIT', ...}}.
    protocol::TermReader r(reason);
    const auto arity = r.tuple_header();
    const auto ref = arity == 3u || arity == 4u ? r.ref() : std::nullopt;
    const bool ours = ref && c.identity->ref_number(*ref) == std::optional<std::uint64_t>(p.ref);
    const auto kind = ours ? r.atom() : std::nullopt;
    const auto first = kind ? r.skip() : std::nullopt;
    const auto second = first && arity == 4u ? r.skip() : std::nullopt;
    const bool whole = first && r.at_end() && (arity == 3u || second);

    if (p.purpose == PooledConnection::Purpose::group_leader) {
        protocol::TermReader value(first.value_or(std::string_view{}));
        if (whole && arity == 3u && *kind == "return" && value.pid() && value.at_end()) {
            c.group_leader.assign(*first);
        }
        finish_request(c, p);
        return;
    }
    const auto answer = [&](auto&& write) {
        reply(p.caller.view(), write);
        request_rtt_.record(micros(Clock::now() - p.written));
        ++counters_.successful_operations;
    };
    if (whole && arity == 3u && (*kind == "return" || *kind == "throw")) {
        answer([&](protocol::TermWriter& w) {
            w.tuple(2);
            w.atom("ok");
            w.raw(*first);
        });
    } else if (whole && arity == 3u && *kind == "error") {
        // {erpc, Reason} when the call could not be made at all: rex says {'EXIT', Reason}.
        protocol::TermReader e(*first);
        const bool erpc = e.tuple_header() == 2u && e.atom() == std::optional<std::string_view>("erpc");
        const auto inner = erpc ? e.skip() : std::nullopt;
        const std::string_view why = inner && e.at_end() ? *inner : *first;
        answer([why](protocol::TermWriter& w) { write_badrpc_exit(w, [why](auto& x) { x.raw(why); }); });
    } else if (whole && arity == 4u && *kind == "error") {
        answer([&](protocol::TermWriter& w) {
            write_badrpc_exit(w, [&](protocol::TermWriter& x) {
                x.tuple(2);
                x.raw(*first);
                x.raw(*second);
            });
        });
    } else if (whole && arity == 3u && *kind == "exit") {
        answer([&](protocol::TermWriter& w) { write_badrpc_exit(w, [&](auto& x) { x.raw(*first); }); });
    } else {
        answer([reason](protocol::TermWriter& w) { write_badrpc_exit(w, [reason](auto& x) { x.raw(reason); }); });
    }
    const auto lease = p.one_shot_lease;
    finish_request(c, p);
    end_one_shot(c, lease);
}

void Pool::finish_request(PooledConnection& c, PooledConnection::PendingRequest& p)
{
    p.ref = 0;
    p.caller.link.reset();
    --c.pending_count;
}

void Pool::write_demonitor(PooledConnection& c, std::string_view destination, std::uint64_t ref)
{
    if (!c.live()) {
        return;
    }
    auto w = c.link->begin_packet();
    w.version();
    protocol::write_demonitor(w, c.identity->self_pid(), destination, *c.identity, ref);
    c.link->end_packet();
}

void Pool::fail_pending(PooledConnection& c, const Failure& reason)
{
    for (auto& p : c.pending) {
        if (p.ref != 0) {
            if (p.purpose == PooledConnection::Purpose::caller) {
                reply_error(p.caller.view(), reason);
                ++counters_.failed_operations;
            }
            finish_request(c, p);
        }
    }
}

void Pool::fail_waiters(const Failure& reason)
{
    for (const auto waiter : core_.take_all_waiters()) {
        auto node = waiters_.extract(waiter);
        if (!node.empty()) {
            demonitor_caller(node.mapped().caller.view(), waiter);
            reply_error(node.mapped().caller.view(), reason);
            ++counters_.failed_operations;
        }
    }
    waiters_.clear();
}

void Pool::on_deadline(const Deadline& d)
{
    if (destroyed_ || (draining_ && d.kind != DeadlineKind::request && d.kind != DeadlineKind::drain &&
                       d.kind != DeadlineKind::holder)) {
        return;
    }
    switch (d.kind) {
    case DeadlineKind::waiter:
        if (const auto held = waiters_.find(d.key);
            held != waiters_.end() && !held->second.held_for_returns &&
            hold_for_returns(held->second.caller.link.get(), d.key)) {
            held->second.held_for_returns = true; // still in line: a checkin on its way may yet grant it
            break;
        }
        if (core_.cancel(d.key)) {
            auto node = waiters_.extract(d.key);
            if (!node.empty()) {
                demonitor_caller(node.mapped().caller.view(), d.key);
                reply_error(node.mapped().caller.view(), "pool_exhausted");
                ++counters_.acquire_timeouts;
                ++counters_.failed_operations;
            }
        }
        break;
    case DeadlineKind::request: {
        const auto conn = key_connection(d.key);
        if (conn >= connections_.size()) {
            break;
        }
        auto& c = *connections_[conn];
        if (auto* p = c.find_pending(key_number(d.key))) {
            if (!p->spawned) {
                write_demonitor(c, p->destination, p->ref);
            }
            if (p->purpose == PooledConnection::Purpose::group_leader) {
                finish_request(c, *p); // calls keep going to rex on this connection
                break;
            }
            if (p->purpose == PooledConnection::Purpose::health) {
                finish_request(c, *p);
                on_health_result(c, false);
                break;
            }
            reply_error(p->caller.view(), "timeout");
            ++counters_.failed_operations;
            const auto lease = p->one_shot_lease;
            finish_request(c, *p);
            end_one_shot(c, lease);
        }
        break;
    }
    case DeadlineKind::reconnect: {
        if (d.key >= connections_.size()) {
            break;
        }
        auto& c = *connections_[d.key];
        if (!c.connecting && !c.link && core_.state(c.index) == SlotState::connecting) {
            ++counters_.reconnect_attempts;
            connect(c);
        }
        break;
    }
    case DeadlineKind::lifetime: {
        const auto conn = key_connection(d.key);
        if (conn < connections_.size()) {
            auto& c = *connections_[conn];
            // A leased connection is replaced when it comes back (end_lease).
            if (key_number(c.generation) == key_number(d.key) && c.live() &&
                core_.state(conn) == SlotState::idle) {
                retire(c);
            }
        }
        break;
    }
    case DeadlineKind::health: {
        const auto conn = key_connection(d.key);
        if (conn >= connections_.size()) {
            break;
        }
        auto& c = *connections_[conn];
        if (key_number(c.generation) != key_number(d.key) || !c.live()) {
            break; // that connection is gone; its successor has its own schedule
        }
        // Only idle connections are checked: a leased one is being used, and its operations tell.
        if (core_.state(conn) == SlotState::idle && !c.health_check_in_flight) {
            start_health_check(c);
        }
        context_.scheduler->schedule(
            Deadline{Clock::now() + std::chrono::milliseconds(config_.health_check_interval_ms),
                     DeadlineKind::health, id_, d.key});
        break;
    }
    case DeadlineKind::holder: {
        // Still leased to the same holder (the lease number matches), and not yet watched: watch it now.
        const auto conn = key_connection(d.key);
        if (conn < connections_.size() && core_.state(conn) == SlotState::leased &&
            key_number(core_.lease_of(conn)) == key_number(d.key)) {
            auto& c = *connections_[conn];
            if (!c.holder_watched && c.holder.link) {
                c.holder_watched = true;
                monitor_caller(c.holder.view(), core_.lease_of(conn));
            }
        }
        break;
    }
    case DeadlineKind::maintenance:
        maintain();
        schedule_maintenance();
        break;
    case DeadlineKind::drain:
        finish_destroy();
        break;
    default:
        break;
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
            if (now - c.idle_since >= std::chrono::milliseconds(config_.max_idle_ms)) {
                spdlog::debug("pool {}: closing {}, idle for {} ms", label(), c.node_name, config_.max_idle_ms);
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
    // Seed 002's rule: grow when callers waited or fewer than 20% of the connections sat idle over the window,
    // shrink when more than 80% did.
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

void Pool::on_monitor_down(std::uint64_t number)
{
    if (auto it = waiters_.find(number); it != waiters_.end()) {
        core_.cancel(number);
        waiters_.erase(it);
        return;
    }
    for (auto& c : connections_) {
        if (core_.lease_current(c->index, number)) {
            if (c->validating) {
                return; // not granted yet: its monitor is the one set after the grant
            }
            end_lease(*c, number, false);
            return;
        }
    }
}

void Pool::on_client_gone(const transport::DistLink* client)
{
    for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->second.caller.link.get() == client) {
            core_.cancel(it->first);
            it = waiters_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& c : connections_) {
        if (c->validating && c->validating->caller.link.get() == client) {
            c->validating.reset();
            end_lease(*c, core_.lease_of(c->index), false);
        }
        if (core_.state(c->index) == SlotState::leased && c->holder.link.get() == client) {
            end_lease(*c, core_.lease_of(c->index), false);
        }
        for (auto& p : c->pending) {
            if (p.ref != 0 && p.caller.link.get() == client) {
                p.caller.link.reset(); // its answer has nowhere to go
            }
        }
        std::erase_if(c->parked, [client](const auto& a) { return a.caller.link.get() == client; });
    }
}

void Pool::destroy(Caller destroyer, std::uint32_t drain_timeout_ms)
{
    if (draining_) {
        reply_error(destroyer.view(), "invalid_pool");
        return;
    }
    draining_ = true;
    destroyer_ = std::move(destroyer);
    spdlog::info("pool {}: destroying; waiting up to {} ms for {} leases", label(), drain_timeout_ms,
                 core_.counts().leased);
    fail_waiters("invalid_pool");
    for (auto& c : connections_) {
        if (c->validating) {
            reply_error(c->validating->caller.view(), "invalid_pool");
            ++counters_.failed_operations;
            c->validating.reset();
            core_.release(c->index, core_.lease_of(c->index), true);
        }
        if (core_.state(c->index) == SlotState::idle) {
            core_.close_idle(c->index);
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
        reply_atom(destroyer_->view(), "ok");
        destroyer_.reset();
    }
    if (context_.drop_pool) {
        asio::post(context_.executor, [drop = context_.drop_pool, id = id_] { drop(id); });
    }
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
        if (c->validating) {
            reply_error(c->validating->caller.view(), "invalid_pool");
            c->validating.reset();
        }
        fail_pending(*c, "invalid_pool");
        fail_parked(*c, "invalid_pool");
        if (core_.state(c->index) == SlotState::leased) {
            end_lease(*c, core_.lease_of(c->index), true);
        }
        drop_link(*c, CloseReason::destroy, "the pool was destroyed");
        close_retiring(*c);
    }
    // Stats reads still waiting for their barrier get the last stats (the barrier's end finds no pool).
    for (const auto& [key, caller] : held_stats_) {
        reply_stats(caller.view());
    }
    held_stats_.clear();
}

std::size_t Pool::live_connections() const
{
    return static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c->live(); }));
}

bool Pool::hold_for_returns(const transport::DistLink* requester, std::uint64_t key)
{
    if (context_.barriers == nullptr) {
        return false;
    }
    // The links a checkin of a lease out now could be travelling on: each holder's own (the library casts the
    // checkin from the holder, over the lane it checked out on). The requester's link needs no probe: what came
    // before the request on it is in already.
    std::vector<const Caller*> targets;
    for (auto& c : connections_) {
        if (core_.state(c->index) != SlotState::leased || c->validating) {
            continue; // a validating checkout has no lease yet
        }
        const Caller& holder = c->holder;
        if (!holder.link || !holder.link->is_open() || holder.self == nullptr) {
            continue; // a closed link's leases come back with it
        }
        bool probe = holder.link.get() != requester;
        if (!c->holder_watched) {
            // A holder that exited before the request counts as having returned its lease: monitor it now
            // rather than 5 ms after its grant, so that its node answers noproc ahead of the probe.
            c->holder_watched = true;
            monitor_caller(holder.view(), core_.lease_of(c->index));
            probe = true;
        }
        if (probe && std::none_of(targets.begin(), targets.end(),
                                  [&](const Caller* t) { return t->link == holder.link; })) {
            targets.push_back(&holder);
        }
    }
    if (targets.empty()) {
        return false;
    }
    std::vector<const void*> links;
    links.reserve(targets.size());
    for (const auto* t : targets) {
        links.push_back(t->link.get());
    }
    const auto started = context_.barriers->start({id_, key}, links);
    if (!started) {
        ++counters_.return_barrier_misses; // every link stalled, or too many barriers in flight
        return false;
    }
    for (const auto& probe : started->probes) {
        const Caller& on = **std::find_if(targets.begin(), targets.end(),
                                          [&](const Caller* t) { return t->link.get() == probe.link; });
        auto w = on.link->begin_packet();
        w.version();
        protocol::write_monitor(w, on.self->self_pid(), kProbeName, *on.self, probe.number);
        on.link->end_packet();
    }
    ++counters_.return_barriers;
    context_.scheduler->schedule(
        Deadline{Clock::now() + kReturnBarrierBound, DeadlineKind::barrier, id_, started->id});
    return true;
}

void Pool::on_barrier_done(std::uint64_t key, bool complete)
{
    if (!complete) {
        ++counters_.return_barrier_misses;
    }
    if (auto held = held_stats_.extract(key); !held.empty()) {
        reply_stats(held.mapped().view());
        return;
    }
    const auto it = waiters_.find(key);
    if (it == waiters_.end() || !it->second.held_for_returns) {
        return; // granted, withdrawn or gone meanwhile
    }
    core_.cancel(key);
    auto node = waiters_.extract(it);
    demonitor_caller(node.mapped().caller.view(), key);
    // Every return it could know of is in: granted if one left a connection idle, pool_exhausted otherwise.
    const auto job = node.mapped().job ? std::optional<OneShotView>(node.mapped().job->view()) : std::nullopt;
    serve(key, node.mapped().caller.view(), node.mapped().started, node.mapped().deadline, false, false,
          job ? &*job : nullptr, true);
}

void Pool::stats(const CallerView& caller)
{
    // A key of its own from the lease counter, so it never names a waiter.
    const std::uint64_t key = ++context_.lease_counter;
    if (hold_for_returns(caller.link.get(), key)) {
        held_stats_.emplace(key, Caller(caller));
        return;
    }
    reply_stats(caller);
}

void Pool::reply_stats(const CallerView& caller) const
{
    reply(caller, [this](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        write_stats(w);
    });
}

void Pool::write_stats(protocol::TermWriter& w) const
{
    const auto counts = core_.counts();
    const auto integer = [&w](std::string_view key, std::uint64_t value) {
        w.atom(key);
        w.integer(static_cast<std::int64_t>(value));
    };
    w.map(33);
    integer("pool_id", id_);
    w.atom("name");
    w.atom(config_.name.empty() ? std::string_view("undefined") : std::string_view(config_.name));
    // Node names as atoms, as Erlang shows nodes: the target's is the caller's own atom, and connection names
    // are few (reused per target: ConnectionNames).
    w.atom("target");
    w.atom(config_.target);
    w.atom("last_failure");
    if (last_failure_.kind.empty()) {
        w.atom("none");
    } else {
        w.tuple(2);
        w.atom(last_failure_.kind);
        w.binary(last_failure_.text);
    }
    w.atom("state");
    w.atom(draining_ ? "draining" : "active");
    integer("total_connections", core_.open_slots());
    integer("available_connections", counts.idle);
    integer("in_use_connections", counts.leased);
    integer("connecting_connections", counts.connecting);
    integer("waiting", counts.waiting);
    integer("capacity", capacity_);
    integer("max_connections", config_.max_connections);
    integer("min_connections", config_.min_connections);
    integer("acquire_timeout_ms", config_.acquire_timeout_ms);
    integer("successful_operations", counters_.successful_operations);
    integer("failed_operations", counters_.failed_operations);
    integer("dropped_sends", counters_.dropped_sends);
    integer("return_barriers", counters_.return_barriers);
    integer("return_barrier_misses", counters_.return_barrier_misses);
    integer("connections_created", counters_.connections_created);
    w.atom("connections_closed");
    w.map(static_cast<std::size_t>(CloseReason::count_));
    for (std::size_t r = 0; r < static_cast<std::size_t>(CloseReason::count_); ++r) {
        integer(close_reason_name(static_cast<CloseReason>(r)), counters_.closed[r]);
    }
    integer("reconnect_attempts", counters_.reconnect_attempts);
    integer("health_checks", counters_.health_checks);
    integer("acquire_count", counters_.acquires);
    integer("acquire_timeouts", counters_.acquire_timeouts);
    integer("hits", counters_.hits);
    integer("misses", counters_.misses);
    integer("acquire_wait_avg_us", acquire_wait_.average());
    integer("acquire_wait_max_us", acquire_wait_.max());
    integer("acquire_wait_p99_us", acquire_wait_.percentile(990));
    integer("request_rtt_p50_us", request_rtt_.percentile(500));
    integer("request_rtt_p99_us", request_rtt_.percentile(990));
    w.atom("connections");
    const auto listed = core_.open_slots();
    if (listed > 0) {
        w.list(listed);
        for (const auto& c : connections_) {
            const auto state = core_.state(c->index);
            if (state == SlotState::closed) {
                continue;
            }
            w.map(3);
            w.atom("id");
            w.integer(c->index);
            w.atom("node");
            w.atom(c->node_name);
            w.atom("state");
            w.atom(state == SlotState::idle ? "available" : state == SlotState::leased ? "in_use" : "connecting");
        }
    }
    w.nil();
}

} // namespace dpool::pool
