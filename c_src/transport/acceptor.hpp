#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "transport/handshake.hpp"
#include "util/asio.hpp"

namespace dpool::transport {

// Accepts distribution connections: TCP accept in Asio, then ei's handshake on the handshake pool. Nodes
// that fail the cookie challenge, or stay silent past the handshake timeout, are dropped. At most
// `max_pending` handshakes run or wait at once; connections beyond that are closed at once, so a flood of
// silent peers costs a bounded amount.
class Acceptor {
public:
    using OnConnected = std::function<void(tcp::socket socket, std::string peer_node)>;

    struct Options {
        std::chrono::milliseconds handshake_timeout{5000};
        std::size_t max_pending = 64;
    };

    Acceptor(asio::io_context& io, asio::thread_pool& handshakes, const tcp::endpoint& listen_on, std::string cookie,
             Options options);

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    void start(HandshakeIdentity self, OnConnected on_connected);
    void stop();

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> handshake(tcp::socket socket);

    tcp::acceptor acceptor_;
    asio::thread_pool& handshakes_;
    std::string cookie_;
    Options options_;
    HandshakeIdentity self_;
    OnConnected on_connected_;
    std::size_t pending_ = 0;
};

} // namespace dpool::transport
