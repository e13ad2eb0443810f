#include "test_support.hpp"

#include <array>
#include <vector>

#include "pool/return_barrier.hpp"

using dpool::pool::ReturnBarriers;

namespace {

// Links are opaque keys: addresses of these.
const std::array<int, 4> kLinks{};
const void* link(std::size_t i) { return &kLinks[i]; }

std::vector<std::uint64_t> keys(const std::vector<ReturnBarriers::Finished>& finished)
{
    std::vector<std::uint64_t> out;
    for (const auto& f : finished) {
        out.push_back(f.owner.key);
    }
    return out;
}

} // namespace

TEST_CASE("a barrier sends one probe per link and ends when every link answered")
{
    std::uint64_t numbers = 100;
    ReturnBarriers b(numbers);
    const std::array<const void*, 2> over = {link(0), link(1)};
    const auto s = b.start({7, 42}, over);
    REQUIRE(s);
    REQUIRE(s->probes.size() == 2);
    CHECK(s->skipped == 0);
    CHECK(s->probes[0].link == link(0));
    CHECK(s->probes[1].link == link(1));
    CHECK(s->probes[0].number == 101); // drawn from the shared counter
    CHECK(s->probes[1].number == 102);
    CHECK(numbers == 102);
    CHECK(b.in_flight() == 1);

    auto first = b.answered(link(1), s->probes[1].number);
    REQUIRE(first);
    CHECK(first->empty());
    auto second = b.answered(link(0), s->probes[0].number);
    REQUIRE(second);
    REQUIRE(second->size() == 1);
    CHECK((*second)[0].owner.pool == 7);
    CHECK((*second)[0].owner.key == 42);
    CHECK((*second)[0].complete);
    CHECK(b.in_flight() == 0);
    CHECK(b.probes_on(link(0)) == 0);
}

TEST_CASE("nothing to wait for: no links")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers);
    CHECK_FALSE(b.start({1, 1}, {}));
    CHECK(b.in_flight() == 0);
}

TEST_CASE("a number that is no probe of that link is not taken")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers);
    const std::array<const void*, 1> over = {link(0)};
    const auto s = b.start({1, 1}, over);
    REQUIRE(s);
    CHECK_FALSE(b.answered(link(0), 999));                  // a lease holder's monitor, say
    CHECK_FALSE(b.answered(link(1), s->probes[0].number)); // the right number on another link
    CHECK(b.in_flight() == 1);
}

TEST_CASE("every request gets probes of its own, and an answer also answers the link's earlier probes")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers);
    const std::array<const void*, 1> over = {link(0)};
    const auto s1 = b.start({1, 1}, over);
    const auto s2 = b.start({1, 2}, over);
    REQUIRE(s1);
    REQUIRE(s2);
    // The first probe may have been read before the second request's caller sent its checkin: no sharing.
    CHECK(s1->probes[0].number != s2->probes[0].number);
    CHECK(b.probes_on(link(0)) == 2);
    // FIFO: the second answer cannot come before the first; if the first is missed, the second covers both.
    const auto done = b.answered(link(0), s2->probes[0].number);
    REQUIRE(done);
    CHECK(keys(*done) == std::vector<std::uint64_t>{1, 2});
    CHECK(b.in_flight() == 0);
    CHECK(b.probes_on(link(0)) == 0);
}

TEST_CASE("a barrier waits only for its own links")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers);
    const std::array<const void*, 2> both = {link(0), link(1)};
    const std::array<const void*, 1> second = {link(1)};
    const auto s1 = b.start({1, 1}, both);
    const auto s2 = b.start({1, 2}, second);
    REQUIRE(s1);
    REQUIRE(s2);
    const auto a = b.answered(link(1), s2->probes[0].number); // answers s1's probe on link 1 too
    REQUIRE(a);
    CHECK(keys(*a) == std::vector<std::uint64_t>{2});
    const auto c = b.answered(link(0), s1->probes[0].number);
    REQUIRE(c);
    CHECK(keys(*c) == std::vector<std::uint64_t>{1});
}

TEST_CASE("a link that closes answers for good")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers);
    const std::array<const void*, 2> over = {link(0), link(1)};
    const auto s = b.start({3, 9}, over);
    REQUIRE(s);
    CHECK(b.link_gone(link(0)).empty());
    const auto done = b.link_gone(link(1));
    REQUIRE(done.size() == 1);
    CHECK(done[0].owner.key == 9);
    CHECK(done[0].complete);
    CHECK(b.link_gone(link(1)).empty()); // twice is harmless
    CHECK_FALSE(b.answered(link(1), s->probes[1].number));
}

TEST_CASE("the bound: an expired barrier ends incomplete, its silent links are stalled until they answer")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers);
    const std::array<const void*, 2> over = {link(0), link(1)};
    const auto s = b.start({1, 1}, over);
    REQUIRE(s);
    REQUIRE(b.answered(link(0), s->probes[0].number));
    const auto expired = b.expire(s->id);
    REQUIRE(expired);
    CHECK_FALSE(expired->complete);
    CHECK(expired->owner.key == 1);
    CHECK_FALSE(b.expire(s->id)); // stale
    CHECK_FALSE(b.stalled(link(0)));
    CHECK(b.stalled(link(1)));

    // Later barriers skip the stalled link (and say so): no new probe piles up on it.
    const auto s2 = b.start({1, 2}, over);
    REQUIRE(s2);
    CHECK(s2->skipped == 1);
    REQUIRE(s2->probes.size() == 1);
    CHECK(s2->probes[0].link == link(0));
    CHECK(b.probes_on(link(1)) == 1);
    const auto partial = b.answered(link(0), s2->probes[0].number);
    REQUIRE(partial);
    REQUIRE(partial->size() == 1);
    CHECK_FALSE((*partial)[0].complete); // it did not hear from every link
    const std::array<const void*, 1> only_stalled = {link(1)};
    CHECK_FALSE(b.start({1, 3}, only_stalled)); // nothing left to wait for: answer now

    // The late answer of the expired probe: the link answers again and is probed again.
    const auto late = b.answered(link(1), s->probes[1].number);
    REQUIRE(late);
    CHECK(late->empty());
    CHECK_FALSE(b.stalled(link(1)));
    const auto s4 = b.start({1, 4}, only_stalled);
    REQUIRE(s4);
    CHECK(s4->skipped == 0);
    const auto done = b.answered(link(1), s4->probes[0].number);
    REQUIRE(done);
    REQUIRE(done->size() == 1);
    CHECK((*done)[0].complete);
}

TEST_CASE("at most max_barriers at once: beyond, an answer is given without one and counted")
{
    std::uint64_t numbers = 0;
    ReturnBarriers b(numbers, 2);
    const std::array<const void*, 1> over = {link(0)};
    const auto s1 = b.start({1, 1}, over);
    const auto s2 = b.start({1, 2}, over);
    REQUIRE(s1);
    REQUIRE(s2);
    CHECK_FALSE(b.start({1, 3}, over));
    CHECK(b.overflows() == 1);
    CHECK(b.probes_on(link(0)) == 2);
    REQUIRE(b.answered(link(0), s1->probes[0].number));
    CHECK(b.start({1, 4}, over));
}
