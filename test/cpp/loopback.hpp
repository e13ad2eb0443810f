#pragma once
// Loopback sockets for tests of the layers above transport: a DistLink (or a bare socket) over one end of a
// 127.0.0.1 TCP connection, the test holding the other end.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "protocol/control.hpp"
#include "transport/dist_link.hpp"
#include "util/asio.hpp"

namespace dpool::test {

// A connected pair of sockets on `io`.
struct SocketPair {
    tcp::socket near;
    tcp::socket far;
};
inline SocketPair socket_pair(asio::io_context& io)
{
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket near(io);
    near.connect(acceptor.local_endpoint());
    tcp::socket far = acceptor.accept();
    return {std::move(near), std::move(far)};
}

// A DistLink whose peer is the test: what the link writes is read back as packets (pass-through form).
class LoopbackLink {
public:
    explicit LoopbackLink(asio::io_context& io, std::string peer_node = "caller@127.0.0.1")
    {
        auto pair = socket_pair(io);
        peer_.emplace(std::move(pair.far));
        peer_->non_blocking(true);
        link = std::make_shared<transport::DistLink>(std::move(pair.near), peer_node, transport::LinkLimits{});
        link->start(handler_);
    }
    ~LoopbackLink()
    {
        link->detach();
        link->close("test finished");
    }
    LoopbackLink(const LoopbackLink&) = delete;
    LoopbackLink& operator=(const LoopbackLink&) = delete;

    // The packets received so far (each without its length prefix; ticks skipped).
    std::vector<std::string> packets()
    {
        for (;;) {
            char chunk[64 * 1024];
            error_code ec;
            const std::size_t n = peer_->read_some(asio::buffer(chunk), ec);
            if (ec) {
                break;
            }
            buffer_.append(chunk, n);
        }
        while (buffer_.size() >= 4) {
            const auto* u = reinterpret_cast<const unsigned char*>(buffer_.data());
            const std::size_t length =
                (std::size_t{u[0]} << 24) | (std::size_t{u[1]} << 16) | (std::size_t{u[2]} << 8) | u[3];
            if (buffer_.size() < 4 + length) {
                break;
            }
            if (length > 0) {
                packets_.push_back(buffer_.substr(4, length));
            }
            buffer_.erase(0, 4 + length);
        }
        return packets_;
    }

    // The message of each SEND or ALIAS_SEND packet received so far (version byte first).
    std::vector<std::string> messages()
    {
        std::vector<std::string> out;
        for (const auto& p : packets()) {
            const auto control = protocol::parse_packet(p);
            if (control && (control->op == protocol::ControlOp::send || control->op == protocol::ControlOp::alias_send)) {
                out.emplace_back(control->payload);
            }
        }
        return out;
    }

    // Closes the test's end: the link sees its peer go.
    void close_peer()
    {
        error_code ignored;
        peer_->close(ignored);
    }

    std::shared_ptr<transport::DistLink> link;

private:
    struct Quiet final : transport::LinkHandler {
        void on_packet(transport::DistLink&, std::string_view) override {}
        void on_closed(transport::DistLink&, std::string_view) override {}
    };
    Quiet handler_;
    std::optional<tcp::socket> peer_;
    std::string buffer_;
    std::vector<std::string> packets_;
};

// Runs `io` until `done` holds (checked between handlers) or `timeout` passes.
template <class Predicate>
bool run_until(asio::io_context& io, Predicate done, std::chrono::milliseconds timeout = std::chrono::seconds(10))
{
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return false;
        }
        io.restart();
        io.run_one_for(std::chrono::milliseconds(5));
    }
    return true;
}

} // namespace dpool::test
