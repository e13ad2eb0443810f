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
    CHECK(dpool::log::escape("caf\xC3\xA9%\n") == "caf%C3%A9%25%0A");
}

TEST_CASE("a run of failures is logged at its first, then summarized once per interval, and its end once", "[log]")
{
    RepeatLog log("connecting to t@h", 1000ms);
    const auto t0 = RepeatLog::Clock::time_point{} + 1h;
    CHECK_FALSE(log.succeeded(t0)); // no run: nothing to say
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
    CHECK(log.succeeded(t0 + 11500ms) ==
          "connecting to t@h works again after 41 failed attempts (last: econnrefused)");
    CHECK_FALSE(log.succeeded(t0 + 11600ms)); // once per run
    CHECK_FALSE(log.failing());
    // The next run, an interval later, starts with a line of its own.
    CHECK(log.failed(t0 + 13000ms, "nxdomain") == "connecting to t@h failed: nxdomain");
}

TEST_CASE("a target that keeps coming and going costs about two lines per interval", "[log]")
{
    RepeatLog log("connections to t@h", 1000ms);
    const auto t0 = RepeatLog::Clock::time_point{} + 1h;
    int lines = 0;
    // Every 50 ms for 10 s: a connection lost, then its reconnect working.
    for (int i = 0; i < 200; ++i) {
        const auto at = t0 + i * 50ms;
        lines += log.failed(at, "peer closed the connection").has_value() ? 1 : 0;
        lines += log.succeeded(at + 10ms).has_value() ? 1 : 0;
    }
    CHECK(lines >= 10);
    CHECK(lines <= 22);
    // A failure after a quiet interval is logged in full again.
    CHECK(log.failed(t0 + 20s, "x").has_value());
}
