#include "transport/connector.hpp"

#include <fmt/format.h>

#include "protocol/node_identity.hpp"
#include "util/descriptor_limit.hpp"

namespace dpool::transport {

namespace {

ConnectOutcome failed(ConnectError kind, std::string error)
{
    ConnectOutcome out;
    out.kind = kind;
    out.error = std::move(error);
    return out;
}

} // namespace

asio::awaitable<ConnectOutcome> connect_node(NodePorts& ports, std::string target, HandshakeIdentity self,
                                             std::string cookie, std::chrono::milliseconds timeout,
                                             TlsContext tls, PacketRecorder* recorder)
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
    for (bool asked_again = false;; asked_again = true) {
        const auto lookup = co_await ports.find(target, deadline);
        if (!lookup.found) {
            co_return lookup.kind == ConnectError::timeout ? timed_out(lookup.error)
                                                           : failed(lookup.kind, lookup.error);
        }
        const auto [address, port] = *lookup.found;
        tcp::socket socket(executor);
        deadline.guard(socket);
        error_code ec;
        co_await socket.async_connect({address, port}, asio::redirect_error(asio::use_awaitable, ec));
        if (deadline.expired()) {
            ports.forget(target);
            co_return timed_out("connecting");
        }
        if (ec) {
            ports.forget(target);
            if (lookup.from_cache && !asked_again) {
                continue;
            }
            co_return failed(ConnectError::unreachable, fmt::format("cannot connect to {} at {} port {}: {}", target,
                                                                    address.to_string(), port,
                                                                    util::socket_error_text(ec)));
        }
        DistStream stream = tls.context ? DistStream(std::move(socket), tls.context) : DistStream(std::move(socket));
        if (auto refused = co_await tls_handshake(stream, tls.mode, TlsRole::connect, name->host, deadline)) {
            ports.forget(target);
            if (deadline.expired()) {
                co_return timed_out("in the TLS handshake (does the target run plain distribution?)");
            }
            co_return failed(ConnectError::tls_failed, fmt::format("no TLS with {}: {}", target, *refused));
        }
        const auto recording = recorder ? recorder->open_handshake("connect") : nullptr;
        const auto outcome = co_await connect_handshake(stream, self, cookie, deadline, recording.get());
        if (!outcome.ok) {
            ports.forget(target);
            if (outcome.timed_out) {
                co_return timed_out("in the handshake");
            }
            if (outcome.tls_refused) {
                co_return failed(ConnectError::tls_failed, fmt::format("no TLS with {}: {}", target, outcome.error));
            }
            co_return failed(ConnectError::handshake_refused,
                             fmt::format("{} refused the handshake: {}", target, outcome.error));
        }
        const auto peer = protocol::parse_node_name(outcome.peer_node);
        if (!peer || peer->alive != name->alive) {
            // The port epmd gave now belongs to another node (the target restarted elsewhere).
            ports.forget(target);
            co_return failed(ConnectError::unreachable,
                             fmt::format("port {} of {} is now {}'s, not {}'s", port, address.to_string(),
                                         outcome.peer_node, target));
        }
        ConnectOutcome out;
        out.stream.emplace(std::move(stream));
        out.peer_flags = outcome.peer_flags;
        co_return out;
    }
}

} // namespace dpool::transport
