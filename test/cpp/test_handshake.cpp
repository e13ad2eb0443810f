#include "test_support.hpp"

#include <algorithm>
#include <ei.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "loopback.hpp"
#include "protocol/dist_header.hpp"
#include "transport/handshake.hpp"
#include "transport/handshake_gate.hpp"
#include "transport/handshake_messages.hpp"

using dpool::test::be16;
using dpool::test::be32;
using namespace std::chrono_literals;
namespace hs = dpool::transport::handshake;
namespace asio = boost::asio;
using dpool::error_code;
using dpool::tcp;
using dpool::transport::HandshakeIdentity;
using dpool::transport::HandshakeOutcome;

namespace {

std::string hex(const hs::Digest& d)
{
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : d) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

const std::string kCookie = "secret_cookie";

HandshakeIdentity identity(const std::string& alive, std::uint32_t creation = 7)
{
    return {alive, "127.0.0.1", alive + "@127.0.0.1", creation};
}

// Runs one side of a handshake on `io` against whatever the test does with the other end.
struct Side {
    std::optional<dpool::transport::DistStream> stream; // the socket under test, moved in
    std::optional<HandshakeOutcome> outcome;
};

void start_accept(asio::io_context& io, tcp::socket& socket, Side& side, std::chrono::milliseconds timeout,
                  dpool::transport::AdmitPeer admit = [](std::string_view) { return std::nullopt; })
{
    side.stream.emplace(std::move(socket));
    asio::co_spawn(
        io,
        [&side, &io, timeout, admit]() -> asio::awaitable<void> {
            dpool::DeadlineGuard deadline(io.get_executor(), timeout);
            side.outcome = co_await dpool::transport::accept_handshake(*side.stream, identity("cnode"), kCookie, deadline,
                                                                       admit, [] {});
        },
        asio::detached);
}

void start_connect(asio::io_context& io, tcp::socket& socket, Side& side, std::chrono::milliseconds timeout,
                   std::string cookie = kCookie)
{
    side.stream.emplace(std::move(socket));
    asio::co_spawn(
        io,
        [&side, &io, timeout, cookie]() -> asio::awaitable<void> {
            dpool::DeadlineGuard deadline(io.get_executor(), timeout);
            side.outcome = co_await dpool::transport::connect_handshake(*side.stream, identity("pooled"), cookie, deadline);
        },
        asio::detached);
}

// What a peer sent so far, read without blocking.
std::string drain(tcp::socket& s)
{
    std::string out;
    s.non_blocking(true);
    char chunk[4096];
    for (;;) {
        error_code ec;
        const std::size_t n = s.read_some(asio::buffer(chunk), ec);
        if (ec) {
            return out;
        }
        out.append(chunk, n);
    }
}

// Reads one framed handshake message at the test's end, running `io` (the side under test) until it is there.
std::string read_body(asio::io_context& io, tcp::socket& s)
{
    const auto whole = [&] {
        unsigned char head[2];
        if (s.available() < 2) {
            return false;
        }
        s.receive(asio::buffer(head), tcp::socket::message_peek);
        return s.available() >= 2 + static_cast<std::size_t>((head[0] << 8) | head[1]);
    };
    REQUIRE(dpool::test::run_until(io, whole));
    s.non_blocking(false);
    unsigned char head[2];
    asio::read(s, asio::buffer(head));
    std::string body((head[0] << 8) | head[1], '\0');
    asio::read(s, asio::buffer(body));
    return body;
}

void write(tcp::socket& s, const std::string& bytes) { asio::write(s, asio::buffer(bytes)); }

} // namespace

