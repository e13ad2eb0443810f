#include "test_support.hpp"

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <list>
#include <string>

#include "util/descriptor_limit.hpp"
#include "util/pipe_allowance.hpp"

using dpool::util::DescriptorLimit;

namespace {

// Puts this process's RLIMIT_NOFILE back as it was when the test started (only the soft limit may move: a
// lowered hard limit cannot be raised again without privileges, so that is tested in a child).
class RestoreLimit {
public:
    RestoreLimit() { ::getrlimit(RLIMIT_NOFILE, &saved_); }
    ~RestoreLimit() { ::setrlimit(RLIMIT_NOFILE, &saved_); }
    RestoreLimit(const RestoreLimit&) = delete;
    RestoreLimit& operator=(const RestoreLimit&) = delete;

private:
    rlimit saved_{};
};

// Runs `child` in a forked process; its exit status (0: every check of it held).
template <class Child>
int in_child(Child child)
{
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::_exit(child());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

} // namespace

TEST_CASE("the soft descriptor limit is raised to the hard one and both are reported", "[descriptor_limit]")
{
    RestoreLimit restore;
    rlimit limit{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &limit) == 0);
    REQUIRE(limit.rlim_max > 128);
    const rlimit lowered{128, limit.rlim_max};
    REQUIRE(::setrlimit(RLIMIT_NOFILE, &lowered) == 0);

    const DescriptorLimit raised = dpool::util::raise_descriptor_limit();
    CHECK(raised.found == 128);
    CHECK(raised.hard == dpool::util::descriptor_count(limit.rlim_max));
    rlimit now{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &now) == 0);
    if (limit.rlim_max == RLIM_INFINITY) {
        // More than the kernel grants (fs.nr_open): refused, and said so.
        CHECK(raised.error == EPERM);
        CHECK(raised.soft == 128);
        CHECK(now.rlim_cur == 128);
    } else {
        CHECK(raised.error == 0);
        CHECK(raised.soft == raised.hard);
        CHECK(now.rlim_cur == limit.rlim_max);
    }
}

TEST_CASE("the start-up line says the limit, and warns when the connections and pipes cannot fit", "[descriptor_limit]")
{
    const auto enough = dpool::util::describe_descriptor_limit(
        DescriptorLimit{.found = 1024, .soft = 65536, .hard = 65536, .error = 0}, 10000, 64);
    CHECK(enough.enough);
    CHECK(enough.text == "descriptor limit (RLIMIT_NOFILE): 65536 (raised from 1024, hard limit 65536)");

    const auto low = dpool::util::describe_descriptor_limit(
        DescriptorLimit{.found = 64, .soft = 64, .hard = 64, .error = 0}, 10000, 64);
    CHECK_FALSE(low.enough);
    CHECK(low.text == "descriptor limit (RLIMIT_NOFILE): only 64 (as found, hard limit 64): --max-total-connections "
                      "10000 and --max-splice-pipes 64 need about 10384; connections beyond the limit fail with "
                      "'out of file descriptors'. Raise the hard limit of the C-node's parent (ulimit -Hn, "
                      "LimitNOFILE= of a systemd unit)");

    // The pipes' descriptors count: a limit that holds the connections and the reserved ones, not the pipes.
    const DescriptorLimit tight{.found = 10256, .soft = 10256, .hard = 10256, .error = 0};
    CHECK(dpool::util::describe_descriptor_limit(tight, 10000, 0).enough);
    CHECK_FALSE(dpool::util::describe_descriptor_limit(tight, 10000, 1).enough);
    CHECK(dpool::util::describe_descriptor_limit(tight, 9998, 1).enough);

    const auto failed = dpool::util::describe_descriptor_limit(
        DescriptorLimit{.found = 1024, .soft = 1024, .hard = dpool::util::descriptor_count(RLIM_INFINITY),
                        .error = EPERM},
        100, 64);
    CHECK(failed.enough);
    CHECK(failed.text == "descriptor limit (RLIMIT_NOFILE): 1024 (as found, hard limit unlimited) (could not raise "
                         "it: Operation not permitted)");
}

