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
//
// Deadlines are not withdrawn when what they guard ends early (a heap cannot take one out cheaply): those of
// requests answered, leases returned, or pools gone would stay queued until due, so the queue would grow with
// the request rate times the timeout (a call's 5 s: 120,000 entries at 24,000 calls/s, and the timer firing
// for them every kCoalesce) and with pool churn. With a `wanted` predicate the queue is compacted whenever it
// has doubled since the last compaction (and holds at least kMinCompaction): what `wanted` rejects (nothing
// left to do when due) is dropped then. The cost is O(1) per deadline, amortized, and the queue stays within
// twice what is wanted, or kMinCompaction.
class Scheduler {
public:
    using OnDue = std::function<void(const Deadline&)>;
    // Whether a queued deadline may still matter (false: nothing is left for it to do, drop it).
    using Wanted = std::function<bool(const Deadline&)>;
    static constexpr auto kCoalesce = std::chrono::milliseconds(2);
    static constexpr std::size_t kMinCompaction = 1024;

    Scheduler(const asio::any_io_executor& executor, OnDue on_due, Wanted wanted = {})
        : timer_(executor), on_due_(std::move(on_due)), wanted_(std::move(wanted))
    {
    }

    void schedule(const Deadline& d)
    {
        if (stopped_) {
            return; // its owner is shutting down: nothing is served any more, nothing re-arms the timer
        }
        queue_.push(d);
        if (wanted_ && queue_.size() >= compact_at_) {
            compact();
        }
        if (!serving_ && (!armed_ || d.when < armed_for_)) {
            arm(d.when);
        }
    }

    void stop()
    {
        stopped_ = true;
        wanted_ = {}; // its owner may be tearing down what the predicate looks at
        armed_ = false;
        ++generation_; // a firing already queued by the event loop finds itself stale
        timer_.cancel();
    }

    // How many times the timer fired (each firing serves every deadline due then).
    std::uint64_t firings() const { return firings_; }
    // Deadlines queued now (due or not, wanted or not).
    std::size_t queued() const { return queue_.size(); }
    // Deadlines dropped by compactions, unserved.
    std::uint64_t dropped() const { return dropped_; }

private:
    void compact()
    {
        // The timer may stay armed for a deadline dropped here: it then fires for nothing and re-arms.
        dropped_ += queue_.retain(wanted_);
        compact_at_ = std::max(kMinCompaction, 2 * queue_.size());
    }

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
    Wanted wanted_;
    DeadlineQueue queue_;
    std::size_t compact_at_ = kMinCompaction;
    std::uint64_t dropped_ = 0;
    bool armed_ = false;
    bool stopped_ = false;
    bool serving_ = false; // due handlers are running: fire() arms the timer when they are done
    Clock::time_point armed_for_{};
    std::uint64_t generation_ = 0;
    std::uint64_t firings_ = 0;
};

} // namespace dpool::pool
