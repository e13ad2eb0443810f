#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "transport/handshake.hpp"
#include "util/asio.hpp"
#include "util/blocking.hpp"

namespace dpool::transport {

struct ConnectOutcome {
    std::optional<tcp::socket> socket; // set on success: handshake done, ready for a DistLink
    std::string error;
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
