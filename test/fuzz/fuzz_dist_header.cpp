// Fuzz target: what a distribution link reads after the handshake, as transport::DistLink reads it from a peer
// that announced the atom cache (every outbound link to a target): the framing (protocol::next_frame: 4-byte
// lengths, ticks), distribution headers with their atom cache references (protocol::normalize_packet, one
// AtomCacheIn for the whole input, so entries defined by one packet are used by the next), and the control
// message of each rewritten packet (protocol::parse_packet). Input: the byte stream of one link (in the corpus,
// links recorded with --record-packets). Checked: a rewritten packet is a pass-through packet of one or two
// well-formed terms; a malformed packet ends the stream, as it closes the link.

#include "fuzz_support.hpp"
#include "protocol/control.hpp"
#include "protocol/dist_header.hpp"
#include "protocol/framing.hpp"
#include "protocol/term_reader.hpp"
#include "util/byte_buffer.hpp"

namespace {

using dpool::protocol::Frame;

// Small enough that the fuzzer also meets the limit; recorded links stay far below it.
constexpr std::size_t kMaxPacketBytes = 1 << 20;

// 'p', 131, a term, and 131 and a term again when there is a message.
bool is_pass_through(std::string_view packet)
{
    dpool::protocol::TermReader r(packet.substr(1));
    if (packet.empty() || packet.front() != dpool::protocol::kPassThrough || !r.version() || !r.skip()) {
        return false;
    }
    return r.at_end() || (r.version() && r.skip() && r.at_end());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    std::string_view in = dpool::fuzz::bytes(data, size);
    dpool::protocol::AtomCacheIn cache;
    dpool::ByteBuffer normalized;
    while (true) {
        const Frame frame = dpool::protocol::next_frame(in, kMaxPacketBytes);
        if (frame.kind == Frame::Kind::incomplete || frame.kind == Frame::Kind::too_large) {
            break;
        }
        DPOOL_FUZZ_CHECK(frame.size > 0 && frame.size <= in.size());
        in.remove_prefix(frame.size);
        if (frame.kind == Frame::Kind::tick) {
            continue;
        }
        DPOOL_FUZZ_CHECK(!frame.packet.empty() && frame.packet.size() + dpool::protocol::kFrameLengthBytes == frame.size);
        std::string_view packet = frame.packet;
        if (packet.front() != dpool::protocol::kPassThrough) {
            normalized.clear();
            // As DistLink does: a packet that its cache references would make longer than the bound is refused.
            const auto result = dpool::protocol::normalize_packet(packet, cache, normalized, kMaxPacketBytes);
            if (result != dpool::protocol::Normalized::ok) {
                DPOOL_FUZZ_CHECK(normalized.empty());
                break;
            }
            DPOOL_FUZZ_CHECK(normalized.size() <= kMaxPacketBytes);
            packet = normalized.view();
            DPOOL_FUZZ_CHECK(is_pass_through(packet));
        }
        (void)dpool::protocol::parse_packet(packet);
    }
    return 0;
}
