#include "metrics_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "util/accept_loop.hpp"
#include "util/deadline_guard.hpp"

namespace dpool {

namespace beast = boost::beast;
namespace http = beast::http;

MetricsServer::MetricsServer(asio::io_context& io, const tcp::endpoint& endpoint, Render render)
    : acceptor_(io, endpoint), render_(std::move(render))
{
}

void MetricsServer::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void MetricsServer::stop()
{
    error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> MetricsServer::accept_loop()
{
    co_await util::accept_until_closed(acceptor_, [this](tcp::socket socket) {
        if (clients_ >= kMaxClients) {
            return; // closed as it goes out of scope: a scraper retries, a flood costs nothing
        }
        asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), asio::detached);
    });
}

asio::awaitable<void> MetricsServer::serve(tcp::socket socket)
{
    ++clients_;
    struct Leave {
        std::size_t& clients;
        ~Leave() { --clients; }
    } leave{clients_};
    beast::flat_buffer buffer(kMaxRequestBytes);
    for (;;) {
        // Each request, and the idle time before it, within kRequestTimeout.
        DeadlineGuard deadline(socket.get_executor(), kRequestTimeout);
        deadline.guard(socket);
        http::request_parser<http::empty_body> parser;
        parser.header_limit(kMaxRequestBytes);
        error_code ec;
        co_await http::async_read(socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || deadline.expired()) {
            co_return;
        }
        const auto& request = parser.get();
        http::response<http::string_body> response;
        response.version(request.version());
        response.keep_alive(request.keep_alive());
        const auto target = request.target();
        if (request.method() == http::verb::get && (target == "/metrics" || target.starts_with("/metrics?"))) {
            response.result(http::status::ok);
            response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            response.body() = render_();
        } else {
            response.result(http::status::not_found);
            response.set(http::field::content_type, "text/plain");
            response.body() = "only GET /metrics is served here\n";
        }
        response.prepare_payload();
        co_await http::async_write(socket, response, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || !response.keep_alive()) {
            socket.shutdown(tcp::socket::shutdown_send, ec);
            co_return;
        }
    }
}

} // namespace dpool
