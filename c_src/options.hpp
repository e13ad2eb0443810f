#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace dpool {

// Everything the C-node is told on its command line, with defaults resolved.
struct Options {
    std::string alive;
    std::string host;
    std::string node_name; // alive@host
    bool long_names = true;
    std::string cookie;
    std::string listen_address; // empty: derived from the host part of the node name
    std::uint16_t listen_port = 0;
    std::string service = "distribute_pool";
    bool exit_on_stdin_eof = false;
    bool await_restore = false;
    // A caller's handshake must be complete this long after its connection was accepted.
    unsigned handshake_timeout_ms = 5000;
    // Connections not yet through their handshake, at most, per lane and per source address (HandshakeGate).
    std::size_t max_handshakes_per_lane = 128;
    std::size_t max_handshakes_per_address = 64;
    unsigned net_ticktime_s = 60;
    std::uint32_t max_total_connections = 10000;
    std::string log_level = "info";
    // Ways in for callers: the main name and lanes - 1 more (lane_names.hpp).
    unsigned lanes = 4;
    // How long the event loop keeps polling after its last piece of work before it sleeps (0: never spins).
    unsigned busy_poll_us = 50;
};

inline constexpr unsigned kMaxLanes = 16;

// Parses argv. Gives the options, or the exit code to leave with (0 after --help, 2 for bad usage) once
// the message has been printed.
std::variant<Options, int> parse_options(int argc, char** argv);

} // namespace dpool
