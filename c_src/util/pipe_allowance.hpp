#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace dpool::util {

// The kernel's bound on the pipe memory of one user (fs.pipe-user-pages-soft, and -hard when set), which the
// pipes of big messages count against by their capacity, full or empty, together with every other pipe of the
// same user. Past it an unprivileged process gets no bigger pipe (F_SETPIPE_SZ fails), and the C-node reads
// big messages into memory (info splice.fallbacks), which costs CPU, not messages. A process with
// CAP_SYS_RESOURCE or CAP_SYS_ADMIN is not bound. (The capabilities are read from /proc/self/status, relative
// to the process's user namespace: in a rootless container they may read as privileged while the bound still
// applies; the fallback then covers it.)
struct PipeAllowance {
    std::uint64_t bound_pages = 0; // 0: no bound
    bool privileged = false;
    std::uint64_t page_bytes = 4096;
};

// Bits of the capability sets in /proc/<pid>/status (linux/capability.h).
inline constexpr unsigned kCapSysAdmin = 21;
inline constexpr unsigned kCapSysResource = 24;

// The allowance as /proc says it; nullopt when it cannot be read (the pipes are then left as configured).
inline std::optional<PipeAllowance> read_pipe_allowance()
{
    PipeAllowance out;
    std::uint64_t soft = 0;
    if (!(std::ifstream("/proc/sys/fs/pipe-user-pages-soft") >> soft)) {
        return std::nullopt;
    }
    std::uint64_t hard = 0;
    std::ifstream("/proc/sys/fs/pipe-user-pages-hard") >> hard; // 0 (no bound) when it cannot be read
    out.bound_pages = soft == 0 ? hard : (hard == 0 ? soft : std::min(soft, hard));
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) == 0) {
            std::uint64_t caps = 0;
            std::istringstream(line.substr(7)) >> std::hex >> caps;
            out.privileged = ((caps >> kCapSysAdmin) & 1) != 0 || ((caps >> kCapSysResource) & 1) != 0;
        }
    }
    if (const long page = ::sysconf(_SC_PAGESIZE); page > 0) {
        out.page_bytes = static_cast<std::uint64_t>(page);
    }
    return out;
}

// How many pipes of big messages the C-node keeps at most, and the start-up line that says so.
struct PipePlan {
    std::uint64_t pipes = 0;
    std::string text;
    bool warn = false; // no pipe at all for want of allowance
};

// Of the user's allowance the pipes of big messages take at most three quarters, leaving the rest to the
// user's other pipes (the C-node's own output among them): --max-splice-pipes `pipes` of `pipe_bytes` each
// are cut to what fits. Nothing to say (nullopt) without pipes.
inline std::optional<PipePlan> plan_pipes(const PipeAllowance& allowance, std::uint64_t pipes,
                                          std::uint64_t pipe_bytes)
{
    if (pipes == 0) {
        return std::nullopt;
    }
    const std::uint64_t pages_per_pipe = (pipe_bytes + allowance.page_bytes - 1) / allowance.page_bytes;
    const std::uint64_t wanted = pipes * pages_per_pipe;
    const auto as_configured = [&](std::string_view bound) {
        return PipePlan{pipes,
                        fmt::format("pipes of big messages: --max-splice-pipes {} of {} KiB, up to {} pages of pipe "
                                    "memory {}",
                                    pipes, pipe_bytes / 1024, wanted, bound),
                        false};
    };
    if (allowance.privileged || allowance.bound_pages == 0) {
        return as_configured(fmt::format("(no per-user bound applies: {})",
                                         allowance.privileged ? "privileged" : "fs.pipe-user-pages-soft 0"));
    }
    const std::uint64_t share = allowance.bound_pages / 4 * 3;
    if (wanted <= share) {
        return as_configured(fmt::format("of the {} that all pipes of this user may take (fs.pipe-user-pages-soft)",
                                         allowance.bound_pages));
    }
    const std::uint64_t usable = share / pages_per_pipe;
    return PipePlan{usable,
                    fmt::format("pipes of big messages: {} instead of --max-splice-pipes {}: {} pipes of {} KiB would "
                                "take {} pages of pipe memory, and all pipes of this user may take {} "
                                "(fs.pipe-user-pages-soft); these take three quarters at most, and big messages "
                                "beyond them are read into memory (info splice.fallbacks). Raise "
                                "fs.pipe-user-pages-soft for more",
                                usable, pipes, pipes, pipe_bytes / 1024, wanted, allowance.bound_pages),
                    usable == 0};
}

} // namespace dpool::util
