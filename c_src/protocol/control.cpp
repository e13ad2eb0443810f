#include "protocol/control.hpp"

#include "protocol/framing.hpp"

namespace dpool::protocol {

std::optional<std::size_t> trailing_binary_at(std::string_view prefix, std::size_t packet_size)
{
    if (prefix.empty() || prefix.front() != kPassThrough) {
        return std::nullopt;
    }
    TermReader r(prefix.substr(1));
    if (!r.version() || !r.skip() || !r.version()) {
        return std::nullopt;
    }
    while (true) {
        const auto tag = r.peek_tag();
        if (tag == tag::small_tuple || tag == tag::large_tuple) {
            const auto arity = r.tuple_header();
            if (!arity || *arity == 0) {
                return std::nullopt;
            }
            for (std::uint32_t i = 1; i < *arity; ++i) {
                if (!r.skip()) {
                    return std::nullopt;
                }
            }
            continue;
        }
        const std::string_view rest = r.rest();
        if (tag != tag::binary || rest.size() < kBinaryHeaderBytes) {
            return std::nullopt;
        }
        const std::size_t length = frame_length(rest.data() + 1); // 4 bytes big-endian, as a frame's length
        const std::size_t at = prefix.size() - rest.size();
        if (at + kBinaryHeaderBytes + length != packet_size) {
            return std::nullopt;
        }
        return at;
    }
}

bool carries_message(ControlOp op)
{
    switch (op) {
    case ControlOp::send:
    case ControlOp::reg_send:
    case ControlOp::send_tt:
    case ControlOp::reg_send_tt:
    case ControlOp::send_sender:
    case ControlOp::send_sender_tt:
    case ControlOp::alias_send:
    case ControlOp::alias_send_tt:
    case ControlOp::spawn_request:
    case ControlOp::spawn_request_tt:
        return true;
    default:
        return false;
    }
}

std::optional<Control> parse_packet(std::string_view packet)
{
    if (packet.empty() || packet.front() != kPassThrough) {
        return std::nullopt;
    }
    TermReader r(packet.substr(1));
    if (!r.version()) {
        return std::nullopt;
    }
    const auto arity = r.tuple_header();
    const auto op_number = r.integer();
    if (!arity || *arity < 2 || !op_number || *op_number < 1 || *op_number > 255) {
        return std::nullopt;
    }
    Control c;
    c.op = static_cast<ControlOp>(*op_number);
    // The elements after the operation, in order; each stays encoded.
    std::string_view elements[6];
    const std::uint32_t rest = *arity - 1;
    if (rest > 6) {
        return std::nullopt;
    }
    for (std::uint32_t i = 0; i < rest; ++i) {
        const auto term = r.skip();
        if (!term) {
            return std::nullopt;
        }
        elements[i] = *term;
    }
    auto need = [&](std::uint32_t n) { return rest == n; };
    switch (c.op) {
    case ControlOp::link:
    case ControlOp::send_sender:
    case ControlOp::alias_send: // {33, From, Alias}
        if (!need(2)) {
            return std::nullopt;
        }
        c.from = elements[0];
        c.to = elements[1];
        break;
    case ControlOp::send:
        if (!need(2)) {
            return std::nullopt;
        }
        c.to = elements[1];
        break;
    case ControlOp::send_tt:
        if (!need(3)) {
            return std::nullopt;
        }
        c.to = elements[1];
        break;
    case ControlOp::send_sender_tt:
    case ControlOp::alias_send_tt:
        if (!need(3)) {
            return std::nullopt;
        }
        c.from = elements[0];
        c.to = elements[1];
        break;
    case ControlOp::reg_send:
    case ControlOp::reg_send_tt:
        if (!(c.op == ControlOp::reg_send ? need(3) : need(4))) {
            return std::nullopt;
        }
        c.from = elements[0];
        c.to = elements[2];
        break;
    case ControlOp::exit:
    case ControlOp::exit2:
        if (!need(3)) {
            return std::nullopt;
        }
        c.from = elements[0];
        c.to = elements[1];
        c.reason = elements[2];
        break;
    case ControlOp::monitor_p:
    case ControlOp::demonitor_p:
        if (!need(3)) {
            return std::nullopt;
        }
        c.from = elements[0];
        c.to = elements[1];
        c.ref = elements[2];
        break;
    case ControlOp::monitor_p_exit:
        if (!need(4)) {
            return std::nullopt;
        }
        c.from = elements[0];
        c.to = elements[1];
        c.ref = elements[2];
        c.reason = elements[3];
        break;
    case ControlOp::spawn_request:
    case ControlOp::spawn_request_tt:
        // {29, ReqId, From, GroupLeader, MFA, Opts} (+ Token): passed up with the request id and the sender.
        if (!(c.op == ControlOp::spawn_request ? need(5) : need(6))) {
            return std::nullopt;
        }
        c.ref = elements[0];
        c.from = elements[1];
        break;
    case ControlOp::spawn_reply:
    case ControlOp::spawn_reply_tt:
        // {31, ReqId, To, Flags, Result} (+ Token): Result is the new process, or an atom saying why not.
        if (!(c.op == ControlOp::spawn_reply ? need(4) : need(5))) {
            return std::nullopt;
        }
        c.ref = elements[0];
        c.to = elements[1];
        c.reason = elements[3];
        break;
    default:
        // Operations this C-node has no use for (group leader, traced exits, unlink ids) are passed up
        // with their operation only.
        break;
    }
    if (carries_message(c.op)) {
        const auto message = r.rest();
        TermReader m(message);
        if (!m.version() || !is_single_term(m.rest())) {
            return std::nullopt;
        }
        c.payload = message;
    } else if (!r.at_end()) {
        return std::nullopt;
    }
    return c;
}

void write_send(TermWriter& out, std::string_view to_pid)
{
    out.tuple(3);
    out.integer(static_cast<int>(ControlOp::send));
    out.atom("");
    out.raw(to_pid);
}

void write_alias_send(TermWriter& out, std::string_view from_pid, std::string_view alias)
{
    out.tuple(3);
    out.integer(static_cast<int>(ControlOp::alias_send));
    out.raw(from_pid);
    out.raw(alias);
}

void write_reg_send(TermWriter& out, std::string_view from_pid, std::string_view to_name_atom)
{
    out.tuple(4);
    out.integer(static_cast<int>(ControlOp::reg_send));
    out.raw(from_pid);
    out.atom("");
    out.raw(to_name_atom);
}

namespace {

// {Op, FromPid, ToProc, Ref}, the shape of both MONITOR_P and DEMONITOR_P.
template <class WriteRef>
void write_monitor_op(TermWriter& out, ControlOp op, std::string_view from_pid, std::string_view to_proc,
                      WriteRef&& write_ref)
{
    out.tuple(4);
    out.integer(static_cast<int>(op));
    out.raw(from_pid);
    out.raw(to_proc);
    write_ref();
}

} // namespace

void write_monitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, std::string_view ref)
{
    write_monitor_op(out, ControlOp::monitor_p, from_pid, to_proc, [&] { out.raw(ref); });
}

