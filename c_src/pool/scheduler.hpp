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
//
// Handlers of due deadlines often schedule new ones (a health check its next round, a waiter's retry). While
// they run, the timer is not touched: once they are done it is armed for the earliest deadline queued then, so a
// far deadline added by a handler never holds back a nearer one that was already waiting.
class Scheduler {
public:
    using OnDue = std::function<void(const Deadline&)>;
    static constexpr auto kCoalesce = std::chrono::milliseconds(2);

    Scheduler(const asio::any_io_executor& executor, OnDue on_due) : timer_(executor), on_due_(std::move(on_due)) {}

    void schedule(const Deadline& d)
    {
        queue_.push(d);
        if (!serving_ && (!armed_ || d.when < armed_for_)) {
            arm(d.when);
        }
    }

    void stop()
    {
        armed_ = false;
        ++generation_; // a firing already queued by the event loop finds itself stale
        timer_.cancel();
    }

    // How many times the timer fired (each firing serves every deadline due then).
    std::uint64_t firings() const { return firings_; }

private:
    void arm(Clock::time_point when)
    {
        armed_ = true;
        armed_for_ = when;
        timer_.expires_at(when);
        // The generation tells a firing that the timer was re-armed or stopped after it had already expired (a
        // cancel cannot withdraw a handler that is queued to run).
        timer_.async_wait([this, generation = ++generation_](const error_code& ec) {
            if (ec == asio::error::operation_aborted || generation != generation_) {
                return;
            }
            fire();
        });
    }

    void fire()
    {
        armed_ = false;
        ++firings_;
        const auto now = Clock::now();
        {
            serving_ = true;
            const struct Done {
                bool& flag;
                ~Done() { flag = false; }
            } done{serving_};
            while (auto d = queue_.pop_due(now)) {
                on_due_(*d);
            }
        }
        if (auto next = queue_.next()) {
            arm(std::max(*next, now + kCoalesce));
        }
    }

    asio::steady_timer timer_;
    OnDue on_due_;
    DeadlineQueue queue_;
    bool armed_ = false;
    bool serving_ = false; // due handlers are running: fire() arms the timer when they are done
    Clock::time_point armed_for_{};
    std::uint64_t generation_ = 0;
    std::uint64_t firings_ = 0;
};

} // namespace dpool::pool
