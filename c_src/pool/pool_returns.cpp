// Return barriers: before a checkout is refused, or stats are read, the leases returned before the request
// was sent (over other links of the same caller node, or other nodes) are given the time to arrive.
#include "pool/pool.hpp"

#include <algorithm>

#include "protocol/control.hpp"

namespace dpool::pool {

namespace {

// How long a held answer waits for a return barrier (see ReturnBarriers): far above a round trip to a caller
// node, even one busy with a big transfer, and well inside the library's margin over the C-node's own
// deadlines (5 s), so a caller node that stopped reading delays an answer, never loses it.
constexpr auto kReturnBarrierBound = std::chrono::milliseconds(1000);

// The name a return barrier's probe monitors on a caller node: registered by nobody, so that node's runtime
// answers MONITOR_P_EXIT noproc at once, with no process of its own involved (SMALL_ATOM_UTF8_EXT).
constexpr std::string_view kProbeName{"\x77\x18" "$distribute_pool_barrier", 26};

} // namespace

bool Pool::hold_for_returns(const transport::DistLink* requester, std::uint64_t key)
{
    if (context_.barriers == nullptr) {
        return false;
    }
    // The links a checkin of a lease out now could be travelling on: each holder's own (the library casts the
    // checkin from the holder, over the lane it checked out on); and those of the callers in line, whose exits
    // would come over them. The requester's link needs no probe: what came before the request on it is in
    // already.
    std::vector<const Caller*> targets;
    // A caller not watched yet is monitored now rather than kWatchDelay after its grant or its place in line,
    // so that its node answers noproc ahead of the probe if it has exited; its link is then probed, the
    // requester's too.
    const auto watch_and_probe = [&](const Caller& caller, bool& watched, std::uint64_t number) {
        if (!caller.link || !caller.link->is_open() || caller.self == nullptr) {
            return; // a closed link's leases and callers in line go with it
        }
        bool probe = caller.link.get() != requester;
        if (!watched) {
            watched = true;
            monitor_caller(caller.view(), number);
            probe = true;
        }
        if (probe &&
            std::none_of(targets.begin(), targets.end(), [&](const Caller* t) { return t->link == caller.link; })) {
            targets.push_back(&caller);
        }
    };
    // A holder that exited before the request counts as having returned its lease.
    for (auto& c : connections_) {
        if (core_.state(c->index()) != SlotState::leased || c->slot.validating) {
            continue; // a validating checkout has no lease yet
        }
        watch_and_probe(c->slot.holder, c->slot.holder_watched, core_.lease_of(c->index()));
    }
    // A caller in line that exited before the request has left the line by the answer, so stats count no dead
    // waiter and no lease goes to one (send_batch_parallel's workers killed while they waited).
    for (auto& [number, waiter] : waiters_) {
        watch_and_probe(waiter.caller, waiter.watched, number);
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
        answers().stats(held.mapped().view(), snapshot());
        return;
    }
    const auto it = waiters_.find(key);
    if (it == waiters_.end() || !it->second.held_for_returns) {
        return; // granted, withdrawn or gone meanwhile
    }
    core_.cancel(key);
    auto node = waiters_.extract(it);
    const Waiter& w = node.mapped();
    unwatch_waiter(w, key);
    // Every return it could know of is in: granted if one left a connection idle, pool_exhausted otherwise.
    const auto job = view_of(w.job);
    serve(Attempt{.waiter = key,
                  .started = w.started,
                  .deadline = w.deadline,
                  .may_wait = false,
                  .first_try = false,
                  .returns_checked = true,
                  .failover = w.failover},
          w.caller.view(), job ? &*job : nullptr);
}

void Pool::stats(const CallerView& caller)
{
    // A key of its own from the lease counter, so it never names a waiter.
    const std::uint64_t key = ++context_.lease_counter;
    if (hold_for_returns(caller.link.get(), key)) {
        held_stats_.emplace(key, Caller(caller));
        return;
    }
    answers().stats(caller, snapshot());
}

} // namespace dpool::pool
