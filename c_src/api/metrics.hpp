#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pool/pool_stats.hpp"

namespace dpool::api {

// What the C-node as a whole reports besides its pools.
struct MetricsTotals {
    std::vector<std::size_t> callers_per_lane; // caller connections on each lane now
    std::vector<transport::LinkTraffic> lane_traffic; // what went over each lane, closed connections included
    std::optional<std::uint64_t> resident_memory_bytes; // of the process; nullopt: unknown
    std::optional<std::uint64_t> open_fds;
    std::uint64_t output_lines_dropped = 0; // info's output_lines_dropped
    transport::PipeUsage splice;             // info's splice
};

// The Prometheus text exposition format (version 0.0.4) of the pools and the totals: metric names and units
// by Prometheus' conventions (seconds, _total for counters), each pool labelled by `pool` (its name, or its id)
// and `target`.
std::string render_metrics(const std::vector<pool::PoolStats>& pools, const MetricsTotals& totals);

// This process's resident memory and open descriptors, from /proc/self (nullopt where unreadable).
MetricsTotals process_totals();

// A label value as the format wants it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);

} // namespace dpool::api
