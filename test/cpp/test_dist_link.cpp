#include "test_support.hpp"

#include <malloc.h>
#include <poll.h>

#include <random>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "alloc_failure.hpp"
#include "api/replies.hpp"
#include "loopback.hpp"
#include "protocol/control.hpp"
#include "protocol/term_writer.hpp"
#include "transport/dist_link.hpp"
#include "util/asio.hpp"
#include "util/byte_buffer.hpp"

using namespace std::chrono_literals;
using dpool::ByteBuffer;
using dpool::error_code;
using dpool::tcp;
using dpool::asio::ip::address_v4;
using dpool::protocol::TermWriter;
using dpool::test::be32;
using dpool::transport::DistLink;
using dpool::transport::LinkHandler;
using dpool::transport::LinkLimits;
namespace asio = dpool::asio;

namespace {

const std::string kTick(4, '\0');

std::string frame(std::string_view payload)
{
    return be32(static_cast<std::uint32_t>(payload.size())) + std::string(payload);
}

std::string numbered_payload(std::size_t n, std::size_t size)
{
    std::string s = "p#" + std::to_string(n) + ":";
    s.resize(size, static_cast<char>('a' + n % 26));
    return s;
}

// Everything the link reports, in order.
class RecordingHandler final : public LinkHandler {
public:
    void on_packet(DistLink& link, std::string_view packet) override
    {
        packets.emplace_back(packet);
        if (packet_hook) {
            packet_hook(link, packet);
        }
    }
    void on_drained(DistLink&) override { ++drained; }
    void on_closed(DistLink&, std::string_view reason) override { closed_reasons.emplace_back(reason); }

    std::vector<std::string> packets;
    std::vector<std::string> closed_reasons;
    int drained = 0;
    std::function<void(DistLink&, std::string_view)> packet_hook;
};

// A DistLink over one end of a loopback TCP connection, the test holding the other end (the "peer"). The peer
// socket is non-blocking and used synchronously, so only the link's side runs on the io_context, and only when a
// test runs the loop.
class LinkTest {
public:
    explicit LinkTest(LinkLimits limits = {})
    {
        auto sockets = dpool::test::socket_pair(io);
        peer = std::move(sockets.near);
        peer.non_blocking(true);
        link = std::make_shared<DistLink>(std::move(sockets.far), "peer@127.0.0.1", limits);
        link->start(handler);
    }
    ~LinkTest()
    {
        link->detach();
        link->close("test finished");
        run_ready_handlers();
    }
    LinkTest(const LinkTest&) = delete;
    LinkTest& operator=(const LinkTest&) = delete;

    // Small writes only: the peer socket is non-blocking, and the loopback buffer takes them whole.
    void peer_write(std::string_view bytes)
    {
        error_code ec;
        const std::size_t n = asio::write(peer, asio::buffer(bytes.data(), bytes.size()), ec);
        REQUIRE_FALSE(ec);
        REQUIRE(n == bytes.size());
    }

    // Any size: written while the loop runs, so the link can read while the peer writes.
    void peer_write_large(std::string bytes)
    {
        auto data = std::make_shared<std::string>(std::move(bytes));
        bool done = false;
        asio::async_write(peer, asio::buffer(*data), [&done, data](const error_code& ec, std::size_t) {
            CHECK_FALSE(ec);
            done = true;
        });
        REQUIRE(pump_until([&] { return done; }));
    }

    void peer_close()
    {
        error_code ignored;
        peer.shutdown(tcp::socket::shutdown_both, ignored);
        peer.close(ignored);
    }

    // Moves whatever the link sent into `received` (never blocks); notes when the link closed its end.
    void read_peer()
    {
        while (peer.is_open() && !peer_saw_eof) {
            char chunk[64 * 1024];
            error_code ec;
            const std::size_t n = peer.read_some(asio::buffer(chunk), ec);
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                return;
            }
            if (ec) {
                peer_saw_eof = true;
                return;
            }
            received.append(chunk, n);
        }
    }

    // Waits until the peer can read or `timeout` passes, without running the link's loop.
    void wait_peer_readable(std::chrono::milliseconds timeout)
    {
        if (!peer.is_open()) {
            return;
        }
        pollfd p{peer.native_handle(), POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(timeout.count()));
    }

    // Runs the loop until `done` holds (checked after each handler) or the deadline passes.
    template <class Predicate> bool pump_until(Predicate done, std::chrono::milliseconds timeout = 5s)
    {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            read_peer();
            if (done()) {
                return true;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                return false;
            }
            if (io.stopped()) {
                io.restart();
            }
            if (io.poll_one() == 0 && !bulk.run_one() && io.run_one_for(10ms) == 0) {
                wait_peer_readable(10ms); // nothing for the link to do: wait on the peer side instead
            }
        }
    }

    // Runs the handlers that are ready now (no waiting).
    void run_ready_handlers()
    {
        io.restart();
        while (io.poll() > 0) { }
    }

    bool peer_received_at_least(std::size_t n)
    {
        return pump_until([&] { return received.size() >= n; });
    }

    asio::io_context io;
    // Pieces of big transfers, for links made with limits.bulk = &bulk; pump_until runs them when idle.
    dpool::util::BulkQueue bulk;
    tcp::socket peer{io};
    RecordingHandler handler;
    std::shared_ptr<DistLink> link;
    std::string received;
    bool peer_saw_eof = false;
};

// Another link on `io`, over a loopback pair of its own, started with `handler`: for a link made with limits or
// an atom cache that LinkTest's own link does not have. The test holds the peer's end.
struct ExtraLink {
    tcp::socket peer;
    std::shared_ptr<DistLink> link;
};

// `socket_buffer_bytes` (when above 0) shrinks the link's send and the peer's receive buffers, so that the
// link's writes stop at arbitrary offsets.
ExtraLink extra_link(asio::io_context& io, LinkHandler& handler, LinkLimits limits, bool atom_cache = false,
                     int socket_buffer_bytes = 0)
{
    tcp::acceptor acceptor(io, tcp::endpoint(address_v4::loopback(), 0));
    tcp::socket peer(io);
    peer.open(tcp::v4());
    if (socket_buffer_bytes > 0) {
        peer.set_option(asio::socket_base::receive_buffer_size(socket_buffer_bytes));
    }
    peer.connect(acceptor.local_endpoint());
    tcp::socket accepted(io);
    acceptor.accept(accepted);
    if (socket_buffer_bytes > 0) {
        accepted.set_option(asio::socket_base::send_buffer_size(socket_buffer_bytes));
    }
    auto link = std::make_shared<DistLink>(std::move(accepted), "peer@127.0.0.1", limits, atom_cache);
    link->start(handler);
    return {std::move(peer), std::move(link)};
}

// What begin_packet() ... end_packet() should put on the wire for a packet written by `write`.
template <class Write> std::string expected_frame(Write write)
{
    ByteBuffer buf;
    buf.push_back('p');
    TermWriter w(buf);
    write(w);
    return frame(buf.view());
}

// A message that is one atom, as a writer for begin_packet() and expected_frame().
auto atom_message(std::string name)
{
    return [name = std::move(name)](TermWriter& w) {
        w.version();
        w.atom(name);
    };
}

