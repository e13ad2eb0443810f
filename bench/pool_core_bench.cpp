// In-process costs of the C-node's hot paths, on one thread, no I/O (docs/BENCHMARKS.md):
// - the pool core's lease bookkeeping alone: one acquire and one release per iteration; `make bench` runs it
//   with repetitions and reports the median items_per_second as pool_core_ops;
// - the decode of one received packet with an atom cache header (protocol::normalize_packet), as every
//   packet a BEAM node sends the C-node goes through it: packet_normalize_ns (reference).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "pool/pool_core.hpp"
#include "protocol/dist_header.hpp"
#include "util/byte_buffer.hpp"

namespace {

using dpool::pool::PoolCore;

// A pool whose `slots` connections are all up and idle, as after warm-up.
struct ReadyPool {
    explicit ReadyPool(std::uint32_t slots) : core(slots, counter)
    {
        for (std::uint32_t i = 0; i < slots; ++i) {
            const auto slot = core.add_slot();
            if (!slot || core.slot_ready(*slot).has_value()) {
                throw std::logic_error("pool_core_bench: slot setup failed");
            }
        }
    }
    std::uint64_t counter = 0;
    PoolCore core;
};

// The timed loop: one acquire and its release per iteration.
void time_lease_and_return(benchmark::State& state, ReadyPool& p)
{
    std::uint64_t waiter = 0;
    for (auto _ : state) {
        const auto r = p.core.acquire(++waiter, false);
        if (r.outcome != PoolCore::Outcome::granted) {
            state.SkipWithError("acquire was not granted");
            break;
        }
        const auto back = p.core.release(r.grant.slot, r.grant.lease, true);
        benchmark::DoNotOptimize(back.ended);
    }
    state.SetItemsProcessed(state.iterations());
}

void lease_and_return(benchmark::State& state)
{
    ReadyPool p(static_cast<std::uint32_t>(state.range(0)));
    time_lease_and_return(state, p);
}

// With some slots already leased, so the idle list is not trivially one element.
void lease_and_return_half_busy(benchmark::State& state)
{
    const auto slots = static_cast<std::uint32_t>(state.range(0));
    ReadyPool p(slots);
    for (std::uint32_t i = 0; i < slots / 2; ++i) {
        benchmark::DoNotOptimize(p.core.acquire(0, false));
    }
    time_lease_and_return(state, p);
}

std::string bytes(std::initializer_list<int> values)
{
    std::string s;
    for (const int v : values) {
        s.push_back(static_cast<char>(v));
    }
    return s;
}

std::string cache_ref(int i) { return bytes({82, i}); }

// A caller's one-shot call as its node sends it to the C-node, every atom a reference to an entry of the
// atom cache that an earlier packet defined (as from the second call on): REG_SEND {6, Pid, '', dpool} and
// {'$gen_call', {Pid, [alias | Ref]}, {call, 1, erlang, node, [], 5000}}.
std::string call_packet(bool defining)
{
    using dpool::protocol::AtomRef;
    const std::vector<AtomRef> refs{{10, "bench@127.0.0.1", defining}, {11, "dpool", defining},
                                    {12, "$gen_call", defining},      {13, "alias", defining},
                                    {14, "call", defining},           {15, "erlang", defining},
                                    {16, "node", defining}};
    dpool::ByteBuffer head;
    dpool::protocol::write_dist_header(head, refs);
    const std::string pid = bytes({88}) + cache_ref(0) + bytes({0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3});
    const std::string ref = bytes({90, 0, 3}) + cache_ref(0) + bytes({0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3});
    const std::string control = bytes({104, 4, 97, 6}) + pid + bytes({119, 0}) + cache_ref(1);
    const std::string message = bytes({104, 3}) + cache_ref(2) + bytes({104, 2}) + pid + bytes({108, 0, 0, 0, 1}) +
                                cache_ref(3) + ref + bytes({104, 6}) + cache_ref(4) + bytes({97, 1}) + cache_ref(5) +
                                cache_ref(6) + bytes({106, 98, 0, 0, 19, 136});
    return std::string(head.view()) + control + message;
}

void packet_normalize(benchmark::State& state)
{
    dpool::protocol::AtomCacheIn cache;
    dpool::ByteBuffer out;
    if (!dpool::protocol::normalize_packet(call_packet(true), cache, out)) {
        state.SkipWithError("the defining packet did not decode");
        return;
    }
    const std::string packet = call_packet(false);
    for (auto _ : state) {
        out.clear();
        if (!dpool::protocol::normalize_packet(packet, cache, out)) {
            state.SkipWithError("the packet did not decode");
            break;
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations());
}

} // namespace

BENCHMARK(packet_normalize);
BENCHMARK(lease_and_return)->Arg(8)->Arg(100);
BENCHMARK(lease_and_return_half_busy)->Arg(100);

BENCHMARK_MAIN();
