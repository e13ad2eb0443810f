#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "transport/dist_link.hpp"
#include "util/latency_histogram.hpp"

#include "pool/limits.hpp"

namespace dpool::pool {

// Why the pool closed a connection (stats: connections_closed).
enum class CloseReason : std::uint8_t { idle, lifetime, broken, health, destroy, target_down, count_ };
inline constexpr std::size_t kCloseReasons = static_cast<std::size_t>(CloseReason::count_);

constexpr std::string_view close_reason_name(CloseReason r)
{
    switch (r) {
    case CloseReason::idle:
        return "idle";
    case CloseReason::lifetime:
        return "lifetime";
    case CloseReason::broken:
        return "broken";
    case CloseReason::health:
        return "health";
    case CloseReason::destroy:
        return "destroy";
    case CloseReason::target_down:
        return "target_down";
    case CloseReason::count_:
        break;
    }
    return "unknown";
}

// What a pool counts over its life (the counters of stats/1).
struct PoolCounters {
    std::uint64_t connections_created = 0;
    std::array<std::uint64_t, kCloseReasons> closed{};
    std::uint64_t reconnect_attempts = 0;
    std::uint64_t acquires = 0;
    std::uint64_t acquire_timeouts = 0;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t health_checks = 0;
    std::uint64_t successful_operations = 0;
    std::uint64_t failed_operations = 0;
    std::uint64_t dropped_sends = 0;         // send_many messages that could not be queued
    std::uint64_t return_barriers = 0;       // answers held for a return barrier
    std::uint64_t return_barrier_misses = 0; // answers given without hearing from every link they needed
    LimitCounts limit_refusals;              // requests a limit of the pool refused

    void count_closed(CloseReason reason) { ++closed[static_cast<std::size_t>(reason)]; }
};

// How logs and metrics name a pool: its name, or its id when it has none.
inline std::string pool_label(std::string_view name, std::uint64_t id)
{
    return name.empty() ? std::to_string(id) : std::string(name);
}

// One pool at one moment: everything stats/1 reports, as values (the api layer encodes it, api/replies).
struct PoolStats {
    enum class ConnectionState : std::uint8_t { available, in_use, connecting };
    struct Connection {
        std::uint32_t id = 0;
        std::string node;
        ConnectionState state = ConnectionState::connecting;
    };

    std::uint64_t pool_id = 0;
    std::string name;   // empty: none
    std::string target;
    std::string owner; // the owner node's name; empty: none
    std::uint32_t owner_grace_ms = 0;
    std::string_view tls = "none"; // the TLS mode of its connections
    // The last failure's kind and text; an empty kind: none yet.
    std::string last_failure_kind;
    std::string last_failure_text;
    bool draining = false;
    std::uint32_t total_connections = 0;
    std::uint32_t available_connections = 0;
    std::uint32_t in_use_connections = 0;
    std::uint32_t connecting_connections = 0;
    std::uint64_t waiting = 0;
    std::uint32_t capacity = 0;
    std::uint32_t max_connections = 0;
    std::uint32_t min_connections = 0;
    std::uint32_t acquire_timeout_ms = 0;
    std::uint32_t max_waiters = 0;
    std::uint32_t max_pending_requests = 0;
    PoolCounters counters;
    std::uint64_t acquire_wait_avg_us = 0;
    std::uint64_t acquire_wait_max_us = 0;
    std::uint64_t acquire_wait_p99_us = 0;
    std::uint64_t request_rtt_avg_us = 0;
    std::uint64_t request_rtt_p50_us = 0;
    std::uint64_t request_rtt_p99_us = 0;
    std::vector<Connection> connections; // open ones (not closed slots), by id
    // The whole histograms, for the Prometheus exposition (api/metrics).
    util::LatencyHistogram acquire_wait;
    util::LatencyHistogram request_rtt;
    transport::LinkTraffic traffic; // over all its connections, closed ones included
};

} // namespace dpool::pool
