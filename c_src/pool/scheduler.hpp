#pragma once

#include <functional>

#include "pool/deadline_queue.hpp"
#include "util/asio.hpp"

namespace dpool::pool {

// Serves every deadline of the process with one timer, armed for the earliest one.
class Scheduler {
public:
    using OnDue = std::function<void(const Deadline&)>;

    Scheduler(const asio::any_io_executor& executor, OnDue on_due) : timer_(executor), on_due_(std::move(on_due)) {}

    void schedule(const Deadline& d)
    {
        queue_.push(d);
        if (!armed_ || d.when < armed_for_) {
            arm(d.when);
        }
    }

    void stop() { timer_.cancel(); }

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
            const auto now = Clock::now();
            while (auto d = queue_.pop_due(now)) {
                on_due_(*d);
            }
            if (auto next = queue_.next(); next && !armed_) {
                arm(*next);
            }
        });
    }

    asio::steady_timer timer_;
    OnDue on_due_;
    DeadlineQueue queue_;
    bool armed_ = false;
    Clock::time_point armed_for_{};
};

} // namespace dpool::pool
