// The bounds of the C-node as a whole that are not a pool's nor a link's: pools and connections per caller node,
// and giving memory back after a flood.
#include "test_support.hpp"

#include <malloc.h>

#include <memory>
#include <vector>

#include "api/caller_quotas.hpp"
#include "util/asio.hpp"
#include "util/memory_trimmer.hpp"

using dpool::api::CallerQuotas;
using dpool::pool::Limit;

TEST_CASE("CallerQuotas bounds the pools and connections of each caller node, not of the others", "[limits]")
{
    CallerQuotas q(CallerQuotas::Bounds{3, 10});
    CHECK_FALSE(q.exceeded("a@h", {1, 10}).has_value());
    CHECK(q.exceeded("a@h", {1, 11}) == Limit::max_connections_per_caller);
    q.add(1, "a@h", 4);
    q.add(2, "a@h", 4);
    CHECK(q.exceeded("a@h", {1, 3}) == Limit::max_connections_per_caller);
    CHECK_FALSE(q.exceeded("a@h", {1, 2}).has_value());
    q.add(3, "a@h", 1);
    CHECK(q.exceeded("a@h", {1, 1}) == Limit::max_pools_per_caller);
    // Another node has its own quota.
    CHECK_FALSE(q.exceeded("b@h", {3, 10}).has_value());
    CHECK(q.usage("a@h").pools == 3);
    CHECK(q.usage("a@h").connections == 9);
    // A pool destroyed gives its share back; one added twice or removed twice counts once.
    q.add(3, "a@h", 1);
    q.remove(2);
    q.remove(2);
    CHECK(q.usage("a@h").pools == 2);
    CHECK(q.usage("a@h").connections == 5);
    q.remove(1);
    q.remove(3);
    CHECK(q.usage("a@h").pools == 0);
    // Bounds near the top of 32 bits do not wrap.
    CallerQuotas big(CallerQuotas::Bounds{0xFFFFFFFF, 0xFFFFFFFF});
    big.add(1, "a@h", 0xFFFFFFF0);
    CHECK(big.exceeded("a@h", {1, 0x20}) == Limit::max_connections_per_caller);
}

// Not under AddressSanitizer, whose allocator takes the place of glibc's: malloc_trim and mallinfo2 see none of
// its memory (the sanitizer stage builds with it; every other build runs this).
#if !defined(__SANITIZE_ADDRESS__)
TEST_CASE("MemoryTrimmer gives memory back once enough was freed, and not again for the same", "[limits]")
{
    dpool::asio::io_context io;
    dpool::util::MemoryTrimmer trimmer(io.get_executor(), std::chrono::milliseconds(1000), 8 << 20);
    malloc_trim(0);  // what earlier tests freed is not resident: the blocks below take fresh pages
    CHECK_FALSE(trimmer.check()); // the first check only sets the mark
    const auto trims = trimmer.trims();
    {
        // 32 MiB in small blocks (zeroed, so resident), below the mmap threshold: they stay in the heap when freed.
        std::vector<std::unique_ptr<char[]>> blocks;
        for (int i = 0; i < 32 * 1024; ++i) {
            blocks.push_back(std::make_unique<char[]>(1000));
        }
        blocks.erase(blocks.begin(), blocks.end() - 1); // one kept at the top, so glibc cannot trim by itself
        CHECK(trimmer.check());
        CHECK(trimmer.trims() == trims + 1);
        CHECK_FALSE(trimmer.check()); // nothing new was freed
    }
    CHECK(trimmer.trims() == trims + 1);
}
#endif
