#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "transport/handshake.hpp"
#include "transport/handshake_gate.hpp"
#include "transport/tls.hpp"
#include "util/asio.hpp"

namespace dpool::transport {

// Accepts distribution connections on one lane: TCP accept, then (with TLS) the TLS handshake, then the
// distribution handshake, as a coroutine on the I/O thread, under a deadline that starts at the accept. Unauthenticated connections pass a HandshakeGate shared
// by all lanes, which bounds them per lane and per source address by dropping the idlest.
class Acceptor {
public:
    using OnConnected = std::function<void(DistStream stream, std::string peer_node)>;
    // AdmitPeer with the address the connection comes from.
    using AdmitFrom = std::function<std::optional<PeerRefusal>(std::string_view peer_node, const asio::ip::address& from)>;

    struct Setup {
        std::size_t lane = 0;
        HandshakeIdentity self;
        HandshakeGate* gate = nullptr;  // outlives the acceptor
        HandshakeCounters* counters = nullptr; // likewise
        AdmitFrom admit;
        OnConnected on_connected;
        PacketRecorder* recorder = nullptr; // --record-packets (a test aid): each handshake's messages
        TlsContext tls;                     // mode none: plain TCP; else callers must speak TLS
    };

    Acceptor(asio::io_context& io, const tcp::endpoint& listen_on, std::string cookie,
             std::chrono::milliseconds handshake_timeout);

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    void start(Setup setup);
    void stop();

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> handshake(tcp::socket socket);
    void log_failure(const HandshakeOutcome& outcome);

    tcp::acceptor acceptor_;
    std::string cookie_;
    std::chrono::milliseconds handshake_timeout_;
    Setup setup_;
    // Failures are logged at most once per interval, with how many were not: a flood must not flood the log.
    std::chrono::steady_clock::time_point last_failure_log_{};
    std::uint64_t unlogged_failures_ = 0;
};

} // namespace dpool::transport