TEST_CASE("handshake messages are read back as built", "[handshake]")
{
    const hs::NameMessage name{hs::kOwnFlags, 1234, "a_b-1@host.example"};
    const auto n = hs::parse_name(hs::name_body(name));
    REQUIRE(n);
    CHECK(n->flags == name.flags);
    CHECK(n->creation == 1234);
    CHECK(n->name == name.name);

    const hs::ChallengeMessage challenge{hs::kOwnFlags, 0xDEADBEEF, 99, "t@127.0.0.1"};
    const auto c = hs::parse_challenge(hs::challenge_body(challenge));
    REQUIRE(c);
    CHECK(c->challenge == 0xDEADBEEF);
    CHECK(c->creation == 99);
    CHECK(c->name == "t@127.0.0.1");

    const hs::ChallengeReply reply{42, hs::challenge_digest("cookie", 42)};
    const auto r = hs::parse_challenge_reply(hs::challenge_reply_body(reply));
    REQUIRE(r);
    CHECK(r->challenge == 42);
    CHECK(hs::same_digest(r->digest, reply.digest));

    const auto a = hs::parse_challenge_ack(hs::challenge_ack_body(reply.digest));
    REQUIRE(a);
    CHECK(hs::same_digest(*a, reply.digest));
    CHECK(hs::parse_status(hs::status_body("ok")) == std::optional<std::string>("ok"));
    CHECK(hs::framed("abc") == std::string("\0\3abc", 5));
}

TEST_CASE("handshake parsers refuse what is not exactly their message", "[handshake]")
{
    const std::string good = hs::name_body({hs::kOwnFlags, 1, "a@b"});
    CHECK_FALSE(hs::parse_name(""));
    CHECK_FALSE(hs::parse_name("n" + good.substr(1)));          // the pre-OTP 23 tag
    CHECK_FALSE(hs::parse_name(good + "x"));                    // trailing bytes
    CHECK_FALSE(hs::parse_name(good.substr(0, good.size() - 1))); // cut short
    // A length field that promises more than is there, a name that is no node name, one past the limit.
    CHECK_FALSE(hs::parse_name("N" + std::string(12, '\0') + be16(200) + "a@b"));
    CHECK_FALSE(hs::parse_name(hs::name_body({0, 1, "no_at_sign"})));
    CHECK_FALSE(hs::parse_name(hs::name_body({0, 1, "a@"})));
    CHECK_FALSE(hs::parse_name(hs::name_body({0, 1, std::string(250, 'a') + "@hosts"})));
    CHECK(hs::parse_name(hs::name_body({0, 1, std::string(249, 'a') + "@hosts"})));
    CHECK_FALSE(hs::parse_challenge(good));                   // a name is no challenge: 4 bytes short
    CHECK_FALSE(hs::parse_challenge_reply("r" + be32(1)));    // no digest
    CHECK_FALSE(hs::parse_challenge_reply("r" + be32(1) + std::string(17, 'x')));
    CHECK_FALSE(hs::parse_challenge_ack("a" + std::string(15, 'x')));
    CHECK_FALSE(hs::parse_challenge_ack("r" + std::string(16, 'x')));
    CHECK_FALSE(hs::parse_status("ok"));
    const std::array<unsigned char, 2> tls_record{0x15, 0x03};
    CHECK(hs::body_length(tls_record) > hs::kMaxMessageBytes); // a TLS record header is no handshake message
    const std::array<unsigned char, 4> four{0x00, 0x00, 0x01, 0x02};
    CHECK(hs::body_length(four) == 0x102); // the framing of a handshake over TLS
}

TEST_CASE("the challenge digest is MD5 of the cookie and the challenge in decimal", "[handshake]")
{
    // Values from Python's hashlib.md5(b"cookie42") and md5(b"secret4294967295").
    CHECK(hex(hs::challenge_digest("cookie", 42)) == "bc4b5e3f17073012aea742a22f5e1b6a");
    CHECK(hex(hs::challenge_digest("secret", 4294967295U)) == "5dfd181e69aa587cc812eb333e6536b6");
    CHECK_FALSE(hs::same_digest(hs::challenge_digest("cookie", 42), hs::challenge_digest("cookie", 43)));
    CHECK(hs::random_challenge() != hs::random_challenge()); // 1 in 2^32 to fail
    CHECK(hs::has_mandatory_flags(hs::kDflagMandatory25Digest));
    CHECK(hs::has_mandatory_flags(hs::kMandatoryFlags));
    CHECK_FALSE(hs::has_mandatory_flags(hs::kMandatoryFlags & ~hs::kDflagMapTag));
}