// Queues one packet on `link`, written by `write`.
template <class Write> void queue_packet(DistLink& link, Write write)
{
    TermWriter w = link.begin_packet();
    write(w);
    link.end_packet();
}

std::string encoded_pid()
{
    dpool::test::EiTerm t;
    t.pid("cnode@127.0.0.1", 1, 0, 3);
    return t.str();
}

std::string atom_bytes(std::string_view text)
{
    dpool::test::EiTerm t;
    t.atom(text);
    return t.str();
}

} // namespace

TEST_CASE("DistLink frames packets written with begin_packet/end_packet", "[dist_link]")
{
    LinkTest t;
    const std::string from = encoded_pid();
    const std::string to = atom_bytes("net_kernel");
    const auto write = [&](TermWriter& w) {
        w.version();
        dpool::protocol::write_reg_send(w, from, to);
        w.version();
        w.tuple(2);
        w.atom("hello");
        w.binary("world");
    };
    TermWriter w = t.link->begin_packet();
    write(w);
    t.link->end_packet();
    const std::string expected = expected_frame(write);

    REQUIRE(t.peer_received_at_least(expected.size()));
    CHECK(t.received == expected);
    const auto control = dpool::protocol::parse_packet(std::string_view(t.received).substr(4));
    REQUIRE(control.has_value());
    CHECK(control->op == dpool::protocol::ControlOp::reg_send);
    CHECK(control->from == from);
    CHECK(control->to == to);
    CHECK(t.pump_until([&] { return t.link->queued_bytes() == 0; }));
}

TEST_CASE("DistLink frames a packet given as head and body, in order with begin_packet ones", "[dist_link]")
{
    LinkTest t;
    const std::string from = encoded_pid();
    const std::string to = atom_bytes("dpool_sink");
    // The head of a message packet (pass-through byte, version, REG_SEND control, version), as Pool writes it.
    ByteBuffer head;
    head.push_back('p');
    TermWriter h(head);
    h.version();
    dpool::protocol::write_reg_send(h, from, to);
    h.version();
    ByteBuffer body;
    TermWriter b(body);
    b.binary(std::string(64, 'x'));
    const auto message = [&](TermWriter& w) {
        w.version();
        dpool::protocol::write_reg_send(w, from, to);
        w.version();
        w.binary(std::string(64, 'x'));
    };
    const auto other = [](TermWriter& w) {
        w.version();
        w.atom("between");
    };

    t.link->write_packet(head.view(), body.view());
    TermWriter w = t.link->begin_packet();
    other(w);
    t.link->end_packet();
    t.link->write_packet(head.view(), body.view());
    t.link->write_packet(head.view(), {}); // an empty body: the head alone is the packet
    const std::string expected = expected_frame(message) + expected_frame(other) + expected_frame(message) +
                                 frame(head.view());
    CHECK(t.link->queued_bytes() == expected.size());

    REQUIRE(t.peer_received_at_least(expected.size()));
    CHECK(t.received == expected);
    const auto control = dpool::protocol::parse_packet(std::string_view(t.received).substr(4, head.size() + body.size()));
    REQUIRE(control.has_value());
    CHECK(control->op == dpool::protocol::ControlOp::reg_send);
    CHECK(control->to == to);
    CHECK(control->payload == std::string("\x83") + std::string(body.view()));
}

TEST_CASE("DistLink write_packet counts toward busy and max_queued_bytes", "[dist_link]")
{
    LinkLimits limits;
    limits.busy_limit = 64;
    limits.max_queued_bytes = 1000;
    LinkTest t(limits);
    const std::string body(600, 'q');
    t.link->write_packet("p", body);
    CHECK(t.link->busy());
    CHECK(t.link->is_open());
    CHECK(t.link->admits(390));
    CHECK_FALSE(t.link->admits(400));
    t.link->write_packet("p", body); // queued on top of 605 bytes: within the limit, the queue now over it
    CHECK(t.link->is_open());
    CHECK_FALSE(t.link->admits(1));
    t.link->write_packet("p", body); // on top of 1210: the peer does not read
    CHECK_FALSE(t.link->is_open());
    CHECK(t.link->queued_bytes() == 0);
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    t.link->write_packet("p", body); // after the close: dropped, not queued
    CHECK(t.link->queued_bytes() == 0);
}

TEST_CASE("DistLink sends packets in the order they were written, across many turns", "[dist_link]")
{
    LinkTest t;
    std::string expected;
    std::size_t n = 0;
    for (int batch = 0; batch < 20; ++batch) {
        for (int i = 0; i < 20; ++i, ++n) {
            TermWriter w = t.link->begin_packet();
            w.version();
            w.binary(numbered_payload(n, 1 + n * 37 % 3000));
            t.link->end_packet();
            expected += expected_frame([&](TermWriter& e) {
                e.version();
                e.binary(numbered_payload(n, 1 + n * 37 % 3000));
            });
        }
        t.run_ready_handlers(); // lets a write start, so later batches queue behind it
    }
    REQUIRE(t.peer_received_at_least(expected.size()));
    CHECK(t.received.size() == expected.size());
    CHECK(t.received == expected);
}

TEST_CASE("DistLink writes everything queued in one turn in one write", "[dist_link]")
{
    LinkTest t;
    const auto first = atom_message("first");
    const auto second = atom_message("second");
    queue_packet(*t.link, first);
    queue_packet(*t.link, second);
    const std::string expected = expected_frame(first) + expected_frame(second);
    CHECK(t.link->queued_bytes() == expected.size());

    // Nothing is written from inside end_packet(): the packets wait for the end of the turn. (On loopback a
    // write is readable as soon as send() returns, so an early write would show here.)
    t.read_peer();
    CHECK(t.received.empty());

    // One turn of the loop runs the posted flush. A second write could only start from the first one's
    // completion handler, which needs another turn, so both packets arriving now means they went out together.
    REQUIRE(t.io.run_one() == 1);
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (t.received.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
        t.wait_peer_readable(50ms);
        t.read_peer();
    }
    CHECK(t.received == expected);
}

TEST_CASE("DistLink write_now sends what is queued at once, and what follows in the next write", "[dist_link]")
{
    LinkTest t;
    const auto answer = atom_message("answer");
    const auto later = atom_message("later");
    queue_packet(*t.link, answer);
    t.link->write_now();

    // Written from inside write_now(), no turn of the loop needed (on loopback the bytes are readable as soon
    // as send() returns).
    t.wait_peer_readable(2000ms);
    t.read_peer();
    CHECK(t.received == expected_frame(answer));

    // Queued while that write has not completed yet: it waits for its completion (a turn of the loop), and
    // write_now() does not start a second write meanwhile.
    queue_packet(*t.link, later);
    t.link->write_now();
    t.read_peer();
    CHECK(t.received == expected_frame(answer));
    REQUIRE(t.peer_received_at_least(expected_frame(answer).size() + expected_frame(later).size()));
    CHECK(t.received == expected_frame(answer) + expected_frame(later));
}

