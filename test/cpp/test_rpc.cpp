#include "test_support.hpp"

#include "protocol/control.hpp"
#include "protocol/rpc.hpp"
#include "protocol/term_reader.hpp"
#include "util/byte_buffer.hpp"

using dpool::ByteBuffer;
using dpool::protocol::CallExit;
using dpool::protocol::decode_call_exit;
using dpool::test::EiTerm;
using dpool::test::small_atom_utf8_ext;

namespace {

// {Ref, Kind, Value...} as erpc:execute_call/4 exits, with the request reference `ref`.
std::string exit_reason(const std::string& ref, const char* kind, std::initializer_list<const char*> atoms)
{
    EiTerm e;
    e.tuple(static_cast<long>(2 + atoms.size())).raw(ref).atom(kind);
    for (const char* a : atoms) {
        e.atom(a);
    }
    return e.str();
}

std::string reference(unsigned id)
{
    EiTerm e;
    e.ref("p@127.0.0.1", 5, {id, 0, 0});
    return e.str();
}


} // namespace

TEST_CASE("decode_call_exit reads each of erpc:execute_call's exits", "[rpc]")
{
    const std::string ref = reference(7);
    struct Case {
        const char* kind;
        std::initializer_list<const char*> parts;
        CallExit::Kind expected;
        const char* value;
    };
    for (const auto& c : {Case{"return", {"v"}, CallExit::Kind::returned, "v"},
                          Case{"throw", {"t"}, CallExit::Kind::thrown, "t"},
                          Case{"exit", {"x"}, CallExit::Kind::exited, "x"},
                          Case{"error", {"badarith"}, CallExit::Kind::errored, "badarith"},
                          Case{"error", {"badarith", "stack"}, CallExit::Kind::raised, "badarith"}}) {
        const std::string reason = exit_reason(ref, c.kind, c.parts);
        const CallExit exit = decode_call_exit(reason);
        CHECK(exit.kind == c.expected);
        CHECK(exit.value == small_atom_utf8_ext(c.value));
        CHECK(exit.ref.encoded == ref);
        CHECK(exit.stack == (c.expected == CallExit::Kind::raised ? small_atom_utf8_ext("stack") : std::string()));
    }
}

TEST_CASE("decode_call_exit unwraps {erpc, Reason}: the call could not be made", "[rpc]")
{
    const std::string ref = reference(8);
    EiTerm reason;
    reason.tuple(3).raw(ref).atom("error").tuple(2).atom("erpc").atom("noconnection");
    const CallExit exit = decode_call_exit(reason.view());
    CHECK(exit.kind == CallExit::Kind::not_called);
    CHECK(exit.value == small_atom_utf8_ext("noconnection"));

    // {erpc, A, B} is not the wrapper: the error as it came.
    EiTerm three;
    three.tuple(3).raw(ref).atom("error").tuple(3).atom("erpc").atom("a").atom("b");
    CHECK(decode_call_exit(three.view()).kind == CallExit::Kind::errored);
}

TEST_CASE("decode_call_exit takes anything else as an exit from outside, whole", "[rpc]")
{
    const std::string ref = reference(9);
    std::vector<std::string> reasons;
    reasons.push_back(small_atom_utf8_ext("killed"));
    reasons.push_back(exit_reason(ref, "return", {}));            // too short
    reasons.push_back(exit_reason(ref, "return", {"a", "b"}));    // arity 4 but not error
    reasons.push_back(exit_reason(ref, "bogus", {"a"}));          // unknown kind
    reasons.push_back(exit_reason(small_atom_utf8_ext("noref"), "return", {"a"})); // no reference
    EiTerm list;
    list.list(1).atom("a").nil();
    reasons.push_back(list.str());
    for (const auto& reason : reasons) {
        const CallExit exit = decode_call_exit(reason);
        CHECK(exit.kind == CallExit::Kind::other);
        CHECK(exit.value == reason);
    }
    // A truncated term is not read past its end.
    const std::string whole = exit_reason(ref, "return", {"value"});
    const dpool::test::ExactCopy cut(std::string_view(whole).substr(0, whole.size() - 2));
    CHECK(decode_call_exit(cut.view()).kind == CallExit::Kind::other);
}

TEST_CASE("write_call_message_head and write_execute_call_head write what gen_server and erpc send", "[rpc]")
{
    const dpool::protocol::NodeIdentity me("cnode_0@127.0.0.1", 9, 3);
    const std::string name = small_atom_utf8_ext("server");

    ByteBuffer call;
    dpool::protocol::TermWriter w(call);
    w.version();
    dpool::protocol::write_call_message_head(w, me, {true, name}, 42);
    w.atom("request");
    const auto packet = "p" + std::string(call.view());
    const auto control = dpool::protocol::parse_packet(packet);
    REQUIRE(control);
    CHECK(control->op == dpool::protocol::ControlOp::reg_send);
    CHECK(control->to == name);
    dpool::protocol::TermReader r(control->payload);
    REQUIRE(r.version());
    CHECK(r.tuple_header() == 3u);
    CHECK(r.atom() == std::optional<std::string_view>("$gen_call"));
    CHECK(r.tuple_header() == 2u);
    CHECK(r.pid().has_value());
    const auto ref = r.ref();
    REQUIRE(ref);
    CHECK(me.ref_number(*ref) == std::optional<std::uint64_t>(42));
    CHECK(r.atom() == std::optional<std::string_view>("request"));
    CHECK(r.at_end());

    ByteBuffer spawn;
    dpool::protocol::TermWriter s(spawn);
    s.version();
    dpool::protocol::write_execute_call_head(s, me, 43, me.self_pid());
    s.atom("m");
    s.atom("f");
    s.nil();
    dpool::protocol::write_execute_call_tail(s);
    // Kept in a variable: the parsed control's payload is a view into the packet.
    const auto spawn_packet = "p" + std::string(spawn.view());
    const auto spawned = dpool::protocol::parse_packet(spawn_packet);
    REQUIRE(spawned);
    CHECK(spawned->op == dpool::protocol::ControlOp::spawn_request);
    dpool::protocol::TermReader args(spawned->payload);
    REQUIRE(args.version());
    CHECK(args.list_header() == 4u);
    const auto args_ref = args.ref();
    REQUIRE(args_ref);
    CHECK(me.ref_number(*args_ref) == std::optional<std::uint64_t>(43));
    CHECK(args.atom() == std::optional<std::string_view>("m"));
    CHECK(args.atom() == std::optional<std::string_view>("f"));
    CHECK(args.nil()); // A
    CHECK(args.nil()); // the argument list's tail
    CHECK(args.at_end());
}
