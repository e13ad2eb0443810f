// The choice of a pool group's member per operation (pool/group_picker), without sockets.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "pool/group_picker.hpp"
#include "util/stable_hash.hpp"

using dpool::pool::Candidate;
using dpool::pool::GroupPicker;
using dpool::pool::Strategy;

namespace {

const std::vector<std::string> kTargets = {"w1@127.0.0.1", "w2@127.0.0.1", "w3@127.0.0.1", "w4@127.0.0.1"};

std::vector<Candidate> members(std::size_t n = kTargets.size())
{
    std::vector<Candidate> out;
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(Candidate{kTargets[i], true, true, 0});
    }
    return out;
}

// How often each member is picked in `picks` operations without a key.
std::map<std::size_t, int> spread(GroupPicker& picker, const std::vector<Candidate>& ms, Strategy strategy, int picks)
{
    std::map<std::size_t, int> count;
    for (int i = 0; i < picks; ++i) {
        const auto got = picker.pick(ms, strategy, std::nullopt);
        REQUIRE(got);
        ++count[got->index];
    }
    return count;
}

// The member each of `keys` keys goes to.
std::vector<std::size_t> owners(GroupPicker& picker, const std::vector<Candidate>& ms, int keys)
{
    std::vector<std::size_t> out;
    for (int k = 0; k < keys; ++k) {
        const auto got = picker.pick(ms, Strategy::round_robin, static_cast<std::uint64_t>(k) * 0x9E3779B97F4A7C15ULL);
        REQUIRE(got);
        out.push_back(got->index);
    }
    return out;
}

} // namespace

TEST_CASE("group picker: round robin goes round the members that are up, evenly", "[group]")
{
    GroupPicker picker;
    auto ms = members();
    CHECK(spread(picker, ms, Strategy::round_robin, 10000) ==
          std::map<std::size_t, int>{{0, 2500}, {1, 2500}, {2, 2500}, {3, 2500}});
    // A member down is skipped (and the skip said), the others share its turns.
    ms[1].up = false;
    std::map<std::size_t, int> count;
    int skipped = 0;
    for (int i = 0; i < 900; ++i) {
        const auto got = picker.pick(ms, Strategy::round_robin, std::nullopt);
        REQUIRE(got);
        ++count[got->index];
        skipped += got->skipped_down ? 1 : 0;
    }
    CHECK(count == std::map<std::size_t, int>{{0, 300}, {2, 300}, {3, 300}});
    CHECK(skipped == 300);
    // Members not pickable (being added or removed) are never picked, even when all others are down.
    ms[2].pickable = false;
    for (auto& m : ms) {
        m.up = false;
    }
    const auto all_down = spread(picker, ms, Strategy::round_robin, 300);
    CHECK(all_down == std::map<std::size_t, int>{{0, 100}, {1, 100}, {3, 100}});
}

TEST_CASE("group picker: least_in_use takes the least loaded member that is up, ties round robin", "[group]")
{
    GroupPicker picker;
    auto ms = members();
    ms[0].load = 5;
    ms[1].load = 2;
    ms[2].load = 2;
    ms[3].load = 9;
    CHECK(spread(picker, ms, Strategy::least_in_use, 100) == std::map<std::size_t, int>{{1, 50}, {2, 50}});
    ms[1].up = false; // the least loaded, but down
    const auto got = picker.pick(ms, Strategy::least_in_use, std::nullopt);
    REQUIRE(got);
    CHECK(got->index == 2);
    ms[2].up = false;
    CHECK(picker.pick(ms, Strategy::least_in_use, std::nullopt)->index == 0);
    // All equal: every member in turn.
    for (auto& m : ms) {
        m.up = true;
        m.load = 1;
    }
    CHECK(spread(picker, ms, Strategy::least_in_use, 400) ==
          std::map<std::size_t, int>{{0, 100}, {1, 100}, {2, 100}, {3, 100}});
}