TEST_CASE("DistLink ends itself, not the process, when a write cannot start for want of memory",
          "[dist_link][limits]")
{
    LinkLimits limits;
    limits.drops = std::make_shared<dpool::transport::LinkDrops>();
    LinkTest t(limits);
    queue_packet(*t.link, atom_message("first")); // posts the flush
    std::size_t failed = 0;
    {
        // The write's operation is the first allocation of the flush; closing the link then has its memory.
        dpool::test::FailAllocations no_memory(1);
        t.io.run_one();
        failed = no_memory.failed();
    }
    REQUIRE(failed == 1);
    // Not left writing with no write pending (it would never write again), nor resumed where bytes may have
    // left already (over TLS): closed, and counted.
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"out of memory for a write"});
    CHECK(limits.drops->out_of_memory == 1);
    CHECK_FALSE(t.link->is_open());
}

TEST_CASE("DistLink write_now without memory for the write ends the link and returns", "[dist_link][limits]")
{
    LinkTest t;
    queue_packet(*t.link, atom_message("answer"));
    std::size_t failed = 0;
    {
        dpool::test::FailAllocations no_memory(1);
        t.link->write_now(); // returns: the caller's own work goes on
        failed = no_memory.failed();
    }
    REQUIRE(failed == 1);
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"out of memory for a write"});
}

TEST_CASE("DistLink delivers a packet split into 1-byte writes once and whole", "[dist_link]")
{
    LinkTest t;
    const std::string payload = numbered_payload(1, 300);
    const std::string bytes = frame(payload);
    for (std::size_t i = 0; i + 1 < bytes.size(); ++i) {
        t.peer_write(std::string_view(bytes).substr(i, 1));
        t.run_ready_handlers();
        REQUIRE(t.handler.packets.empty());
    }
    t.peer_write(std::string_view(bytes).substr(bytes.size() - 1));
    REQUIRE(t.pump_until([&] { return !t.handler.packets.empty(); }));
    t.run_ready_handlers();
    REQUIRE(t.handler.packets.size() == 1);
    CHECK(t.handler.packets[0] == payload);
    CHECK(t.link->is_open());
}

TEST_CASE("DistLink delivers several packets from one write in order", "[dist_link]")
{
    LinkTest t;
    const std::vector<std::string> payloads
        = {"p", numbered_payload(2, 500), numbered_payload(3, 5000), numbered_payload(4, 3)};
    std::string bytes;
    for (const auto& p : payloads) {
        bytes += frame(p);
    }
    t.peer_write(bytes);
    REQUIRE(t.pump_until([&] { return t.handler.packets.size() == payloads.size(); }));
    CHECK(t.handler.packets == payloads);
}

TEST_CASE("DistLink delivers packets larger than its read chunks", "[dist_link]")
{
    LinkTest t;
    const std::vector<std::string> payloads
        = {numbered_payload(1, (1 << 20) + 3), numbered_payload(2, 70000), numbered_payload(3, 300000)};
    std::string bytes;
    for (const auto& p : payloads) {
        bytes += frame(p);
    }
    t.peer_write_large(bytes);
    REQUIRE(t.pump_until([&] { return t.handler.packets.size() == payloads.size(); }));
    REQUIRE(t.handler.packets.size() == payloads.size());
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        CHECK(t.handler.packets[i].size() == payloads[i].size());
        CHECK(t.handler.packets[i] == payloads[i]);
    }
}

TEST_CASE("DistLink answers a tick from the peer with a tick", "[dist_link]")
{
    LinkTest t;
    t.peer_write(kTick);
    REQUIRE(t.peer_received_at_least(4));
    CHECK(t.received == kTick);
    CHECK(t.handler.packets.empty());

    SECTION("ticks between packets are consumed, not delivered")
    {
        t.peer_write(frame("p1") + kTick + frame("p2"));
        REQUIRE(t.pump_until([&] { return t.handler.packets.size() == 2; }));
        CHECK(t.handler.packets == std::vector<std::string>{"p1", "p2"});
        CHECK(t.peer_received_at_least(8));
        CHECK(t.received == kTick + kTick);
    }
}

TEST_CASE("DistLink lets the handler answer from on_packet", "[dist_link]")
{
    LinkTest t;
    t.handler.packet_hook = [](DistLink& link, std::string_view) {
        TermWriter w = link.begin_packet();
        w.version();
        w.atom("pong");
        link.end_packet();
    };
    t.peer_write(frame("ping"));
    const std::string reply = expected_frame([](TermWriter& w) {
        w.version();
        w.atom("pong");
    });
    REQUIRE(t.peer_received_at_least(reply.size()));
    CHECK(t.received == reply);
}

TEST_CASE("DistLink stops delivering once the handler closes it", "[dist_link]")
{
    LinkTest t;
    t.handler.packet_hook = [](DistLink& link, std::string_view) { link.close("enough"); };
    t.peer_write(frame("one") + frame("two") + frame("three"));
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    t.run_ready_handlers();
    CHECK(t.handler.packets == std::vector<std::string>{"one"});
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"enough"});
}

TEST_CASE("DistLink closes on a packet larger than max_packet_bytes", "[dist_link]")
{
    LinkLimits limits;
    limits.max_packet_bytes = 1024;
    LinkTest t(limits);
    const std::string largest_allowed = numbered_payload(1, 1024);
    // Only the length of the oversized packet is sent: the link must not wait for the rest.
    t.peer_write(frame(largest_allowed) + be32(1025));

    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"packet of 1025 bytes, larger than the limit of 1024"});
    CHECK(t.handler.packets == std::vector<std::string>{largest_allowed});
    CHECK_FALSE(t.link->is_open());
    CHECK(t.pump_until([&] { return t.peer_saw_eof; }));
}

TEST_CASE("DistLink reports the peer closing exactly once", "[dist_link]")
{
    LinkTest t;
    t.peer_close();
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    t.run_ready_handlers();
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"peer closed the connection"});
    CHECK_FALSE(t.link->is_open());

    // Writing to a closed link is harmless and queues nothing.
    TermWriter w = t.link->begin_packet();
    w.version();
    w.atom("late");
    t.link->end_packet();
    CHECK(t.link->queued_bytes() == 0);
    t.link->close("again");
    t.run_ready_handlers();
    CHECK(t.handler.closed_reasons.size() == 1);
}

TEST_CASE("DistLink close() reports from the event loop, once", "[dist_link]")
{
    LinkTest t;
    t.link->close("bye");
    CHECK_FALSE(t.link->is_open());
    CHECK(t.handler.closed_reasons.empty()); // not from inside close()
    t.link->close("again");
    t.run_ready_handlers();
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"bye"});
    CHECK(t.pump_until([&] { return t.peer_saw_eof; }));
}

TEST_CASE("DistLink calls no handler after detach()", "[dist_link]")
{
    LinkTest t;
    t.link->detach();
    t.peer_write(frame("unseen"));
    t.peer_close();
    REQUIRE(t.pump_until([&] { return !t.link->is_open(); }));
    t.run_ready_handlers();
    CHECK(t.handler.packets.empty());
    CHECK(t.handler.closed_reasons.empty());
}

TEST_CASE("DistLink reports busy above its limit and drained once the output is written", "[dist_link]")
{
    LinkLimits limits;
    limits.busy_limit = 64;
    LinkTest t(limits);
    const auto write = [](TermWriter& w) {
        w.version();
        w.binary(std::string(1000, 'b'));
    };
    TermWriter w = t.link->begin_packet();
    write(w);
    t.link->end_packet();
    CHECK(t.link->busy());

    REQUIRE(t.pump_until([&] { return t.handler.drained > 0; }));
    CHECK_FALSE(t.link->busy());
    CHECK(t.link->queued_bytes() == 0);
    const std::string expected = expected_frame(write);
    REQUIRE(t.peer_received_at_least(expected.size()));
    CHECK(t.received == expected);
    t.run_ready_handlers();
    CHECK(t.handler.drained == 1);
}

