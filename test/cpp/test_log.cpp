#include "test_support.hpp"

#include <chrono>
#include <optional>
#include <string>

#include "util/log.hpp"
#include "util/repeat_log.hpp"

using namespace std::chrono_literals;
using dpool::log::RepeatLog;

TEST_CASE("what a line is about is written in front of it, escaped so it cannot break the line", "[log]")
{
    using dpool::log::About;
    CHECK(dpool::log::about_text(About{}).empty());
    CHECK(dpool::log::about_text(About{.pool = "orders", .target = "t@10.0.0.1"}) ==
          "[pool=orders target=t@10.0.0.1] ");
    CHECK(dpool::log::about_text(About{.connection = "c_1@h", .caller = "a-b@h"}) == "[connection=c_1@h caller=a-b@h] ");
    CHECK(dpool::log::about_text(About{.pool = "orders eu] [x=1"}) == "[pool=orders%20eu%5D%20%5Bx%3D1] ");
    CHECK(dpool::log::escape("caf\xC3\xA9%") == "caf%C3%A9%25");
}

TEST_CASE("a run of failures is logged at its first, then summarized once per interval, and its end once", "[log]")
{
    RepeatLog log("connecting to t@h", 1000ms);
    const auto t0 = RepeatLog::Clock::time_point{} + 1h;
    CHECK_FALSE(log.succeeded()); // no run: nothing to say
    CHECK(log.failed(t0, "econnrefused") == "connecting to t@h failed: econnrefused");
    CHECK_FALSE(log.failed(t0 + 100ms, "econnrefused"));
    CHECK_FALSE(log.failed(t0 + 900ms, "econnrefused"));
    CHECK(log.failed(t0 + 1000ms, "timeout") == "connecting to t@h failed 3 more times in 1 s, last: timeout");
    for (int i = 1; i <= 36; ++i) {
        CHECK_FALSE(log.failed(t0 + 1000ms + i * 10ms, "econnrefused"));
    }
    CHECK(log.failed(t0 + 11000ms, "econnrefused") ==
          "connecting to t@h failed 37 more times in 10 s, last: econnrefused");
    CHECK(log.failing());
    CHECK(log.succeeded() == "connecting to t@h works again after 41 failed attempts (last: econnrefused)");
    CHECK_FALSE(log.succeeded()); // once per run
    CHECK_FALSE(log.failing());
    // The next run starts with a line of its own.
    CHECK(log.failed(t0 + 12000ms, "nxdomain") == "connecting to t@h failed: nxdomain");
}
