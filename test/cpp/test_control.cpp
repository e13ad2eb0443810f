#include "test_support.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "protocol/control.hpp"
#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "util/byte_buffer.hpp"

using dpool::ByteBuffer;
using dpool::protocol::carries_message;
using dpool::protocol::Control;
using dpool::protocol::ControlOp;
using dpool::protocol::parse_packet;
using dpool::protocol::TermWriter;
using dpool::protocol::write_alias_send;
using dpool::protocol::write_spawn_request;
using dpool::test::EiTerm;

namespace {

using ControlBuilder = std::function<void(TermWriter&)>;

// 'p', version, the control term, and (when given) version + message: a pass-through packet.
std::string make_packet(const ControlBuilder& control, std::optional<std::string_view> message = std::nullopt)
{
    ByteBuffer buf;
    buf.push_back('p');
    TermWriter w(buf);
    w.version();
    control(w);
    if (message) {
        w.version();
        w.raw(*message);
    }
    return std::string(buf.view());
}

std::string encoded_pid(const std::string& node, unsigned num)
{
    EiTerm t;
    t.pid(node, num, 0, 1);
    return t.str();
}

std::string encoded_ref(unsigned n)
{
    EiTerm t;
    t.ref("cnode@host", 1, {n, 0, 0});
    return t.str();
}

std::string encoded_atom(std::string_view text)
{
    EiTerm t;
    t.atom(text);
    return t.str();
}

// Built on first use, inside a test: EiTerm reports failures through Catch, which needs a running test.
const std::string& local_pid()
{
    static const std::string pid = encoded_pid("cnode@host", 1);
    return pid;
}
const std::string& remote_pid()
{
    static const std::string pid = encoded_pid("target@host", 99);
    return pid;
}
const std::string& monitor_ref()
{
    static const std::string ref = encoded_ref(4242);
    return ref;
}

std::string message_term()
{
    EiTerm t;
    t.tuple(2).atom("hello").binary("world");
    return t.str();
}

// A control tuple written by hand, for shapes the write_* functions never produce.
ControlBuilder tuple_of(int op, std::vector<std::string> elements)
{
    return [op, elements = std::move(elements)](TermWriter& w) {
        w.tuple(elements.size() + 1);
        w.integer(op);
        for (const auto& e : elements) {
            w.raw(e);
        }
    };
}

} // namespace

TEST_CASE("carries_message is true exactly for the send operations", "[control]")
{
    for (ControlOp op : {ControlOp::send, ControlOp::reg_send, ControlOp::send_tt, ControlOp::reg_send_tt,
                         ControlOp::send_sender, ControlOp::send_sender_tt, ControlOp::alias_send,
                         ControlOp::alias_send_tt}) {
        CHECK(carries_message(op));
    }
    for (ControlOp op : {ControlOp::link, ControlOp::exit, ControlOp::group_leader, ControlOp::exit2,
                         ControlOp::exit_tt, ControlOp::exit2_tt, ControlOp::monitor_p, ControlOp::demonitor_p,
                         ControlOp::monitor_p_exit, ControlOp::unlink_id, ControlOp::unlink_id_ack}) {
        CHECK_FALSE(carries_message(op));
    }
}

TEST_CASE("parse_packet reads back a SEND written by write_send", "[control]")
{
    const std::string message = message_term();
    const std::string packet = make_packet([](TermWriter& w) { write_send(w, remote_pid()); }, message);

    const auto c = parse_packet(packet);
    REQUIRE(c.has_value());
    CHECK(c->op == ControlOp::send);
    CHECK(c->to == remote_pid());
    CHECK(c->from.empty());
    CHECK(c->payload == "\x83" + message);
}

TEST_CASE("parse_packet reads back an ALIAS_SEND written by write_alias_send", "[control]")
{
    const std::string message = message_term();
    const std::string alias = encoded_ref(7);
    const std::string packet = make_packet([&](TermWriter& w) { write_alias_send(w, local_pid(), alias); }, message);

    const auto c = parse_packet(packet);
    REQUIRE(c.has_value());
    CHECK(c->op == ControlOp::alias_send);
    CHECK(c->from == local_pid());
    CHECK(c->to == alias);
    CHECK(c->payload == "\x83" + message);
    // {33, From, Alias} exactly: OTP drops a connection over a control tuple of another size.
    CHECK_FALSE(parse_packet(make_packet([&](TermWriter& w) {
                    w.tuple(2);
                    w.integer(33);
                    w.raw(alias);
                }, message)).has_value());
}