TEST_CASE("DistLink reports drained when it went busy while a write was in flight", "[dist_link]")
{
    // The owner sees busy() over queued + in-flight bytes; once the in-flight write completes, what is left may
    // be under the limit by itself. The owner holds answers back on busy(), so it must hear on_drained anyway.
    LinkLimits limits;
    limits.busy_limit = 1000;
    LinkTest t(limits);
    const auto write = [](TermWriter& w) {
        w.version();
        w.binary(std::string(600, 'c'));
    };
    TermWriter first = t.link->begin_packet();
    write(first);
    t.link->end_packet();
    CHECK_FALSE(t.link->busy());
    t.io.restart();
    REQUIRE(t.io.poll_one() == 1); // the flush: the first packet is now in flight
    TermWriter second = t.link->begin_packet();
    write(second);
    t.link->end_packet();
    REQUIRE(t.link->busy());

    REQUIRE(t.pump_until([&] { return t.handler.drained > 0; }));
    CHECK_FALSE(t.link->busy()); // drained means under the limit again; the second packet may still be in flight
    CHECK(t.handler.drained == 1);
}

TEST_CASE("DistLink closes rather than queue more than max_queued_bytes", "[dist_link]")
{
    LinkLimits limits;
    limits.max_queued_bytes = 1000;
    LinkTest t(limits);
    const auto write_600_bytes = [&] {
        TermWriter w = t.link->begin_packet();
        w.version();
        w.binary(std::string(590, 'q'));
        t.link->end_packet();
    };
    write_600_bytes();
    CHECK(t.link->is_open()); // about 600 bytes queued: within the limit
    write_600_bytes(); // about 1200, queued on top of 600: within it still, one packet may pass the limit
    CHECK(t.link->is_open());
    write_600_bytes(); // on top of 1200, before the loop had a chance to write anything: over it
    CHECK_FALSE(t.link->is_open());
    CHECK(t.link->queued_bytes() == 0);

    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty() && t.peer_saw_eof; }));
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"peer does not read: output queue over its limit"});
    CHECK(t.received.empty()); // the queue was dropped, not flushed
}

TEST_CASE("DistLink closes a silent link after the allowed silent ticks", "[dist_link]")
{
    LinkLimits limits;
    limits.tick_interval = 50ms;
    limits.silent_ticks_allowed = 2;
    LinkTest t(limits);

    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"net tick timeout"});
    REQUIRE(t.pump_until([&] { return t.peer_saw_eof; }));
    // It ticked while it waited.
    CHECK_FALSE(t.received.empty());
    CHECK(t.received.size() % 4 == 0);
    CHECK(t.received == std::string(t.received.size(), '\0'));
}

TEST_CASE("DistLink ticks on an idle link and stays open while the peer talks", "[dist_link]")
{
    LinkLimits limits;
    limits.tick_interval = 50ms;
    limits.silent_ticks_allowed = 2;
    LinkTest t(limits);

    // The peer answers each tick with a (non-tick) packet, which the link does not answer: every tick the peer
    // sees comes from the link's timer.
    std::size_t answered = 0;
    const bool ticked = t.pump_until([&] {
        const std::size_t ticks = t.received.size() / 4;
        for (; answered < ticks; ++answered) {
            t.peer_write(frame("k"));
        }
        return ticks >= 5 || !t.link->is_open();
    });
    REQUIRE(ticked);
    CHECK(t.link->is_open());
    CHECK(t.handler.closed_reasons.empty());
    CHECK(t.received.size() >= 5 * 4);
    CHECK(t.received == std::string(t.received.size(), '\0'));
    CHECK(t.handler.packets.size() >= 4);
}

// --- answers to callers (api/replies.hpp), over a real link ------------------------------------------------------

namespace {

// The first packet the peer received, parsed; the frame's length prefix is checked against its size.
std::optional<dpool::protocol::Control> first_packet(const std::string& received)
{
    if (received.size() < 4) {
        return std::nullopt;
    }
    const auto* u = reinterpret_cast<const unsigned char*>(received.data());
    const std::size_t length = (std::size_t{u[0]} << 24) | (std::size_t{u[1]} << 16) | (std::size_t{u[2]} << 8) | u[3];
    if (received.size() != 4 + length) {
        return std::nullopt;
    }
    return dpool::protocol::parse_packet(std::string_view(received).substr(4));
}

} // namespace

TEST_CASE("reply answers a plain tag with SEND to the caller's pid", "[dist_link][caller]")
{
    LinkTest t;
    const std::string caller_pid = encoded_pid();
    const std::string tag = [] {
        dpool::test::EiTerm e;
        e.ref("caller@127.0.0.1", 2, {1, 2, 3});
        return e.str();
    }();
    const dpool::protocol::NodeIdentity cnode("cnode@127.0.0.1", 7, 1);
    dpool::api::reply_atom(dpool::pool::CallerView{t.link, &cnode, caller_pid, tag}, "pong");

    REQUIRE(t.pump_until([&] { return first_packet(t.received).has_value(); }));
    const auto c = first_packet(t.received);
    CHECK(c->op == dpool::protocol::ControlOp::send);
    CHECK(c->to == caller_pid);
    dpool::test::EiTerm answer;
    answer.version().tuple(2).raw(tag).atom("pong");
    CHECK(c->payload == answer.view());
}

TEST_CASE("reply answers an [alias | Ref] tag with ALIAS_SEND to the alias", "[dist_link][caller]")
{
    LinkTest t;
    const std::string caller_pid = encoded_pid();
    // The answer's sender is the C-node's pid under the identity of the lane the caller came in on.
    const dpool::protocol::NodeIdentity cnode("cnode_lane1@127.0.0.1", 7, 1);
    const std::string alias = [] {
        dpool::test::EiTerm e;
        e.ref("caller@127.0.0.1", 2, {4, 5, 6});
        return e.str();
    }();
    const std::string tag = [&] {
        dpool::test::EiTerm e;
        e.list(1).atom("alias").raw(alias);
        return e.str();
    }();
    CHECK(dpool::api::reply_alias(tag) == alias);
    dpool::api::reply_error(dpool::pool::CallerView{t.link, &cnode, caller_pid, tag}, "timeout");

    REQUIRE(t.pump_until([&] { return first_packet(t.received).has_value(); }));
    const auto c = first_packet(t.received);
    CHECK(c->op == dpool::protocol::ControlOp::alias_send);
    CHECK(c->from == cnode.self_pid());
    CHECK(c->to == alias);
    dpool::test::EiTerm answer;
    answer.version().tuple(2).raw(tag).tuple(2).atom("error").atom("timeout");
    CHECK(c->payload == answer.view());
}

