#pragma once

#include <chrono>
#include <cstdint>
#include <string>

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
};

// The distribution handshake, done by ei over a socket that is already connected (or accepted). ei talks to
// the socket through user-supplied socket callbacks that poll() with our deadline, so any descriptor number
// works (ei's own callbacks use select(), which breaks above 1024 descriptors) and TCP connect/accept stay
// asynchronous in Asio. These calls block: run them on the handshake thread pool, never on the I/O thread.
// A wrong cookie, a refused name or a silent peer fails the handshake; the socket is left open either way.
HandshakeOutcome handshake_as_acceptor(int fd, const HandshakeIdentity& self, const std::string& cookie,
                                       std::chrono::milliseconds timeout);
HandshakeOutcome handshake_as_connector(int fd, const HandshakeIdentity& self, const std::string& cookie,
                                        std::chrono::milliseconds timeout);

} // namespace dpool::transport
