#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dpool::transport {

// Who we are in a handshake.
struct HandshakeIdentity {
    std::string alive;
    std::string host;
    std::string node_name; // alive@host
    std::uint32_t creation = 0;
};

struct HandshakeOutcome {
    bool ok = false;
    std::string peer_node; // set by the accepting side
    std::string error;
    bool timed_out = false; // the error is the deadline's
    // The capabilities the peer announced (DFLAG_*), 0 when they could not be read; set by the connecting side.
    std::uint64_t peer_flags = 0;
};

// Capabilities of a peer that change what the C-node sends it.
inline constexpr std::uint64_t kDflagSpawn = std::uint64_t{1} << 32; // SPAWN_REQUEST (OTP 23+)


// The distribution handshake, done by ei over a socket that is already connected (or accepted). ei talks to
// the socket through user-supplied socket callbacks that poll() with our deadline, so any descriptor number
// works (ei's own callbacks use select(), which breaks above 1024 descriptors) and TCP connect/accept stay
// asynchronous in Asio. These calls block: run them on the handshake thread pool, never on the I/O thread.
// A wrong cookie, a refused name or a silent peer fails the handshake; the socket is left open either way.
HandshakeOutcome handshake_as_acceptor(int fd, const HandshakeIdentity& self, const std::string& cookie,
                                       std::chrono::milliseconds timeout);
// The connecting side (pooled connections) also announces DFLAG_DIST_HDR_ATOM_CACHE, so that packets to
// the target can name atoms by cache reference; the outcome has the flags the target announced.
HandshakeOutcome handshake_as_connector(int fd, const HandshakeIdentity& self, const std::string& cookie,
                                        std::chrono::milliseconds timeout);

// Why a connecting handshake that did not time out failed, judged from what the peer sent before it hung up
// (OTP's distribution protocol, "Distribution Handshake"): its status message, whether its challenge came
// (then our answer, made with our cookie, was refused), or nothing at all.
std::string explain_connect_failure(std::string_view received);

// The flags a peer announced, from the handshake bytes it sent (2-byte length, then 'N' with 8-byte flags,
// or 'n' with a 2-byte version and 4-byte flags); nullopt when no such message is among them.
std::optional<std::uint64_t> peer_flags(std::string_view received);

} // namespace dpool::transport
