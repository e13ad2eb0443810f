// The pool core's lease bookkeeping alone: one acquire and one release per iteration, in process, on one
// thread, no I/O. `make bench` runs it with repetitions and reports the median items_per_second as
// pool_core_ops (docs/BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <stdexcept>

#include "pool/pool_core.hpp"

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

} // namespace

BENCHMARK(lease_and_return)->Arg(8)->Arg(100);
BENCHMARK(lease_and_return_half_busy)->Arg(100);

BENCHMARK_MAIN();
