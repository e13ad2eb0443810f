#include "transport/acceptor.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "util/accept_loop.hpp"
#include "util/deadline_guard.hpp"

namespace dpool::transport {

namespace {
constexpr auto kFailureLogInterval = std::chrono::seconds(10);
}

Acceptor::Acceptor(asio::io_context& io, const tcp::endpoint& listen_on, std::string cookie,
                   std::chrono::milliseconds handshake_timeout)
    : acceptor_(io, listen_on), cookie_(std::move(cookie)), handshake_timeout_(handshake_timeout)
{
}

void Acceptor::start(Setup setup)
{
    setup_ = std::move(setup);
    asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
}

void Acceptor::stop()
{
    error_code ignored;
    acceptor_.close(ignored);
}

asio::awaitable<void> Acceptor::accept_loop()
{
    co_await util::accept_until_closed(acceptor_, [this](tcp::socket socket) {
        asio::co_spawn(acceptor_.get_executor(), handshake(std::move(socket)), asio::detached);
    });
}

asio::awaitable<void> Acceptor::handshake(tcp::socket socket)
{
    DeadlineGuard deadline(acceptor_.get_executor(), handshake_timeout_);
    error_code ec;
    const auto from = socket.remote_endpoint(ec);
    if (ec) {
        co_return; // gone already
    }
    DistStream stream = setup_.tls.context ? DistStream(std::move(socket), setup_.tls.context)
                                           : DistStream(std::move(socket));
    // Declared after the stream, so it leaves the gate before the socket closes: the gate never drops a
    // connection whose coroutine has ended.
    auto ticket = setup_.gate->admit(setup_.lane, from.address().to_string(), [&stream] {
        error_code ignored;
        stream.socket().close(ignored);
    });
    HandshakeOutcome outcome;
    if (auto refused = co_await tls_handshake(stream, setup_.tls.mode, TlsRole::accept, {}, deadline)) {
        outcome.timed_out = deadline.expired();
        outcome.error = fmt::format("no TLS: {}", *refused);
    } else {
        if (stream.encrypted()) {
            ticket.progressed();
        }
        const auto recording = setup_.recorder ? setup_.recorder->open_handshake("accept") : nullptr;
        const AdmitPeer admit = [this, &from](std::string_view peer) { return setup_.admit(peer, from.address()); };
        outcome = co_await accept_handshake(stream, setup_.self, cookie_, deadline, admit,
                                            [&ticket] { ticket.progressed(); }, recording.get());
    }
    if (!outcome.ok) {
        ++(outcome.timed_out ? setup_.counters->timed_out : setup_.counters->failed);
        if (!outcome.reported) {
            log_failure(outcome);
        }
        co_return;
    }
    ++setup_.counters->completed;
    if (acceptor_.is_open() && setup_.on_connected) {
        setup_.on_connected(std::move(stream), outcome.peer_node);
    }
}

void Acceptor::log_failure(const HandshakeOutcome& outcome)
{
    const auto now = std::chrono::steady_clock::now();
    if (now - last_failure_log_ < kFailureLogInterval) {
        ++unlogged_failures_;
        return;
    }
    last_failure_log_ = now;
    const std::string why = outcome.timed_out ? "no complete handshake within the handshake timeout" : outcome.error;
    if (unlogged_failures_ > 0) {
        spdlog::info("lane {}: refused a connection: {} ({} more refused since the last such line)", setup_.lane,
                     why, unlogged_failures_);
    } else {
        spdlog::info("lane {}: refused a connection: {}", setup_.lane, why);
    }
    unlogged_failures_ = 0;
}

} // namespace dpool::transport