TEST_CASE("the accepting handshake completes with ei's own connecting side", "[handshake]")
{
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    const auto port = acceptor.local_endpoint().port();
    std::atomic<int> ei_result{-2};
    std::thread ei_side([&, port] {
        ei_cnode ec{};
        if (ei_connect_xinit(&ec, "127.0.0.1", "eiconn", "eiconn@127.0.0.1", nullptr, kCookie.c_str(), 3) < 0) {
            ei_result = -3;
            return;
        }
        in_addr loopback{};
        loopback.s_addr = htonl(INADDR_LOOPBACK);
        const int fd = ei_xconnect_host_port_tmo(&ec, &loopback, port, 10000);
        ei_result = fd;
        if (fd >= 0) {
            ei_close_connection(fd);
        }
    });
    tcp::socket socket = acceptor.accept();
    Side side;
    start_accept(io, socket, side, 10s);
    REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
    ei_side.join();
    INFO(side.outcome->error);
    REQUIRE(side.outcome->ok);
    CHECK(ei_result >= 0);
    CHECK(side.outcome->peer_node == "eiconn@127.0.0.1");
    // The flags the C-node announces are ei's, plus the monitor-by-name flag: ei is the oracle.
    CHECK(side.outcome->peer_flags == (hs::kOwnFlags & ~hs::kDflagDistMonitorName));
}

TEST_CASE("the connecting handshake completes with ei's own accepting side", "[handshake]")
{
    for (const bool right_cookie : {true, false}) {
        asio::io_context io;
        ei_cnode ec{};
        REQUIRE(ei_connect_xinit(&ec, "127.0.0.1", "eiacc", "eiacc@127.0.0.1", nullptr, kCookie.c_str(), 3) >= 0);
        int port = 0;
        in_addr loopback{};
        loopback.s_addr = htonl(INADDR_LOOPBACK);
        const int listen_fd = ei_xlisten(&ec, &loopback, &port, 1);
        REQUIRE(listen_fd >= 0);
        std::atomic<int> accepted{-2};
        std::string her_name;
        std::thread ei_side([&] {
            ErlConnect peer{};
            const int fd = ei_accept_tmo(&ec, listen_fd, &peer, 10000);
            accepted = fd;
            if (fd >= 0) {
                her_name = peer.nodename;
                ei_close_connection(fd);
            }
        });
        tcp::socket socket(io);
        socket.connect({asio::ip::address_v4::loopback(), static_cast<std::uint16_t>(port)});
        Side side;
        start_connect(io, socket, side, 10s, right_cookie ? kCookie : "another_cookie");
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        if (!right_cookie) {
            side.stream->socket().close(); // ei waits for the rest of a handshake it refused only until the socket closes
        }
        ei_side.join();
        ::close(listen_fd);
        INFO(side.outcome->error);
        if (right_cookie) {
            REQUIRE(side.outcome->ok);
            CHECK(accepted >= 0);
            CHECK(her_name == "pooled@127.0.0.1");
            CHECK(side.outcome->peer_node == "eiacc@127.0.0.1");
            CHECK(side.outcome->peer_flags == (hs::kOwnFlags & ~hs::kDflagDistMonitorName));
        } else {
            CHECK_FALSE(side.outcome->ok);
            CHECK(accepted < 0);
            CHECK(side.outcome->error.find("the cookie is not the target's") != std::string::npos);
        }
    }
}

