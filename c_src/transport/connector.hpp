#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "transport/handshake.hpp"
#include "util/asio.hpp"
#include "util/blocking.hpp"

namespace dpool::transport {

// Which step of opening a connection failed: what a caller is told ({connection_failed, {Kind, Text}}).
enum class ConnectError : std::uint8_t {
    unreachable,       // the host cannot be resolved, or its epmd or the node's port cannot be reached
    not_registered,    // the target host's epmd has no node of that name
    handshake_refused, // the target refused the distribution handshake (a wrong cookie, a name in use...)
    timeout,           // connect_timeout_ms passed first
};
std::string_view error_kind_name(ConnectError kind);

struct ConnectOutcome {
    std::optional<tcp::socket> socket; // set on success: handshake done, ready for a DistLink
    ConnectError kind = ConnectError::unreachable; // on failure
    std::string error;                             // on failure, in words
    std::uint64_t peer_flags = 0; // what the target announced in the handshake (DFLAG_*)
};

// Opens one distribution connection from identity `self` to node `target` (alive@host): resolves the host,
// asks the target's epmd for its port, connects, and hands the socket to the handshake pool for ei's
// handshake. Everything, the handshake included, fits in `timeout`.
asio::awaitable<ConnectOutcome> connect_node(asio::thread_pool& handshakes, std::string target, HandshakeIdentity self,
                                             std::string cookie, std::chrono::milliseconds timeout);

// Resolves a host name or IPv4 literal to an IPv4 address (distribution over IPv4, as ei speaks it).
asio::awaitable<std::optional<asio::ip::address>> resolve_ipv4(std::string host, DeadlineGuard& deadline);

} // namespace dpool::transport
