#pragma once

#include <sys/resource.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "util/asio.hpp"

namespace dpool::util {

// The C-node's limit on open descriptors (RLIMIT_NOFILE) as it found it and as it left it at start.
struct DescriptorLimit {
    std::uint64_t found = 0; // the soft limit it was started with
    std::uint64_t soft = 0;  // the soft limit now
    std::uint64_t hard = 0;
    int error = 0; // errno of a getrlimit or setrlimit that failed, else 0
};

// RLIM_INFINITY as a number of descriptors (no process gets that many, but it reads as "no limit").
inline std::uint64_t descriptor_count(rlim_t value)
{
    return value == RLIM_INFINITY ? UINT64_MAX : static_cast<std::uint64_t>(value);
}

// Every pooled connection is a descriptor, and the default soft limit (often 1024) would cap the pools far
// below what they may hold: the soft limit goes up to the hard one, which only the user can raise. A hard
// limit of RLIM_INFINITY is more than the kernel grants (fs.nr_open): the soft limit then stays as it was.
inline DescriptorLimit raise_descriptor_limit()
{
    DescriptorLimit out;
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        out.error = errno;
        return out;
    }
    out.found = out.soft = descriptor_count(limit.rlim_cur);
    out.hard = descriptor_count(limit.rlim_max);
    if (limit.rlim_cur < limit.rlim_max) {
        const rlimit raised{limit.rlim_max, limit.rlim_max};
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            out.soft = out.hard;
        } else {
            out.error = errno;
        }
    }
    return out;
}

// Descriptors the C-node needs besides its connections: lanes, epmd, callers, the metrics endpoint, logs.
inline constexpr std::uint64_t kReservedDescriptors = 256;

// The start-up line about the limit, and whether it is a warning: the C-node may keep `connections`
// connections (--max-total-connections) and `pipes` pipes of big messages (--max-splice-pipes), which need a
// descriptor each, two each, and the reserved ones. (A pipe that finds no descriptor costs no connection: its
// message is read into memory instead.)
struct DescriptorReport {
    std::string text;
    bool enough = true;
};

inline std::string descriptor_count_text(std::uint64_t n)
{
    return n == UINT64_MAX ? std::string("unlimited") : std::to_string(n);
}

inline DescriptorReport describe_descriptor_limit(const DescriptorLimit& limit, std::uint64_t connections,
                                                  std::uint64_t pipes)
{
    const std::uint64_t wanted = connections + 2 * pipes + kReservedDescriptors;
    const std::string raised = limit.soft != limit.found
                                   ? fmt::format("raised from {}", descriptor_count_text(limit.found))
                                   : std::string("as found");
    const std::string failure =
        limit.error != 0 ? fmt::format(" (could not raise it: {})", std::strerror(limit.error)) : std::string();
    if (limit.soft >= wanted) {
        return {fmt::format("descriptor limit (RLIMIT_NOFILE): {} ({}, hard limit {}){}",
                            descriptor_count_text(limit.soft), raised, descriptor_count_text(limit.hard), failure),
                true};
    }
    return {fmt::format("descriptor limit (RLIMIT_NOFILE): only {} ({}, hard limit {}){}: --max-total-connections "
                        "{} and --max-splice-pipes {} need about {}; connections beyond the limit fail with 'out "
                        "of file descriptors'. Raise the hard limit of the C-node's parent (ulimit -Hn, "
                        "LimitNOFILE= of a systemd unit)",
                        descriptor_count_text(limit.soft), raised, descriptor_count_text(limit.hard), failure,
                        connections, pipes, wanted),
            false};
}

// The error of a socket call that found the system's file table full (ENFILE), as Asio reports it.
inline error_code system_out_of_descriptors() { return {ENFILE, boost::system::system_category()}; }

// Whether a socket operation failed for want of a descriptor: this process's (EMFILE) or the system's (ENFILE).
// Compared as Asio's system-category codes, as everywhere else here, not as generic conditions
// (boost::system::errc), which match through the categories' virtual functions.
inline bool out_of_descriptors(const error_code& ec)
{
    return ec == asio::error::no_descriptors || ec == system_out_of_descriptors();
}

// The current soft limit, for an error text (nullopt when it cannot be read).
inline std::optional<std::uint64_t> current_descriptor_limit()
{
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        return std::nullopt;
    }
    return descriptor_count(limit.rlim_cur);
}

// What a caller or the log is told when `ec` is out_of_descriptors: which limit was hit and what raises it.
inline std::string out_of_descriptors_text(const error_code& ec)
{
    if (ec == system_out_of_descriptors()) {
        return fmt::format("out of file descriptors: the system's file table is full ({}; fs.file-max)",
                           ec.message());
    }
    const auto limit = current_descriptor_limit();
    return fmt::format("out of file descriptors: the C-node has all {} its limit allows open ({}; RLIMIT_NOFILE, "
                       "raised at start to the hard limit: raise that, ulimit -Hn)",
                       limit ? descriptor_count_text(*limit) : std::string("that"), ec.message());
}

// The text of a failed socket operation: out_of_descriptors_text when it is that, else the error's own.
inline std::string socket_error_text(const error_code& ec)
{
    return out_of_descriptors(ec) ? out_of_descriptors_text(ec) : ec.message();
}

} // namespace dpool::util
