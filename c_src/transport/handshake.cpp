#include "transport/handshake.hpp"

#include <ei.h>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <string>
#include <vector>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <fmt/format.h>

#include "protocol/dist_header.hpp"

namespace dpool::transport {

namespace {

using Clock = std::chrono::steady_clock;

// Capabilities the C-node has beyond the ones ei announces. ei (OTP 25) announces DFLAG_DIST_MONITOR but not
// DFLAG_DIST_MONITOR_NAME, and ERTS sends MONITOR_P_EXIT only to peers that announce both: without it, the
// C-node would never learn that a lease holder died, nor that a request's server does not exist. The C-node
// implements both monitor forms (it answers monitors by name and handles their exits), so it says so.
constexpr std::uint64_t kDflagDistMonitorName = 0x20;
constexpr std::uint64_t kExtraFlags = kDflagDistMonitorName;
// Pooled connections also take distribution headers with atom cache references: a message to a registered
// name then carries its sender's node and the name as 2-byte references instead of their text, which is
// what lets a target's dist input take more of them per read (docs/BENCHMARKS.md).
constexpr std::uint64_t kConnectorFlags = kExtraFlags | protocol::kDflagDistHdrAtomCache;

// The context ei hands back to every callback: our connected socket, the handshake's deadline, the flags we
// add to ei's, whether our 'N' message (name or challenge, both carrying the flags) has gone out, and what
// the peer sent (for its flags).
struct HandshakeSocket {
    int fd;
    Clock::time_point deadline;
    std::uint64_t extra_flags = kExtraFlags;
    bool flags_sent = false;
    std::string received{};
};

HandshakeSocket& ctx_of(void* ctx) { return *static_cast<HandshakeSocket*>(ctx); }

// Waits until fd is ready for `events`, bounded by both ei's per-call timeout and the overall deadline.
int wait_ready(const HandshakeSocket& s, short events, unsigned tmo_ms)
{
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(s.deadline - Clock::now()).count();
        if (left <= 0) {
            return ETIMEDOUT;
        }
        long wait_ms = left;
        if (tmo_ms != EI_SCLBK_INF_TMO) {
            wait_ms = std::min<long>(wait_ms, static_cast<long>(tmo_ms));
        }
        pollfd p{s.fd, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(wait_ms));
        if (r > 0) {
            return 0;
        }
        if (r == 0) {
            return ETIMEDOUT;
        }
        if (errno != EINTR) {
            return errno;
        }
    }
}

int cb_socket(void** ctx, void* setup_ctx)
{
    *ctx = setup_ctx;
    return 0;
}

// The socket belongs to the caller; ei must not close it.
int cb_close(void*) { return 0; }

int cb_listen(void* ctx, void* addr, int* len, int)
{
    socklen_t l = static_cast<socklen_t>(*len);
    if (::getsockname(ctx_of(ctx).fd, static_cast<sockaddr*>(addr), &l) != 0) {
        return errno;
    }
    *len = static_cast<int>(l);
    return 0;
}

// The connection was accepted by Asio already: "accepting" hands ei that same socket.
int cb_accept(void** ctx, void* addr, int* len, unsigned)
{
    socklen_t l = static_cast<socklen_t>(*len);
    if (::getpeername(ctx_of(*ctx).fd, static_cast<sockaddr*>(addr), &l) != 0) {
        return errno;
    }
    *len = static_cast<int>(l);
    return 0;
}

// Connected by Asio already.
int cb_connect(void*, void*, int, unsigned) { return 0; }

template <class Io>
int do_io(const HandshakeSocket& s, short events, unsigned tmo, ssize_t* len, Io&& io)
{
    for (;;) {
        if (const int err = wait_ready(s, events, tmo); err != 0) {
            return err;
        }
        const ssize_t n = io();
        if (n >= 0) {
            *len = n;
            return 0;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return errno;
        }
    }
}

int cb_writev(void* ctx, const void* iov, int iovcnt, ssize_t* len, unsigned tmo)
{
    const auto& s = ctx_of(ctx);
    return do_io(s, POLLOUT, tmo, len, [&] { return ::writev(s.fd, static_cast<const iovec*>(iov), iovcnt); });
}

// The first handshake message we send is 'N' (send_name or send_challenge): 2-byte length, 'N', then the
// 8-byte big-endian flags. The flags are not part of the cookie digest, so widening them is safe.
constexpr std::size_t kFlagsOffset = 3;
constexpr std::size_t kFlagsEnd = kFlagsOffset + 8;

int cb_write(void* ctx, const char* buf, ssize_t* len, unsigned tmo)
{
    auto& s = ctx_of(ctx);
    const auto want = static_cast<std::size_t>(*len);
    if (!s.flags_sent && want >= kFlagsEnd && buf[2] == 'N') {
        s.flags_sent = true;
        std::string patched(buf, want);
        for (std::size_t i = 0; i < 8; ++i) {
            patched[kFlagsOffset + i] =
                static_cast<char>(patched[kFlagsOffset + i] | (s.extra_flags >> (8 * (7 - i))));
        }
        // Written whole here, so a short write cannot send the rest from ei's unpatched buffer.
        std::size_t done = 0;
        while (done < want) {
            ssize_t n = 0;
            if (const int err = do_io(s, POLLOUT, tmo, &n, [&] {
                    return ::send(s.fd, patched.data() + done, want - done, MSG_NOSIGNAL);
                });
                err != 0) {
                return err;
            }
            done += static_cast<std::size_t>(n);
        }
        *len = static_cast<ssize_t>(want);
        return 0;
    }
    return do_io(s, POLLOUT, tmo, len, [&] { return ::send(s.fd, buf, want, MSG_NOSIGNAL); });
}

int cb_read(void* ctx, char* buf, ssize_t* len, unsigned tmo)
{
    auto& s = ctx_of(ctx);
    const auto want = static_cast<std::size_t>(*len);
    const int err = do_io(s, POLLIN, tmo, len, [&] { return ::recv(s.fd, buf, want, 0); });
    if (err == 0 && *len > 0) {
        s.received.append(buf, static_cast<std::size_t>(*len));
    }
    return err;
}

int cb_packet_header_size(void*, int* size)
{
    *size = 2; // handshake packets carry a 2-byte length
    return 0;
}

int cb_handshake_complete(void*) { return 0; }

int cb_get_fd(void* ctx, int* fd)
{
    *fd = ctx_of(ctx).fd;
    return 0;
}

ei_socket_callbacks make_callbacks()
{
    ei_socket_callbacks cbs{};
    cbs.flags = EI_SCLBK_FLG_FULL_IMPL; // we do the timeouts, with poll()
    cbs.socket = cb_socket;
    cbs.close = cb_close;
    cbs.listen = cb_listen;
    cbs.EI_ACCEPT_NAME = cb_accept;
    cbs.connect = cb_connect;
    cbs.writev = cb_writev;
    cbs.write = cb_write;
    cbs.read = cb_read;
    cbs.handshake_packet_header_size = cb_packet_header_size;
    cbs.connect_handshake_complete = cb_handshake_complete;
    cbs.accept_handshake_complete = cb_handshake_complete;
    cbs.get_fd = cb_get_fd;
    return cbs;
}

// ei keeps a per-descriptor record of connections it made; we take the socket over, so the record goes.
void forget_in_ei(int fd) { ei_close_connection(fd); }

std::string ei_error(const char* step)
{
    return fmt::format("{} failed: {}", step, erl_errno != 0 ? std::strerror(erl_errno) : "handshake refused");
}

unsigned to_ei_timeout(std::chrono::milliseconds timeout)
{
    return static_cast<unsigned>(std::max<std::chrono::milliseconds::rep>(1, timeout.count()));
}

} // namespace

