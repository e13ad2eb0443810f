#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/ssl.hpp>

#include "transport/tls_channel.hpp"
#include "util/asio.hpp"

namespace dpool::transport {

namespace ssl = asio::ssl;

// The bytes of one distribution connection: a TCP socket, or TLS over one (OTP's inet_tls_dist). The
// handshake and DistLink read and write through it and need not know which; everything else (options, close,
// the peer's address, cancelling on a deadline) is the TCP socket's, socket().
class DistStream {
public:
    using executor_type = tcp::socket::executor_type;

    // Plain TCP (implicit: a socket is a plain stream).
    DistStream(tcp::socket socket) : plain_(std::move(socket)) {} // NOLINT(google-explicit-constructor)
    // TLS over `socket`, its handshake still to be done (tls_handshake, tls.hpp). `context` is kept alive for
    // as long as the stream: the connection's TLS state refers to it. The channel is on the heap, so that its
    // pending operations stay with it when the stream moves (between operations only, as any Asio stream).
    DistStream(tcp::socket socket, std::shared_ptr<ssl::context> context)
        : context_(std::move(context)), tls_(std::make_unique<TlsChannel>(std::move(socket), *context_))
    {
    }

    executor_type get_executor() { return socket().get_executor(); }
    tcp::socket& socket() { return tls_ ? tls_->socket() : *plain_; }
    bool encrypted() const { return tls_ != nullptr; }
    // The TLS layer; nullptr on a plain stream.
    TlsChannel* tls() { return tls_.get(); }

    // AsyncReadStream and AsyncWriteStream: asio::async_read and the like work on it.
    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token)
    {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this](auto handler, const MutableBuffers& b) {
                if (tls_) {
                    tls_->async_read_some(b, std::move(handler));
                } else {
                    plain_->async_read_some(b, std::move(handler));
                }
            },
            token, buffers);
    }
    // Over TLS, one call writes the first non-empty buffer (one record of it at most): callers loop anyway.
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token)
    {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this](auto handler, const ConstBuffers& b) {
                if (tls_) {
                    tls_->async_write_some(b, std::move(handler));
                } else {
                    plain_->async_write_some(b, std::move(handler));
                }
            },
            token, buffers);
    }

private:
    std::optional<tcp::socket> plain_;
    std::shared_ptr<ssl::context> context_;
    std::unique_ptr<TlsChannel> tls_;
};

} // namespace dpool::transport
