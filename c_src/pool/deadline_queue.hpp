#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <queue>
#include <vector>

namespace dpool::pool {

using Clock = std::chrono::steady_clock;

// What a deadline is for. The owner decides on expiry whether the deadline still matters (entries are not
// removed when what they guard finishes early; they are checked and dropped when they come due).
enum class DeadlineKind : std::uint8_t {
    waiter,
    request,
    reconnect,
    lifetime,
    health,
    maintenance,
    drain,
    holder, // a lease holder is to be monitored, if it still holds the lease
    barrier, // the bound of a return barrier (key: its id; served by the service, not a pool)
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
    void push(const Deadline& d) { heap_.push(d); }
    bool empty() const { return heap_.empty(); }
    std::size_t size() const { return heap_.size(); }
    std::optional<Clock::time_point> next() const
    {
        if (heap_.empty()) {
            return std::nullopt;
        }
        return heap_.top().when;
    }
    // Removes and returns the earliest deadline if it is due at `now`.
    std::optional<Deadline> pop_due(Clock::time_point now)
    {
        if (heap_.empty() || heap_.top().when > now) {
            return std::nullopt;
        }
        Deadline d = heap_.top();
        heap_.pop();
        return d;
    }

private:
    struct Later {
        bool operator()(const Deadline& a, const Deadline& b) const { return a.when > b.when; }
    };
    std::priority_queue<Deadline, std::vector<Deadline>, Later> heap_;
};

} // namespace dpool::pool