TEST_CASE("the pipes of big messages are cut to three quarters of the user's pipe memory, and the start-up line "
          "says so", "[descriptor_limit][splice]")
{
    using dpool::util::PipeAllowance;
    using dpool::util::plan_pipes;
    constexpr std::uint64_t kMiB = 1 << 20;
    const PipeAllowance unprivileged{.bound_pages = 16384, .privileged = false, .page_bytes = 4096};
    CHECK_FALSE(plan_pipes(unprivileged, 0, kMiB));

    const auto within = plan_pipes(unprivileged, 48, kMiB);
    REQUIRE(within);
    CHECK(within->pipes == 48);
    CHECK_FALSE(within->warn);
    CHECK(within->text == "pipes of big messages: --max-splice-pipes 48 of 1024 KiB, up to 12288 pages of pipe memory "
                          "of the 16384 that all pipes of this user may take (fs.pipe-user-pages-soft)");

    // The default 64 would fill the default allowance alone (a 65th 1 MiB pipe is refused; the user's other
    // pipes, the C-node's output among them, take their share first): 48 are kept.
    const auto cut = plan_pipes(unprivileged, 64, kMiB);
    REQUIRE(cut);
    CHECK(cut->pipes == 48);
    CHECK_FALSE(cut->warn);
    CHECK(cut->text == "pipes of big messages: 48 instead of --max-splice-pipes 64: 64 pipes of 1024 KiB would take "
                       "16384 pages of pipe memory, and all pipes of this user may take 16384 "
                       "(fs.pipe-user-pages-soft); these take three quarters at most, and big messages beyond them "
                       "are read into memory (info splice.fallbacks). Raise fs.pipe-user-pages-soft for more");

    // Pages of 64 KiB: a pipe of 1 MiB is 16 of them.
    const auto big_pages = plan_pipes(PipeAllowance{.bound_pages = 1024, .privileged = false, .page_bytes = 65536},
                                      64, kMiB);
    REQUIRE(big_pages);
    CHECK(big_pages->pipes == 48);
    // An allowance too small for one pipe: none, and a warning.
    const auto none = plan_pipes(PipeAllowance{.bound_pages = 200, .privileged = false, .page_bytes = 4096}, 64, kMiB);
    REQUIRE(none);
    CHECK(none->pipes == 0);
    CHECK(none->warn);

    const auto privileged = plan_pipes(PipeAllowance{.bound_pages = 16384, .privileged = true}, 100, kMiB);
    REQUIRE(privileged);
    CHECK(privileged->pipes == 100);
    CHECK(privileged->text.ends_with("(no per-user bound applies: privileged)"));
    const auto unbound = plan_pipes(PipeAllowance{.bound_pages = 0, .privileged = false}, 100, kMiB);
    REQUIRE(unbound);
    CHECK(unbound->pipes == 100);
    CHECK(unbound->text.ends_with("(no per-user bound applies: fs.pipe-user-pages-soft 0)"));

    // This machine's, as /proc says it (root in a container may lack both capabilities: not asserted).
    const auto here = dpool::util::read_pipe_allowance();
    REQUIRE(here);
    CHECK(here->page_bytes == static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
}

TEST_CASE("under a low hard limit, sockets run out with an error that names the limit", "[descriptor_limit]")
{
    // In a child: its hard limit goes down to 64 for good.
    const int status = in_child([] {
        const rlimit low{64, 64};
        if (::setrlimit(RLIMIT_NOFILE, &low) != 0) {
            return 1;
        }
        const DescriptorLimit raised = dpool::util::raise_descriptor_limit();
        if (raised.soft != 64 || raised.hard != 64 || raised.error != 0) {
            return 2;
        }
        if (dpool::util::describe_descriptor_limit(raised, 10000, 64).enough) {
            return 3;
        }
        dpool::asio::io_context io;
        std::list<dpool::tcp::socket> sockets;
        for (int i = 0; i < 100; ++i) {
            dpool::error_code ec;
            auto& socket = sockets.emplace_back(io);
            socket.open(dpool::tcp::v4(), ec);
            if (ec) {
                if (!dpool::util::out_of_descriptors(ec)) {
                    return 4;
                }
                const std::string text = dpool::util::out_of_descriptors_text(ec);
                return text.starts_with("out of file descriptors: the C-node has all 64 its limit allows open") &&
                               text.find("RLIMIT_NOFILE") != std::string::npos
                           ? 0
                           : 5;
            }
        }
        return 6; // 100 sockets under a limit of 64
    });
    CHECK(status == 0);
}

TEST_CASE("only EMFILE and ENFILE count as out of descriptors", "[descriptor_limit]")
{
    const auto code = [](int value) { return dpool::error_code(value, boost::system::system_category()); };
    CHECK(dpool::util::out_of_descriptors(code(EMFILE)));
    CHECK(dpool::util::out_of_descriptors(code(ENFILE)));
    CHECK_FALSE(dpool::util::out_of_descriptors(code(ECONNREFUSED)));
    CHECK_FALSE(dpool::util::out_of_descriptors(dpool::error_code{}));
    CHECK(dpool::util::out_of_descriptors_text(code(ENFILE))
              .starts_with("out of file descriptors: the system's file table is full"));
}
