#pragma once

#include <chrono>
#include <optional>

#include "util/asio.hpp"
#include "util/bulk_queue.hpp"

namespace dpool::util {

// Spinning pays when the cores are otherwise idle. While big transfers move (a piece of a packet of
// kMinBorrowedBytes or more, run from the bulk queue, within this window), the processes at both ends of them
// need the CPU, and the transfers' own readiness events wake the loop often anyway.
inline constexpr std::chrono::milliseconds kNoSpinAfterBulk{20};

// Runs `io` and the low-priority work of `bulk` until `io` is stopped or both run out of work. Ready handlers
// come first; an item of `bulk` runs when none is ready, or after every BulkQueue::kFairness of them.
//
// With a `spin` window above zero, the loop keeps polling for ready handlers for that long after the last one
// ran before it blocks in the kernel: a request that arrives meanwhile is picked up without the sleep and
// wake-up of the thread (a context switch each, the larger part of a round trip's cost on a virtual machine),
// as the Erlang schedulers themselves spin before they sleep. The price is CPU time while the C-node is idle
// for less than the window. Within `no_spin_after_bulk` of an item of `bulk` the loop sleeps at once.
inline void run_event_loop(asio::io_context& io, std::chrono::microseconds spin, BulkQueue& bulk,
                           std::chrono::nanoseconds no_spin_after_bulk = kNoSpinAfterBulk)
{
    using Clock = std::chrono::steady_clock;
    auto last_work = Clock::now();
    auto last_bulk = last_work - no_spin_after_bulk; // as if the last bulk item ran long ago
    // Held while bulk work waits, so that `io` does not stop for want of work meanwhile (a deferred read is
    // I/O work that is not in `io` until it runs).
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> bulk_pending;
    while (!io.stopped()) {
        if (bulk.empty()) {
            bulk_pending.reset();
        } else if (!bulk_pending) {
            bulk_pending.emplace(io.get_executor());
        }
        std::size_t ran = 0;
        while (ran < BulkQueue::kFairness && io.poll_one() > 0) {
            ++ran;
        }
        if (io.stopped()) {
            break;
        }
        const bool ran_bulk = bulk.run_one();
        if (ran > 0 || ran_bulk) {
            last_work = Clock::now();
            if (ran_bulk) {
                last_bulk = last_work;
            }
            continue;
        }
        if (spin.count() > 0) {
            const auto now = Clock::now();
            if (now - last_work < spin && now - last_bulk >= no_spin_after_bulk) {
                continue;
            }
        }
        if (io.run_one() == 0) {
            break;
        }
        last_work = Clock::now();
    }
}

} // namespace dpool::util
