#include "test_support.hpp"

#include <random>
#include <vector>

#include "util/latency_histogram.hpp"

using dpool::util::LatencyHistogram;

TEST_CASE("LatencyHistogram: empty reports zeros", "[histogram]")
{
    const LatencyHistogram h;
    CHECK(h.count() == 0);
    CHECK(h.average() == 0);
    CHECK(h.max() == 0);
    CHECK(h.percentile(990) == 0);
}

TEST_CASE("LatencyHistogram: small values are exact, count, average and max are exact", "[histogram]")
{
    LatencyHistogram h;
    for (std::uint64_t v : {0, 1, 2, 3, 7}) {
        h.record(v);
    }
    CHECK(h.count() == 5);
    CHECK(h.average() == 13 / 5);
    CHECK(h.max() == 7);
    CHECK(h.percentile(200) == 0);
    CHECK(h.percentile(400) == 1);
    CHECK(h.percentile(1000) == 7);
    h.record(15);
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
        h.record(v);
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
