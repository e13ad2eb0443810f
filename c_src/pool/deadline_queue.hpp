#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace dpool::pool {

using Clock = std::chrono::steady_clock;

// What a deadline is for. The owner decides on expiry whether the deadline still matters (entries are not
// removed when what they guard finishes early; they are checked and dropped when they come due, or removed
// earlier by a compaction when their pool is gone: Scheduler).
enum class DeadlineKind : std::uint8_t {
    waiter,
    request,
    reconnect,
    lifetime,
    health,
    maintenance,
    drain,
    holder, // a lease holder is to be monitored, if it still holds the lease
    waiter_watch, // a caller in line is to be monitored, if it still waits (key: its waiter number)
    barrier, // the bound of a return barrier (key: its id; served by the service, not a pool)
    owner,   // the grace of a pool whose owner node is gone (key: the owner's absence; served by the service)
    spare_pipes, // the spare pipes unused for an interval are closed (served by the service)
};

struct Deadline {
    Clock::time_point when;
    DeadlineKind kind;
    std::uint64_t pool;
    std::uint64_t key;
};

// All deadlines of the process in one min-heap, served by one timer.
class DeadlineQueue {
public:
    void push(const Deadline& d)
    {
        heap_.push_back(d);
        std::push_heap(heap_.begin(), heap_.end(), Later{});
    }
    bool empty() const { return heap_.empty(); }
    std::size_t size() const { return heap_.size(); }
    std::optional<Clock::time_point> next() const
    {
        if (heap_.empty()) {
            return std::nullopt;
        }
        return heap_.front().when;
    }
    // Removes and returns the earliest deadline if it is due at `now`.
    std::optional<Deadline> pop_due(Clock::time_point now)
    {
        if (heap_.empty() || heap_.front().when > now) {
            return std::nullopt;
        }
        std::pop_heap(heap_.begin(), heap_.end(), Later{});
        const Deadline d = heap_.back();
        heap_.pop_back();
        return d;
    }
    // Keeps only the deadlines `keep` accepts, in one pass (O(n)), and gives back the memory of a heap that
    // shrank to less than a quarter of its capacity. Returns how many were removed.
    template <class Keep>
    std::size_t retain(Keep&& keep)
    {
        const auto end = std::remove_if(heap_.begin(), heap_.end(), [&](const Deadline& d) { return !keep(d); });
        const auto removed = static_cast<std::size_t>(heap_.end() - end);
        heap_.erase(end, heap_.end());
        std::make_heap(heap_.begin(), heap_.end(), Later{});
        if (heap_.capacity() > 4 * heap_.size()) {
            heap_.shrink_to_fit();
        }
        return removed;
    }

private:
    struct Later {
        bool operator()(const Deadline& a, const Deadline& b) const { return a.when > b.when; }
    };
    std::vector<Deadline> heap_;
};

} // namespace dpool::pool
