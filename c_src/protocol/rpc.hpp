#pragma once

#include <cstdint>
#include <string_view>

#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"

// What a pooled connection says to a target, as OTP's own callers say it: gen_server:call's monitor and
// '$gen_call' message, erpc's SPAWN_REQUEST of erpc:execute_call/4, and the decoding of that process's exit.
// Terms only: the caller of these writes each control message into a packet of its own.
namespace dpool::protocol {

// Where a message goes on the target: a registered name (an atom) or a pid; `encoded` is the term as it came.
struct Destination {
    bool is_name = false;
    std::string_view encoded;
};

// Encoded atoms of the target's own processes: net_kernel (a health check is net_adm:ping's request to it)
// and rex (calls go there on a target that cannot spawn for us, or whose `user` is not known yet).
inline constexpr std::string_view kNetKernel{"\x77\x0a" "net_kernel", 12};
inline constexpr std::string_view kRex{"\x77\x03" "rex", 5};

// The first packet of a gen_server call: MONITOR_P from `me`'s process to the server, reference `ref`.
void write_call_monitor(TermWriter& w, const NodeIdentity& me, const Destination& to, std::uint64_t ref);

// The second packet, up to the request: the SEND / REG_SEND control term, then the message
// {'$gen_call', {Me, Ref}, _} without its last element, which the caller writes next.
void write_call_message_head(TermWriter& w, const NodeIdentity& me, const Destination& to, std::uint64_t ref);

// SPAWN_REQUEST of erpc:execute_call(Ref, M, F, A), monitored, with the request id `ref` as Ref and
// `group_leader` (an encoded pid) as the new process's group leader; then the argument list up to M, which the
// caller writes (M, F and A as three terms) before write_execute_call_tail.
void write_execute_call_head(TermWriter& w, const NodeIdentity& me, std::uint64_t ref,
                             std::string_view group_leader);
void write_execute_call_tail(TermWriter& w);

// How a process spawned by write_execute_call_head ended, read from its exit reason (MONITOR_P_EXIT).
// erpc:execute_call(Ref, M, F, A) exits with {Ref, return, Value}, {Ref, throw, Value}, {Ref, exit, Reason},
// {Ref, error, {erpc, Reason}} (the call could not be made: M:F/A undefined, bad arguments), {Ref, error, Reason}
// or {Ref, error, Reason, Stack}; any other reason came from outside (a kill, noconnection...).
struct CallExit {
    enum class Kind : std::uint8_t {
        returned,   // value: the result
        thrown,     // value: what was thrown
        exited,     // value: the exit reason
        not_called, // value: the Reason of {erpc, Reason}
        errored,    // value: the error reason (no stack trace came with it)
        raised,     // value: the error reason, stack: its stack trace
        other,      // value: the whole exit reason
    };
    Kind kind = Kind::other;
    RefView ref; // erpc's Ref: the receiver checks it is its request's (NodeIdentity::ref_number)
    std::string_view value;
    std::string_view stack;

    // What a reason of erpc's shape is when its Ref is not the request's: an exit from outside.
    static CallExit from_outside(std::string_view reason) { return CallExit{Kind::other, {}, reason, {}}; }
};

// Pure: reads `reason` (an encoded term) and nothing else.
CallExit decode_call_exit(std::string_view reason);

} // namespace dpool::protocol