TEST_CASE("group picker: a key keeps its member, a lost member's keys move, and only they", "[group]")
{
    GroupPicker picker;
    auto ms = members();
    const int keys = 10000;
    const auto before = owners(picker, ms, keys);
    CHECK(owners(picker, ms, keys) == before); // stable across picks
    GroupPicker other;
    CHECK(owners(other, ms, keys) == before); // and across pickers (a restarted C-node)
    // Spread: each member takes about a quarter of the keys.
    std::map<std::size_t, int> share;
    for (const auto o : before) {
        ++share[o];
    }
    for (const auto& [member, n] : share) {
        CAPTURE(member);
        CHECK(n > keys / 4 - keys / 20);
        CHECK(n < keys / 4 + keys / 20);
    }
    // Member 2 goes down: its keys, and no other, move to the others.
    ms[2].up = false;
    const auto after = owners(picker, ms, keys);
    int moved = 0;
    for (int k = 0; k < keys; ++k) {
        if (before[k] == 2) {
            CHECK(after[k] != 2);
            ++moved;
        } else {
            CHECK(after[k] == before[k]);
        }
    }
    CHECK(moved == share[2]);
    // Back up: every key is home again.
    ms[2].up = true;
    CHECK(owners(picker, ms, keys) == before);
    // A fifth member takes about a fifth of the keys, all from the others, none moving between those.
    auto five = members();
    five.push_back(Candidate{"w5@127.0.0.1", true, true, 0});
    const auto grown = owners(picker, five, keys);
    int taken = 0;
    for (int k = 0; k < keys; ++k) {
        if (grown[k] == 4) {
            ++taken;
        } else {
            CHECK(grown[k] == before[k]);
        }
    }
    CHECK(taken > keys / 5 - keys / 25);
    CHECK(taken < keys / 5 + keys / 25);
}

TEST_CASE("group picker: a retry goes to another member that is up, or nowhere", "[group]")
{
    GroupPicker picker;
    auto ms = members(2);
    const auto got = picker.pick(ms, Strategy::round_robin, std::nullopt, 0);
    REQUIRE(got);
    CHECK(got->index == 1);
    ms[1].up = false;
    CHECK_FALSE(picker.pick(ms, Strategy::round_robin, std::nullopt, 0)); // no other is up
    CHECK_FALSE(picker.pick(ms, Strategy::round_robin, 42, 0));
    // Without a retry, a pick happens even with every member down: the caller gets that member's own error.
    ms[0].up = false;
    CHECK(picker.pick(ms, Strategy::round_robin, std::nullopt));
    CHECK_FALSE(picker.pick({}, Strategy::round_robin, std::nullopt));
}

TEST_CASE("group picker: a member with a live connection comes before one that is only reconnecting", "[group]")
{
    GroupPicker picker;
    auto ms = members(3);
    ms[0].live = true;
    ms[2].live = true;
    // Member 1 is up (its reconnect may hang): the live ones take its turns, and the skip is said.
    int skipped = 0;
    std::map<std::size_t, int> count;
    for (int i = 0; i < 300; ++i) {
        const auto got = picker.pick(ms, Strategy::round_robin, std::nullopt);
        REQUIRE(got);
        ++count[got->index];
        skipped += got->skipped_down ? 1 : 0;
    }
    CHECK(count == std::map<std::size_t, int>{{0, 150}, {2, 150}});
    CHECK(skipped == 150); // every turn of member 1 (one in each round of two picks)
    // A retry away from a live member takes the other live one, and one only reconnecting when none is left.
    CHECK(picker.pick(ms, Strategy::round_robin, std::nullopt, 0)->index == 2);
    ms[2].live = false;
    CHECK(picker.pick(ms, Strategy::round_robin, std::nullopt, 0)->index != 0);
    // Up members come before members down, live or not.
    ms[0].up = false;
    CHECK(picker.pick(ms, Strategy::round_robin, 42)->index != 0);
}

TEST_CASE("rendezvous_weight: fixed by its definition", "[group]")
{
    using dpool::util::rendezvous_weight;
    // The values a C-node of any build or platform computes (keys must not move across restarts or upgrades).
    static_assert(dpool::util::fnv1a64("") == 0xcbf29ce484222325ULL);
    static_assert(dpool::util::fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(rendezvous_weight(0, "w1@127.0.0.1") == rendezvous_weight(0, "w1@127.0.0.1"));
    CHECK(rendezvous_weight(0, "w1@127.0.0.1") != rendezvous_weight(0, "w2@127.0.0.1"));
    CHECK(rendezvous_weight(1, "w1@127.0.0.1") != rendezvous_weight(0, "w1@127.0.0.1"));
    // Pinned once (this build): a change of the weight moves every key of every group.
    CHECK(rendezvous_weight(42, "w1@127.0.0.1") == 0xa325ae780689485cULL);
    CHECK(dpool::util::mix64(0) == 0);
    CHECK(dpool::util::mix64(1) == 0x5692161d100b05e5ULL);
}