TEST_CASE("reply_alias takes only a one-element list of alias with a reference tail", "[caller]")
{
    const auto tag = [](const std::function<void(dpool::test::EiTerm&)>& build) {
        dpool::test::EiTerm e;
        build(e);
        return e.str();
    };
    const std::string ref = tag([](auto& e) { e.ref("caller@127.0.0.1", 2, {4, 5, 6}); });
    CHECK(dpool::api::reply_alias(tag([&](auto& e) { e.list(1).atom("alias").raw(ref); })) == ref);
    CHECK(dpool::api::reply_alias(ref).empty());
    CHECK(dpool::api::reply_alias(tag([&](auto& e) { e.list(1).atom("alias").nil(); })).empty());
    CHECK(dpool::api::reply_alias(tag([&](auto& e) { e.list(1).atom("other").raw(ref); })).empty());
    CHECK(dpool::api::reply_alias(tag([&](auto& e) { e.list(2).atom("alias").raw(ref).nil(); })).empty());
    CHECK(dpool::api::reply_alias(tag([&](auto& e) { e.list(1).atom("alias").atom("x"); })).empty());
    CHECK(dpool::api::reply_alias(tag([&](auto& e) { e.list(1).atom("alias").raw(ref).nil(); })).empty());
    CHECK(dpool::api::reply_alias("").empty());
}

TEST_CASE("DistLink with an atom cache writes distribution headers and reads them back as pass-through packets",
          "[dist_link]")
{
    LinkTest plain; // only for its io_context and loopback pair; the link under test uses the atom cache
    RecordingHandler handler;
    auto [peer, link] = extra_link(plain.io, handler, LinkLimits{}, true);
    CHECK(link->uses_atom_cache());

    // Written: 131, 68, 0 (no references), then the terms without version bytes.
    TermWriter w = link->begin_packet();
    w.version();
    w.tuple(2);
    w.atom("hello");
    w.version();
    w.atom("world");
    link->end_packet();
    const std::string expected = frame(std::string("\x83\x44\x00", 3) + "\x68\x02" + atom_bytes("hello") +
                                       atom_bytes("world"));
    std::string received;
    REQUIRE(plain.pump_until([&] {
        char chunk[256];
        error_code ec;
        peer.non_blocking(true);
        const std::size_t n = peer.read_some(asio::buffer(chunk), ec);
        if (!ec) {
            received.append(chunk, n);
        }
        return received.size() >= expected.size();
    }));
    CHECK(received == expected);

    // Read: a packet whose atoms are cache references reaches the handler in the pass-through form.
    const std::string incoming =
        std::string("\x83\x44\x01\x08\x05", 5) + "\x02ok" + std::string("\x68\x02\x61\x02\x52\x00", 6);
    error_code ec;
    asio::write(peer, asio::buffer(frame(incoming)), ec);
    REQUIRE_FALSE(ec);
    REQUIRE(plain.pump_until([&] { return !handler.packets.empty(); }));
    CHECK(handler.packets.front() == "p\x83" + std::string("\x68\x02\x61\x02", 4) + atom_bytes("ok"));

    // A reference to an entry never defined closes the link: later references could name the wrong atoms.
    asio::write(peer, asio::buffer(frame(std::string("\x83\x44\x01\x00\x07\x52\x00", 7))), ec);
    REQUIRE(plain.pump_until([&] { return !handler.closed_reasons.empty(); }));
    CHECK(handler.closed_reasons.front() == "malformed distribution header");
    CHECK(handler.packets.size() == 1);
}

TEST_CASE("DistLink share_packet keeps a delivered packet's bytes and reads on into a buffer of its own",
          "[dist_link]")
{
    LinkTest t;
    const std::vector<std::string> payloads
        = {numbered_payload(1, 300000), numbered_payload(2, 20), numbered_payload(3, 200000), numbered_payload(4, 9)};
    std::vector<std::shared_ptr<const void>> owners;
    std::vector<std::string_view> views;
    bool outside_refused = false;
    t.handler.packet_hook = [&](DistLink& link, std::string_view packet) {
        // Only parts of the packet being delivered can be shared; sharing twice gives the same owner.
        CHECK(link.share_packet(std::string_view("elsewhere")) == nullptr);
        const auto part = packet.substr(2);
        auto owner = link.share_packet(part);
        REQUIRE(owner != nullptr);
        CHECK(link.share_packet(packet) == owner);
        owners.push_back(std::move(owner));
        views.push_back(part);
    };
    std::string bytes;
    for (const auto& p : payloads) {
        bytes += frame(p);
    }
    t.peer_write_large(bytes);
    REQUIRE(t.pump_until([&] { return t.handler.packets.size() == payloads.size(); }));
    // More packets, bigger than the buffer the first ones came in: a buffer kept by the link would be reused
    // or freed under the views.
    t.handler.packet_hook = nullptr;
    t.peer_write_large(frame(numbered_payload(8, 600000)) + frame(numbered_payload(9, 600000)));
    REQUIRE(t.pump_until([&] { return t.handler.packets.size() == payloads.size() + 2; }));
    outside_refused = t.link->share_packet(views.front()) == nullptr;
    CHECK(outside_refused);
    REQUIRE(views.size() == payloads.size());
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        CHECK(t.handler.packets[i] == payloads[i]);
        CHECK(views[i] == std::string_view(payloads[i]).substr(2)); // still valid: its owner keeps it
    }
}

TEST_CASE("DistLink reads the next big packets into the buffers shared packets gave back (two are kept)",
          "[dist_link]")
{
    LinkTest t;
    std::vector<const char*> starts;
    std::vector<std::shared_ptr<const void>> owners;
    bool keep = true;
    t.handler.packet_hook = [&](DistLink& link, std::string_view packet) {
        starts.push_back(packet.data());
        auto owner = link.share_packet(packet);
        REQUIRE(owner != nullptr);
        if (keep) {
            owners.push_back(std::move(owner)); // held, as a write in flight holds it; else let go at once
        }
    };
    const auto send_big = [&](int n) {
        const std::size_t before = t.handler.packets.size();
        t.peer_write_large(frame(numbered_payload(n, 500000)));
        REQUIRE(t.pump_until([&] { return t.handler.packets.size() == before + 1; }));
    };
    // Three packets held, then all let go in order: the first two buffers come back as spares, the third is
    // freed.
    send_big(1);
    send_big(2);
    send_big(3);
    CHECK(t.link->spare_buffers() == 0);
    owners.clear();
    CHECK(t.link->spare_buffers() == 2);
    keep = false;
    // The next packets come into those two buffers (each given back again once delivered), no other.
    send_big(4);
    send_big(5);
    send_big(6);
    const std::set<const char*> spares{starts[0], starts[1]};
    CHECK(spares.count(starts[3]) == 1);
    CHECK(spares.count(starts[4]) == 1);
    CHECK(spares.count(starts[5]) == 1);
    CHECK(t.link->spare_buffers() == 2);
    for (std::size_t i = 0; i < t.handler.packets.size(); ++i) {
        CHECK(t.handler.packets[i] == numbered_payload(static_cast<int>(i) + 1, 500000));
    }
}