TEST_CASE("write_spawn_request writes erpc's SPAWN_REQUEST, which parse_packet reads back", "[control]")
{
    const dpool::protocol::NodeIdentity me("pool_1@127.0.0.1", 9, 77);
    const std::string gl = encoded_pid("target@127.0.0.1", 42);
    const std::string args = [] {
        EiTerm t;
        t.list(4).atom("ref").atom("erlang").atom("node").nil().nil();
        return t.str();
    }();
    const std::string packet = make_packet(
        [&](TermWriter& w) { write_spawn_request(w, me, 5, gl, "erpc", "execute_call", 4); }, args);

    // Exactly what OTP's spawn_request(Node, erpc, execute_call, Args, [monitor]) puts on the wire.
    ByteBuffer ref_buf;
    TermWriter ref_writer(ref_buf);
    me.write_ref(ref_writer, 5);
    const std::string expected = [&] {
        EiTerm t;
        t.version().tuple(6).integer(29).raw(std::string(ref_buf.view())).raw(std::string(me.self_pid())).raw(gl);
        t.tuple(3).atom("erpc").atom("execute_call").integer(4).list(1).atom("monitor").nil();
        return "p" + t.str() + "\x83" + args;
    }();
    CHECK(packet == expected);

    const auto c = parse_packet(packet);
    REQUIRE(c.has_value());
    CHECK(c->op == ControlOp::spawn_request);
    CHECK(c->ref == ref_buf.view());
    CHECK(c->from == me.self_pid());
    CHECK(c->payload == "\x83" + args);
}

TEST_CASE("parse_packet reads a SPAWN_REPLY: request id, parent and result", "[control]")
{
    const std::string ref = monitor_ref();
    const std::string child = encoded_pid("target@127.0.0.1", 43);
    for (const bool traced : {false, true}) {
        const std::string packet = make_packet([&](TermWriter& w) {
            w.tuple(traced ? 6 : 5);
            w.integer(traced ? 32 : 31);
            w.raw(ref);
            w.raw(local_pid());
            w.integer(2);
            w.raw(child);
            if (traced) {
                w.atom("token");
            }
        });
        const auto c = parse_packet(packet);
        REQUIRE(c.has_value());
        CHECK(c->op == (traced ? ControlOp::spawn_reply_tt : ControlOp::spawn_reply));
        CHECK(c->ref == ref);
        CHECK(c->to == local_pid());
        CHECK(c->reason == child);
        CHECK(c->payload.empty());
    }
    const std::string failed = make_packet([&](TermWriter& w) {
        w.tuple(5);
        w.integer(31);
        w.raw(ref);
        w.raw(local_pid());
        w.integer(0);
        w.atom("system_limit");
    });
    REQUIRE(parse_packet(failed).has_value());
    CHECK(parse_packet(failed)->reason == encoded_atom("system_limit"));
    // A SPAWN_REPLY carries no message.
    CHECK_FALSE(parse_packet(failed + "\x83\x6a").has_value());
}

TEST_CASE("parse_packet reads back a REG_SEND written by write_reg_send", "[control]")
{
    const std::string message = message_term();
    const std::string name = encoded_atom("net_kernel");
    const std::string packet = make_packet([&](TermWriter& w) { write_reg_send(w, local_pid(), name); }, message);

    const auto c = parse_packet(packet);
    REQUIRE(c.has_value());
    CHECK(c->op == ControlOp::reg_send);
    CHECK(c->from == local_pid());
    CHECK(c->to == name);
    CHECK(c->payload == "\x83" + message);
}

TEST_CASE("parse_packet reads back monitors and demonitors, by pid and by name", "[control]")
{
    const std::string by_name = encoded_atom("registered");
    for (const std::string& target : {remote_pid(), by_name}) {
        const std::string monitor_packet
            = make_packet([&](TermWriter& w) { write_monitor(w, local_pid(), target, monitor_ref()); });
        const auto monitor = parse_packet(monitor_packet);
        REQUIRE(monitor.has_value());
        CHECK(monitor->op == ControlOp::monitor_p);
        CHECK(monitor->from == local_pid());
        CHECK(monitor->to == target);
        CHECK(monitor->ref == monitor_ref());
        CHECK(monitor->payload.empty());

        const std::string demonitor_packet
            = make_packet([&](TermWriter& w) { write_demonitor(w, local_pid(), target, monitor_ref()); });
        const auto demonitor = parse_packet(demonitor_packet);
        REQUIRE(demonitor.has_value());
        CHECK(demonitor->op == ControlOp::demonitor_p);
        CHECK(demonitor->from == local_pid());
        CHECK(demonitor->to == target);
        CHECK(demonitor->ref == monitor_ref());
        CHECK(demonitor->payload.empty());
    }
}

