#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "util/asio.hpp"

namespace dpool {

// Serves the Prometheus exposition over HTTP (GET /metrics; anything else 404) with Boost.Beast, on the
// event loop: each scrape renders the C-node's figures at that moment. Bounded like the lanes: at most
// kMaxClients connections at once (more are closed at accept), a request of at most kMaxRequestBytes, and
// kRequestTimeout to send it.
class MetricsServer {
public:
    static constexpr std::size_t kMaxClients = 16;
    static constexpr std::size_t kMaxRequestBytes = 8 * 1024;
    static constexpr std::chrono::seconds kRequestTimeout{5};

    using Render = std::function<std::string()>;

    // Listens on `endpoint` (throws system_error when it cannot).
    MetricsServer(asio::io_context& io, const tcp::endpoint& endpoint, Render render);

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    void start();
    void stop();

private:
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> serve(tcp::socket socket);

    tcp::acceptor acceptor_;
    Render render_;
    std::size_t clients_ = 0;
};

} // namespace dpool
