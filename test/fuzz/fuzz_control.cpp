// Fuzz target: protocol::parse_packet, the control message of a pass-through packet, and what the C-node reads
// next from its parts: on a caller's link the name a REG_SEND goes to and the reference of a MONITOR_P_EXIT
// (api::Service), on a target's link the reference and reason of a MONITOR_P_EXIT (protocol::decode_call_exit),
// the result of a SPAWN_REPLY and the {Ref, Reply} message of an answer (pool::Pool). Input: one packet, 'p'
// included (in the corpus, every packet of every recorded link, rewritten from the atom-cache form). Checked:
// every part is a view into the packet, one well-formed term, and a payload comes exactly with the operations
// that carry one. Also protocol::trailing_binary_at, with the input as the prefix of a packet of its own size and
// of longer ones (a big packet whose tail is in pipes): a binary it finds has its tag and header within the
// prefix and reaches exactly the packet's end.

#include "fuzz_support.hpp"
#include "protocol/control.hpp"
#include "protocol/framing.hpp"
#include "protocol/node_identity.hpp"
#include "protocol/rpc.hpp"
#include "protocol/term_reader.hpp"

using dpool::fuzz::within;
using dpool::protocol::TermReader;

namespace {

void check_part(std::string_view part, std::string_view packet)
{
    DPOOL_FUZZ_CHECK(within(part, packet));
    DPOOL_FUZZ_CHECK(part.empty() || dpool::protocol::is_single_term(part));
}

// The identity whose references the C-node recognises: what ref_number() does with hostile references.
const dpool::protocol::NodeIdentity& identity()
{
    static const dpool::protocol::NodeIdentity me("dpool_fuzz@127.0.0.1", 7, 0x5eed);
    return me;
}

void read_ref(std::string_view encoded)
{
    TermReader r(encoded);
    if (const auto ref = r.ref()) {
        (void)identity().ref_number(*ref);
    }
}

// {Ref, Reply}: the answer to a gen_server call made over a pooled connection.
void read_reply(std::string_view message)
{
    TermReader r(message);
    if (r.version() && r.tuple_header() == 2u) {
        read_ref(r.rest());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view packet = dpool::fuzz::bytes(data, size);
    for (const std::size_t more : {std::size_t{0}, std::size_t{1}, std::size_t{1} << 20}) {
        if (const auto at = dpool::protocol::trailing_binary_at(packet, packet.size() + more)) {
            using dpool::protocol::kBinaryHeaderBytes;
            DPOOL_FUZZ_CHECK(*at + kBinaryHeaderBytes <= packet.size());
            DPOOL_FUZZ_CHECK(packet[*at] == static_cast<char>(dpool::protocol::tag::binary));
            const std::size_t length = dpool::protocol::frame_length(packet.data() + *at + 1);
            DPOOL_FUZZ_CHECK(*at + kBinaryHeaderBytes + length == packet.size() + more);
        }
    }
    const auto control = dpool::protocol::parse_packet(packet);
    if (!control) {
        return 0;
    }
    check_part(control->from, packet);
    check_part(control->to, packet);
    check_part(control->ref, packet);
    check_part(control->reason, packet);
    DPOOL_FUZZ_CHECK(within(control->payload, packet));
    DPOOL_FUZZ_CHECK(control->payload.empty() != dpool::protocol::carries_message(control->op));

    TermReader to(control->to);
    (void)to.atom();
    read_ref(control->ref);
    using Op = dpool::protocol::ControlOp;
    switch (control->op) {
    case Op::monitor_p_exit: {
        const auto exit = dpool::protocol::decode_call_exit(control->reason);
        DPOOL_FUZZ_CHECK(within(exit.value, packet) && within(exit.stack, packet));
        if (exit.kind != dpool::protocol::CallExit::Kind::other) {
            (void)identity().ref_number(exit.ref);
        }
        break;
    }
    case Op::spawn_reply:
    case Op::spawn_reply_tt: {
        TermReader result(control->reason);
        (void)result.atom();
        break;
    }
    default:
        if (dpool::protocol::carries_message(control->op)) {
            read_reply(control->payload);
        }
        break;
    }
    return 0;
}