TEST_CASE("DistLink writes a borrowed tail without copying it, and lets go of its owner once written",
          "[dist_link]")
{
    LinkTest t;
    auto big = std::make_shared<std::string>(numbered_payload(7, 3 * dpool::transport::kMaxIoBytes + 123));
    const std::string small = "small tail";
    const auto head = [](TermWriter& w) {
        w.version();
        w.atom("head");
    };
    const std::string head_bytes = expected_frame(head).substr(4); // without its length
    t.link->write_packet(head_bytes, *big, big);
    t.link->write_packet(head_bytes, small, big); // below kMinBorrowedBytes: copied
    CHECK(big.use_count() == 2);                  // the link holds the big tail only
    CHECK(t.link->queued_bytes() == 2 * expected_frame(head).size() + big->size() + small.size());

    const auto with_tail = [&](std::string_view tail) {
        std::string f = expected_frame(head);
        std::string payload = f.substr(4) + std::string(tail);
        return frame(payload);
    };
    const std::string expected = with_tail(*big) + with_tail(small);
    REQUIRE(t.peer_received_at_least(expected.size()));
    CHECK(t.received == expected);
    REQUIRE(t.pump_until([&] { return big.use_count() == 1; }));
    CHECK(t.link->queued_bytes() == 0);
}

TEST_CASE("DistLink hands a big output to the socket in pieces of at most kMaxIoBytes", "[dist_link]")
{
    LinkTest t;
    const std::string payload = numbered_payload(9, 4 * dpool::transport::kMaxIoBytes);
    TermWriter w = t.link->begin_packet();
    w.version();
    w.binary(payload);
    t.link->end_packet();
    const std::size_t total = t.link->queued_bytes();

    // One handler, the flush, gives the socket one piece; later pieces each need a turn of the loop.
    t.io.restart();
    REQUIRE(t.io.poll_one() == 1);
    t.wait_peer_readable(100ms);
    t.read_peer();
    CHECK(t.received.size() > 0);
    CHECK(t.received.size() <= dpool::transport::kMaxIoBytes);

    REQUIRE(t.peer_received_at_least(total));
    CHECK(t.received.size() == total);
    CHECK(t.received.substr(t.received.size() - payload.size()) == payload);
}

TEST_CASE("DistLink with a bulk queue reads and writes the rest of a big packet as deferred work", "[dist_link]")
{
    LinkTest t;
    LinkLimits limits;
    limits.bulk = &t.bulk;
    // A second link on the same loop, with the bulk queue.
    RecordingHandler handler;
    auto [peer, link] = extra_link(t.io, handler, limits);

    // In: a 1 MiB packet. Its first piece is read as usual; what follows waits on the bulk queue.
    const std::string big = numbered_payload(5, 1 << 20);
    auto bytes = std::make_shared<std::string>(frame(big));
    bool written = false;
    asio::async_write(peer, asio::buffer(*bytes), [&written, bytes](const error_code& ec, std::size_t) {
        CHECK_FALSE(ec);
        written = true;
    });
    REQUIRE(t.pump_until([&] { return !t.bulk.empty(); }));
    CHECK(handler.packets.empty());
    REQUIRE(t.pump_until([&] { return written && handler.packets.size() == 1; }));
    CHECK(handler.packets[0] == big);

    // Out: the same packet back; after the first piece the rest is bulk work too.
    link->write_packet(std::string(1, 'p') + "\x83", big, std::make_shared<std::string>("owner"));
    t.io.restart();
    REQUIRE(t.io.poll_one() == 1); // the flush: first piece
    REQUIRE(t.pump_until([&] { return !t.bulk.empty(); }));
    std::string received;
    const std::size_t total = 4 + 2 + big.size();
    REQUIRE(t.pump_until([&] {
        char chunk[64 * 1024];
        error_code ec;
        peer.non_blocking(true);
        const std::size_t n = peer.read_some(asio::buffer(chunk), ec);
        if (!ec) {
            received.append(chunk, n);
        }
        return received.size() >= total;
    }));
    CHECK(received.substr(6) == big);
    link->detach();
    link->close("test finished");
    t.run_ready_handlers();
}

TEST_CASE("DistLink writes any mix of own and borrowed packets exactly, through writes that stop anywhere",
          "[dist_link]")
{
    for (const bool with_bulk : {false, true}) {
        CAPTURE(with_bulk);
        LinkTest t; // its io_context and bulk queue; the link under test has small socket buffers
        LinkLimits limits;
        limits.bulk = with_bulk ? &t.bulk : nullptr;
        RecordingHandler handler;
        auto [peer, link] = extra_link(t.io, handler, limits, false, 8192);
        peer.non_blocking(true);
        std::mt19937 rng(42);
        std::string expected;
        std::string received;
        std::vector<std::weak_ptr<const void>> owners;
        // Reads a random amount at the peer and runs one handler (or one bulk item): many partial writes.
        const auto step = [&] {
            char chunk[3000];
            error_code ec;
            const std::size_t n = peer.read_some(asio::buffer(chunk, 1 + rng() % sizeof chunk), ec);
            if (!ec) {
                received.append(chunk, n);
            }
            t.io.restart();
            if (t.io.poll_one() == 0) {
                t.bulk.run_one();
            }
        };
        for (int round = 0; round < 30; ++round) {
            // Up to 14 packets per round, so that more than kMaxWriteBuffers pieces can be pending at once.
            const int packets = 1 + static_cast<int>(rng() % 14);
            for (int k = 0; k < packets; ++k) {
                const std::string head = "p\x83" + std::to_string(round) + ":" + std::to_string(k);
                switch (rng() % 3) {
                case 0: { // borrowed: at least kMinBorrowedBytes, kept alive by its owner only
                    auto body = std::make_shared<std::string>(
                        numbered_payload(round * 100 + k, dpool::transport::kMinBorrowedBytes + rng() % 200000));
                    link->write_packet(head, *body, body);
                    owners.push_back(body);
                    expected += frame(head + *body);
                    break;
                }
                case 1: { // copied
                    const std::string body = numbered_payload(k, rng() % 5000);
                    link->write_packet(head, body);
                    expected += frame(head + body);
                    break;
                }
                default: { // encoded in place
                    const auto write = [&](TermWriter& w) {
                        w.version();
                        w.atom("x" + std::to_string(k));
                    };
                    TermWriter w = link->begin_packet();
                    write(w);
                    link->end_packet();
                    expected += expected_frame(write);
                }
                }
            }
            for (int i = static_cast<int>(rng() % 200); i > 0; --i) {
                step();
            }
        }
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (received.size() < expected.size() && std::chrono::steady_clock::now() < deadline) {
            step();
        }
        REQUIRE(received.size() == expected.size());
        CHECK((received == expected));
        CHECK(std::all_of(owners.begin(), owners.end(), [](const auto& o) { return o.expired(); }));
        CHECK(link->queued_bytes() == 0);
        link->detach();
        link->close("test finished");
        t.run_ready_handlers();
    }
}

TEST_CASE("DistLink closed while a borrowed write is in flight lets go of the owner", "[dist_link]")
{
    LinkTest t;
    std::weak_ptr<const void> kept;
    {
        auto big = std::make_shared<std::string>(numbered_payload(1, 4 << 20));
        kept = big;
        t.link->write_packet("p\x83", *big, big);
        t.link->write_packet("p\x83", *big, big);
    }
    t.io.restart();
    REQUIRE(t.io.poll_one() == 1); // the flush: a write in flight
    CHECK_FALSE(kept.expired());
    t.link->close("test finished");
    t.run_ready_handlers();
    CHECK(kept.expired());
}

