// Leases and waiters: checkouts, grants, checkins, one-shot jobs, cast batches and the return barriers that
// keep a refusal honest.
#include "pool/pool.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/control.hpp"

namespace dpool::pool {

std::shared_ptr<const void> payload_owner(const CallerView& caller, std::string_view payload)
{
    if (payload.size() < transport::kMinBorrowedBytes || !caller.link) {
        return nullptr;
    }
    return caller.link->share_packet(payload);
}

namespace {

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

// A lease holder, or a caller in line, is monitored only once it has held its lease (or waited) this long:
// most leases (a one-shot call, a with_connection around one call) come back sooner, and most waits in a busy
// pool end sooner, and then cost no MONITOR_P and DEMONITOR_P packets to the caller's node, whose process
// would handle both signals in the middle of its call. A caller that exits before is noticed when the monitor
// is set (it fires at once, noproc), so its lease comes back, or its place in line goes, within this.
constexpr auto kWatchDelay = std::chrono::milliseconds(5);

} // namespace

void Pool::checkout(const CallerView& caller, std::optional<std::uint32_t> timeout_ms, const OneShotView* job,
                    const Failover& failover, bool quiet)
{
    if (draining_) {
        answers().error(caller, "invalid_pool");
        return;
    }
    const std::uint32_t timeout = timeout_ms.value_or(config_.acquire_timeout_ms);
    const auto now = Clock::now();
    const auto deadline = now + std::chrono::milliseconds(timeout);
    if (target_down_ && live_connections() == 0) {
        if (answer_unserved(caller, job, deadline, failover, no_connection())) {
            ++counters_.acquires;
            ++counters_.misses;
        }
        return;
    }
    // Waiter numbers come from the lease counter: a monitor's reference then names a lease or a waiter, never
    // both.
    serve(Attempt{.waiter = ++context_.lease_counter,
                  .started = now,
                  .deadline = deadline,
                  .may_wait = timeout > 0,
                  .failover = failover,
                  .quiet = quiet && job == nullptr},
          caller, job);
}

bool Pool::answer_unserved(const CallerView& caller, const OneShotView* job, Clock::time_point deadline,
                           const Failover& failover, const Failure& failure)
{
    if (group_ != nullptr && group_->take_over(*this, caller, job, deadline, failover, failure)) {
        return false;
    }
    answers().error(caller, failure);
    ++counters_.failed_operations;
    return true;
}

void Pool::unserve_validation(PooledConnection& c, const Failure& failure)
{
    auto v = std::move(*c.slot.validating);
    c.slot.validating.reset();
    const auto job = view_of(v.job);
    answer_unserved(v.caller.view(), job ? &*job : nullptr, v.deadline, v.failover, failure);
}

void Pool::join_group(MemberEvents* events, std::uint32_t conn_base)
{
    group_ = events;
    conn_base_ = conn_base;
}

std::uint64_t Pool::load() const
{
    const auto counts = core_.counts();
    return std::uint64_t{counts.leased} + counts.waiting;
}

void Pool::serve(const Attempt& attempt, const CallerView& caller, const OneShotView* job)
{
    if (attempt.first_try) {
        ++counters_.acquires;
    }
    // max_lifetime_ms holds at checkout too, not only when the timer fires: an expired connection is replaced,
    // never leased.
    const auto now = Clock::now();
    while (!core_.idle_slots().empty() && connections_[core_.idle_slots().back()]->slot.expires_at <= now) {
        retire(*connections_[core_.idle_slots().back()]);
    }
    if (!core_.idle_slots().empty()) {
        const auto got = core_.acquire(attempt.waiter, attempt.may_wait);
        if (attempt.first_try) {
            ++counters_.hits;
        }
        PooledConnection& c = *connections_[got.grant.slot];
        if (config_.validate_on_checkout) {
            c.slot.validating = Validation{attempt.waiter, Caller(caller), attempt.started, attempt.deadline,
                                           attempt.may_wait, keep_job(caller, job), attempt.failover};
            if (!c.slot.health_check_in_flight) {
                start_health_check(c);
            }
            return;
        }
        grant(got.grant, caller, Asked{attempt.started, attempt.deadline, attempt.failover, attempt.quiet}, job);
        return;
    }
    if (attempt.first_try) {
        ++counters_.misses;
    }
    // Every caller in line is memory the pool holds for it (its pid, tag, job, deadlines): the line has a
    // bound, and a checkout that would take a place beyond it is refused at once. A retry keeps its place.
    if (attempt.first_try && waiters_.size() >= config_.max_waiters) {
        answer_refused(caller, refuse(Limit::max_waiters,
                                      fmt::format("{} callers wait for a connection of pool {}, its limit "
                                                  "(option max_waiters of new)",
                                                  waiters_.size(), label_)));
        return;
    }
    if (!attempt.may_wait || attempt.deadline <= now) {
        // A lease returned before this request was sent may still be on its way over another link: the
        // checkout waits in line for a return barrier (on_barrier_done) before it can be refused.
        if (!attempt.returns_checked && hold_for_returns(caller.link.get(), attempt.waiter)) {
            enqueue_waiter(attempt, caller, job).held_for_returns = true;
            return;
        }
        ++counters_.acquire_timeouts;
        ++counters_.failed_operations;
        answers().error(caller, "pool_exhausted");
        return;
    }
    enqueue_waiter(attempt, caller, job);
    context_.scheduler->schedule(Deadline{attempt.deadline, DeadlineKind::waiter, id_, attempt.waiter});
    window_saw_waiters_ = true;
    // Callers wait: open one more connection if below the maximum and fewer are opening than callers wait.
    const auto counts = core_.counts();
    const std::size_t opening = static_cast<std::size_t>(std::count_if(
        connections_.begin(), connections_.end(), [](const auto& c) { return c->slot.connecting; }));
    if (core_.open_slots() < config_.max_connections && opening < std::max<std::size_t>(counts.waiting, 1)) {
        connect(open_connection());
        capacity_ = std::max(capacity_, core_.open_slots());
    }
}

Pool::Waiter& Pool::enqueue_waiter(const Attempt& attempt, const CallerView& caller, const OneShotView* job)
{
    if (attempt.first_try) {
        core_.acquire(attempt.waiter, true);
    } else {
        core_.requeue_first(attempt.waiter); // back in its place in line
    }
    auto& entry = waiters_
                      .emplace(attempt.waiter, Waiter{Caller(caller), attempt.started, attempt.deadline,
                                                      keep_job(caller, job), false, attempt.failover})
                      .first->second;
    context_.scheduler->schedule(Deadline{Clock::now() + kWatchDelay, DeadlineKind::waiter_watch, id_, attempt.waiter});
    return entry;
}

void Pool::watch_waiter_now(std::uint64_t waiter)
{
    if (const auto it = waiters_.find(waiter); it != waiters_.end() && !it->second.watched) {
        it->second.watched = true;
        monitor_caller(it->second.caller.view(), waiter);
    }
}

void Pool::unwatch_waiter(const Waiter& w, std::uint64_t waiter)
{
    if (w.watched) {
        demonitor_caller(w.caller.view(), waiter);
    }
}

void Pool::grant(const Grant& g, const CallerView& caller, const Asked& asked, const OneShotView* job)
{
    PooledConnection& c = *connections_[g.slot];
    if (!caller.link || !caller.link->is_open()) {
        end_lease(c, g.lease, false); // its node is gone: nobody could ever return this lease
        return;
    }
    acquire_wait_.record(Clock::now() - asked.started);
    if (job) {
        run_one_shot(c, g.lease, caller, *job, asked);
        return;
    }
    c.slot.holder.assign(caller);
    // Watch the holder: if it exits, or its node goes, the lease comes back without anyone asking.
    watch_holder(c, g.lease);
    if (asked.quiet) {
        c.slot.ids_untold = true; // its first operation by the checkout's tag tells them
        return;
    }
    answers().granted(c.slot.holder.view(), conn_id(g.slot), g.lease, c.node_name());
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
    shrink_waiters();
    if (node.empty()) {
        // The waiter left (exited, cancelled, or the pool is closing) between its grant and now.
        end_lease(*connections_[g.slot], g.lease, false);
        return;
    }
    const Waiter& w = node.mapped();
    unwatch_waiter(w, g.waiter);
    const auto job = view_of(w.job);
    grant(g, w.caller.view(), Asked{w.started, w.deadline, w.failover}, job ? &*job : nullptr);
}

void Pool::run_one_shot(PooledConnection& c, std::uint64_t lease, const CallerView& caller, const OneShotView& job,
                        const Asked& asked)
{
    if (!c.live()) {
        // Nothing of it was written: a group may still send it to another member, as it would have had the
        // connection been seen down before the grant.
        answer_unserved(caller, &job, asked.deadline, asked.failover, c.slot.down);
        end_lease(c, lease, false);
        return;
    }
    if (job.kind == OneShotKind::send) {
        if (const auto refused = output_refusal(c, job.payload.size())) {
            answer_refused(caller, *refused);
            end_lease(c, lease, false);
            return;
        }
        // Queued in order on the connection: the lease can go back before the bytes are written.
        c.write_message(job.to, job.payload, payload_owner(caller, job));
        if (c.link()->busy()) {
            c.slot.parked.push_back({Caller(caller), nullptr});
        } else {
            answers().ok(caller);
            ++counters_.successful_operations;
        }
        end_lease(c, lease, false);
        return;
    }
    // Held until the answer: the caller is watched meanwhile, so that the lease comes back if it exits.
    c.slot.holder.assign(caller);
    c.slot.one_shot = true;
    watch_holder(c, lease);
    if (job.kind == OneShotKind::call) {
        start_call(c, caller, job.payload, job.timeout_ms, lease);
    } else {
        start_raw_request(c, caller, job.to, job.timeout_ms, job.payload, lease);
    }
}

void Pool::end_one_shot(PooledConnection& c, std::uint64_t lease)
{
    if (lease != 0 && c.slot.one_shot && core_.lease_current(c.index(), lease)) {
        end_lease(c, lease, true);
    }
}

Failure Pool::refuse(Limit limit, std::string text)
{
    return counters_.limit_refusals.refuse(limit, std::move(text), &context_.limit_refusals);
}

void Pool::answer_refused(const CallerView& caller, const Failure& why)
{
    answers().error(caller, why);
    ++counters_.failed_operations;
}

std::optional<Failure> Pool::link_queue_refusal(const PooledConnection& c, std::size_t bytes)
{
    if (c.link()->admits(bytes)) {
        return std::nullopt;
    }
    return refuse(Limit::max_link_queue_bytes,
                  fmt::format("the connection {} to {} has {} bytes queued that its target has not read; with {} "
                              "more it would pass its limit of {} (--max-link-queue-bytes)",
                              c.node_name(), config_.target, c.link()->queued_bytes(), bytes,
                              c.link()->limits().max_queued_bytes));
}

std::optional<Failure> Pool::output_queue_refusal(std::size_t bytes)
{
    const auto& output = context_.link_limits.output;
    if (!output || output->admits(bytes)) {
        return std::nullopt;
    }
    return refuse(Limit::max_output_queue_bytes,
                  fmt::format("the C-node has {} bytes queued on all its connections that their peers have not "
                              "read; with {} more it would pass its limit of {} (--max-output-queue-bytes)",
                              output->queued(), bytes, output->limit()));
}

std::optional<Failure> Pool::output_refusal(const PooledConnection& c, std::size_t bytes)
{
    if (auto refused = link_queue_refusal(c, bytes)) {
        return refused;
    }
    return output_queue_refusal(bytes);
}

bool Pool::admit_request(PooledConnection& c, const CallerView& caller, std::size_t bytes,
                         std::uint64_t one_shot_lease)
{
    std::optional<Failure> refused;
    if (c.pending().for_callers() >= config_.max_pending_requests) {
        refused = refuse(Limit::max_pending_requests,
                         fmt::format("the connection {} to {} has {} requests and calls in flight, its limit "
                                     "(option max_pending_requests of new)",
                                     c.node_name(), config_.target, c.pending().for_callers()));
    } else {
        refused = output_refusal(c, bytes);
    }
    if (!refused) {
        return true;
    }
    answer_refused(caller, *refused);
    end_one_shot(c, one_shot_lease);
    return false;
}

void Pool::shrink_waiters()
{
    // A flood of checkouts leaves a table sized for it; rebuilt for what is left once that is an eighth.
    constexpr std::size_t kKeepBuckets = 1024;
    if (waiters_.bucket_count() > kKeepBuckets && waiters_.size() * 8 < waiters_.bucket_count()) {
        waiters_.rehash(0);
    }
    core_.shrink_waiters();
}

void Pool::cast_batch(const CallerView& caller, const Destination& to, const std::vector<BatchMessage>& messages,
                      bool keyed)
{
    if (draining_) {
        answers().error(caller, "invalid_pool");
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
        answers().error(caller, no_connection());
        return;
    }
    const std::size_t n = live.size();
    const std::size_t start = keyed ? 0 : static_cast<std::size_t>(batch_cursor_);
    // Keyed: the same hash always picks the same connection while the set of live connections stays.
    const auto connection_of = [&](std::size_t i) { return keyed ? messages[i].hash % n : (start + i) % n; };
    // The whole batch is queued or none of it: refused by a limit, it leaves no message behind, and the caller
    // can send it again as it is.
    std::vector<std::size_t> shares(n);
    std::size_t total = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        shares[connection_of(i)] += messages[i].term.size();
        total += messages[i].term.size();
    }
    std::optional<Failure> refused;
    for (std::size_t k = 0; k < n && !refused; ++k) {
        refused = shares[k] == 0 ? std::nullopt : link_queue_refusal(*live[k], shares[k]);
    }
    if (!refused) {
        refused = output_queue_refusal(total);
    }
    if (refused) {
        counters_.dropped_sends += messages.size();
        answer_refused(caller, *refused);
        return;
    }
    batch_cursor_ += keyed ? 0 : 1;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        live[connection_of(i)]->write_message(to, messages[i].term, payload_owner(caller, messages[i].term));
    }
    std::uint32_t busy = 0;
    for (auto* c : live) {
        if (!c->link()->is_open()) {
            // Closed under the write (its peer stopped reading): what was queued on it is lost.
            ++counters_.failed_operations;
            answers().error(caller, closed_under_writes(*c));
            return;
        }
        busy += c->link()->busy() ? 1 : 0;
    }
    const auto count = static_cast<std::int64_t>(messages.size());
    if (busy == 0) {
        answers().batch_queued(caller, count);
        counters_.successful_operations += messages.size();
        return;
    }
    // Back-pressure, as for send: answered when every busy connection has drained.
    auto batch = std::make_shared<ParkedBatch>(ParkedBatch{Caller(caller), count, busy, false});
    for (auto* c : live) {
        if (c->link()->busy()) {
            c->slot.parked.push_back({Caller{}, batch});
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
    c.slot.holder_watched = false;
    context_.scheduler->schedule(
        Deadline{Clock::now() + kWatchDelay, DeadlineKind::holder, id_, connection_key(c.index(), lease)});
}

PooledConnection* Pool::unwatched_holder(std::uint64_t key) const
{
    // Still leased to the same holder (the lease number matches), and not yet watched.
    const auto conn = key_connection(key);
    if (conn < connections_.size() && core_.state(conn) == SlotState::leased &&
        key_number(core_.lease_of(conn)) == key_number(key) && !connections_[conn]->slot.holder_watched) {
        return connections_[conn].get();
    }
    return nullptr;
}

void Pool::watch_holder_now(std::uint64_t key)
{
    if (auto* c = unwatched_holder(key); c != nullptr && c->slot.holder.link) {
        c->slot.holder_watched = true;
        monitor_caller(c->slot.holder.view(), core_.lease_of(c->index()));
    }
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

bool Pool::checkin(std::uint32_t conn_id, std::uint64_t lease, bool discard)
{
    const auto conn = conn_index(conn_id);
    if (conn >= connections_.size() || !core_.lease_current(conn, lease)) {
        return false;
    }
    PooledConnection& c = *connections_[conn];
    if (discard && c.link()) {
        log::write(spdlog::level::info, about(&c), "discarded by its lease holder, reopening it");
        // Closed before the lease ends, so the slot comes back as one to reconnect, never as idle.
        drop_link(c, CloseReason::broken, "its holder discarded it as broken");
    }
    end_lease(c, lease, true);
    return true;
}

void Pool::end_lease(PooledConnection& c, std::uint64_t lease, bool notify_holder)
{
    if (notify_holder && c.slot.holder_watched) {
        demonitor_caller(c.slot.holder.view(), lease);
    }
    c.slot.holder_watched = false;
    c.slot.holder.link.reset();
    c.slot.one_shot = false;
    c.slot.ids_untold = false;
    const bool healthy = c.live();
    if (draining_) {
        // Destroying: a connection that comes back is closed, and the last one to come back ends the drain.
        if (core_.release(c.index(), lease, healthy).ended && !destroyed_) {
            core_.close_idle(c.index());
            drop_link(c, CloseReason::destroy, "the pool was destroyed");
            if (core_.counts().leased == 0) {
                finish_destroy();
            }
        }
        return;
    }
    const bool expired = healthy && c.slot.expires_at <= Clock::now();
    const auto released = core_.release(c.index(), lease, healthy && !expired);
    if (!released.ended) {
        return;
    }
    if (expired) {
        retire(c);
    } else if (!healthy && !c.slot.connecting) {
        schedule_reconnect(c);
    } else if (core_.state(c.index()) == SlotState::idle) {
        c.slot.idle_since = Clock::now();
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
            unwatch_waiter(it->second, it->first);
            waiters_.erase(it);
            shrink_waiters();
            return;
        }
    }
    for (auto& c : connections_) {
        auto& slot = c->slot;
        if (slot.validating && slot.validating->caller.from == pid && slot.validating->caller.tag == tag) {
            slot.validating.reset();
            end_lease(*c, core_.lease_of(c->index()), false);
            return;
        }
        if (core_.state(c->index()) == SlotState::leased && slot.holder.from == pid && slot.holder.tag == tag) {
            end_lease(*c, core_.lease_of(c->index()), true);
            return;
        }
    }
}

std::variant<Pool::LeaseIds, Failure> Pool::find_checkout(std::string_view tag) const
{
    for (const auto& c : connections_) {
        const auto& slot = c->slot;
        if (slot.validating && slot.validating->caller.tag == tag) {
            return Failure("lease_pending");
        }
        if (core_.state(c->index()) == SlotState::leased && !slot.one_shot && slot.holder.link &&
            slot.holder.tag == tag) {
            return LeaseIds{conn_id(c->index()), core_.lease_of(c->index())};
        }
    }
    for (const auto& [number, waiter] : waiters_) {
        if (!waiter.job && waiter.caller.tag == tag) {
            return Failure("lease_pending");
        }
    }
    return Failure("invalid_connection");
}

std::optional<Pool::TaggedLease> Pool::leased_by_checkout(const CallerView& caller, std::string_view tag)
{
    auto found = find_checkout(tag);
    if (const auto* ids = std::get_if<LeaseIds>(&found)) {
        auto& c = *connections_[conn_index(ids->conn)];
        TaggedLease lease{*ids, std::nullopt};
        if (c.slot.ids_untold && c.slot.holder.from == caller.from) {
            c.slot.ids_untold = false;
            lease.untold_node = c.node_name();
        }
        return lease;
    }
    const auto& why = std::get<Failure>(found);
    if (why.error != "lease_pending") {
        ++counters_.failed_operations; // as an operation on an ended lease is (validate_lease)
    }
    answers().error(caller, why);
    return std::nullopt;
}

void Pool::lease_of(const CallerView& caller, std::string_view tag)
{
    auto found = find_checkout(tag);
    if (const auto* ids = std::get_if<LeaseIds>(&found)) {
        answers().granted(caller, ids->conn, ids->lease, connections_[conn_index(ids->conn)]->node_name());
    } else {
        answers().error(caller, std::get<Failure>(found));
    }
}

std::optional<Failure> Pool::lease_error(std::uint32_t conn_id, std::uint64_t lease) const
{
    const auto conn = conn_index(conn_id);
    if (conn >= connections_.size() || !core_.lease_current(conn, lease) || connections_[conn]->slot.validating) {
        return Failure("invalid_connection");
    }
    if (const auto& c = *connections_[conn]; !c.live()) {
        return c.slot.down;
    }
    return std::nullopt;
}

bool Pool::validate_lease(const CallerView& caller, std::uint32_t conn, std::uint64_t lease)
{
    const auto error = lease_error(conn, lease);
    if (!error) {
        return true;
    }
    answers().error(caller, *error);
    ++counters_.failed_operations;
    return false;
}

void Pool::fail_waiters(const Failure& reason)
{
    for (const auto waiter : core_.take_all_waiters()) {
        auto node = waiters_.extract(waiter);
        if (!node.empty()) {
            const auto& w = node.mapped();
            unwatch_waiter(w, waiter);
            const auto job = view_of(w.job);
            answer_unserved(w.caller.view(), job ? &*job : nullptr, w.deadline, w.failover, reason);
        }
    }
    waiters_.clear();
    shrink_waiters();
}

void Pool::expire_waiter(std::uint64_t waiter)
{
    if (const auto held = waiters_.find(waiter); held != waiters_.end() && !held->second.held_for_returns &&
                                                 hold_for_returns(held->second.caller.link.get(), waiter)) {
        held->second.held_for_returns = true; // still in line: a checkin on its way may yet grant it
        return;
    }
    if (core_.cancel(waiter)) {
        auto node = waiters_.extract(waiter);
        if (!node.empty()) {
            unwatch_waiter(node.mapped(), waiter);
            answers().error(node.mapped().caller.view(), "pool_exhausted");
            ++counters_.acquire_timeouts;
            ++counters_.failed_operations;
        }
        shrink_waiters();
    }
}

void Pool::on_monitor_down(std::uint64_t number)
{
    if (auto it = waiters_.find(number); it != waiters_.end()) {
        core_.cancel(number);
        waiters_.erase(it);
        shrink_waiters();
        return;
    }
    for (auto& c : connections_) {
        if (core_.lease_current(c->index(), number)) {
            if (c->slot.validating) {
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
    shrink_waiters();
    for (auto& c : connections_) {
        auto& slot = c->slot;
        if (slot.validating && slot.validating->caller.link.get() == client) {
            slot.validating.reset();
            end_lease(*c, core_.lease_of(c->index()), false);
        }
        if (core_.state(c->index()) == SlotState::leased && slot.holder.link.get() == client) {
            end_lease(*c, core_.lease_of(c->index()), false);
        }
        c->pending().for_each([client](PendingRequest& p) {
            if (p.caller.link.get() == client) {
                p.caller.link.reset(); // its answer has nowhere to go
            }
        });
        std::erase_if(slot.parked, [client](const auto& a) { return a.caller.link.get() == client; });
    }
}

std::size_t Pool::live_connections() const
{
    return static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c->live(); }));
}

} // namespace dpool::pool
