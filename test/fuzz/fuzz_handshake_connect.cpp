// Fuzz target: the connecting side of the distribution handshake (a pooled connection reaching a target), which
// reads what a target, not yet authenticated, sends: its status, its challenge, then its answer to ours
// (transport/handshake_messages.cpp, read in the order of transport/handshake.cpp's connect_handshake). Input:
// the target's byte stream, messages framed as on the wire (in the corpus, real targets' handshakes recorded
// with --record-packets). Checked: a parsed message is exactly its body (built again from what was parsed, it
// gives the same bytes), names are node names within an atom's length, and the ack is checked against our
// challenge's digest.

#include "fuzz_support.hpp"
#include "handshake_stream.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace dpool::fuzz;
    std::string_view in = bytes(data, size);
    const auto status_body = next_body(in);
    if (!status_body) {
        return 0;
    }
    const auto status = hs::parse_status(*status_body);
    if (!status) {
        return 0;
    }
    DPOOL_FUZZ_CHECK(hs::status_body(*status) == *status_body);
    if (*status != "ok" && *status != "ok_simultaneous") {
        return 0;
    }
    const auto challenge_body = next_body(in);
    if (!challenge_body) {
        return 0;
    }
    const auto challenge = hs::parse_challenge(*challenge_body);
    if (!challenge) {
        return 0;
    }
    DPOOL_FUZZ_CHECK(hs::challenge_body(*challenge) == *challenge_body);
    DPOOL_FUZZ_CHECK(is_node_name(challenge->name));
    if (!hs::has_mandatory_flags(challenge->flags)) {
        return 0;
    }
    const auto ack_body = next_body(in);
    if (!ack_body) {
        return 0;
    }
    const auto ack = hs::parse_challenge_ack(*ack_body);
    if (!ack) {
        return 0;
    }
    DPOOL_FUZZ_CHECK(hs::challenge_ack_body(*ack) == *ack_body);
    const auto expected = hs::challenge_digest("fuzz_cookie", 0x5eed1234);
    DPOOL_FUZZ_CHECK(hs::same_digest(*ack, expected) == (*ack == expected));
    return 0;
}