TEST_CASE("DistLink with a bulk queue keeps the rest of a big output there while small packets queue behind it",
          "[dist_link]")
{
    LinkTest t;
    LinkLimits limits;
    limits.bulk = &t.bulk;
    RecordingHandler handler;
    auto [peer, link] = extra_link(t.io, handler, limits);
    peer.non_blocking(true);
    auto big = std::make_shared<std::string>(numbered_payload(1, 4 << 20));
    link->write_packet("p\x83", *big, big);
    std::string expected = frame("p\x83" + *big);
    std::string received;
    const auto read_all = [&] {
        char chunk[1 << 16];
        error_code ec;
        for (std::size_t n; (n = peer.read_some(asio::buffer(chunk), ec)), !ec;) {
            received.append(chunk, n);
        }
    };
    std::size_t bulk_items_run = 0;
    for (int turn = 0; received.size() < expected.size() && turn < 100000; ++turn) {
        read_all();
        // A small packet every turn, as on a busy connection: it must not carry the big output along.
        const std::string small = "small " + std::to_string(turn);
        link->write_packet("p\x83", small);
        expected += frame("p\x83" + small);
        t.io.restart();
        while (t.io.poll_one() > 0) {
        }
        CHECK(t.bulk.size() <= 1); // one deferred write per link at most
        // One piece per bulk item (and the first one) goes out: the big output moves at the bulk queue's pace.
        if (received.size() < big->size()) {
            CHECK(received.size() <= (bulk_items_run + 1) * dpool::transport::kMaxIoBytes);
        }
        if (turn % 16 == 15 && t.bulk.run_one()) {
            ++bulk_items_run;
        }
    }
    REQUIRE(t.pump_until([&] {
        read_all();
        return received.size() >= expected.size();
    }));
    CHECK((received == expected));
    link->detach();
    link->close("test finished");
    t.run_ready_handlers();
}

TEST_CASE("DistLink takes memory for the bytes of a packet that came in, not for the length announced",
          "[dist_link][limits]")
{
    LinkLimits limits;
    limits.max_packet_bytes = 0xFFFFFFFF;
    LinkTest t(limits);
    const std::size_t mapped_before = mallinfo2().hblkhd + mallinfo2().arena;
    // 1 GiB - 1 announced, 10 bytes sent: the link waits for the rest with a buffer of a few KiB.
    t.peer_write(be32((1U << 30) - 1) + "p123456789");
    t.pump_until([] { return false; }, 100ms);
    CHECK(t.link->is_open());
    CHECK(mallinfo2().hblkhd + mallinfo2().arena < mapped_before + (16U << 20));
}

TEST_CASE("DistLink counts the links it drops over an oversized packet", "[dist_link][limits]")
{
    LinkLimits limits;
    limits.max_packet_bytes = 1024;
    limits.drops = std::make_shared<dpool::transport::LinkDrops>();
    LinkTest t(limits);
    t.peer_write(be32((1U << 30) - 1));
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    CHECK(limits.drops->oversized_packets == 1);
    CHECK(limits.drops->out_of_memory == 0);
}

TEST_CASE("DistLink ends itself, not the process, when a packet's handling runs out of memory",
          "[dist_link][limits]")
{
    LinkLimits limits;
    limits.drops = std::make_shared<dpool::transport::LinkDrops>();
    LinkTest t(limits);
    t.handler.packet_hook = [](DistLink&, std::string_view packet) {
        if (packet == "p-too-big") {
            throw std::bad_alloc();
        }
    };
    t.peer_write(frame("p-fine") + frame("p-too-big") + frame("p-never"));
    REQUIRE(t.pump_until([&] { return !t.handler.closed_reasons.empty(); }));
    CHECK(t.handler.closed_reasons == std::vector<std::string>{"out of memory for a packet of 9 bytes"});
    CHECK(t.handler.packets == std::vector<std::string>{"p-fine", "p-too-big"});
    CHECK(limits.drops->out_of_memory == 1);
}

TEST_CASE("DistLink drops a packet left open by an exception: the next one starts clean", "[dist_link][limits]")
{
    LinkTest t;
    try {
        TermWriter w = t.link->begin_packet();
        w.version();
        w.atom("half");
        throw std::bad_alloc(); // as a writer that could not grow its buffer
    } catch (const std::bad_alloc&) {
    }
    TermWriter w = t.link->begin_packet();
    w.version();
    w.atom("whole");
    t.link->end_packet();
    ByteBuffer whole;
    TermWriter expected(whole);
    expected.atom("whole");
    const std::string packet = "p\x83" + std::string(whole.view());
    REQUIRE(t.peer_received_at_least(4 + packet.size()));
    CHECK(t.received == frame(packet));
}

TEST_CASE("DistLink reports what it queues and writes to the output budget of all links", "[dist_link][limits]")
{
    LinkLimits limits;
    limits.output = std::make_shared<dpool::transport::OutputBudget>(1 << 20);
    auto budget = limits.output;
    {
        LinkTest t(limits);
        t.link->write_packet("p", std::string(1000, 'q'));
        t.link->write_packet("p", std::string(2000, 'q'));
        CHECK(budget->queued() == 3010);
        CHECK(budget->peak() == 3010);
        CHECK(budget->admits((1 << 20) - 3010));
        CHECK_FALSE(budget->admits((1 << 20) - 3009));
        REQUIRE(t.peer_received_at_least(3010));
        CHECK(t.pump_until([&] { return budget->queued() == 0; }));
        // What a link held when it closed is given back with it.
        t.link->write_packet("p", std::string(500, 'q'));
        CHECK(budget->queued() == 505);
        t.link->close("done");
        CHECK(budget->queued() == 0);
    }
    CHECK(budget->queued() == 0);
    CHECK(budget->peak() == 3010);
}

namespace {

// Takes big packets' tails (on_spliced_packet) and forwards every packet unchanged to `forward_to`: the tail
// spliced after the prefix, small packets copied. With `decline`, leaves big packets to on_packet.
class SplicingHandler final : public LinkHandler {
public:
    void on_packet(DistLink&, std::string_view packet) override
    {
        whole.emplace_back(packet);
        if (forward_to) {
            forward_to->write_packet({}, packet);
        }
    }
    bool on_spliced_packet(DistLink&, std::string_view prefix,
                           std::unique_ptr<dpool::transport::SplicedTail>& tail) override
    {
        ++spliced;
        if (decline || !forward_to) {
            return false;
        }
        forward_to->write_packet({}, prefix, nullptr, std::move(tail));
        return true;
    }
    void on_closed(DistLink&, std::string_view reason) override { closed_reasons.emplace_back(reason); }

