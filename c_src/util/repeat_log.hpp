#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace dpool::log {

// A run of failures of one kind (a pool's connects to its target, its connections lost), logged without
// flooding: at most one line per interval while failures go on, and the end of a run that was announced, once.
//
// The first failure is logged in full, unless a line was logged less than an interval ago: then it is counted,
// and the next failure after the interval is logged as a summary ("failed 37 times in 10 s, last: ..."). A
// success ends an announced run with one line; successes in between unannounced failures (a target that keeps
// coming and going) say nothing of their own, so a flapping target costs about two lines per interval.
// Clock-agnostic and without I/O, so that it is tested alone.
class RepeatLog {
public:
    using Clock = std::chrono::steady_clock;

    // `what`: the failing thing in a few words, as a line starts ("connecting to t@host").
    RepeatLog(std::string what, std::chrono::milliseconds interval) : what_(std::move(what)), interval_(interval) {}

    // A failure at `now`, and why: the line to log now, or nullopt (counted for the next one).
    std::optional<std::string> failed(Clock::time_point now, std::string_view why)
    {
        ++unlogged_;
        ++run_failures_;
        last_why_ = std::string(why);
        if (last_line_ && now - *last_line_ < interval_) {
            return std::nullopt;
        }
        std::string line;
        if (!announced_ && unlogged_ == 1) {
            line = fmt::format("{} failed: {}", what_, why);
        } else {
            const auto since = last_line_ ? now - *last_line_ : Clock::duration::zero();
            const auto seconds = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() / 1000.0;
            line = fmt::format("{} failed {} {}times in {:.0f} s, last: {}", what_, unlogged_, announced_ ? "more " : "",
                               seconds, why);
        }
        announced_ = true;
        unlogged_ = 0;
        last_line_ = now;
        return line;
    }

    // A success at `now`: the line that ends an announced run, else nullopt.
    std::optional<std::string> succeeded(Clock::time_point now)
    {
        if (!announced_) {
            run_failures_ = unlogged_; // counted toward the next line
            return std::nullopt;
        }
        auto line = fmt::format("{} works again after {} failed attempts (last: {})", what_, run_failures_, last_why_);
        announced_ = false;
        run_failures_ = 0;
        unlogged_ = 0;
        last_line_ = now;
        return line;
    }

    bool failing() const { return announced_ || unlogged_ > 0; }

private:
    std::string what_;
    std::chrono::milliseconds interval_;
    bool announced_ = false;         // a line said failures are going on, and no line has ended them yet
    std::uint64_t run_failures_ = 0; // since the run was announced (or before it, unannounced)
    std::uint64_t unlogged_ = 0;     // since the last line
    std::optional<Clock::time_point> last_line_;
    std::string last_why_;
};

} // namespace dpool::log
