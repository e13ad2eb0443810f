// A caller node that completes a real distribution handshake with a C-node (ei, blocking: a test tool) and then
// writes crafted bytes on the link: malformed packets, or a huge length. Driven by distribute_pool_limits_SUITE;
// built only with the tests (BUILD_TESTING).
//
//   hostile_client <cnode node> <cookie> <service> <case> [announced bytes] [bytes to send]
//
// Cases: well_formed (a ping call, which must be answered and leave the link open), corrupt_header,
// bad_atom_cache_ref, length_mismatch_short, length_mismatch_long, huge_arity_control, huge_arity_message,
// huge_list, announce (a packet length, then that many bytes or fewer, streamed).
// Prints one line: ANSWERED/OPEN/DROPPED <ms after the bytes were written>, or DROPPED_WHILE_WRITING <bytes>,
// or FAILED <why>. Exit status 0 when the line is printed, 1 for bad usage or a failed handshake.
#include <ei.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr char kPassThrough = 'p';
constexpr unsigned char kVersion = 131;

// The connected socket of the handshake, closed on every way out.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd()
    {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

// ei's growable buffer, freed on every way out.
class XBuff {
public:
    XBuff() { ei_x_new(&x_); }
    ~XBuff() { ei_x_free(&x_); }
    XBuff(const XBuff&) = delete;
    XBuff& operator=(const XBuff&) = delete;
    ei_x_buff* operator->() { return &x_; }
    ei_x_buff* get() { return &x_; }
    std::string bytes() const { return std::string(x_.buff, static_cast<std::size_t>(x_.index)); }

private:
    ei_x_buff x_{};
};

std::string be32(std::uint32_t v)
{
    return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string bytes(std::initializer_list<int> values)
{
    std::string s;
    for (const int v : values) {
        s.push_back(static_cast<char>(v));
    }
    return s;
}

std::string frame(const std::string& packet) { return be32(static_cast<std::uint32_t>(packet.size())) + packet; }

// The control term {6, Self, '', Service} of a REG_SEND, version byte first.
std::string reg_send_control(ei_cnode& ec, const char* service)
{
    XBuff x;
    ei_x_encode_version(x.get());
    ei_x_encode_tuple_header(x.get(), 4);
    ei_x_encode_long(x.get(), 6);
    ei_x_encode_pid(x.get(), ei_self(&ec));
    ei_x_encode_atom(x.get(), "");
    ei_x_encode_atom(x.get(), service);
    return x.bytes();
}

// {'$gen_call', {Self, Tag}, Request}, Request encoded as it is given (version byte first).
std::string gen_call(ei_cnode& ec, const std::string& request)
{
    XBuff x;
    ei_x_encode_version(x.get());
    ei_x_encode_tuple_header(x.get(), 3);
    ei_x_encode_atom(x.get(), "$gen_call");
    ei_x_encode_tuple_header(x.get(), 2);
    ei_x_encode_pid(x.get(), ei_self(&ec));
    ei_x_encode_atom(x.get(), "hostile_tag");
    return x.bytes() + request;
}

std::string atom(const char* text)
{
    XBuff x;
    ei_x_encode_atom(x.get(), text);
    return x.bytes();
}

// The bytes of one case (whole frames) for the C-node's `service`, or empty for an unknown case.
std::string crafted(std::string_view name, ei_cnode& ec, const char* service)
{
    const std::string control = reg_send_control(ec, service);
    if (name == "well_formed") {
        return frame(kPassThrough + control + gen_call(ec, atom("ping")));
    }
    if (name == "corrupt_header") {
        // A distribution header (131, 68) on a link that negotiated none, claiming 3 references and cut short.
        return frame(bytes({131, 68, 3, 0x88, 0x01}) + control.substr(1));
    }
    if (name == "bad_atom_cache_ref") {
        // An ATOM_CACHE_REF (82) in place of the registered name, on a link without an atom cache.
        return frame(kPassThrough + control.substr(0, control.size() - atom(service).size()) +
                     bytes({82, 7}) + gen_call(ec, atom("ping")));
    }
    if (name == "length_mismatch_short") {
        // The frame's length covers more than the control term and message: bytes after the message.
        return frame(kPassThrough + control + gen_call(ec, atom("ping")) + "trailing");
    }
    if (name == "length_mismatch_long") {
        // A message whose binary says it is 1 GB long, in a packet of a few dozen bytes.
        return frame(kPassThrough + control + bytes({131, 109, 0x3B, 0x9A, 0xCA, 0x00}) + "short");
    }
    if (name == "huge_arity_control") {
        // A control tuple of 2^32 - 1 elements.
        return frame(kPassThrough + bytes({131, 105, 0xFF, 0xFF, 0xFF, 0xFF, 97, 6}));
    }
    if (name == "huge_arity_message") {
        // A valid REG_SEND whose message is a tuple of 2^32 - 1 elements, of which two follow.
        return frame(kPassThrough + control + bytes({131, 105, 0xFF, 0xFF, 0xFF, 0xFF, 97, 1, 97, 2}));
    }
    if (name == "huge_list") {
        // The request of a valid envelope is a list of 2^32 - 1 elements, of which one follows.
        return frame(kPassThrough + control + gen_call(ec, bytes({108, 0xFF, 0xFF, 0xFF, 0xFF, 97, 1})));
    }
    return {};
}

// Writes everything; false when the peer closed (or reset) the connection first.
bool write_all(int fd, const char* data, std::size_t n)
{
    while (n > 0) {
        const ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

enum class Heard { closed, packet, nothing };

// Waits up to `timeout_ms` for the peer: a packet other than a tick, or the end of the connection.
Heard wait_for_peer(int fd, int timeout_ms)
{
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string in;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
            return Heard::nothing;
        }
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) {
            continue;
        }
        char chunk[65536];
        const ssize_t r = ::recv(fd, chunk, sizeof chunk, 0);
        if (r <= 0) {
            return Heard::closed;
        }
        in.append(chunk, static_cast<std::size_t>(r));
        while (in.size() >= 4) {
            const auto* u = reinterpret_cast<const unsigned char*>(in.data());
            const std::uint32_t length = (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) |
                                         (std::uint32_t{u[2]} << 8) | u[3];
            if (length == 0) {
                in.erase(0, 4); // a tick
                continue;
            }
            if (in.size() < 4 + std::size_t{length}) {
                break;
            }
            return Heard::packet;
        }
    }
}

long elapsed_ms(Clock::time_point since)
{
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

// Announces a packet of `announced` bytes and streams `sent` bytes of it (zeros); reports when the link goes.
int announce(int fd, std::uint64_t announced, std::uint64_t sent)
{
    const std::string length = be32(static_cast<std::uint32_t>(announced));
    if (!write_all(fd, length.data(), length.size())) {
        std::printf("DROPPED_WHILE_WRITING 0\n");
        return 0;
    }
    const std::vector<char> zeros(1 << 20, 0);
    std::uint64_t written = 0;
    while (written < sent) {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), sent - written));
        if (!write_all(fd, zeros.data(), n)) {
            std::printf("DROPPED_WHILE_WRITING %llu\n", static_cast<unsigned long long>(written));
            return 0;
        }
        written += n;
    }
    const auto start = Clock::now();
    switch (wait_for_peer(fd, 3000)) {
    case Heard::closed:
        std::printf("DROPPED %ld\n", elapsed_ms(start));
        break;
    case Heard::packet:
        std::printf("ANSWERED\n");
        break;
    case Heard::nothing:
        std::printf("OPEN\n");
        break;
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 5) {
        std::fprintf(stderr, "usage: hostile_client <cnode node> <cookie> <service> <case> [announced bytes] "
                             "[bytes to send]\n");
        return 1;
    }
    const std::string cnode = argv[1];
    const std::string cookie = argv[2];
    const char* service = argv[3];
    const std::string_view name = argv[4];
    if (ei_init() != 0) {
        std::printf("FAILED ei_init\n");
        return 1;
    }
    const std::string alive = "hostile_" + std::to_string(::getpid());
    const std::string node = alive + "@127.0.0.1";
    ei_cnode ec{};
    if (ei_connect_xinit(&ec, "127.0.0.1", alive.c_str(), node.c_str(), nullptr, cookie.c_str(), 0) < 0) {
        std::printf("FAILED ei_connect_xinit\n");
        return 1;
    }
    const int raw = ei_connect_tmo(&ec, const_cast<char*>(cnode.c_str()), 10000);
    if (raw < 0) {
        std::printf("FAILED handshake (erl_errno %d)\n", erl_errno);
        return 1;
    }
    const Fd fd(raw);
    if (name == "announce") {
        if (argc < 6) {
            std::fprintf(stderr, "announce needs the announced length\n");
            return 1;
        }
        return announce(fd.get(), std::strtoull(argv[5], nullptr, 10),
                        argc > 6 ? std::strtoull(argv[6], nullptr, 10) : 0);
    }
    const std::string out = crafted(name, ec, service);
    if (out.empty()) {
        std::fprintf(stderr, "unknown case %s\n", argv[4]);
        return 1;
    }
    if (!write_all(fd.get(), out.data(), out.size())) {
        std::printf("DROPPED_WHILE_WRITING 0\n");
        return 0;
    }
    const auto start = Clock::now();
    switch (wait_for_peer(fd.get(), 5000)) {
    case Heard::closed:
        std::printf("DROPPED %ld\n", elapsed_ms(start));
        break;
    case Heard::packet:
        // Answered: the link must stay open too.
        std::printf(wait_for_peer(fd.get(), 500) == Heard::closed ? "DROPPED_AFTER_ANSWER\n" : "ANSWERED\n");
        break;
    case Heard::nothing:
        std::printf("OPEN\n");
        break;
    }
    return 0;
}