TEST_CASE("a connecting handshake says why a target refused it", "[handshake]")
{
    struct Case {
        std::string answer; // what the scripted target sends after our name
        std::string expect;
    };
    const std::string challenge = hs::framed(hs::challenge_body({hs::kOwnFlags, 5, 1, "t@127.0.0.1"}));
    const std::vector<Case> cases = {
        {hs::framed("snot_allowed"), "does not allow"},
        {hs::framed("salive"), "already has a connection"},
        {hs::framed("snok"), "at the same time"},
        {hs::framed("s\xE9\x01" + std::string(200, 'x')), "'??xxx"},
        {hs::framed("sok"), "before its challenge"},
        {hs::framed("sok") + challenge, "the cookie is not the target's"},
        {hs::framed("sok") + hs::framed(hs::challenge_body({hs::kDflagMapTag, 5, 1, "t@127.0.0.1"})),
         "capabilities"},
        {hs::framed("sok") + hs::framed("N" + std::string(30, '\0')), "malformed"},
        {std::string("\x15\x03\x03\x00\x02\x02\x28", 7), "TLS"}, // a TLS listener's alert
        {"", "without answering"},
    };
    for (const auto& c : cases) {
        asio::io_context io;
        auto pair = dpool::test::socket_pair(io);
        Side side;
        start_connect(io, pair.near, side, 10s);
        const auto name = hs::parse_name(read_body(io, pair.far));
        REQUIRE(name);
        CHECK(name->name == "pooled@127.0.0.1");
        CHECK((name->flags & dpool::protocol::kDflagDistHdrAtomCache) != 0);
        write(pair.far, c.answer);
        pair.far.close();
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        INFO(side.outcome->error);
        CHECK_FALSE(side.outcome->ok);
        CHECK_FALSE(side.outcome->timed_out);
        CHECK(side.outcome->error.find(c.expect) != std::string::npos);
        CHECK(side.outcome->error.size() < 200);
    }
}

TEST_CASE("a connecting handshake checks the target's answer to its own challenge", "[handshake]")
{
    asio::io_context io;
    auto pair = dpool::test::socket_pair(io);
    Side side;
    start_connect(io, pair.near, side, 10s);
    read_body(io, pair.far);
    write(pair.far, hs::framed("sok") + hs::framed(hs::challenge_body({hs::kOwnFlags, 5, 1, "t@127.0.0.1"})));
    const auto reply = hs::parse_challenge_reply(read_body(io, pair.far));
    REQUIRE(reply);
    CHECK(hs::same_digest(reply->digest, hs::challenge_digest(kCookie, 5)));
    // An ack made for another challenge: a target that does not have the cookie either.
    write(pair.far, hs::framed(hs::challenge_ack_body(hs::challenge_digest(kCookie, reply->challenge + 1))));
    REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
    CHECK_FALSE(side.outcome->ok);
    CHECK(side.outcome->error.find("its own answer to our challenge is wrong") != std::string::npos);
}

TEST_CASE("an accepting handshake refuses hostile or unwanted peers", "[handshake]")
{
    const std::string name = hs::framed(hs::name_body({hs::kOwnFlags, 1, "caller@127.0.0.1"}));
    SECTION("an oversized length before anything else")
    {
        asio::io_context io;
        auto pair = dpool::test::socket_pair(io);
        Side side;
        start_accept(io, pair.near, side, 10s);
        write(pair.far, "\xFF\xFF" + std::string(100, 'x'));
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        CHECK_FALSE(side.outcome->ok);
        CHECK(side.outcome->error.find("no distribution handshake") != std::string::npos);
        CHECK(drain(pair.far).empty()); // nothing said to it
    }
    SECTION("a silent peer, until the deadline")
    {
        asio::io_context io;
        auto pair = dpool::test::socket_pair(io);
        Side side;
        const auto start = std::chrono::steady_clock::now();
        start_accept(io, pair.near, side, 200ms);
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        CHECK(side.outcome->timed_out);
        CHECK(std::chrono::steady_clock::now() - start >= 200ms);
    }
    SECTION("a peer that stops after its name, until the deadline")
    {
        asio::io_context io;
        auto pair = dpool::test::socket_pair(io);
        Side side;
        start_accept(io, pair.near, side, 300ms);
        write(pair.far, name);
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        CHECK(side.outcome->timed_out);
    }
    SECTION("a name the service refuses gets status not_allowed")
    {
        asio::io_context io;
        auto pair = dpool::test::socket_pair(io);
        Side side;
        start_accept(io, pair.near, side, 10s, [](std::string_view peer) -> std::optional<dpool::transport::PeerRefusal> {
            if (peer != "caller@127.0.0.1") {
                return std::nullopt;
            }
            return dpool::transport::PeerRefusal{.why = "connected already", .reported = true};
        });
        write(pair.far, name);
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        CHECK_FALSE(side.outcome->ok);
        CHECK(side.outcome->error.find("connected already") != std::string::npos);
        CHECK(side.outcome->reported); // the acceptor leaves its log to whoever refused it
        CHECK(read_body(io, pair.far) == "snot_allowed");
    }
    SECTION("a wrong answer to the challenge")
    {
        asio::io_context io;
        auto pair = dpool::test::socket_pair(io);
        Side side;
        start_accept(io, pair.near, side, 10s);
        write(pair.far, name);
        CHECK(read_body(io, pair.far) == "sok");
        const auto challenge = hs::parse_challenge(read_body(io, pair.far));
        REQUIRE(challenge);
        CHECK(challenge->name == "cnode@127.0.0.1");
        write(pair.far, hs::framed(hs::challenge_reply_body({1, hs::challenge_digest("guess", challenge->challenge)})));
        REQUIRE(dpool::test::run_until(io, [&] { return side.outcome.has_value(); }));
        CHECK_FALSE(side.outcome->ok);
        CHECK(side.outcome->error.find("does not have our cookie") != std::string::npos);
        CHECK(drain(pair.far).empty()); // no ack
    }
}

