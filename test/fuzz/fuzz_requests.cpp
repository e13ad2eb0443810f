// Fuzz target: a caller's message to the service, as api::Service reads it: the envelope
// (api::parse_envelope), the tag of a call (api::reply_alias), the request (api::decode_request: the request
// table and every decoder in it, pool options included) and the destinations of sends and requests
// (api::parse_destination). Input: the message after the control term, version byte included (in the
// corpus, every request and cast of docs/PROTOCOL.md sent by the library to a real C-node). An input that is
// no envelope is also decoded as a bare request, so that the fuzzer reaches the decoders either way.
// Checked: everything decoded points into the input; a refused `new` explains itself with one well-formed term.

#include <type_traits>
#include <variant>

#include "api/pool_options.hpp"
#include "api/replies.hpp"
#include "api/requests.hpp"
#include "fuzz_support.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "util/byte_buffer.hpp"

using dpool::fuzz::within;

namespace {

constexpr std::string_view kTarget = "target@127.0.0.1";

void check_destination(std::string_view destination, std::string_view input)
{
    DPOOL_FUZZ_CHECK(within(destination, input));
    if (const auto to = dpool::api::parse_destination(destination, kTarget)) {
        DPOOL_FUZZ_CHECK(within(to->encoded, input));
        DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(to->encoded));
    }
}

void check_decoded(dpool::api::Decoded& decoded, std::string_view input)
{
    std::visit(
        [&](auto& r) {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, dpool::api::Send> || std::is_same_v<T, dpool::api::Request> ||
                          std::is_same_v<T, dpool::api::PooledSend> ||
                          std::is_same_v<T, dpool::api::PooledRequest>) {
                check_destination(r.destination, input);
            } else if constexpr (std::is_same_v<T, dpool::api::SendMany>) {
                for (const auto& [destination, message] : r.messages) {
                    check_destination(destination, input);
                    DPOOL_FUZZ_CHECK(within(message, input));
                }
            } else if constexpr (std::is_same_v<T, dpool::api::CastBatch>) {
                check_destination(r.destination, input);
                for (const auto& m : r.messages) {
                    DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(m.term));
                }
            } else if constexpr (std::is_same_v<T, dpool::api::Call> || std::is_same_v<T, dpool::api::PooledCall>) {
                DPOOL_FUZZ_CHECK(within(r.mfa, input) && !r.mfa.empty());
            } else if constexpr (std::is_same_v<T, dpool::api::Rejected>) {
                if (r.config) {
                    dpool::ByteBuffer out;
                    dpool::protocol::TermWriter w(out);
                    dpool::api::write_config_error(w, *r.config);
                    DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(out.view()));
                }
            }
        },
        decoded);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input = dpool::fuzz::bytes(data, size);
    std::string_view request = input;
    if (const auto env = dpool::api::parse_envelope(input)) {
        DPOOL_FUZZ_CHECK(within(env->request, input) && dpool::protocol::is_single_term(env->request));
        if (env->is_call) {
            DPOOL_FUZZ_CHECK(within(env->from.encoded, input) && within(env->tag, input));
            DPOOL_FUZZ_CHECK(within(dpool::api::reply_alias(env->tag), env->tag));
        }
        request = env->request;
    } else {
        dpool::protocol::TermReader r(input);
        if (r.version()) {
            request = r.rest();
        }
    }
    auto decoded = dpool::api::decode_request(request);
    check_decoded(decoded, input);
    return 0;
}
