#include "test_support.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "util/output_lines.hpp"

using namespace std::chrono_literals;
using dpool::util::OutputLines;

namespace {

// A pipe whose ends close with it.
struct Pipe {
    int read_end = -1;
    int write_end = -1;
    Pipe()
    {
        int fds[2];
        REQUIRE(::pipe(fds) == 0);
        read_end = fds[0];
        write_end = fds[1];
    }
    ~Pipe()
    {
        ::close(read_end);
        ::close(write_end);
    }
    Pipe(const Pipe&) = delete;
    Pipe& operator=(const Pipe&) = delete;

    // Everything written so far (the read end made non-blocking: no more than there is).
    std::string drain() const
    {
        REQUIRE(::fcntl(read_end, F_SETFL, O_NONBLOCK) == 0);
        std::string all;
        char buffer[65536];
        ssize_t n = 0;
        while ((n = ::read(read_end, buffer, sizeof buffer)) > 0) {
            all.append(buffer, static_cast<std::size_t>(n));
        }
        return all;
    }
};

// Polls `condition` every millisecond for at most `bound`.
template <class F>
bool eventually(F condition, std::chrono::milliseconds bound)
{
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Destroys `output` in a thread of its own; true when that returned within `bound`. When it did not, the
// pipes are read until it returns (the test fails rather than hangs: a future from std::async waits for its
// thread when it goes).
bool destroyed_within(std::unique_ptr<OutputLines>& output, const Pipe& out, const Pipe& log,
                      std::chrono::milliseconds bound)
{
    auto destroyed = std::async(std::launch::async, [&] { output.reset(); });
    if (destroyed.wait_for(bound) == std::future_status::ready) {
        return true;
    }
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (destroyed.wait_for(10ms) != std::future_status::ready) {
        (void)out.drain();
        (void)log.drain();
        if (std::chrono::steady_clock::now() > give_up) {
            std::abort(); // it writes on with its pipes read: a hang, better ended here than by CI's timeout
        }
    }
    return false;
}

} // namespace

TEST_CASE("output lines are written whole and in order, the log with its level in front", "[output]")
{
    Pipe out;
    Pipe log;
    {
        OutputLines output(out.write_end, log.write_end);
        output.log()->warn("a {} with\na newline", "warning");
        for (int i = 0; i < 100; ++i) {
            output.line("[dpool_event] line " + std::to_string(i));
        }
        output.line("READY n@h 4370");
    } // written before the destructor returns
    std::string expected;
    for (int i = 0; i < 100; ++i) {
        expected += "[dpool_event] line " + std::to_string(i) + "\n";
    }
    CHECK(out.drain() == expected + "READY n@h 4370\n");
    CHECK(log.drain() == "[dpool_cnode] warning: a warning with a newline\n");
}

TEST_CASE("a reader that does not read costs lines, counted, never the writer's time", "[output]")
{
    Pipe out;
    Pipe log;
    auto output = std::make_unique<OutputLines>(out.write_end, log.write_end);
    const std::string text(200, 'x');
    // 64 KiB fill the pipe; the queue holds OutputLines::kQueueLines more; the rest must give way.
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < 3000; ++i) {
        output->line(text);
    }
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 5s); // a blocked writer would never come back: the bound only catches that
    CHECK(eventually([&] { return output->dropped() > 0; }, 10s));
    CHECK(output->dropped() <= 3000);
    // Destroyed while the pipe is still full and nobody reads: it gives up on the reader and returns.
    const bool returned = destroyed_within(output, out, log, 10s);
    // What did reach the pipe is whole lines.
    const std::string written = out.drain();
    REQUIRE(returned);
    REQUIRE_FALSE(written.empty());
    CHECK(written.back() == '\n');
    CHECK(written.size() % (text.size() + 1) == 0);
}

TEST_CASE("a log nobody reads holds back neither the standard output lines nor the end", "[output]")
{
    Pipe out;
    Pipe log;
    auto output = std::make_unique<OutputLines>(out.write_end, log.write_end);
    const std::string text(200, 'x');
    for (int i = 0; i < 3000; ++i) {
        output->log()->warn("{}", text);
    }
    output->line("READY n@h 4370");
    std::string seen;
    CHECK(eventually(
        [&] {
            seen += out.drain();
            return seen == "READY n@h 4370\n";
        },
        10s));
    CHECK(eventually([&] { return output->dropped() > 0; }, 10s));
    CHECK(destroyed_within(output, out, log, 10s));
}

TEST_CASE("log and lines into one file share one queue: in order, and a long line is never split", "[output]")
{
    Pipe both;
    // Room for all of it (a pipe counts pages, not bytes: 16 by default, and each piece may take one).
    REQUIRE(::fcntl(both.write_end, F_SETPIPE_SZ, 1 << 20) >= (1 << 20));
    const int again = ::dup(both.write_end); // another descriptor of the same pipe, as 2>&1 makes
    REQUIRE(again >= 0);
    std::string expected;
    {
        OutputLines output(both.write_end, again);
        CHECK(output.shared());
        const std::string long_text(6000, 'l'); // more than PIPE_BUF: written in pieces
        for (int i = 0; i < 8; ++i) {
            output.log()->warn("{}", long_text);
            output.line("[dpool_event] " + std::to_string(i));
            expected += "[dpool_cnode] warning: " + long_text + "\n[dpool_event] " + std::to_string(i) + "\n";
        }
    }
    ::close(again);
    // Compared by position, so that a failure does not print it all.
    const std::string written = both.drain();
    const auto differ = std::mismatch(written.begin(), written.end(), expected.begin(), expected.end());
    CHECK(written.size() == expected.size());
    CHECK(differ.first - written.begin() == static_cast<std::ptrdiff_t>(std::min(written.size(), expected.size())));
    Pipe out;
    Pipe log;
    CHECK_FALSE(OutputLines(out.write_end, log.write_end).shared());
}

TEST_CASE("spdlog's default logger outlives OutputLines: what is logged later is still written", "[output]")
{
    Pipe out;
    Pipe log;
    // The default logger is put back however the test ends.
    struct RestoreDefault {
        std::shared_ptr<spdlog::logger> before = spdlog::default_logger();
        ~RestoreDefault() { spdlog::set_default_logger(before); }
    } restore;
    {
        OutputLines output(out.write_end, log.write_end);
        spdlog::set_default_logger(output.log());
        spdlog::warn("queued");
    }
    spdlog::warn("after the end");
    CHECK(log.drain() == "[dpool_cnode] warning: queued\n[dpool_cnode] warning: after the end\n");
}

TEST_CASE("standard output into a socket nobody reads: lines counted as dropped, and the end still comes",
          "[output]")
{
    int ends[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, ends) == 0);
    const int small = 4096;
    ::setsockopt(ends[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    Pipe log;
    auto output = std::make_unique<OutputLines>(ends[0], log.write_end);
    CHECK_FALSE(output->shared());
    const std::string text(1000, 's');
    for (int i = 0; i < 3000; ++i) {
        output->line(text);
    }
    CHECK(eventually([&] { return output->dropped() > 0; }, 10s));
    // Nobody reads the socket: the writer gives up on it (its writes never block) and the destructor returns.
    Pipe unused;
    CHECK(destroyed_within(output, unused, log, 10s));
    ::close(ends[0]);
    ::close(ends[1]);
}