TEST_CASE("write_monitor and write_demonitor mint the reference of the owning identity", "[control]")
{
    const dpool::protocol::NodeIdentity owner("cnode@host", 7, 0xABCD);
    const std::string owner_pid(owner.self_pid());
    const std::uint64_t counter = (std::uint64_t{1} << 40) + 5;
    for (const bool demonitor : {false, true}) {
        CAPTURE(demonitor);
        const std::string packet = make_packet([&](TermWriter& w) {
            if (demonitor) {
                write_demonitor(w, owner_pid, remote_pid(), owner, counter);
            } else {
                write_monitor(w, owner_pid, remote_pid(), owner, counter);
            }
        });
        const auto c = parse_packet(packet);
        REQUIRE(c.has_value());
        CHECK(c->op == (demonitor ? ControlOp::demonitor_p : ControlOp::monitor_p));
        CHECK(c->from == owner_pid);
        CHECK(c->to == remote_pid());

        ByteBuffer expected_ref;
        TermWriter ref_writer(expected_ref);
        owner.write_ref(ref_writer, counter);
        CHECK(c->ref == expected_ref.view());
        dpool::protocol::TermReader r(c->ref);
        const auto ref = r.ref();
        REQUIRE(ref.has_value());
        CHECK(owner.ref_number(*ref) == counter);
    }
}

TEST_CASE("parse_packet reads back a MONITOR_P_EXIT written by write_monitor_exit", "[control]")
{
    const std::string packet
        = make_packet([](TermWriter& w) { write_monitor_exit(w, remote_pid(), local_pid(), monitor_ref(), "noproc"); });
    const auto c = parse_packet(packet);
    REQUIRE(c.has_value());
    CHECK(c->op == ControlOp::monitor_p_exit);
    CHECK(c->from == remote_pid());
    CHECK(c->to == local_pid());
    CHECK(c->ref == monitor_ref());
    CHECK(c->reason == encoded_atom("noproc"));
    CHECK(c->payload.empty());
}

TEST_CASE("parse_packet reads links, exits and passes unused operations up", "[control]")
{
    const std::string reason = encoded_atom("killed");
    SECTION("LINK")
    {
        const std::string packet = make_packet(tuple_of(1, {remote_pid(), local_pid()}));
        const auto c = parse_packet(packet);
        REQUIRE(c.has_value());
        CHECK(c->op == ControlOp::link);
        CHECK(c->from == remote_pid());
        CHECK(c->to == local_pid());
    }
    SECTION("EXIT")
    {
        const std::string packet = make_packet(tuple_of(3, {remote_pid(), local_pid(), reason}));
        const auto c = parse_packet(packet);
        REQUIRE(c.has_value());
        CHECK(c->op == ControlOp::exit);
        CHECK(c->from == remote_pid());
        CHECK(c->to == local_pid());
        CHECK(c->reason == reason);
    }
    SECTION("GROUP_LEADER: operation only")
    {
        const std::string packet = make_packet(tuple_of(7, {remote_pid(), local_pid()}));
        const auto c = parse_packet(packet);
        REQUIRE(c.has_value());
        CHECK(c->op == ControlOp::group_leader);
        CHECK(c->from.empty());
        CHECK(c->to.empty());
    }
    SECTION("SEND_SENDER carries its sender and a message")
    {
        const std::string message = message_term();
        const std::string packet = make_packet(tuple_of(22, {remote_pid(), local_pid()}), message);
        const auto c = parse_packet(packet);
        REQUIRE(c.has_value());
        CHECK(c->op == ControlOp::send_sender);
        CHECK(c->from == remote_pid());
        CHECK(c->to == local_pid());
        CHECK(c->payload == "\x83" + message);
    }
}

TEST_CASE("parse_packet rejects packets that are not pass-through packets", "[control]")
{
    const std::string valid
        = make_packet([](TermWriter& w) { write_monitor(w, local_pid(), remote_pid(), monitor_ref()); });
    REQUIRE(parse_packet(valid).has_value());

    CHECK_FALSE(parse_packet("").has_value());
    CHECK_FALSE(parse_packet("p").has_value());
    CHECK_FALSE(parse_packet("q" + valid.substr(1)).has_value());
    CHECK_FALSE(parse_packet(valid.substr(1)).has_value()); // no type byte at all
    CHECK_FALSE(parse_packet("p" + valid.substr(2)).has_value()); // no version byte
}

