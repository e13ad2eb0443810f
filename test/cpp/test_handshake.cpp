#include "test_support.hpp"

#include <string>

#include "transport/handshake.hpp"

using dpool::test::be16;
using dpool::transport::explain_connect_failure;

namespace {

// One handshake message as it travels: a 2-byte length, then the body.
std::string message(const std::string& body) { return be16(static_cast<std::uint16_t>(body.size())) + body; }

// A challenge ('N': flags, challenge, creation, name) from target@h, its content beyond the tag unimportant here.
const std::string kChallenge = message("N" + std::string(8, '\0') + std::string(4, '\1') + std::string(4, '\0') +
                                       be16(8) + "target@h");

} // namespace

TEST_CASE("explain_connect_failure tells a refused cookie from other refusals", "[handshake]")
{
    // The target hung up after its challenge: it did not accept our answer, made with our cookie.
    CHECK(explain_connect_failure(message("sok") + kChallenge).find("cookie") != std::string::npos);
    CHECK(explain_connect_failure(message("sok_simultaneous") + kChallenge).find("cookie") != std::string::npos);
    // Its status said no.
    CHECK(explain_connect_failure(message("snot_allowed")).find("does not allow") != std::string::npos);
    CHECK(explain_connect_failure(message("salive")).find("already has a connection") != std::string::npos);
    CHECK(explain_connect_failure(message("snok")).find("at the same time") != std::string::npos);
    CHECK(explain_connect_failure(message("sweird")).find("'weird'") != std::string::npos);
    // The peer's own words are cut and made printable: the text goes to callers as UTF-8.
    const auto hostile = explain_connect_failure(message("s" + std::string("\xE9\x01") + std::string(500, 'x')));
    CHECK(hostile.find("'??xxx") != std::string::npos);
    CHECK(hostile.size() < 120);
    // The ack came: not the cookie.
    CHECK(explain_connect_failure(message("sok") + kChallenge + message("a" + std::string(16, '\0')))
              .find("cookie") == std::string::npos);
    // Status ok, then nothing.
    CHECK(explain_connect_failure(message("sok")).find("before its challenge") != std::string::npos);
    // Nothing, or something that is no distribution handshake (a TLS listener answers with TLS records).
    CHECK(explain_connect_failure("").find("without answering") != std::string::npos);
    CHECK(explain_connect_failure(std::string("\x15\x03\x03\x00\x02\x02\x28", 7)).find("TLS") != std::string::npos);
    // A message cut short counts as not received.
    CHECK(explain_connect_failure(message("sok").substr(0, 3)).find("without answering") != std::string::npos);
}
