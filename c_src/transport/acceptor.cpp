#include "transport/acceptor.hpp"

#include <spdlog/spdlog.h>

#include "util/blocking.hpp"

namespace dpool::transport {

Acceptor::Acceptor(asio::io_context& io, asio::thread_pool& handshakes, const tcp::endpoint& listen_on,
                   std::string cookie, Options options)
    : acceptor_(io, listen_on), handshakes_(handshakes), cookie_(std::move(cookie)), options_(options)
{
}

void Acceptor::start(HandshakeIdentity self, OnConnected on_connected)
{
    self_ = std::move(self);
    on_connected_ = std::move(on_connected);
    asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

void Acceptor::stop()
{
    error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> Acceptor::accept_loop()
{
    while (acceptor_.is_open()) {
        error_code ec;
        tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
                co_return;
            }
            // Out of descriptors and the like: back off briefly rather than spin.
            spdlog::warn("accept failed: {}", ec.message());
            asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
            co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            continue;
        }
        if (pending_ >= options_.max_pending) {
            spdlog::warn("too many handshakes in progress; dropping a connection");
            continue; // the socket closes as it goes out of scope
        }
        asio::co_spawn(acceptor_.get_executor(), handshake(std::move(socket)), asio::detached);
    }
}

asio::awaitable<void> Acceptor::handshake(tcp::socket socket)
{
    ++pending_;
    const int fd = socket.native_handle();
    auto work = [fd, self = self_, cookie = cookie_, t = options_.handshake_timeout] {
        return handshake_as_acceptor(fd, self, cookie, t);
    };
    auto outcome = co_await run_blocking(handshakes_, std::move(work));
    --pending_;
    if (!outcome.ok) {
        spdlog::info("refused a connection: {}", outcome.error);
        co_return;
    }
    if (acceptor_.is_open() && on_connected_) {
        on_connected_(std::move(socket), std::move(outcome.peer_node));
    }
}

} // namespace dpool::transport
