#include "metrics_server.hpp"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include "util/accept_loop.hpp"
#include "util/deadline_guard.hpp"

namespace dpool {

namespace beast = boost::beast;
namespace http = beast::http;

MetricsServer::MetricsServer(asio::io_context& io, const tcp::endpoint& endpoint, Render render)
    : acceptor_(io, endpoint), shared_(std::make_shared<Shared>())
{
    shared_->render = std::move(render);
}

void MetricsServer::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void MetricsServer::stop()
{
    error_code ignored;
    acceptor_.close(ignored);
}

const std::string& MetricsServer::Shared::current_page()
{
    const auto now = std::chrono::steady_clock::now();
    if (!rendered || now - rendered_at >= kRenderEvery) {
        page = render();
        page += fmt::format("# HELP dpool_metrics_refused_connections_total Scrapers' connections closed at accept: "
                            "{} were open.\n# TYPE dpool_metrics_refused_connections_total counter\n"
                            "dpool_metrics_refused_connections_total {}\n",
                            kMaxClients, refused);
        rendered_at = now;
        rendered = true;
    }
    return page;
}

asio::awaitable<void> MetricsServer::accept_loop()
{
    co_await util::accept_until_closed(acceptor_, [this](tcp::socket socket) {
        if (shared_->clients >= kMaxClients) {
            ++shared_->refused;
            return; // closed as it goes out of scope: a scraper retries, a flood costs nothing
        }
        ++shared_->clients; // counted here: the coroutine starts later
        asio::co_spawn(acceptor_.get_executor(), serve(std::move(socket), shared_), asio::detached);
    });
}

asio::awaitable<void> MetricsServer::serve(tcp::socket socket, std::shared_ptr<Shared> shared)
{
    struct Leave {
        Shared& shared;
        ~Leave() { --shared.clients; }
    } leave{*shared};
    beast::flat_buffer buffer(kMaxRequestBytes);
    for (bool first = true;; first = false) {
        http::request_parser<http::empty_body> parser;
        parser.header_limit(kMaxRequestBytes);
        error_code ec;
        {
            // Idle between requests for up to kIdleTimeout, then kRequestTimeout for the request itself.
            DeadlineGuard deadline(socket.get_executor(), first ? kRequestTimeout : kIdleTimeout);
            deadline.guard(socket);
            co_await http::async_read_header(socket, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
            if (ec || deadline.expired()) {
                co_return;
            }
        }
        const auto& request = parser.get();
        http::response<http::string_body> response;
        response.version(request.version());
        response.keep_alive(request.keep_alive());
        const auto target = request.target();
        if (request.method() == http::verb::get && (target == "/metrics" || target.starts_with("/metrics?"))) {
            response.result(http::status::ok);
            response.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
            response.body() = shared->current_page();
        } else {
            response.result(http::status::not_found);
            response.set(http::field::content_type, "text/plain");
            response.body() = "only GET /metrics is served here\n";
        }
        response.prepare_payload();
        DeadlineGuard deadline(socket.get_executor(), kRequestTimeout);
        deadline.guard(socket);
        co_await http::async_write(socket, response, asio::redirect_error(asio::use_awaitable, ec));
        if (ec || deadline.expired() || !response.keep_alive() || !parser.is_done()) {
            socket.shutdown(tcp::socket::shutdown_send, ec);
            co_return;
        }
    }
}

} // namespace dpool
