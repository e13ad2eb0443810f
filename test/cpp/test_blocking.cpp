#include "test_support.hpp"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "util/asio.hpp"
#include "util/blocking.hpp"

namespace asio = dpool::asio;

// The one piece of the C-node that runs on more than one thread: ei's blocking handshakes go to a thread pool
// through run_blocking and come back to the event loop. The ThreadSanitizer build of these tests
// (scripts/sanitize_test.sh) checks the hand-over both ways.
TEST_CASE("run_blocking runs the work on the pool and resumes the coroutine on its own executor with the result",
          "[blocking]")
{
    constexpr int kJobs = 16;
    asio::io_context io;
    asio::thread_pool pool(2);
    const auto loop_thread = std::this_thread::get_id();
    // Written by the loop before each job starts and read by the job; the job's result is read by the loop.
    std::vector<std::string> inputs(kJobs);
    std::vector<std::string> results(kJobs);
    int pool_threads = 0;
    int resumed_on_loop = 0;
    for (int i = 0; i < kJobs; ++i) {
        asio::co_spawn(
            io,
            [&, i]() -> asio::awaitable<void> {
                inputs[i] = std::string(1000, static_cast<char>('a' + i));
                const std::string& input = inputs[i];
                auto [text, on_pool] = co_await dpool::run_blocking(pool, [&input, loop_thread] {
                    return std::pair(input + "!", std::this_thread::get_id() != loop_thread);
                });
                pool_threads += on_pool ? 1 : 0;
                resumed_on_loop += std::this_thread::get_id() == loop_thread ? 1 : 0;
                results[i] = std::move(text);
            },
            asio::detached);
    }
    // Returns only when every coroutine has finished: a job on the pool counts as work of `io` until its
    // result is back (otherwise run() would return while the coroutines wait).
    io.run();
    pool.join();
    CHECK(pool_threads == kJobs);
    CHECK(resumed_on_loop == kJobs);
    for (int i = 0; i < kJobs; ++i) {
        CHECK(results[i] == std::string(1000, static_cast<char>('a' + i)) + "!");
    }
}
