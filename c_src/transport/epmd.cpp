#include "transport/epmd.hpp"

#include <array>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace dpool::transport {

namespace {

constexpr std::uint8_t kAlive2Req = 120;
constexpr std::uint8_t kAlive2Resp = 121;
constexpr std::uint8_t kAlive2XResp = 118;
constexpr std::uint8_t kPort2Req = 122;
constexpr std::uint8_t kPort2Resp = 119;
constexpr std::uint8_t kHiddenNode = 72;
constexpr std::uint16_t kDistVersion = 6; // the OTP 23+ handshake, the only one ei speaks

void put_u16(std::string& out, std::uint16_t v)
{
    out.push_back(static_cast<char>(v >> 8));
    out.push_back(static_cast<char>(v));
}

std::uint16_t get_u16(const unsigned char* p) { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

std::string framed(const std::string& body)
{
    std::string out;
    put_u16(out, static_cast<std::uint16_t>(body.size()));
    out += body;
    return out;
}

} // namespace

std::uint16_t epmd_port()
{
    if (const char* env = std::getenv("ERL_EPMD_PORT")) {
        const long p = std::strtol(env, nullptr, 10);
        if (p > 0 && p < 65536) {
            return static_cast<std::uint16_t>(p);
        }
    }
    return 4369;
}

asio::awaitable<EpmdRegistration> epmd_register(std::string alive, std::uint16_t port)
{
    auto executor = co_await asio::this_coro::executor;
    tcp::socket socket(executor);
    co_await socket.async_connect({asio::ip::address_v4::loopback(), epmd_port()}, asio::use_awaitable);

    std::string body;
    body.push_back(static_cast<char>(kAlive2Req));
    put_u16(body, port);
    body.push_back(static_cast<char>(kHiddenNode));
    body.push_back(0); // TCP/IPv4
    put_u16(body, kDistVersion);
    put_u16(body, kDistVersion);
    put_u16(body, static_cast<std::uint16_t>(alive.size()));
    body += alive;
    put_u16(body, 0); // no extra
    const auto request = framed(body);
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);

    std::array<unsigned char, 2> head{};
    co_await asio::async_read(socket, asio::buffer(head), asio::use_awaitable);
    if (head[1] != 0) {
        throw std::runtime_error("epmd refused the name (is it in use?)");
    }
    EpmdRegistration registration{std::move(socket), 0};
    if (head[0] == kAlive2XResp) {
        std::array<unsigned char, 4> c{};
        co_await asio::async_read(registration.socket, asio::buffer(c), asio::use_awaitable);
        registration.creation = (std::uint32_t{c[0]} << 24) | (std::uint32_t{c[1]} << 16) | (std::uint32_t{c[2]} << 8) | c[3];
    } else if (head[0] == kAlive2Resp) {
        std::array<unsigned char, 2> c{};
        co_await asio::async_read(registration.socket, asio::buffer(c), asio::use_awaitable);
        registration.creation = get_u16(c.data());
    } else {
        throw std::runtime_error("unexpected reply from epmd");
    }
    co_return registration;
}

asio::awaitable<std::optional<std::uint16_t>> epmd_port_please(tcp::socket& socket, asio::ip::address address,
                                                               std::string alive)
{
    co_await socket.async_connect({address, epmd_port()}, asio::use_awaitable);

    std::string body;
    body.push_back(static_cast<char>(kPort2Req));
    body += alive;
    const auto request = framed(body);
    co_await asio::async_write(socket, asio::buffer(request), asio::use_awaitable);

    // Result code, then port and the rest, which we do not need.
    std::array<unsigned char, 4> reply{};
    error_code ec;
    const std::size_t n =
        co_await asio::async_read(socket, asio::buffer(reply), asio::redirect_error(asio::use_awaitable, ec));
    if (n < 2 || reply[0] != kPort2Resp) {
        throw std::runtime_error("unexpected reply from epmd");
    }
    if (reply[1] != 0 || n < 4) {
        co_return std::nullopt;
    }
    co_return get_u16(reply.data() + 2);
}

} // namespace dpool::transport
