#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "pool/caller.hpp"

namespace dpool::pool {

// The bounds on what callers can make the C-node hold (docs/PROTOCOL.md, "Limits"), each named as its option.
// What one of them refuses is answered {error, {limit_reached, {Limit, Text}}} and counted, per pool (stats)
// and per C-node (info): LimitCounts::refuse is the one place that does both. The first kPoolLimits are a
// pool's business, the others the service's.
enum class Limit : std::uint8_t {
    max_waiters,                // callers in line for a lease of one pool (option of new)
    max_pending_requests,       // requests and calls in flight on one pooled connection (option of new)
    max_link_queue_bytes,       // output queued on one connection (--max-link-queue-bytes)
    max_output_queue_bytes,     // output queued on all links together (--max-output-queue-bytes)
    max_pools_per_caller,       // pools created by one caller node (--max-pools-per-caller)
    max_connections_per_caller, // connections the pools of one caller node may hold (--max-connections-per-caller)
    max_total_connections,      // connections all pools may hold (--max-total-connections)
    max_group_members,          // members of one pool group (pool::kMaxGroupMembers, fixed)
    count_
};
inline constexpr std::size_t kLimits = static_cast<std::size_t>(Limit::count_);
inline constexpr std::size_t kPoolLimits = 4;

constexpr std::string_view limit_name(Limit limit)
{
    switch (limit) {
    case Limit::max_waiters:
        return "max_waiters";
    case Limit::max_pending_requests:
        return "max_pending_requests";
    case Limit::max_link_queue_bytes:
        return "max_link_queue_bytes";
    case Limit::max_output_queue_bytes:
        return "max_output_queue_bytes";
    case Limit::max_pools_per_caller:
        return "max_pools_per_caller";
    case Limit::max_connections_per_caller:
        return "max_connections_per_caller";
    case Limit::max_total_connections:
        return "max_total_connections";
    case Limit::max_group_members:
        return "max_group_members";
    case Limit::count_:
        break;
    }
    return "unknown";
}

// How many requests each limit refused.
struct LimitCounts {
    std::array<std::uint64_t, kLimits> refused{};

    std::uint64_t operator[](Limit limit) const { return refused[static_cast<std::size_t>(limit)]; }
    // Counts a refusal by `limit` here and in `also` (a pool's refusals count in the C-node's too), and gives
    // the answer: {limit_reached, {Limit, Text}}, `text` saying what was full and how to raise it.
    Failure refuse(Limit limit, std::string text, LimitCounts* also = nullptr)
    {
        ++refused[static_cast<std::size_t>(limit)];
        if (also != nullptr) {
            ++also->refused[static_cast<std::size_t>(limit)];
        }
        return Failure("limit_reached", limit_name(limit), std::move(text));
    }
};

} // namespace dpool::pool
