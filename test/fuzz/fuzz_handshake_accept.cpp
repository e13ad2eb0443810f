// Fuzz target: the accepting side of the distribution handshake (a caller reaching a lane), which reads what
// an unauthenticated peer sends: its name message, then its challenge reply (transport/handshake_messages.cpp,
// read in the order of transport/handshake.cpp's accept_handshake). Input: the peer's byte stream, messages
// framed as on the wire (in the corpus, real callers' handshakes recorded with --record-packets). Checked: a
// parsed message is exactly its body (built again from what was parsed, it gives the same bytes), names are
// node names within an atom's length, and a challenge reply is checked against our challenge's digest.

#include "fuzz_support.hpp"
#include "handshake_stream.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using namespace dpool::fuzz;
    std::string_view in = bytes(data, size);
    const auto name_body = next_body(in);
    if (!name_body) {
        return 0;
    }
    const auto name = hs::parse_name(*name_body);
    if (!name) {
        return 0;
    }
    DPOOL_FUZZ_CHECK(hs::name_body(*name) == *name_body);
    DPOOL_FUZZ_CHECK(is_node_name(name->name));
    DPOOL_FUZZ_CHECK(hs::expand_flags(name->flags) == (hs::expand_flags(hs::expand_flags(name->flags))));
    if (!hs::has_mandatory_flags(name->flags)) {
        return 0;
    }
    // The C-node answers with status ok and its challenge; the next message must be the reply to it.
    const auto reply_body = next_body(in);
    if (!reply_body) {
        return 0;
    }
    const auto reply = hs::parse_challenge_reply(*reply_body);
    if (!reply) {
        return 0;
    }
    DPOOL_FUZZ_CHECK(hs::challenge_reply_body(*reply) == *reply_body);
    const std::uint32_t our_challenge = 0x5eed1234;
    const auto expected = hs::challenge_digest("fuzz_cookie", our_challenge);
    DPOOL_FUZZ_CHECK(hs::same_digest(reply->digest, expected) == (reply->digest == expected));
    return 0;
}
