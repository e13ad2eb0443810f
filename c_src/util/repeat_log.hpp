#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace dpool::log {

// A run of failures of one kind (a pool's connects to its target, its connections lost), logged without
// flooding: the first in full, then at most one summary per interval while they go on ("failed 37 times in
// 10 s, last: ..."), then the recovery once. Clock-agnostic and without I/O, so that it is tested alone.
class RepeatLog {
public:
    using Clock = std::chrono::steady_clock;

    // `what`: the failure in a few words, as a summary starts it ("connecting to t@host").
    RepeatLog(std::string what, std::chrono::milliseconds interval) : what_(std::move(what)), interval_(interval) {}

    // A failure at `now`, and why: the line to log now (the first of a run, or a summary), or nullopt (counted).
    std::optional<std::string> failed(Clock::time_point now, std::string_view why)
    {
        ++run_failures_;
        last_why_ = std::string(why);
        if (run_failures_ == 1) {
            window_start_ = now;
            unlogged_ = 0;
            return fmt::format("{} failed: {}", what_, why);
        }
        ++unlogged_;
        if (now - window_start_ < interval_) {
            return std::nullopt;
        }
        const auto seconds = std::chrono::duration_cast<std::chrono::milliseconds>(now - window_start_).count() / 1000.0;
        auto line = fmt::format("{} failed {} more times in {:.0f} s, last: {}", what_, unlogged_, seconds, why);
        window_start_ = now;
        unlogged_ = 0;
        return line;
    }

    // A success: the recovery line if failures came before it (once per run), else nullopt.
    std::optional<std::string> succeeded()
    {
        if (run_failures_ == 0) {
            return std::nullopt;
        }
        auto line = fmt::format("{} works again after {} failed attempts (last: {})", what_, run_failures_, last_why_);
        run_failures_ = 0;
        unlogged_ = 0;
        return line;
    }

    bool failing() const { return run_failures_ > 0; }

private:
    std::string what_;
    std::chrono::milliseconds interval_;
    std::uint64_t run_failures_ = 0; // since the last success
    std::uint64_t unlogged_ = 0;     // since the last line
    Clock::time_point window_start_{};
    std::string last_why_;
};

} // namespace dpool::log
