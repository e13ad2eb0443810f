// Fuzz target: api::parse_pool_options, the target and options map of `new` (and of each pool of a restore).
// Input: the Target term and the Options term back to back, as they are in {new, Target, Options} (in the
// corpus, the `new` requests of the recorded traffic, good and refused). The target's text is read as
// decode_request reads it (an atom or a binary), and Options must be one well-formed term, as decode_request
// hands it over. Checked: an accepted configuration is within the documented
// ranges (docs/PROTOCOL.md, "Types"), its cookie printable and bounded; a refused one explains itself with one
// well-formed term whose parts are views into the input, and a refused cookie's value is hidden.

#include "api/pool_options.hpp"
#include "fuzz_support.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "util/byte_buffer.hpp"

using dpool::fuzz::within;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input = dpool::fuzz::bytes(data, size);
    dpool::protocol::TermReader r(input);
    std::string_view target;
    if (const auto atom = r.atom()) {
        target = *atom;
    } else if (const auto binary = r.binary()) {
        target = *binary;
    } else if (!r.skip()) {
        return 0;
    }
    // One well-formed term, as decode_new hands it over (it skips the Options term of the request).
    const auto options_term = r.skip();
    if (!options_term || !r.at_end()) {
        return 0;
    }
    const std::string_view options = *options_term;
    const auto parsed = dpool::api::parse_pool_options(target, options);
    if (parsed) {
        const auto& c = *parsed;
        DPOOL_FUZZ_CHECK(c.target == target);
        DPOOL_FUZZ_CHECK(c.max_connections >= 1 && c.max_connections <= dpool::api::kMaxConnectionsPerPool);
        DPOOL_FUZZ_CHECK(c.min_connections <= c.max_connections);
        DPOOL_FUZZ_CHECK(c.acquire_timeout_ms <= dpool::api::kMaxAcquireTimeoutMs);
        DPOOL_FUZZ_CHECK(c.connect_timeout_ms >= 1 && c.connect_timeout_ms <= dpool::api::kMaxConnectTimeoutMs);
        DPOOL_FUZZ_CHECK(c.backoff_min_ms >= 1 && c.backoff_min_ms <= c.backoff_max_ms &&
                         c.backoff_max_ms <= dpool::api::kMaxBackoffMs);
        DPOOL_FUZZ_CHECK(c.name.size() <= dpool::api::kMaxPoolNameBytes);
        DPOOL_FUZZ_CHECK(c.cookie.empty() || dpool::api::acceptable_cookie(c.cookie));
        return 0;
    }
    auto why = parsed.error();
    DPOOL_FUZZ_CHECK(within(why.term, input) && within(why.value, input));
    if (why.kind == dpool::api::ConfigError::Kind::bad_target) {
        why.term = input.substr(0, options.data() - input.data()); // filled in by the caller, as decode_new does
    }
    if (why.kind == dpool::api::ConfigError::Kind::bad_value) {
        // A refused cookie is never written back: it may be a real one with a slip in it.
        dpool::protocol::TermReader key(why.term);
        const auto name = key.atom();
        DPOOL_FUZZ_CHECK(why.hide_value == (name && *name == "cookie"));
    }
    dpool::ByteBuffer out;
    dpool::protocol::TermWriter w(out);
    dpool::api::write_config_error(w, why);
    DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(out.view()));
    return 0;
}