void write_demonitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, std::string_view ref)
{
    write_monitor_op(out, ControlOp::demonitor_p, from_pid, to_proc, [&] { out.raw(ref); });
}

void write_monitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, const NodeIdentity& owner,
                   std::uint64_t ref)
{
    write_monitor_op(out, ControlOp::monitor_p, from_pid, to_proc, [&] { owner.write_ref(out, ref); });
}

void write_demonitor(TermWriter& out, std::string_view from_pid, std::string_view to_proc, const NodeIdentity& owner,
                     std::uint64_t ref)
{
    write_monitor_op(out, ControlOp::demonitor_p, from_pid, to_proc, [&] { owner.write_ref(out, ref); });
}

void write_monitor_exit(TermWriter& out, std::string_view from_proc, std::string_view to_pid, std::string_view ref,
                        std::string_view reason_atom)
{
    out.tuple(5);
    out.integer(static_cast<int>(ControlOp::monitor_p_exit));
    out.raw(from_proc);
    out.raw(to_pid);
    out.raw(ref);
    out.atom(reason_atom);
}

void write_spawn_request(TermWriter& out, const NodeIdentity& owner, std::uint64_t ref,
                         std::string_view group_leader, std::string_view module, std::string_view function,
                         std::uint32_t arity)
{
    out.tuple(6);
    out.integer(static_cast<int>(ControlOp::spawn_request));
    owner.write_ref(out, ref);
    out.raw(owner.self_pid());
    out.raw(group_leader);
    out.tuple(3);
    out.atom(module);
    out.atom(function);
    out.integer(arity);
    out.list(1);
    out.atom("monitor");
    out.nil();
}

} // namespace dpool::protocol
