#include "transport/tls_channel.hpp"

#include <new>

#include <openssl/err.h>

namespace dpool::transport {

TlsChannel::TlsChannel(tcp::socket socket, ssl::context& context)
    : socket_(std::move(socket)), ssl_(SSL_new(context.native_handle()))
{
    if (!ssl_) {
        throw std::bad_alloc();
    }
    // OpenSSL reads and writes the socket itself and says when it would block.
    socket_.non_blocking(true);
    // Partial writes (a record at a time) from a buffer that may move between attempts, as Asio's stream
    // does; record buffers only while a record is in them; a read takes what the socket has, records beyond the
    // one asked for included, so that a burst of small records costs one system call.
    SSL_set_mode(ssl_.get(),
                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_set_read_ahead(ssl_.get(), 1);
    SSL_set_options(ssl_.get(), SSL_OP_NO_RENEGOTIATION);
    if (SSL_set_fd(ssl_.get(), socket_.native_handle()) != 1) {
        throw std::bad_alloc(); // the socket BIO could not be made
    }
    SSL_set_app_data(ssl_.get(), this);
}

void TlsChannel::set_verify_callback(VerifyCallback callback)
{
    verify_ = std::move(callback);
    SSL_set_verify(ssl_.get(), SSL_get_verify_mode(ssl_.get()), &TlsChannel::verify_trampoline);
}

int TlsChannel::verify_trampoline(int preverified, X509_STORE_CTX* store)
{
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* self = ssl != nullptr ? static_cast<TlsChannel*>(SSL_get_app_data(ssl)) : nullptr;
    if (self == nullptr || !self->verify_) {
        return preverified;
    }
    return self->verify_(preverified != 0, store) ? 1 : 0;
}

TlsChannel::Outcome TlsChannel::outcome_of(int result, int saved_errno)
{
    switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
        return {{}, true, tcp::socket::wait_read};
    case SSL_ERROR_WANT_WRITE:
        return {{}, true, tcp::socket::wait_write};
    case SSL_ERROR_ZERO_RETURN: // the peer's close_notify
        return {asio::error::eof};
    case SSL_ERROR_SYSCALL:
        // A socket error, or (errno 0) the connection ended without a close_notify.
        if (saved_errno != 0) {
            return {error_code(saved_errno, asio::error::get_system_category())};
        }
        return {ssl::error::stream_truncated};
    default: {
        const unsigned long e = ERR_get_error();
        if (e == 0) {
            // A state this channel never asks for (an X509 lookup, an async job): an error, never a success.
            return {ssl::error::unexpected_result};
        }
        if (ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            return {ssl::error::stream_truncated};
        }
        return {error_code(static_cast<int>(e), asio::error::get_ssl_category())};
    }
    }
}

} // namespace dpool::transport
