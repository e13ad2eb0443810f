#pragma once

#include <chrono>

#include "util/asio.hpp"

namespace dpool::util {

// Runs `io` until it is stopped or runs out of work. With a `spin` window above zero, the loop keeps polling
// for ready handlers for that long after the last one ran before it blocks in the kernel: a request that
// arrives meanwhile is picked up without the sleep and wake-up of the thread (a context switch each, the
// larger part of a round trip's cost on a virtual machine), as the Erlang schedulers themselves spin before
// they sleep. The price is CPU time while the C-node is idle for less than the window.
inline void run_event_loop(asio::io_context& io, std::chrono::microseconds spin)
{
    if (spin.count() <= 0) {
        io.run();
        return;
    }
    using Clock = std::chrono::steady_clock;
    auto last_work = Clock::now();
    while (!io.stopped()) {
        if (io.poll() > 0) {
            last_work = Clock::now();
            continue;
        }
        if (io.stopped()) {
            break;
        }
        if (Clock::now() - last_work < spin) {
            continue;
        }
        if (io.run_one() == 0) {
            break;
        }
        last_work = Clock::now();
    }
}

} // namespace dpool::util
