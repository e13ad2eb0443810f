#pragma once

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>

#include "util/asio.hpp"

namespace dpool::util {

// Gives the memory that the allocator holds free back to the system, so that the C-node's RSS comes down
// after a flood (a million checkouts, big transfers, targets that stopped reading) instead of staying at its
// peak. glibc returns the top of its heap by itself, but not free pages below a block still in use, nor those
// of the other threads' arenas; malloc_trim(0) does (madvise of every free page).
//
// malloc_trim walks the whole heap, so it is not run after every free. Every `interval` the trimmer compares
// the process's resident memory with what the allocator has handed out (mallinfo2: in use, and mapped for big
// blocks): the difference is the code, the stacks and the free memory still resident. When it grew by
// `threshold` since the last trim, memory was freed and not given back: it trims. A C-node at a steady size
// never trims; one that shrank trims once, also when a flood came and went between two checks.
class MemoryTrimmer {
public:
    static constexpr auto kInterval = std::chrono::seconds(1);
    static constexpr std::size_t kThreshold = std::size_t{8} << 20;

    explicit MemoryTrimmer(const asio::any_io_executor& executor, std::chrono::milliseconds interval = kInterval,
                           std::size_t threshold = kThreshold)
        : timer_(executor), interval_(interval), threshold_(threshold)
    {
    }

    void start() { arm(); }
    void stop() { timer_.cancel(); }

    // Trims when enough was freed since the last one; true when it trimmed.
    bool check()
    {
        const std::size_t slack = resident_slack();
        // Free memory used again and freed again is resident again: the mark follows the slack down.
        mark_ = std::min(mark_, slack);
        if (slack < mark_ + threshold_) {
            return false;
        }
        malloc_trim(0);
        ++trims_;
        mark_ = resident_slack();
        return true;
    }

    // How many times memory was given back.
    std::uint64_t trims() const { return trims_; }

private:
    // Resident bytes not handed out by the allocator (statm's resident pages; 0 if it cannot be read).
    static std::size_t resident_slack()
    {
        std::ifstream statm("/proc/self/statm");
        std::size_t size_pages = 0;
        std::size_t resident_pages = 0;
        if (!(statm >> size_pages >> resident_pages)) {
            return 0;
        }
        const auto m = mallinfo2();
        const std::size_t resident = resident_pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        const std::size_t handed_out = m.uordblks + m.hblkhd;
        return resident > handed_out ? resident - handed_out : 0;
    }

    void arm()
    {
        timer_.expires_after(interval_);
        timer_.async_wait([this](const error_code& ec) {
            if (ec) {
                return;
            }
            check();
            arm();
        });
    }

    asio::steady_timer timer_;
    std::chrono::milliseconds interval_;
    std::size_t threshold_;
    std::size_t mark_ = SIZE_MAX; // the slack after the last trim, or the least seen since
    std::uint64_t trims_ = 0;
};

} // namespace dpool::util