HandshakeOutcome handshake_as_acceptor(int fd, const HandshakeIdentity& self, const std::string& cookie,
                                       std::chrono::milliseconds timeout)
{
    ei_socket_callbacks cbs = make_callbacks();
    HandshakeSocket socket{fd, Clock::now() + timeout};
    ei_cnode ec{};
    HandshakeOutcome out;
    if (ei_connect_xinit_ussi(&ec, self.host.c_str(), self.alive.c_str(), self.node_name.c_str(), nullptr,
                              cookie.c_str(), self.creation, &cbs, sizeof cbs, &socket) < 0) {
        out.error = ei_error("ei_connect_xinit_ussi");
        return out;
    }
    // ei accepts only on a descriptor it knows as listening; registering ours makes it the "listener" whose
    // accept callback yields the connection Asio already accepted.
    in_addr any{};
    any.s_addr = htonl(INADDR_ANY);
    int port = 0;
    if (ei_xlisten(&ec, &any, &port, 1) < 0) {
        out.error = ei_error("ei_xlisten");
        return out;
    }
    ErlConnect peer{};
    const int result = ei_accept_tmo(&ec, fd, &peer, to_ei_timeout(timeout));
    forget_in_ei(fd);
    if (result < 0) {
        out.error = ei_error("ei_accept");
        return out;
    }
    out.ok = true;
    out.peer_node = peer.nodename;
    return out;
}

