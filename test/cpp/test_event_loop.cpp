#include "test_support.hpp"

#include <chrono>

#include "util/asio.hpp"
#include "util/event_loop.hpp"

namespace asio = dpool::asio;
using namespace std::chrono_literals;

TEST_CASE("run_event_loop runs every handler and returns when the work is done", "[event_loop]")
{
    for (const auto spin : {0us, 50us, 2000us}) {
        CAPTURE(spin.count());
        asio::io_context io;
        int ran = 0;
        for (int i = 0; i < 10; ++i) {
            asio::post(io, [&] { ++ran; });
        }
        // A timer keeps the loop waiting past the spin window, then posts one more handler.
        asio::steady_timer timer(io, 20ms);
        timer.async_wait([&](const dpool::error_code& ec) {
            CHECK_FALSE(ec);
            asio::post(io, [&] { ++ran; });
        });
        const auto start = std::chrono::steady_clock::now();
        dpool::util::run_event_loop(io, spin);
        CHECK(ran == 11);
        CHECK(std::chrono::steady_clock::now() - start >= 20ms);
        CHECK(io.stopped());
    }
}

TEST_CASE("run_event_loop returns once the loop is stopped, spinning or not", "[event_loop]")
{
    for (const auto spin : {0us, 50us, 100000us}) {
        CAPTURE(spin.count());
        asio::io_context io;
        // Work that never ends by itself: a guard, as the C-node's listening socket is.
        auto guard = asio::make_work_guard(io);
        asio::steady_timer timer(io, 10ms);
        timer.async_wait([&](const dpool::error_code&) { io.stop(); });
        dpool::util::run_event_loop(io, spin);
        CHECK(io.stopped());
    }
}
