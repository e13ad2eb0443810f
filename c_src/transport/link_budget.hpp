#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace dpool::transport {

// The output every link of a C-node holds queued, together, and the bound on it (--max-output-queue-bytes).
// Each link has a bound of its own (LinkLimits::max_queued_bytes), but many links whose peers stopped reading
// would still add up: links report here what they queue and what they write or drop, and whoever queues a
// caller's data on a link asks admits() first. Everything runs on the event loop: no atomics.
class OutputBudget {
public:
    explicit OutputBudget(std::size_t limit) : limit_(limit) {}

    std::size_t limit() const { return limit_; }
    std::size_t queued() const { return queued_; }
    // The most that was ever queued at once.
    std::size_t peak() const { return peak_; }
    bool admits(std::size_t bytes) const { return bytes <= limit_ && queued_ <= limit_ - bytes; }

    void add(std::size_t n)
    {
        queued_ += n;
        peak_ = std::max(peak_, queued_);
    }
    void remove(std::size_t n) { queued_ -= std::min(n, queued_); }

private:
    std::size_t limit_;
    std::size_t queued_ = 0;
    std::size_t peak_ = 0;
};

// Why links of one kind (callers, or targets) were closed on the C-node's own decision.
struct LinkDrops {
    std::uint64_t oversized_packets = 0; // a packet longer than LinkLimits::max_packet_bytes
    std::uint64_t out_of_memory = 0;     // no memory to read or handle a packet, or to start a write
    std::uint64_t unread_output = 0;     // the peer let more than LinkLimits::max_queued_bytes pile up
};

} // namespace dpool::transport
