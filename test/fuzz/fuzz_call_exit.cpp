// Fuzz target: protocol::decode_call_exit, how a call's process on a target ended, read from the exit reason
// the target sends (MONITOR_P_EXIT) and turned into the caller's answer. Input: one reason term (in the
// corpus, the reasons of the recorded calls: values, throws, exits, errors, undefined functions). Checked:
// what it returns are views into the reason, each one well-formed term; an erpc-shaped reason keeps its Ref.

#include "fuzz_support.hpp"
#include "protocol/rpc.hpp"
#include "protocol/term_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view reason = dpool::fuzz::bytes(data, size);
    const auto exit = dpool::protocol::decode_call_exit(reason);
    using Kind = dpool::protocol::CallExit::Kind;
    DPOOL_FUZZ_CHECK(dpool::fuzz::within(exit.value, reason));
    DPOOL_FUZZ_CHECK(dpool::fuzz::within(exit.stack, reason));
    if (exit.kind == Kind::other) {
        DPOOL_FUZZ_CHECK(exit.value == reason && exit.stack.empty());
        return 0;
    }
    DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(reason));
    DPOOL_FUZZ_CHECK(dpool::protocol::is_single_term(exit.value));
    DPOOL_FUZZ_CHECK(exit.ref.id_count > 0 && dpool::fuzz::within(exit.ref.encoded, reason));
    DPOOL_FUZZ_CHECK((exit.kind == Kind::raised) == !exit.stack.empty());
    return 0;
}
