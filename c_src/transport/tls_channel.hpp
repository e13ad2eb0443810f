#pragma once

#include <cerrno>
#include <cstddef>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include <boost/asio/ssl.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "util/asio.hpp"

namespace dpool::transport {

namespace ssl = asio::ssl;

// TLS over a TCP socket that OpenSSL reads and writes itself (SSL_set_fd on the non-blocking socket), the event
// loop only telling it when the socket is ready again. Asio's ssl::stream moves every byte through two record
// buffers of its own and a BIO pair of two more, 17 KiB each, made and zero-filled with the stream: an idle
// TLS connection cost 89 KB against 11 KB for a plain one (docs/BENCHMARKS.md, tls_bytes_per_idle_connection).
// Here OpenSSL's record buffers are the only ones, and it gives them back while they are empty
// (SSL_MODE_RELEASE_BUFFERS).
//
// The operations are those of an Asio stream (AsyncReadStream, AsyncWriteStream), one read and one write at a
// time at most, each on the first non-empty buffer it is given; a write takes at most one record. Completions
// run on the socket's executor (a handler's own executor, a strand say, is not used: the C-node has one
// thread), never inside the call that starts them. The channel owns its socket and must outlive its
// operations (the link's handlers hold the link, which holds it). Renegotiation (TLS 1.2) is refused: a
// write could then read records a waiting read would not hear of.
class TlsChannel {
public:
    enum class Role { client, server };

    // Throws std::bad_alloc when OpenSSL cannot make the connection's state.
    TlsChannel(tcp::socket socket, ssl::context& context);
    TlsChannel(const TlsChannel&) = delete;
    TlsChannel& operator=(const TlsChannel&) = delete;

    tcp::socket& socket() { return socket_; }
    SSL* native_handle() { return ssl_.get(); }

    // Checks each certificate of the peer's chain after OpenSSL did (`preverified`, the chain's store, whose
    // current certificate and error say which one and how it stands): false refuses the handshake. Set before
    // the handshake; the verify mode stays the context's.
    using VerifyCallback = std::function<bool(bool preverified, X509_STORE_CTX* store)>;
    void set_verify_callback(VerifyCallback callback);

    template <class Token> auto async_handshake(Role role, Token&& token)
    {
        return asio::async_initiate<Token, void(error_code)>(
            [this, role](auto handler) {
                if (role == Role::client) {
                    SSL_set_connect_state(ssl_.get());
                } else {
                    SSL_set_accept_state(ssl_.get());
                }
                drive(
                    [this](std::size_t& done) {
                        done = 0;
                        return SSL_do_handshake(ssl_.get());
                    },
                    [h = std::move(handler)](const error_code& ec, std::size_t) mutable { std::move(h)(ec); }, true);
            },
            token);
    }

    template <class MutableBuffers, class Token> auto async_read_some(const MutableBuffers& buffers, Token&& token)
    {
        return async_transfer(first_non_empty(buffers), std::forward<Token>(token),
                              [this](asio::mutable_buffer b, std::size_t& done) {
                                  return SSL_read_ex(ssl_.get(), b.data(), b.size(), &done);
                              });
    }

    template <class ConstBuffers, class Token> auto async_write_some(const ConstBuffers& buffers, Token&& token)
    {
        return async_transfer(first_non_empty(buffers), std::forward<Token>(token),
                              [this](asio::const_buffer b, std::size_t& done) {
                                  return SSL_write_ex(ssl_.get(), b.data(), b.size(), &done);
                              });
    }

private:
    struct SslFree {
        void operator()(SSL* s) const { SSL_free(s); }
    };

    template <class Buffers> static auto first_non_empty(const Buffers& buffers)
    {
        using Buffer = std::remove_cvref_t<decltype(*asio::buffer_sequence_begin(buffers))>;
        for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers); ++it) {
            if (Buffer b(*it); b.size() > 0) {
                return b;
            }
        }
        return Buffer{};
    }

    // What an SSL call that returned `result` (<= 0) left to do: wait for the socket (`wait` set), or
    // complete with the error it gives.
    struct Outcome {
        error_code ec;
        bool wait = false;
        tcp::socket::wait_type wait_for = tcp::socket::wait_read;
    };
    Outcome outcome_of(int result, int saved_errno);

    // A read or a write of `b` by `call` (SSL_read_ex or SSL_write_ex); an empty one completes at once, as on
    // any Asio stream: nothing asked, nothing waited for.
    template <class Buffer, class Token, class Call> auto async_transfer(Buffer b, Token&& token, Call call)
    {
        return asio::async_initiate<Token, void(error_code, std::size_t)>(
            [this, b, call](auto handler) {
                // this-> spelled out: clang takes calls of members in a generic lambda for no use of `this`.
                if (b.size() == 0) {
                    this->post_completion(std::move(handler), error_code{}, 0);
                    return;
                }
                this->drive([b, call](std::size_t& done) { return call(b, done); }, std::move(handler), true);
            },
            token);
    }

    // Completes `handler` from the event loop, never inside the call that started the operation.
    template <class Handler> void post_completion(Handler handler, error_code ec, std::size_t n)
    {
        asio::post(socket_.get_executor(),
                   [handler = std::move(handler), ec, n]() mutable { std::move(handler)(ec, n); });
    }

    // Runs `attempt` (an SSL call: 1 when it succeeded, having set its argument to the bytes it moved) until it
    // no longer waits for the socket, then completes `handler` with its result. `fresh`: called from the
    // operation's start, so a completion at once is posted (Asio's rule: never inside the initiating call).
    template <class Attempt, class Handler> void drive(Attempt attempt, Handler handler, bool fresh)
    {
        Outcome out;
        std::size_t done = 0;
        if (!socket_.is_open()) {
            // Closed under the operation (a deadline, the link's close): its descriptor may be another's now.
            out.ec = asio::error::operation_aborted;
        } else {
            ERR_clear_error();
            errno = 0;
            const int result = attempt(done);
            const int saved_errno = errno;
            if (result != 1) {
                done = 0;
                out = outcome_of(result, saved_errno);
            }
        }
        if (out.wait) {
            socket_.async_wait(out.wait_for,
                               [this, attempt = std::move(attempt), handler = std::move(handler)](
                                   const error_code& ec) mutable {
                                   if (ec) {
                                       std::move(handler)(ec, std::size_t{0});
                                       return;
                                   }
                                   drive(std::move(attempt), std::move(handler), false);
                               });
            return;
        }
        if (fresh) {
            post_completion(std::move(handler), out.ec, done);
            return;
        }
        std::move(handler)(out.ec, done);
    }

    static int verify_trampoline(int preverified, X509_STORE_CTX* store);

    tcp::socket socket_;
    std::unique_ptr<SSL, SslFree> ssl_;
    VerifyCallback verify_;
};

} // namespace dpool::transport
