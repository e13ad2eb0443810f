#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "util/asio.hpp"

namespace dpool {

// Serves the Prometheus exposition over HTTP (GET /metrics; anything else 404) with Boost.Beast, on the
// event loop. Bounded like the lanes: at most kMaxClients connections at once (more are closed at accept and
// counted: dpool_metrics_refused_connections_total), a request of at most kMaxRequestBytes, kIdleTimeout to
// start one, kRequestTimeout to send it and kRequestTimeout to take the answer. The page is rendered at most
// once per kRenderEvery and shared by all scrapers meanwhile, so scraping cannot hold the event loop up.
class MetricsServer {
public:
    static constexpr std::size_t kMaxClients = 16;
    static constexpr std::size_t kMaxRequestBytes = 8 * 1024;
    static constexpr std::chrono::seconds kIdleTimeout{30};
    static constexpr std::chrono::seconds kRequestTimeout{5};
    static constexpr std::chrono::milliseconds kRenderEvery{1000};

    using Render = std::function<std::string()>;

    // Listens on `endpoint` (throws system_error when it cannot).
    MetricsServer(asio::io_context& io, const tcp::endpoint& endpoint, Render render);

    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    void start();
    void stop();

private:
    // What the connections' coroutines share with the server, kept alive by them: they may end after it.
    struct Shared {
        Render render;
        std::string page;
        std::chrono::steady_clock::time_point rendered_at{};
        bool rendered = false;
        std::size_t clients = 0;
        std::uint64_t refused = 0;

        const std::string& current_page();
    };

    asio::awaitable<void> accept_loop();
    static asio::awaitable<void> serve(tcp::socket socket, std::shared_ptr<Shared> shared);

    tcp::acceptor acceptor_;
    std::shared_ptr<Shared> shared_;
};

} // namespace dpool
