#include "protocol/rpc.hpp"

#include "protocol/control.hpp"

namespace dpool::protocol {

void write_call_monitor(TermWriter& w, const NodeIdentity& me, const Destination& to, std::uint64_t ref)
{
    write_monitor(w, me.self_pid(), to.encoded, me, ref);
}

void write_call_message_head(TermWriter& w, const NodeIdentity& me, const Destination& to, std::uint64_t ref)
{
    if (to.is_name) {
        write_reg_send(w, me.self_pid(), to.encoded);
    } else {
        write_send(w, to.encoded);
    }
    w.version();
    w.tuple(3);
    w.atom("$gen_call");
    w.tuple(2);
    w.raw(me.self_pid());
    me.write_ref(w, ref);
}

void write_execute_call_head(TermWriter& w, const NodeIdentity& me, std::uint64_t ref,
                             std::string_view group_leader)
{
    write_spawn_request(w, me, ref, group_leader, "erpc", "execute_call", 4);
    w.version();
    w.list(4);
    me.write_ref(w, ref);
}

void write_execute_call_tail(TermWriter& w) { w.nil(); }

CallExit decode_call_exit(std::string_view reason)
{
    TermReader r(reason);
    const auto arity = r.tuple_header();
    if (arity != 3u && arity != 4u) {
        return CallExit::from_outside(reason);
    }
    const auto ref = r.ref();
    const auto kind = ref ? r.atom() : std::nullopt;
    const auto first = kind ? r.skip() : std::nullopt;
    const auto second = first && arity == 4u ? r.skip() : std::nullopt;
    if (!first || (arity == 4u && !second) || !r.at_end()) {
        return CallExit::from_outside(reason);
    }
    CallExit exit{CallExit::Kind::other, {}, *first, {}};
    if (arity == 4u) {
        if (*kind != "error") {
            return CallExit::from_outside(reason);
        }
        exit.kind = CallExit::Kind::raised;
        exit.stack = *second;
    } else if (*kind == "return") {
        exit.kind = CallExit::Kind::returned;
    } else if (*kind == "throw") {
        exit.kind = CallExit::Kind::thrown;
    } else if (*kind == "exit") {
        exit.kind = CallExit::Kind::exited;
    } else if (*kind == "error") {
        exit.kind = CallExit::Kind::errored;
        TermReader e(*first);
        if (e.tuple_header() == 2u && e.atom() == std::optional<std::string_view>("erpc")) {
            if (const auto inner = e.skip(); inner && e.at_end()) {
                exit.kind = CallExit::Kind::not_called;
                exit.value = *inner;
            }
        }
    } else {
        return CallExit::from_outside(reason);
    }
    exit.ref = *ref;
    return exit;
}

} // namespace dpool::protocol
