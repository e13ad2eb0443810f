#include "test_support.hpp"

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "api/metrics.hpp"

using dpool::pool::PoolStats;

namespace {

std::vector<std::string> lines_of(const std::string& text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

bool has_line(const std::vector<std::string>& lines, const std::string& line)
{
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

} // namespace

TEST_CASE("the Prometheus exposition has every pool's figures under its name and target", "[metrics]")
{
    PoolStats named;
    named.pool_id = 17;
    named.name = "orders";
    named.target = "orders@10.0.0.5";
    named.available_connections = 3;
    named.in_use_connections = 1;
    named.counters.successful_operations = 512;
    named.counters.failed_operations = 2;
    named.counters.count_closed(dpool::pool::CloseReason::target_down);
    // 995 us and 5000 us lie inside a log-linear bucket that straddles a bound ([992, 1023], [4864, 5119]):
    // counted under it, exactly. (685 + 995: the sum of 700 + 980, which this test used with 8 sub-buckets.)
    for (const std::uint64_t us : {40, 90, 200, 685, 995, 3000, 5000, 2'000'000}) {
        named.acquire_wait.record(std::chrono::microseconds(us));
    }
    PoolStats unnamed;
    unnamed.pool_id = 1796298181320000;
    unnamed.target = "odd\"name\\@h";
    dpool::api::MetricsTotals totals;
    totals.callers_per_lane = {2, 0};
    totals.lane_traffic = {dpool::transport::LinkTraffic{.bytes_in = 100, .bytes_out = 200, .packets_in = 3,
                                                         .packets_out = 4},
                           {}};
    totals.resident_memory_bytes = 4096;
    totals.open_fds = 12;
    totals.output_lines_dropped = 7;
    totals.splice = {.counters = {.packets = 5, .bytes = 41943040, .fallbacks = 2, .idle_closed = 4}, .pipes_open = 9};

    const auto lines = lines_of(dpool::api::render_metrics({named, unnamed}, totals));
    CHECK(has_line(lines, "# TYPE dpool_pool_connections gauge"));
    CHECK(has_line(lines, R"(dpool_pool_connections{pool="orders",target="orders@10.0.0.5",state="available"} 3)"));
    CHECK(has_line(lines, R"(dpool_pool_connections{pool="orders",target="orders@10.0.0.5",state="in_use"} 1)"));
    CHECK(has_line(lines, R"(dpool_pool_operations_total{pool="orders",target="orders@10.0.0.5",result="ok"} 512)"));
    CHECK(has_line(lines,
                   R"(dpool_pool_operations_total{pool="orders",target="orders@10.0.0.5",result="failed"} 2)"));
    CHECK(has_line(
        lines, R"(dpool_pool_connections_closed_total{pool="orders",target="orders@10.0.0.5",reason="target_down"} 1)"));
    // An unnamed pool goes by its id; label values are escaped.
    CHECK(has_line(lines, R"(dpool_pool_waiting_callers{pool="1796298181320000",target="odd\"name\\@h"} 0)"));
    // The histogram: cumulative buckets in seconds, +Inf the count, the sum in seconds.
    const std::string h = R"(dpool_pool_acquire_wait_seconds_bucket{pool="orders",target="orders@10.0.0.5",le=)";
    CHECK(has_line(lines, h + R"("5e-05"} 1)"));
    CHECK(has_line(lines, h + R"("0.0001"} 2)"));
    CHECK(has_line(lines, h + R"("0.001"} 5)"));
    CHECK(has_line(lines, h + R"("0.0025"} 5)"));
    CHECK(has_line(lines, h + R"("0.005"} 7)"));
    CHECK(has_line(lines, h + R"("10"} 8)"));
    CHECK(has_line(lines, h + R"("+Inf"} 8)"));
    CHECK(has_line(lines, R"(dpool_pool_acquire_wait_seconds_count{pool="orders",target="orders@10.0.0.5"} 8)"));
    CHECK(has_line(lines, R"(dpool_pool_acquire_wait_seconds_sum{pool="orders",target="orders@10.0.0.5"} 2.01001)"));
    CHECK(has_line(lines, R"(dpool_caller_connections{lane="0"} 2)"));
    CHECK(has_line(lines, R"(dpool_lane_received_bytes_total{lane="0"} 100)"));
    CHECK(has_line(lines, R"(dpool_lane_sent_messages_total{lane="0"} 4)"));
    CHECK(has_line(lines, R"(dpool_lane_sent_messages_total{lane="1"} 0)"));
    CHECK(has_line(lines, "process_resident_memory_bytes 4096"));
    CHECK(has_line(lines, "process_open_fds 12"));
    CHECK(has_line(lines, "dpool_output_lines_dropped_total 7"));
    CHECK(has_line(lines, "dpool_splice_packets_total 5"));
    CHECK(has_line(lines, "dpool_splice_bytes_total 41943040"));
    CHECK(has_line(lines, "dpool_splice_fallbacks_total 2"));
    CHECK(has_line(lines, "dpool_splice_pipes_open 9"));
    CHECK(has_line(lines, "dpool_splice_idle_pipes_closed_total 4"));
    // Each family is declared once, before its samples.
    CHECK(std::count(lines.begin(), lines.end(), "# TYPE dpool_pool_acquire_wait_seconds histogram") == 1);
}
