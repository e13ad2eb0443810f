#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

namespace dpool::pool {

// Return barriers: the bookkeeping that lets an answer depending on which leases are out (a stats read, a
// checkout about to answer pool_exhausted) wait until every checkin its caller could know of has arrived.
//
// Why. A lease goes back by a cast over the holder's lane (its node's connection to one of the C-node's
// names), and the next request may come over another lane, or from another node, and overtake it: a process
// that saw with_connection return, or was told so by one that did, must not get pool_exhausted or see the lease
// in use. A node's distribution output on one connection is FIFO, so the C-node asks each other link that holds
// a lease something that node's runtime answers by itself, with none of our code (a monitor of a registered
// name nobody has: MONITOR_P, answered MONITOR_P_EXIT noproc at once). The answer comes after everything that
// node sent on that link before it read the question, which includes every checkin sent before the held
// request was (happens-before, across processes and nodes). The requester's own link needs no question: what
// it sent before the request is already in.
//
// This class does no I/O and knows no clock (as PoolCore): links are opaque keys, probes are numbers drawn from
// a counter shared with leases and waiters (a monitor reference then names exactly one of them); the owner
// sends the probes it is given, schedules the bound, and reports answers, lost links and expiries, and gets
// back the barriers that ended.
//
// Bounds: at most `max_barriers` barriers at once (beyond, an answer is given without one, and counted); a
// barrier ends when every link answered or closed, or at its deadline (the owner's bound). A link that let a
// barrier expire is stalled: later barriers skip it (and say so) until it answers again, so a node that
// stopped reading costs one bound, not one per request, and its unanswered probes never exceed the barriers that
// were in flight when it stalled.
class ReturnBarriers {
public:
    static constexpr std::size_t kDefaultMaxBarriers = 4096;

    // Who waits: a pool and its key for the held answer.
    struct Owner {
        std::uint64_t pool = 0;
        std::uint64_t key = 0;
    };
    // A barrier that ended; `complete`: every link answered or closed (none expired, none was skipped as
    // stalled).
    struct Finished {
        Owner owner;
        bool complete = true;
    };
    // A probe to send over `link`, numbered `number`.
    struct Probe {
        const void* link = nullptr;
        std::uint64_t number = 0;
    };
    struct Started {
        std::uint64_t id = 0;
        std::vector<Probe> probes;
        std::uint32_t skipped = 0; // stalled links left out: the barrier does not cover them
    };

    explicit ReturnBarriers(std::uint64_t& numbers, std::size_t max_barriers = kDefaultMaxBarriers)
        : numbers_(numbers), max_barriers_(max_barriers)
    {
    }

    // A barrier over `links` (distinct keys) for `owner`. nullopt when there is nothing to wait for: no links,
    // all of them stalled, or too many barriers in flight (then `full()` counts it) — the owner answers now.
    std::optional<Started> start(Owner owner, std::span<const void* const> links);

    // A probe's answer came over `link`. nullopt when `number` is no probe of that link (a monitor of
    // something else); otherwise the barriers that ended. Answers come in the order the probes went (one
    // link is FIFO both ways), so an answer also answers the link's earlier probes.
    std::optional<std::vector<Finished>> answered(const void* link, std::uint64_t number);
    // `link` closed: nothing more can come over it, so barriers stop waiting for it.
    std::vector<Finished> link_gone(const void* link);
    // The bound of barrier `id` passed (a stale id is ignored): it ends incomplete, and the links that did
    // not answer are stalled.
    std::optional<Finished> expire(std::uint64_t id);

    std::size_t in_flight() const { return barriers_.size(); }
    std::uint64_t overflows() const { return overflows_; }
    // Probes sent and not answered on `link` (0 for a link it does not know).
    std::size_t probes_on(const void* link) const;
    bool stalled(const void* link) const;

private:
    struct Barrier {
        Owner owner;
        std::uint32_t links_left = 0;
        bool partial = false; // stalled links were skipped
    };
    struct SentProbe {
        std::uint64_t number = 0;
        std::uint64_t barrier = 0;
    };
    struct LinkState {
        std::deque<SentProbe> probes; // in the order sent
        bool stalled = false;
    };

    // One of barrier `id`'s links is done; appends it to `out` when that was its last.
    void link_done(std::uint64_t id, std::vector<Finished>& out);

    std::uint64_t& numbers_;
    std::size_t max_barriers_;
    std::uint64_t next_id_ = 0;
    std::uint64_t overflows_ = 0;
    std::unordered_map<std::uint64_t, Barrier> barriers_;
    std::unordered_map<const void*, LinkState> links_;
};

} // namespace dpool::pool
