#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"

namespace dpool::protocol {

// Distribution control message operations (erts/doc/src/erl_dist_protocol.xml, "Protocol between connected nodes").
enum class ControlOp : std::uint8_t {
    link = 1,
    send = 2,
    exit = 3,
    reg_send = 6,
    group_leader = 7,
    exit2 = 8,
    send_tt = 12,
    exit_tt = 13,
    reg_send_tt = 16,
    exit2_tt = 18,
    monitor_p = 19,
    demonitor_p = 20,
    monitor_p_exit = 21,
    send_sender = 22,
    send_sender_tt = 23,
    spawn_request = 29,
    spawn_request_tt = 30,
    spawn_reply = 31,
    spawn_reply_tt = 32,
    alias_send = 33,
    alias_send_tt = 34,
    unlink_id = 35,
    unlink_id_ack = 36,
};

// A decoded control message. Process identifiers, references and reasons stay encoded (views into the packet),
// because they are mostly copied into replies as they are.
struct Control {
    ControlOp op{};
    std::string_view from;   // pid (link, exit, reg_send, monitors, send_sender) or proc (monitor_p_exit)
    std::string_view to;     // pid, or atom for reg_send and monitors by name
    std::string_view ref;    // monitors, spawn requests and replies (the request id)
    std::string_view reason; // exits, monitor_p_exit; the result (a pid or an error atom) of spawn_reply
    // The message that follows the control term, version byte included; empty for messages without one.
    std::string_view payload;
};

// Splits a distribution packet ('p', control, optional message) into its parts. Packets that are not
// pass-through packets, or whose control term is malformed, give nullopt.
std::optional<Control> parse_packet(std::string_view packet);

bool carries_message(ControlOp op);

// Where the binary that ends a pass-through packet begins (its BINARY_EXT tag), when `prefix` holds the first
// bytes of a packet of `packet_size` bytes whose message ends with a binary reaching its last byte: the last
// element of the last element ... of the message is that binary, and every term before its 5-byte header lies
// within `prefix`. nullopt for any other shape, or a prefix too short to tell.
std::optional<std::size_t> trailing_binary_at(std::string_view prefix, std::size_t packet_size);
// A binary's header: its tag (BINARY_EXT) and its length, 4 bytes big-endian.
inline constexpr std::size_t kBinaryHeaderBytes = 5;

// Writers of control terms (without the packet prefix or version byte). Arguments are encoded terms.
void write_send(TermWriter& out, std::string_view to_pid);
// ALIAS_SEND: a message to the process that created `alias` (a reference), from `from_pid`.
void write_alias_send(TermWriter& out, std::string_view from_pid, std::string_view alias);
void write_reg_send(TermWriter& out, std::string_view from_pid, std::string_view to_name_atom);
void write_monitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, std::string_view ref);
void write_demonitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, std::string_view ref);
// The same, with the reference minted by `owner` (whose pid `from_pid` is) from `ref`.
void write_monitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, const NodeIdentity& owner,
                   std::uint64_t ref);
void write_demonitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, const NodeIdentity& owner,
                     std::uint64_t ref);
void write_monitor_exit(TermWriter& out, std::string_view from_proc, std::string_view to_pid, std::string_view ref,
                        std::string_view reason_atom);
// SPAWN_REQUEST {29, ReqId, From, GroupLeader, {Module, Function, Arity}, [monitor]}, from `owner`'s process
// with a request id minted from `ref`: the target spawns Module:Function/Arity (its arguments are the message
// that follows) and monitors it for us, so its exit reason comes back as the MONITOR_P_EXIT of that id,
// after a SPAWN_REPLY. `group_leader` is an encoded pid on the target.
void write_spawn_request(TermWriter& out, const NodeIdentity& owner, std::uint64_t ref,
                         std::string_view group_leader, std::string_view module, std::string_view function,
                         std::uint32_t arity);

// The pass-through packet type byte that starts every packet after the handshake (no atom cache).
inline constexpr char kPassThrough = 'p';

} // namespace dpool::protocol
