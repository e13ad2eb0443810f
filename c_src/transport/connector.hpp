#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "transport/connect_error.hpp"
#include "transport/handshake.hpp"
#include "transport/node_ports.hpp"
#include "transport/tls.hpp"
#include "util/asio.hpp"

namespace dpool::transport {

struct ConnectOutcome {
    std::optional<DistStream> stream; // set on success: handshake done, ready for a DistLink
    ConnectError kind = ConnectError::unreachable; // on failure
    std::string error;                             // on failure, in words
    std::uint64_t peer_flags = 0; // what the target announced in the handshake (DFLAG_*)
};

// Opens one distribution connection from identity `self` to node `target` (alive@host): finds its port
// (NodePorts: its host's epmd, asked once for many connections), connects, and does the handshake.
// Everything fits in `timeout`. A port remembered from before that refuses the connection is asked for again
// once (the target may have restarted on another port). With a `tls` context the connection is TLS
// (inet_tls_dist), its handshake first. `recorder`: --record-packets (a test aid; nullptr: none), where the
// target's handshake messages go.
asio::awaitable<ConnectOutcome> connect_node(NodePorts& ports, std::string target, HandshakeIdentity self,
                                             std::string cookie, std::chrono::milliseconds timeout,
                                             TlsContext tls = {}, PacketRecorder* recorder = nullptr);

} // namespace dpool::transport
