#include "test_support.hpp"

#include <random>
#include <vector>

#include "util/latency_histogram.hpp"

using dpool::util::LatencyHistogram;
using std::chrono::microseconds;
using std::chrono::nanoseconds;

TEST_CASE("LatencyHistogram: empty reports zeros", "[histogram]")
{
    const LatencyHistogram h;
    CHECK(h.count() == 0);
    CHECK(h.average() == 0);
    CHECK(h.max() == 0);
    CHECK(h.percentile(990) == 0);
}

TEST_CASE("LatencyHistogram: small values are exact, and so are count, mean and max", "[histogram]")
{
    LatencyHistogram h;
    for (std::uint64_t v : {0, 1, 2, 3, 7}) {
        h.record(microseconds(v));
    }
    CHECK(h.count() == 5);
    CHECK(h.average() == 3); // 2.6 us, to the nearest
    CHECK(h.max() == 7);
    CHECK(h.percentile(200) == 0);
    CHECK(h.percentile(400) == 1);
    CHECK(h.percentile(1000) == 7);
    h.record(microseconds(15));
    CHECK(h.percentile(1000) == 15); // below kSub (16), each value is a bucket of its own
}

TEST_CASE("LatencyHistogram: each bucket holds exactly the values between its bounds", "[histogram]")
{
    const unsigned last = LatencyHistogram::bucket_of(UINT64_MAX);
    for (unsigned b = 1; b < last; ++b) {
        const auto upper = LatencyHistogram::upper_bound_of(b);
        CAPTURE(b, upper);
        CHECK(LatencyHistogram::bucket_of(upper) == b);
        CHECK(LatencyHistogram::bucket_of(upper + 1) == b + 1);
        CHECK(LatencyHistogram::upper_bound_of(b - 1) < upper);
    }
    CHECK(last == LatencyHistogram::kBuckets - 1);
    CHECK(LatencyHistogram::upper_bound_of(last - 1) == (std::uint64_t{1} << LatencyHistogram::kTopBits) - 1);
    CHECK(LatencyHistogram::upper_bound_of(last) == UINT64_MAX);
}

TEST_CASE("LatencyHistogram: percentiles within 6.25% of the sorted truth", "[histogram]")
{
    std::mt19937_64 random(42);
    std::lognormal_distribution<double> latency(6.0, 1.5); // a long tail, like waits behind a busy pool
    LatencyHistogram h;
    std::vector<std::uint64_t> values;
    for (int i = 0; i < 100000; ++i) {
        const auto v = static_cast<std::uint64_t>(latency(random));
        values.push_back(v);
        h.record(microseconds(v));
    }
    std::sort(values.begin(), values.end());
    for (unsigned per_mille : {500u, 900u, 990u, 999u}) {
        const auto truth = values[(values.size() * per_mille + 999) / 1000 - 1];
        const auto reported = h.percentile(per_mille);
        CAPTURE(per_mille, truth, reported);
        CHECK(reported >= truth);
        CHECK(static_cast<double>(reported) <= static_cast<double>(truth) * 1.0625 + 1);
    }
    CHECK(h.max() == values.back());
}

TEST_CASE("LatencyHistogram: the mean, sum and max keep the nanoseconds that the buckets drop", "[histogram]")
{
    LatencyHistogram h;
    for (int i = 0; i < 1000; ++i) {
        h.record(nanoseconds(41'900)); // 41.9 us: bucket 41, mean 42 (41 if each were rounded down first)
    }
    h.record(nanoseconds(-5)); // a clock read out of order counts as 0
    CHECK(h.count() == 1001);
    CHECK(h.sum_seconds() == Approx(0.0419).epsilon(1e-12));
    CHECK(h.average() == 42);
    CHECK(h.max() == 42);
    CHECK(h.percentile(500) == 41);
    CHECK(h.percentile(1000) == 41);
}

TEST_CASE("LatencyHistogram: the mean is never above the max", "[histogram]")
{
    LatencyHistogram h;
    h.record(nanoseconds(41'600));
    CHECK(h.average() == 42);
    CHECK(h.max() == 42);
    CHECK(h.percentile(990) == 41); // the bucket's bound, as every percentile
    h.record(nanoseconds(41'400));
    CHECK(h.average() == 42); // 41.5 us
    CHECK(h.max() == 42);
}

TEST_CASE("LatencyHistogram: the sum has the headroom of microseconds", "[histogram]")
{
    // Three durations whose nanoseconds add up past 2^64: the mean stays exact.
    LatencyHistogram h;
    const std::int64_t huge = INT64_MAX; // 292 years
    h.record(nanoseconds(huge));
    h.record(nanoseconds(huge - 999));
    h.record(nanoseconds(huge));
    const auto mean_ns = static_cast<std::uint64_t>(huge) - 333;
    CHECK(h.average() == (mean_ns + 500) / 1000);
    CHECK(h.max() == (static_cast<std::uint64_t>(huge) + 500) / 1000);
    CHECK(h.sum_seconds() == Approx(3.0 * static_cast<double>(huge) / 1e9));
}

TEST_CASE("LatencyHistogram: an export bound counts the values at most it, to the nanosecond", "[histogram]")
{
    LatencyHistogram h;
    h.record(microseconds(50));
    h.record(nanoseconds(50'001));
    h.record(microseconds(100));
    const auto counts = h.cumulative_export_counts();
    REQUIRE(LatencyHistogram::kExportBoundsUs[0] == 50);
    REQUIRE(LatencyHistogram::kExportBoundsUs[1] == 100);
    CHECK(counts[0] == 1);
    CHECK(counts[1] == 3);
    CHECK(counts.back() == 3);
}