    std::shared_ptr<DistLink> forward_to;
    bool decline = false;
    int spliced = 0;
    std::vector<std::string> whole;
    std::vector<std::string> closed_reasons;
};

// Reads what `peer` has now into `into` (never blocks).
void read_available(tcp::socket& peer, std::string& into)
{
    peer.non_blocking(true);
    char chunk[64 * 1024];
    while (true) {
        error_code ec;
        const std::size_t n = peer.read_some(asio::buffer(chunk), ec);
        if (ec) {
            return;
        }
        into.append(chunk, n);
    }
}

// Writes `bytes` into `peer` while the loop runs.
void write_large(LinkTest& t, tcp::socket& peer, std::string bytes, bool wait = true)
{
    auto data = std::make_shared<std::string>(std::move(bytes));
    auto done = std::make_shared<bool>(false);
    asio::async_write(peer, asio::buffer(*data), [done, data](const error_code&, std::size_t) { *done = true; });
    if (wait) {
        REQUIRE(t.pump_until([&] { return *done; }, 20s));
    }
}

std::string random_payload(std::size_t n, unsigned seed)
{
    std::mt19937 gen(seed);
    std::string s(n, '\0');
    for (auto& c : s) {
        c = static_cast<char>(gen());
    }
    s[0] = 'p';
    return s;
}

} // namespace

// A link whose big packets' tails go into pipes (LinkLimits::pipes, a budget of `max_pipes`), handled by a
// SplicingHandler, on the loop of a LinkTest; the test writes into `in_peer`. forward() adds the link the
// handler forwards to, the test holding its peer.
struct SpliceTest {
    explicit SpliceTest(std::size_t max_pipes = 16)
        : pipes(std::make_shared<dpool::transport::PipeBudget>(max_pipes)), in(extra_link(t.io, splicer, with_pipes()))
    {
    }
    ~SpliceTest()
    {
        in.link->detach();
        in.link->close("test finished");
        if (out.link) {
            out.link->detach();
            out.link->close("test finished");
        }
    }
    SpliceTest(const SpliceTest&) = delete;
    SpliceTest& operator=(const SpliceTest&) = delete;

    LinkLimits with_pipes() const
    {
        LinkLimits limits;
        limits.pipes = pipes;
        return limits;
    }
    // `socket_buffer_bytes` above 0: small socket buffers, so that a peer that does not read holds the tail in
    // the pipes.
    DistLink& forward(LinkLimits limits = {}, int socket_buffer_bytes = 0)
    {
        out = extra_link(t.io, out_handler, limits, false, socket_buffer_bytes);
        splicer.forward_to = out.link;
        return *out.link;
    }

    std::shared_ptr<dpool::transport::PipeBudget> pipes;
    LinkTest t;
    SplicingHandler splicer;
    ExtraLink in;
    RecordingHandler out_handler;
    ExtraLink out{tcp::socket(t.io), nullptr};
};

TEST_CASE("DistLink moves a big packet's tail through pipes to another link, which writes it in order",
          "[dist_link][splice]")
{
    for (const bool with_bulk : {false, true}) {
        CAPTURE(with_bulk);
        SpliceTest st;
        LinkLimits out_limits;
        out_limits.bulk = with_bulk ? &st.t.bulk : nullptr;
        DistLink& out_link = st.forward(out_limits);

        const std::string big = random_payload((std::size_t{3} << 20) + 4321, 11);
        const std::string bytes = frame("p-small-1") + frame(big) + frame("p-small-2") + frame(big.substr(0, 2 << 20));
        write_large(st.t, st.in.peer, bytes, false);
        std::string received;
        REQUIRE(st.t.pump_until([&] {
            read_available(st.out.peer, received);
            return received.size() >= bytes.size();
        }, 20s));
        CHECK(received == bytes);
        CHECK(st.splicer.spliced == 2);
        CHECK(st.splicer.whole == std::vector<std::string>{"p-small-1", "p-small-2"});
        CHECK(st.pipes->counters().packets == 2);
        CHECK(st.pipes->counters().fallbacks == 0);
        REQUIRE(st.t.pump_until([&] { return out_link.queued_bytes() == 0; }));
        CHECK(st.pipes->open_pipes() == st.pipes->spare_pipes()); // every pipe emptied and kept
        CHECK(st.in.link->traffic().packets_in == 4);
    }
}

TEST_CASE("DistLink delivers a big packet whole when its handler does not take the tail, or no pipe is left",
          "[dist_link][splice]")
{
    for (const std::size_t max_pipes : {std::size_t{16}, std::size_t{1}}) {
        CAPTURE(max_pipes);
        SpliceTest st(max_pipes);
        st.splicer.decline = true;
        const std::string big = random_payload((std::size_t{3} << 20) + 5, 12);
        write_large(st.t, st.in.peer, frame(big) + frame("p-after"), false);
        REQUIRE(st.t.pump_until([&] { return st.splicer.whole.size() == 2; }, 20s));
        CHECK(st.splicer.whole[0] == big);
        CHECK(st.splicer.whole[1] == "p-after");
        CHECK(st.pipes->counters().fallbacks == 1);
        // One pipe cannot hold 3 MiB: the tail came into memory before the handler saw it.
        CHECK(st.splicer.spliced == (max_pipes == 1 ? 0 : 1));
        CHECK(st.pipes->open_pipes() == st.pipes->spare_pipes());
    }
}

TEST_CASE("DistLink closes when the peer goes in the middle of a tail, and its pipes go with it",
          "[dist_link][splice]")
{
    SpliceTest st;
    const std::string big = random_payload(std::size_t{3} << 20, 13);
    write_large(st.t, st.in.peer, frame(big).substr(0, 2 << 20));
    REQUIRE(st.t.pump_until([&] { return st.pipes->counters().bytes > 0; }));
    error_code ignored;
    st.in.peer.shutdown(tcp::socket::shutdown_both, ignored);
    st.in.peer.close(ignored);
    REQUIRE(st.t.pump_until([&] { return !st.splicer.closed_reasons.empty(); }));
    CHECK(st.splicer.closed_reasons[0] == "peer closed the connection");
    CHECK(st.splicer.spliced == 0);
    st.t.run_ready_handlers();
    CHECK(st.pipes->open_pipes() == st.pipes->spare_pipes());
}

TEST_CASE("DistLink closed while a tail is being written lets go of its pipes", "[dist_link][splice]")
{
    SpliceTest st;
    // A peer that does not read: the tail stays in the pipes.
    DistLink& out_link = st.forward({}, 64 * 1024);
    write_large(st.t, st.in.peer, frame(random_payload(std::size_t{4} << 20, 14)));
    REQUIRE(st.t.pump_until([&] { return st.splicer.spliced == 1 && out_link.queued_bytes() > 0; }, 20s));
    CHECK(st.pipes->open_pipes() > st.pipes->spare_pipes());
    out_link.close("test closes it");
    st.t.run_ready_handlers();
    CHECK(out_link.queued_bytes() == 0);
    CHECK(st.pipes->open_pipes() == st.pipes->spare_pipes());
}

TEST_CASE("DistLink whose peer goes while a tail is being spliced to it closes and lets go of its pipes",
          "[dist_link][splice]")
{
    SpliceTest st;
    DistLink& out_link = st.forward({}, 64 * 1024);
    write_large(st.t, st.in.peer, frame(random_payload(std::size_t{4} << 20, 15)));
    REQUIRE(st.t.pump_until([&] { return st.splicer.spliced == 1 && out_link.queued_bytes() > 0; }, 20s));
    error_code ignored;
    st.out.peer.close(ignored); // unread bytes: the link's next splice meets a reset connection
    REQUIRE(st.t.pump_until([&] { return !st.out_handler.closed_reasons.empty(); }, 20s));
    CHECK(out_link.queued_bytes() == 0);
    CHECK(st.pipes->open_pipes() == st.pipes->spare_pipes());
}