TEST_CASE("parse_packet rejects every truncation of a valid packet", "[control]")
{
    const std::string message = message_term();
    const std::string name = encoded_atom("name");
    const std::string packets[] = {
        make_packet([](TermWriter& w) { write_send(w, remote_pid()); }, message),
        make_packet([&](TermWriter& w) { write_reg_send(w, local_pid(), name); }, message),
        make_packet([](TermWriter& w) { write_monitor(w, local_pid(), remote_pid(), monitor_ref()); }),
        make_packet([](TermWriter& w) { write_demonitor(w, local_pid(), remote_pid(), monitor_ref()); }),
        make_packet([](TermWriter& w) { write_monitor_exit(w, remote_pid(), local_pid(), monitor_ref(), "normal"); }),
    };
    for (const auto& packet : packets) {
        REQUIRE(parse_packet(packet).has_value());
        for (std::size_t len = 0; len < packet.size(); ++len) {
            CAPTURE(len);
            const dpool::test::ExactCopy cut(std::string_view(packet).substr(0, len));
            REQUIRE_FALSE(parse_packet(cut.view()).has_value());
        }
    }
}

TEST_CASE("parse_packet rejects bytes after a control without message", "[control]")
{
    const std::string monitor
        = make_packet([](TermWriter& w) { write_monitor(w, local_pid(), remote_pid(), monitor_ref()); });
    CHECK_FALSE(parse_packet(monitor + "x").has_value());
    CHECK_FALSE(parse_packet(monitor + "\x83" + message_term()).has_value());
}

TEST_CASE("parse_packet rejects a message that is not exactly one term", "[control]")
{
    const auto send = [](TermWriter& w) { write_send(w, remote_pid()); };
    const std::string message = message_term();
    CHECK(parse_packet(make_packet(send, message)).has_value());

    CHECK_FALSE(parse_packet(make_packet(send)).has_value()); // no message
    CHECK_FALSE(parse_packet(make_packet(send, message + message)).has_value()); // two terms
    CHECK_FALSE(parse_packet(make_packet(send, message + "\x6a")).has_value()); // a term and a byte
    CHECK_FALSE(parse_packet(make_packet(send, message.substr(0, 5))).has_value()); // part of a term
    CHECK_FALSE(parse_packet(make_packet(send) + message).has_value()); // no version byte
    CHECK_FALSE(parse_packet(make_packet(send, "\x83" + message)).has_value()); // two version bytes
}

TEST_CASE("parse_packet rejects control tuples of the wrong shape", "[control]")
{
    const std::string message = message_term();
    const std::string unused = encoded_atom("");
    const std::string reason = encoded_atom("normal");

    SECTION("known operations with the wrong arity")
    {
        CHECK_FALSE(parse_packet(make_packet(tuple_of(2, {unused}), message)).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(2, {unused, remote_pid(), remote_pid()}), message)).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(6, {local_pid(), remote_pid()}), message)).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(19, {local_pid(), remote_pid()}))).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(20, {local_pid(), remote_pid(), monitor_ref(), monitor_ref()})))
                        .has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(21, {remote_pid(), local_pid(), monitor_ref()}))).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(1, {remote_pid()}))).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(3, {remote_pid(), local_pid()}))).has_value());
    }
    SECTION("a tuple of the operation alone, or of more than seven elements")
    {
        CHECK_FALSE(parse_packet(make_packet(tuple_of(7, {}))).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(7, {reason, reason, reason, reason, reason, reason, reason})))
                        .has_value());
    }
    SECTION("an operation that is not a small positive integer")
    {
        CHECK_FALSE(parse_packet(make_packet(tuple_of(0, {local_pid(), remote_pid()}))).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(256, {local_pid(), remote_pid()}))).has_value());
        CHECK_FALSE(parse_packet(make_packet(tuple_of(-19, {local_pid(), remote_pid(), monitor_ref()}))).has_value());
        CHECK_FALSE(parse_packet(make_packet([&](TermWriter& w) {
                        w.tuple(4);
                        w.atom("monitor");
                        w.raw(local_pid());
                        w.raw(remote_pid());
                        w.raw(monitor_ref());
                    })).has_value());
    }
    SECTION("a control that is not a tuple")
    {
        CHECK_FALSE(parse_packet(make_packet([](TermWriter& w) { w.integer(19); })).has_value());
        CHECK_FALSE(parse_packet(make_packet([](TermWriter& w) {
                        w.list(1);
                        w.integer(19);
                        w.nil();
                    })).has_value());
    }
}