TEST_CASE("the handshake gate drops the idlest connection over a bound", "[handshake_gate]")
{
    using dpool::transport::HandshakeGate;
    HandshakeGate gate({.per_lane = 3, .per_address = 4});
    std::vector<int> dropped;
    std::vector<HandshakeGate::Ticket> tickets;
    const auto admit = [&](std::size_t lane, const std::string& address, int id) {
        tickets.push_back(gate.admit(lane, address, [&dropped, id] { dropped.push_back(id); }));
    };
    admit(0, "10.0.0.1", 0);
    admit(0, "10.0.0.2", 1);
    admit(0, "10.0.0.3", 2);
    tickets[0].progressed(); // 0 spoke: now 1 is the idlest on lane 0
    admit(0, "10.0.0.4", 3);
    CHECK(dropped == std::vector<int>{1});
    // Another lane has its own bound; the address bound spans lanes.
    admit(1, "10.0.0.9", 4);
    admit(1, "10.0.0.9", 5);
    admit(2, "10.0.0.9", 6);
    admit(3, "10.0.0.9", 7);
    CHECK(dropped == std::vector<int>{1});
    admit(3, "10.0.0.9", 8); // the fifth from 10.0.0.9: its idlest (4) goes
    CHECK(dropped == std::vector<int>{1, 4});
    CHECK(gate.counters().dropped_for_room == 2);
    CHECK(gate.counters().in_progress == 7);
    // A ticket given up leaves the gate (and is never dropped after).
    tickets[5] = {};
    CHECK(gate.counters().in_progress == 6);
    tickets.clear();
    CHECK(gate.counters().in_progress == 0);
    CHECK(gate.counters().admitted == 9);
    CHECK(dropped.size() == 2);
}

TEST_CASE("HandshakeGate never drops a peer that spoke while a silent one is left, however many arrive",
          "[handshake][gate]")
{
    // The flood of distribute_pool_handshake_SUITE: silent sockets keep being accepted (a listen backlog
    // draining) while a real peer is in the middle of its handshake.
    using dpool::transport::HandshakeGate;
    HandshakeGate gate({.per_lane = 1000, .per_address = 4});
    std::vector<int> dropped;
    std::vector<HandshakeGate::Ticket> tickets;
    const auto admit = [&](int id) {
        tickets.push_back(gate.admit(0, "127.0.0.1", [&dropped, id] { dropped.push_back(id); }));
    };
    for (int id = 0; id < 4; ++id) {
        admit(id);
    }
    tickets[2].progressed(); // the real peer named itself
    for (int id = 4; id < 104; ++id) {
        admit(id);
    }
    CHECK(dropped.size() == 100);
    CHECK(std::find(dropped.begin(), dropped.end(), 2) == dropped.end());
    CHECK(dropped.front() == 0); // the oldest silent one first
    // Once only peers that spoke are left, the idlest of them goes: 2 spoke before 101, 102 and 103 did.
    for (std::size_t k = tickets.size() - 3; k < tickets.size(); ++k) {
        tickets[k].progressed();
    }
    admit(104);
    CHECK(dropped.back() == 2);
    CHECK(gate.counters().in_progress == 4);
}
