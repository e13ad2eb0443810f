#include "api/metrics.hpp"

#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string_view>

#include <fmt/format.h>

namespace dpool::api {

namespace {


std::string pool_labels(const pool::PoolStats& s)
{
    return fmt::format("pool=\"{}\",target=\"{}\"", escape_label_value(pool::pool_label(s.name, s.pool_id)),
                       escape_label_value(s.target));
}

class Exposition {
public:
    // Starts a metric family: its HELP and TYPE lines.
    void family(std::string_view name, std::string_view type, std::string_view help)
    {
        out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    }
    void sample(std::string_view name, std::string_view labels, double value)
    {
        if (labels.empty()) {
            out_ += fmt::format("{} {}\n", name, value);
        } else {
            out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
        }
    }
    void sample(std::string_view name, std::string_view labels, std::uint64_t value)
    {
        if (labels.empty()) {
            out_ += fmt::format("{} {}\n", name, value);
        } else {
            out_ += fmt::format("{}{{{}}} {}\n", name, labels, value);
        }
    }
    // The `le` bounds are the histogram's export bounds (Prometheus' default buckets, finer below 5 ms, where
    // pooled calls live), counted exactly.
    void histogram(std::string_view name, std::string_view labels, const util::LatencyHistogram& h)
    {
        const auto counts = h.cumulative_export_counts();
        for (std::size_t i = 0; i < counts.size(); ++i) {
            const double seconds = static_cast<double>(util::LatencyHistogram::kExportBoundsUs[i]) / 1e6;
            out_ += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, seconds, counts[i]);
        }
        out_ += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, h.count());
        out_ += fmt::format("{}_sum{{{}}} {}\n", name, labels, h.sum_seconds());
        out_ += fmt::format("{}_count{{{}}} {}\n", name, labels, h.count());
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

// One family with a sample per pool.
template <class Value>
void per_pool(Exposition& e, const std::vector<pool::PoolStats>& pools, std::string_view name, std::string_view type,
              std::string_view help, Value value)
{
    e.family(name, type, help);
    for (const auto& s : pools) {
        e.sample(name, pool_labels(s), static_cast<std::uint64_t>(value(s)));
    }
}

} // namespace

MetricsTotals process_totals()
{
    MetricsTotals t;
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size_pages = 0;
    std::uint64_t resident_pages = 0;
    if (statm >> size_pages >> resident_pages) {
        t.resident_memory_bytes = resident_pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    }
    std::error_code ec;
    std::uint64_t fds = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end; it.increment(ec)) {
        ++fds;
    }
    if (!ec) {
        t.open_fds = fds;
    }
    return t;
}

std::string escape_label_value(std::string_view value)
{
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        switch (c) {
        case '\\':
            out += "\\\\";
            break;
        case '"':
            out += "\\\"";
            break;
        case '\n':
            out += "\\n";
            break;
        default:
            out.push_back(c);
        }
    }
    return out;
}

