#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "util/asio.hpp"

namespace dpool {

// Runs a blocking function on `pool` and completes with its result on the awaiting coroutine's own executor,
// so blocking work (ei's handshake) never occupies the I/O thread. Deliberately not a coroutine itself:
// GCC 12 may destroy a coroutine's by-value arguments twice when they are temporaries of a co_await.
template <class Function>
auto run_blocking(asio::thread_pool& pool, Function function)
{
    using Result = std::invoke_result_t<Function>;
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(Result)>(
        [&pool](auto handler, Function work) {
            asio::post(pool, [handler = std::move(handler), work = std::move(work)]() mutable {
                Result result = work();
                auto home = asio::get_associated_executor(handler);
                asio::post(home, [handler = std::move(handler), result = std::move(result)]() mutable {
                    std::move(handler)(std::move(result));
                });
            });
        },
        asio::use_awaitable, std::move(function));
}

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
    void guard_resolver(tcp::resolver& resolver)
    {
        state_->on_expiry = [&resolver] { resolver.cancel(); };
    }
    // Any other way to end the current step (a timer's cancel(), ...).
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
