#include "test_support.hpp"

#include <chrono>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "util/asio.hpp"
#include "util/event_loop.hpp"

using dpool::util::BulkQueue;
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
        dpool::util::BulkQueue bulk;
        dpool::util::run_event_loop(io, spin, bulk);
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
        dpool::util::BulkQueue bulk;
        dpool::util::run_event_loop(io, spin, bulk);
        CHECK(io.stopped());
    }
}

TEST_CASE("run_event_loop runs bulk work only when no handler is ready", "[event_loop]")
{
    for (const auto spin : {0us, 50us}) {
        CAPTURE(spin.count());
        asio::io_context io;
        BulkQueue bulk;
        std::vector<std::string> order;
        bulk.defer([&] { order.push_back("bulk 1"); });
        bulk.defer([&] {
            order.push_back("bulk 2");
            asio::post(io, [&] { order.push_back("posted by bulk 2"); });
            bulk.defer([&] {
                order.push_back("bulk 3");
                io.stop();
            });
        });
        for (int i = 0; i < 3; ++i) {
            asio::post(io, [&, i] { order.push_back("handler " + std::to_string(i)); });
        }
        auto guard = asio::make_work_guard(io); // the loop would otherwise end when it runs out of handlers
        dpool::util::run_event_loop(io, spin, bulk);
        CHECK(order == std::vector<std::string>{"handler 0", "handler 1", "handler 2", "bulk 1", "bulk 2",
                                                "posted by bulk 2", "bulk 3"});
        CHECK(bulk.empty());
    }
}

TEST_CASE("run_event_loop runs one bulk item after every kFairness handlers under a steady load", "[event_loop]")
{
    asio::io_context io;
    BulkQueue bulk;
    std::size_t handlers = 0;
    std::vector<std::size_t> bulk_after; // handlers run before each bulk item
    // A handler that always posts another: the loop is never idle.
    std::function<void()> busy = [&] {
        ++handlers;
        if (bulk_after.size() == 3) {
            io.stop();
            return;
        }
        asio::post(io, busy);
    };
    asio::post(io, busy);
    for (int i = 0; i < 3; ++i) {
        bulk.defer([&] { bulk_after.push_back(handlers); });
    }
    dpool::util::run_event_loop(io, 0us, bulk);
    CHECK(bulk_after == std::vector<std::size_t>{BulkQueue::kFairness, 2 * BulkQueue::kFairness,
                                                 3 * BulkQueue::kFairness});
}

TEST_CASE("run_event_loop runs bulk work that is all that is left, then returns", "[event_loop]")
{
    asio::io_context io; // no guard: bulk work alone must keep the loop going
    BulkQueue bulk;
    std::vector<std::string> order;
    bulk.defer([&] {
        order.push_back("bulk 1");
        bulk.defer([&] {
            order.push_back("bulk 2");
            asio::post(io, [&] { order.push_back("posted by bulk 2"); });
        });
    });
    dpool::util::run_event_loop(io, 0us, bulk);
    CHECK(order == std::vector<std::string>{"bulk 1", "bulk 2", "posted by bulk 2"});
    CHECK(bulk.empty());
    CHECK(io.stopped());
}

namespace {
std::chrono::nanoseconds thread_cpu_time()
{
    timespec ts{};
    REQUIRE(::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}
} // namespace

TEST_CASE("run_event_loop does not spin right after bulk work: it sleeps until the next event", "[event_loop]")
{
    asio::io_context io;
    BulkQueue bulk;
    bool bulk_ran = false;
    bulk.defer([&] { bulk_ran = true; });
    // The next event comes 60 ms later, inside a spin window of 200 ms and a no-spin window of 10 s: the
    // loop must sleep through the wait (microseconds of CPU). Spinning any part of it would take milliseconds
    // of CPU on a core that is not too busy (on a very busy one this test may not notice).
    asio::steady_timer timer(io, 60ms);
    bool fired = false;
    timer.async_wait([&](const dpool::error_code& ec) { fired = !ec; });
    const auto cpu_before = thread_cpu_time();
    dpool::util::run_event_loop(io, 200000us, bulk, 10s);
    const auto cpu = thread_cpu_time() - cpu_before;
    CHECK(bulk_ran);
    CHECK(fired);
    CAPTURE(std::chrono::duration_cast<std::chrono::microseconds>(cpu).count());
    CHECK(cpu < 5ms);
}
