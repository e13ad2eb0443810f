#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>

#include "pool/deadline_queue.hpp"
#include "util/asio.hpp"

namespace dpool::pool {

// Serves every deadline of the process with one timer, armed for the earliest one. After the timer fired, it
// is armed no sooner than kCoalesce later: deadlines are late by that much at most, and the timer fires at most
// 1 / kCoalesce times a second however many deadlines there are. Every request and every lease has one (its
// timeout, the watch of its holder), mostly spaced less than that apart: served one by one they would cost a
// wake-up of the event loop and a timerfd_settime each, about as many as the requests themselves.
class Scheduler {
public:
    using OnDue = std::function<void(const Deadline&)>;
    static constexpr auto kCoalesce = std::chrono::milliseconds(2);

    Scheduler(const asio::any_io_executor& executor, OnDue on_due) : timer_(executor), on_due_(std::move(on_due)) {}

    void schedule(const Deadline& d)
    {
        queue_.push(d);
        if (!armed_ || d.when < armed_for_) {
            arm(d.when);
        }
    }

    void stop() { timer_.cancel(); }

    // How many times the timer fired (each firing serves every deadline due then).
    std::uint64_t firings() const { return firings_; }

private:
    void arm(Clock::time_point when)
    {
        armed_ = true;
        armed_for_ = when;
        timer_.expires_at(when);
        timer_.async_wait([this](const error_code& ec) {
            if (ec == asio::error::operation_aborted) {
                return; // re-armed for an earlier deadline, or stopped
            }
            armed_ = false;
            ++firings_;
            const auto now = Clock::now();
            while (auto d = queue_.pop_due(now)) {
                on_due_(*d);
            }
            if (auto next = queue_.next(); next && !armed_) {
                arm(std::max(*next, now + kCoalesce));
            }
        });
    }

    asio::steady_timer timer_;
    OnDue on_due_;
    DeadlineQueue queue_;
    bool armed_ = false;
    Clock::time_point armed_for_{};
    std::uint64_t firings_ = 0;
};

} // namespace dpool::pool
