#include "transport/connector.hpp"

#include <fmt/format.h>

#include "protocol/node_identity.hpp"
#include "transport/epmd.hpp"
#include "util/blocking.hpp"

namespace dpool::transport {

asio::awaitable<std::optional<asio::ip::address>> resolve_ipv4(std::string host, DeadlineGuard& deadline)
{
    error_code ec;
    const auto literal = asio::ip::make_address_v4(host, ec);
    if (!ec) {
        co_return asio::ip::address(literal);
    }
    auto executor = co_await asio::this_coro::executor;
    tcp::resolver resolver(executor);
    deadline.guard_resolver(resolver);
    const auto results =
        co_await resolver.async_resolve(tcp::v4(), host, "", asio::redirect_error(asio::use_awaitable, ec));
    if (ec || results.empty()) {
        co_return std::nullopt;
    }
    co_return results.begin()->endpoint().address();
}

asio::awaitable<ConnectOutcome> connect_node(asio::thread_pool& handshakes, std::string target, HandshakeIdentity self,
                                             std::string cookie, std::chrono::milliseconds timeout)
{
    ConnectOutcome out;
    const auto name = protocol::parse_node_name(target);
    if (!name) {
        out.error = fmt::format("bad node name '{}'", target);
        co_return out;
    }
    auto executor = co_await asio::this_coro::executor;
    DeadlineGuard deadline(executor, timeout);
    try {
        const auto address = co_await resolve_ipv4(std::string(name->host), deadline);
        if (!address) {
            out.error = fmt::format("cannot resolve host '{}'", name->host);
            co_return out;
        }
        if (deadline.expired()) {
            out.error = "timed out resolving the host";
            co_return out;
        }
        tcp::socket epmd_socket(executor);
        deadline.guard(epmd_socket);
        const auto port = co_await epmd_port_please(epmd_socket, *address, std::string(name->alive));
        if (!port) {
            out.error = fmt::format("epmd on {} does not know '{}'", address->to_string(), name->alive);
            co_return out;
        }
        if (deadline.expired()) {
            out.error = "timed out asking epmd";
            co_return out;
        }
        tcp::socket socket(executor);
        deadline.guard(socket);
        error_code ec;
        co_await socket.async_connect({*address, *port}, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) {
            out.error = deadline.expired() ? "timed out connecting" : fmt::format("connect failed: {}", ec.message());
            co_return out;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining());
        if (left.count() <= 0) {
            out.error = "timed out before the handshake";
            co_return out;
        }
        const int fd = socket.native_handle();
        auto work = [fd, self, cookie, left] { return handshake_as_connector(fd, self, cookie, left); };
        auto outcome = co_await run_blocking(handshakes, std::move(work));
        if (!outcome.ok) {
            out.error = outcome.error;
            co_return out;
        }
        out.socket.emplace(std::move(socket));
        out.peer_flags = outcome.peer_flags;
    } catch (const std::exception& e) {
        out.error = e.what();
    }
    co_return out;
}

} // namespace dpool::transport