HandshakeOutcome handshake_as_connector(int fd, const HandshakeIdentity& self, const std::string& cookie,
                                        std::chrono::milliseconds timeout)
{
    ei_socket_callbacks cbs = make_callbacks();
    HandshakeSocket socket{fd, Clock::now() + timeout, kConnectorFlags};
    ei_cnode ec{};
    HandshakeOutcome out;
    if (ei_connect_xinit_ussi(&ec, self.host.c_str(), self.alive.c_str(), self.node_name.c_str(), nullptr,
                              cookie.c_str(), self.creation, &cbs, sizeof cbs, &socket) < 0) {
        out.error = ei_error("ei_connect_xinit_ussi");
        return out;
    }
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
        out.error = fmt::format("getpeername failed: {}", std::strerror(errno));
        return out;
    }
    const int result = ei_xconnect_host_port_tmo(&ec, &peer.sin_addr, ntohs(peer.sin_port), to_ei_timeout(timeout));
    if (result < 0) {
        out.timed_out = erl_errno == ETIMEDOUT || Clock::now() >= socket.deadline;
        out.error = out.timed_out ? ei_error("ei_connect") : explain_connect_failure(socket.received);
        return out;
    }
    forget_in_ei(fd);
    out.ok = true;
    out.peer_flags = peer_flags(socket.received).value_or(0);
    return out;
}

namespace {

// The handshake messages in `received` (each a 2-byte length and a body), as many as came whole.
std::vector<std::string_view> handshake_messages(std::string_view received)
{
    std::vector<std::string_view> messages;
    std::size_t at = 0;
    while (at + 2 <= received.size()) {
        const std::size_t length = (static_cast<std::size_t>(static_cast<unsigned char>(received[at])) << 8) |
                                   static_cast<unsigned char>(received[at + 1]);
        if (at + 2 + length > received.size()) {
            break;
        }
        messages.push_back(received.substr(at + 2, length));
        at += 2 + length;
    }
    return messages;
}

} // namespace

namespace {

// The peer's bytes as they may go into an error text: printable ASCII only, at most 64 of them.
std::string printable(std::string_view bytes)
{
    std::string out;
    for (const char c : bytes.substr(0, 64)) {
        out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
    }
    return out;
}

} // namespace

std::string explain_connect_failure(std::string_view received)
{
    const auto messages = handshake_messages(received);
    if (messages.empty() || messages[0].empty() || messages[0][0] != 's') {
        return "it closed the connection without answering (is it running TLS distribution, -proto_dist "
               "inet_tls, or is this not a distribution port?)";
    }
    const std::string_view status = messages[0].substr(1);
    if (status == "not_allowed") {
        return "it does not allow connections from this node (net_kernel:allow/1)";
    }
    if (status == "alive") {
        return "it already has a connection from a node of this name";
    }
    if (status == "nok") {
        return "it is connecting to this node at the same time";
    }
    if (status != "ok" && status != "ok_simultaneous" && status.substr(0, 6) != "named:") {
        return fmt::format("it answered status '{}'", printable(status));
    }
    if (messages.size() < 2) {
        return "it closed the connection after its status, before its challenge";
    }
    const bool acked = std::any_of(messages.begin() + 2, messages.end(),
                                   [](std::string_view m) { return !m.empty() && m[0] == 'a'; });
    if (acked) {
        return "it accepted the handshake, which then failed on our side";
    }
    return "it did not accept our answer to its challenge: the cookie is not the target's";
}

std::optional<std::uint64_t> peer_flags(std::string_view received)
{
    const auto byte = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(received[i])}; };
    std::size_t at = 0;
    while (at + 2 <= received.size()) {
        const std::size_t length = (byte(at) << 8) | byte(at + 1);
        const std::size_t body = at + 2;
        if (body + length > received.size()) {
            return std::nullopt;
        }
        if (length >= 9 && received[body] == 'N') {
            std::uint64_t flags = 0;
            for (std::size_t i = 1; i <= 8; ++i) {
                flags = (flags << 8) | byte(body + i);
            }
            return flags;
        }
        if (length >= 7 && received[body] == 'n') {
            return (byte(body + 3) << 24) | (byte(body + 4) << 16) | (byte(body + 5) << 8) | byte(body + 6);
        }
        at = body + length;
    }
    return std::nullopt;
}

} // namespace dpool::transport