std::string render_metrics(const std::vector<pool::PoolStats>& pools, const MetricsTotals& totals)
{
    Exposition e;
    e.family("dpool_pool_connections", "gauge", "Connections of a pool, by state.");
    for (const auto& s : pools) {
        const auto labels = pool_labels(s);
        e.sample("dpool_pool_connections", labels + ",state=\"available\"", std::uint64_t{s.available_connections});
        e.sample("dpool_pool_connections", labels + ",state=\"in_use\"", std::uint64_t{s.in_use_connections});
        e.sample("dpool_pool_connections", labels + ",state=\"connecting\"", std::uint64_t{s.connecting_connections});
    }
    per_pool(e, pools, "dpool_pool_capacity", "gauge", "Connections the pool keeps open now (adaptive capacity).",
             [](const auto& s) { return s.capacity; });
    per_pool(e, pools, "dpool_pool_max_connections", "gauge", "The pool's max_connections.",
             [](const auto& s) { return s.max_connections; });
    per_pool(e, pools, "dpool_pool_waiting_callers", "gauge", "Callers waiting for a lease now.",
             [](const auto& s) { return s.waiting; });
    e.family("dpool_pool_operations_total", "counter", "Operations on the pool's connections, by result.");
    for (const auto& s : pools) {
        const auto labels = pool_labels(s);
        e.sample("dpool_pool_operations_total", labels + ",result=\"ok\"", s.counters.successful_operations);
        e.sample("dpool_pool_operations_total", labels + ",result=\"failed\"", s.counters.failed_operations);
    }
    per_pool(e, pools, "dpool_pool_connections_created_total", "counter", "Connections the pool opened.",
             [](const auto& s) { return s.counters.connections_created; });
    e.family("dpool_pool_connections_closed_total", "counter", "Connections the pool closed, by reason.");
    for (const auto& s : pools) {
        for (std::size_t r = 0; r < pool::kCloseReasons; ++r) {
            e.sample("dpool_pool_connections_closed_total",
                     fmt::format("{},reason=\"{}\"", pool_labels(s),
                                 pool::close_reason_name(static_cast<pool::CloseReason>(r))),
                     s.counters.closed[r]);
        }
    }
    per_pool(e, pools, "dpool_pool_reconnect_attempts_total", "counter", "Attempts to reopen a connection.",
             [](const auto& s) { return s.counters.reconnect_attempts; });
    per_pool(e, pools, "dpool_pool_health_checks_total", "counter", "Health-check round trips made.",
             [](const auto& s) { return s.counters.health_checks; });
    per_pool(e, pools, "dpool_pool_acquire_timeouts_total", "counter", "Checkouts that found no lease in time.",
             [](const auto& s) { return s.counters.acquire_timeouts; });
    e.family("dpool_pool_acquire_wait_seconds", "histogram", "Time from a checkout to its lease.");
    for (const auto& s : pools) {
        e.histogram("dpool_pool_acquire_wait_seconds", pool_labels(s), s.acquire_wait);
    }
    e.family("dpool_pool_request_rtt_seconds", "histogram",
             "Round trip of requests and calls on the pool's connections, as the C-node times it.");
    for (const auto& s : pools) {
        e.histogram("dpool_pool_request_rtt_seconds", pool_labels(s), s.request_rtt);
    }
    const auto traffic = [&](std::string_view name, std::string_view help, auto field) {
        e.family(name, "counter", help);
        for (const auto& s : pools) {
            e.sample(name, pool_labels(s), s.traffic.*field);
        }
    };
    traffic("dpool_pool_received_bytes_total", "Bytes read from the pool's connections (framing and ticks included).",
            &transport::LinkTraffic::bytes_in);
    traffic("dpool_pool_sent_bytes_total", "Bytes written to the pool's connections (framing and ticks included).",
            &transport::LinkTraffic::bytes_out);
    traffic("dpool_pool_received_messages_total", "Distribution packets received on the pool's connections.",
            &transport::LinkTraffic::packets_in);
    traffic("dpool_pool_sent_messages_total", "Distribution packets queued on the pool's connections.",
            &transport::LinkTraffic::packets_out);
    const auto lane_traffic = [&](std::string_view name, std::string_view help, auto field) {
        e.family(name, "counter", help);
        for (std::size_t lane = 0; lane < totals.lane_traffic.size(); ++lane) {
            e.sample(name, fmt::format("lane=\"{}\"", lane), totals.lane_traffic[lane].*field);
        }
    };
    lane_traffic("dpool_lane_received_bytes_total", "Bytes read from callers on a lane.", &transport::LinkTraffic::bytes_in);
    lane_traffic("dpool_lane_sent_bytes_total", "Bytes written to callers on a lane.", &transport::LinkTraffic::bytes_out);
    lane_traffic("dpool_lane_received_messages_total", "Distribution packets received from callers on a lane.",
                 &transport::LinkTraffic::packets_in);
    lane_traffic("dpool_lane_sent_messages_total", "Distribution packets queued to callers on a lane.",
                 &transport::LinkTraffic::packets_out);
    e.family("dpool_caller_connections", "gauge", "Caller node connections, by lane.");
    for (std::size_t lane = 0; lane < totals.callers_per_lane.size(); ++lane) {
        e.sample("dpool_caller_connections", fmt::format("lane=\"{}\"", lane),
                 std::uint64_t{totals.callers_per_lane[lane]});
    }
    e.family("dpool_output_lines_dropped_total", "counter",
             "Lines of the C-node's log and events dropped: whoever reads its output fell behind.");
    e.sample("dpool_output_lines_dropped_total", "", totals.output_lines_dropped);
    e.family("dpool_splice_packets_total", "counter",
             "Callers' packets of 1 MiB or more whose tail went into pipes (moved to a target without a copy).");
    e.sample("dpool_splice_packets_total", "", totals.splice.counters.packets);
    e.family("dpool_splice_bytes_total", "counter", "Bytes moved from callers' sockets into pipes.");
    e.sample("dpool_splice_bytes_total", "", totals.splice.counters.bytes);
    e.family("dpool_splice_fallbacks_total", "counter",
             "Of those packets, the ones read into memory after all (not forwarded as they are, or no pipe left).");
    e.sample("dpool_splice_fallbacks_total", "", totals.splice.counters.fallbacks);
    e.family("dpool_splice_pipes_open", "gauge", "Pipes open for big packets (in use, or kept empty for reuse).");
    e.sample("dpool_splice_pipes_open", "", std::uint64_t{totals.splice.pipes_open});
    e.family("dpool_splice_idle_pipes_closed_total", "counter",
             "Spare pipes closed because no big packet needed them for an interval (5-10 s).");
    e.sample("dpool_splice_idle_pipes_closed_total", "", totals.splice.counters.idle_closed);
    if (totals.resident_memory_bytes) {
        e.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        e.sample("process_resident_memory_bytes", "", *totals.resident_memory_bytes);
    }
    if (totals.open_fds) {
        e.family("process_open_fds", "gauge", "Number of open file descriptors.");
        e.sample("process_open_fds", "", *totals.open_fds);
    }
    return e.take();
}

} // namespace dpool::api
