#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace dpool::util {

// The kernel's bound on the pipe memory of one user (fs.pipe-user-pages-soft), which the pipes of big messages
// count against by their capacity, full or empty, together with every other pipe of the same user. Past it, an
// unprivileged process gets no bigger pipe (F_SETPIPE_SZ fails): the C-node then reads big messages into memory
// (info splice.fallbacks), which costs CPU, not messages. A process with CAP_SYS_RESOURCE or CAP_SYS_ADMIN is
// not bound.
struct PipeAllowance {
    std::uint64_t soft_pages = 0; // 0: no bound
    bool privileged = false;
};

// Bits of the capability sets in /proc/<pid>/status (linux/capability.h).
inline constexpr unsigned kCapSysAdmin = 21;
inline constexpr unsigned kCapSysResource = 24;

// The allowance as /proc says it; nullopt when it cannot be read (then nothing is said about it).
inline std::optional<PipeAllowance> read_pipe_allowance()
{
    PipeAllowance out;
    std::ifstream soft("/proc/sys/fs/pipe-user-pages-soft");
    if (!(soft >> out.soft_pages)) {
        return std::nullopt;
    }
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) == 0) {
            std::uint64_t caps = 0;
            std::istringstream(line.substr(7)) >> std::hex >> caps;
            out.privileged = ((caps >> kCapSysAdmin) & 1) != 0 || ((caps >> kCapSysResource) & 1) != 0;
        }
    }
    return out;
}

struct PipeAllowanceReport {
    std::string text;
    bool enough = true;
};

// The start-up line about the pipes of big messages (--max-splice-pipes `pipes` of `pipe_bytes` each) and the
// allowance; a warning when they cannot all exist within it even with no other pipe of the user. Nothing to
// say (nullopt) without pipes.
inline std::optional<PipeAllowanceReport> describe_pipe_allowance(const PipeAllowance& allowance,
                                                                  std::uint64_t pipes, std::uint64_t pipe_bytes)
{
    if (pipes == 0) {
        return std::nullopt;
    }
    constexpr std::uint64_t kPageBytes = 4096;
    const std::uint64_t wanted = pipes * ((pipe_bytes + kPageBytes - 1) / kPageBytes);
    const std::string head =
        fmt::format("pipes of big messages: --max-splice-pipes {} of {} KiB take up to {} pages of pipe memory", pipes,
                    pipe_bytes / 1024, wanted);
    if (allowance.privileged || allowance.soft_pages == 0) {
        return PipeAllowanceReport{fmt::format("{} (no per-user bound applies: {})", head,
                                               allowance.privileged ? "privileged" : "fs.pipe-user-pages-soft 0"),
                                   true};
    }
    if (wanted <= allowance.soft_pages) {
        return PipeAllowanceReport{
            fmt::format("{}, of the {} that all pipes of this user may take (fs.pipe-user-pages-soft)", head,
                        allowance.soft_pages),
            true};
    }
    return PipeAllowanceReport{
        fmt::format("{}, more than the {} that all pipes of this user may take (fs.pipe-user-pages-soft): the "
                    "pipes past it are refused and their messages read into memory (info splice.fallbacks). "
                    "Lower --max-splice-pipes or raise fs.pipe-user-pages-soft",
                    head, allowance.soft_pages),
        false};
}

} // namespace dpool::util
