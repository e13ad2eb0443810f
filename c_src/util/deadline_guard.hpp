#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <utility>

#include "util/asio.hpp"

namespace dpool {

// Cancels whatever the current step of a coroutine waits on when a deadline passes. The expiry action is
// dropped when the guard goes away, so a timer that already fired cannot reach a finished coroutine's state.
class DeadlineGuard {
public:
    template <class Executor>
    DeadlineGuard(const Executor& executor, std::chrono::steady_clock::duration timeout)
        : state_(std::make_shared<State>(executor))
    {
        state_->timer.expires_after(timeout);
        state_->timer.async_wait([state = state_](const error_code& ec) {
            if (ec) {
                return;
            }
            state->expired = true;
            if (state->on_expiry) {
                state->on_expiry();
            }
        });
    }
    ~DeadlineGuard()
    {
        state_->on_expiry = nullptr;
        state_->timer.cancel();
    }
    DeadlineGuard(const DeadlineGuard&) = delete;
    DeadlineGuard& operator=(const DeadlineGuard&) = delete;

    // What to cancel if the deadline passes during the current step.
    template <class Cancellable>
    void guard(Cancellable& target)
    {
        state_->on_expiry = [&target] {
            error_code ignored;
            target.cancel(ignored);
        };
    }
    // Any other way to end the current step (a resolver's or a timer's cancel(), ...).
    void guard_with(std::function<void()> cancel) { state_->on_expiry = std::move(cancel); }
    bool expired() const { return state_->expired; }
    std::chrono::steady_clock::duration remaining() const
    {
        return state_->timer.expiry() - std::chrono::steady_clock::now();
    }

private:
    struct State {
        template <class Executor>
        explicit State(const Executor& executor) : timer(executor)
        {
        }
        asio::steady_timer timer;
        std::function<void()> on_expiry;
        bool expired = false;
    };
    std::shared_ptr<State> state_;
};

} // namespace dpool
