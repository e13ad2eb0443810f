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

std::string_view error_kind_name(ConnectError kind)
{
    switch (kind) {
    case ConnectError::unreachable:
        return "unreachable";
    case ConnectError::not_registered:
        return "not_registered";
    case ConnectError::handshake_refused:
        return "handshake_refused";
    case ConnectError::timeout:
        return "timeout";
    }
    return "unreachable";
}

namespace {

ConnectOutcome failed(ConnectError kind, std::string error)
{
    ConnectOutcome out;
    out.kind = kind;
    out.error = std::move(error);
    return out;
}

} // namespace

asio::awaitable<ConnectOutcome> connect_node(asio::thread_pool& handshakes, std::string target, HandshakeIdentity self,
                                             std::string cookie, std::chrono::milliseconds timeout)
{
    const auto name = protocol::parse_node_name(target);
    if (!name) {
        co_return failed(ConnectError::unreachable, fmt::format("'{}' is no node name (alive@host)", target));
    }
    auto executor = co_await asio::this_coro::executor;
    DeadlineGuard deadline(executor, timeout);
    const auto timed_out = [&](std::string_view step) {
        return failed(ConnectError::timeout,
                      fmt::format("no connection to {} within connect_timeout_ms ({} ms): timed out {}", target,
                                  timeout.count(), step));
    };
    // Each step's failure is told apart: the cause is what a user needs to fix it (docs/PROTOCOL.md, "Errors").
    const auto address = co_await resolve_ipv4(std::string(name->host), deadline);
    if (deadline.expired()) {
        co_return timed_out("resolving the host");
    }
    if (!address) {
        co_return failed(ConnectError::unreachable, fmt::format("cannot resolve the host '{}'", name->host));
    }
    std::optional<std::uint16_t> port;
    {
        tcp::socket epmd_socket(executor);
        deadline.guard(epmd_socket);
        try {
            port = co_await epmd_port_please(epmd_socket, *address, std::string(name->alive));
        } catch (const std::exception& e) {
            if (deadline.expired()) {
                co_return timed_out("asking epmd");
            }
            co_return failed(ConnectError::unreachable, fmt::format("cannot ask epmd on {} port {}: {}",
                                                                    address->to_string(), epmd_port(), e.what()));
        }
    }
    if (!port) {
        co_return failed(ConnectError::not_registered,
                         fmt::format("epmd on {} has no node named '{}' (is {} running, under that name?)",
                                     address->to_string(), name->alive, target));
    }
    tcp::socket socket(executor);
    deadline.guard(socket);
    error_code ec;
    co_await socket.async_connect({*address, *port}, asio::redirect_error(asio::use_awaitable, ec));
    if (deadline.expired()) {
        co_return timed_out("connecting");
    }
    if (ec) {
        co_return failed(ConnectError::unreachable, fmt::format("cannot connect to {} at {} port {}: {}", target,
                                                                address->to_string(), *port, ec.message()));
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline.remaining());
    if (left.count() <= 0) {
        co_return timed_out("before the handshake");
    }
    const int fd = socket.native_handle();
    auto work = [fd, self, cookie, left] { return handshake_as_connector(fd, self, cookie, left); };
    auto outcome = co_await run_blocking(handshakes, std::move(work));
    if (!outcome.ok) {
        if (outcome.timed_out) {
            co_return timed_out("in the handshake");
        }
        co_return failed(ConnectError::handshake_refused, fmt::format("{} refused the handshake: {}", target,
                                                                      outcome.error));
    }
    ConnectOutcome out;
    out.socket.emplace(std::move(socket));
    out.peer_flags = outcome.peer_flags;
    co_return out;
}

} // namespace dpool::transport
