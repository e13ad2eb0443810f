#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "api/access_list.hpp"
#include "api/service_limits.hpp"
#include "transport/tls.hpp"

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
    unsigned net_ticktime_s = 60;
    // Bounds on what callers and peers can make the C-node hold (--max-*).
    api::ServiceLimits limits;
    // Who may use the C-node (--allow-caller, --allow-caller-address) and where its pools may connect
    // (--allow-target); empty: anyone with the cookie, anywhere.
    api::CallerAccess callers;
    api::TargetAccess targets;
    // TLS distribution (--tls, its files; README, "TLS"), and the contexts made of it once at the start: the
    // lanes accept with one, pools connect with the other.
    transport::TlsSettings tls;
    transport::TlsContext tls_accept;
    transport::TlsContext tls_connect;
    std::string log_level = "info";
    // A run of repeated failures (a pool's failed connects, lost connections) is logged once, then summarized
    // at most this often.
    unsigned log_repeat_interval_ms = 10000;
    // Write a line to standard output for each pooled connection that goes up or down (--events): the
    // library's telemetry events.
    bool events = false;
    // The Prometheus endpoint (GET /metrics): off unless a port is given (0: any free port, which info shows).
    std::optional<std::uint16_t> metrics_port;
    std::string metrics_address = "127.0.0.1";
    // Ways in for callers: the main name and lanes - 1 more (lane_names.hpp).
    unsigned lanes = 4;
    // How long the event loop keeps polling after its last piece of work before it sleeps (0: never spins).
    unsigned busy_poll_us = 50;
    // A test aid: the directory where every received packet is recorded (transport::PacketRecorder); empty: off.
    std::string record_packets_dir;
};

inline constexpr unsigned kMaxLanes = 16;

// Parses argv. Gives the options, or the exit code to leave with (0 after --help, 2 for bad usage) once
// the message has been printed.
std::variant<Options, int> parse_options(int argc, char** argv);

} // namespace dpool
