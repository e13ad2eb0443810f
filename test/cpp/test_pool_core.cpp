#include "test_support.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "pool/pool_core.hpp"

using dpool::pool::Grant;
using dpool::pool::PoolCore;
using dpool::pool::SlotState;
using Outcome = PoolCore::Outcome;

namespace {

// A core whose slots are all connected and idle, slot 0 first.
struct ReadyPool {
    explicit ReadyPool(std::uint32_t slots, std::uint32_t max_slots = 0) : core(std::max(slots, max_slots), counter)
    {
        for (std::uint32_t i = 0; i < slots; ++i) {
            const auto slot = core.add_slot();
            REQUIRE(slot == i);
            REQUIRE_FALSE(core.slot_ready(i).has_value());
        }
    }
    std::uint64_t counter = 0;
    PoolCore core;
};

Grant granted(const PoolCore::AcquireResult& r)
{
    REQUIRE(r.outcome == Outcome::granted);
    return r.grant;
}

void check_counts(const PoolCore& core, std::uint32_t idle, std::uint32_t leased, std::uint32_t connecting,
                  std::size_t waiting)
{
    const auto c = core.counts();
    CHECK(c.idle == idle);
    CHECK(c.leased == leased);
    CHECK(c.connecting == connecting);
    CHECK(c.waiting == waiting);
    CHECK(c.idle + c.leased + c.connecting == core.open_slots());
}

// The specification of PoolCore in the simplest terms: a LIFO stack of idle slots and a FIFO list of waiters.
class ModelPool {
public:
    ModelPool(std::uint32_t max_slots, std::uint64_t& counter) : max_slots_(max_slots), counter_(counter) { }

    std::optional<std::uint32_t> add_slot()
    {
        if (slots_.size() >= max_slots_) {
            return std::nullopt;
        }
        slots_.push_back({SlotState::connecting, 0});
        return static_cast<std::uint32_t>(slots_.size() - 1);
    }
    std::optional<Grant> slot_ready(std::uint32_t slot)
    {
        if (slots_[slot].state != SlotState::connecting) {
            return std::nullopt;
        }
        return hand_over(slot);
    }
    void slot_lost(std::uint32_t slot)
    {
        if (slots_[slot].state == SlotState::idle) {
            idle_.erase(std::find(idle_.begin(), idle_.end(), slot));
            slots_[slot].state = SlotState::connecting;
        }
    }
    PoolCore::AcquireResult acquire(std::uint64_t waiter, bool may_wait)
    {
        if (!idle_.empty()) {
            const auto slot = idle_.back();
            idle_.pop_back();
            return {Outcome::granted, lease(slot, waiter)};
        }
        if (!may_wait) {
            return {Outcome::exhausted, {}};
        }
        waiters_.push_back(waiter);
        return {Outcome::queued, {}};
    }
    PoolCore::Release release(std::uint32_t slot, std::uint64_t lease_id, bool healthy)
    {
        PoolCore::Release r;
        if (slot >= slots_.size() || slots_[slot].state != SlotState::leased || slots_[slot].lease != lease_id) {
            return r;
        }
        r.ended = true;
        slots_[slot].lease = 0;
        if (!healthy) {
            slots_[slot].state = SlotState::connecting;
            return r;
        }
        r.next = hand_over(slot);
        return r;
    }
    bool cancel(std::uint64_t waiter)
    {
        const auto it = std::find(waiters_.begin(), waiters_.end(), waiter);
        if (it == waiters_.end()) {
            return false;
        }
        waiters_.erase(it);
        return true;
    }
    std::vector<std::uint64_t> take_all_waiters()
    {
        std::vector<std::uint64_t> all(waiters_.begin(), waiters_.end());
        waiters_.clear();
        return all;
    }

    std::uint32_t slot_count() const { return static_cast<std::uint32_t>(slots_.size()); }
    SlotState state(std::uint32_t slot) const { return slots_[slot].state; }
    std::uint64_t lease_of(std::uint32_t slot) const { return slots_[slot].lease; }
    const std::deque<std::uint64_t>& waiters() const { return waiters_; }
    PoolCore::Counts counts() const
    {
        PoolCore::Counts c;
        for (const auto& s : slots_) {
            c.idle += s.state == SlotState::idle;
            c.leased += s.state == SlotState::leased;
            c.connecting += s.state == SlotState::connecting;
        }
        c.waiting = waiters_.size();
        return c;
    }

private:
    struct Slot {
        SlotState state;
        std::uint64_t lease;
    };
    Grant lease(std::uint32_t slot, std::uint64_t waiter)
    {
        slots_[slot] = {SlotState::leased, ++counter_};
        return Grant{slot, slots_[slot].lease, waiter};
    }
    std::optional<Grant> hand_over(std::uint32_t slot)
    {
        if (!waiters_.empty()) {
            const auto waiter = waiters_.front();
            waiters_.pop_front();
            return lease(slot, waiter);
        }
        slots_[slot].state = SlotState::idle;
        idle_.push_back(slot);
        return std::nullopt;
    }

    std::uint32_t max_slots_;
    std::uint64_t& counter_;
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> idle_;
    std::deque<std::uint64_t> waiters_;
};

bool same_grant(const std::optional<Grant>& a, const std::optional<Grant>& b)
{
    if (a.has_value() != b.has_value()) {
        return false;
    }
    return !a || (a->slot == b->slot && a->lease == b->lease && a->waiter == b->waiter);
}

void require_same_state(const PoolCore& core, const ModelPool& model)
{
    REQUIRE(core.slot_count() == model.slot_count());
    for (std::uint32_t s = 0; s < core.slot_count(); ++s) {
        REQUIRE(core.state(s) == model.state(s));
        REQUIRE(core.lease_of(s) == model.lease_of(s));
    }
    const auto c = core.counts();
    const auto m = model.counts();
    REQUIRE(c.idle == m.idle);
    REQUIRE(c.leased == m.leased);
    REQUIRE(c.connecting == m.connecting);
    REQUIRE(c.waiting == m.waiting);
    REQUIRE(c.idle + c.leased + c.connecting == core.slot_count());
}

} // namespace

TEST_CASE("PoolCore adds slots up to its maximum, each connecting", "[pool_core]")
{
    std::uint64_t counter = 0;
    PoolCore core(3, counter);
    CHECK(core.max_slots() == 3);
    CHECK(core.add_slot() == 0u);
    CHECK(core.add_slot() == 1u);
    CHECK(core.add_slot() == 2u);
    CHECK_FALSE(core.add_slot().has_value());
    CHECK(core.slot_count() == 3);
    CHECK(core.state(1) == SlotState::connecting);
    check_counts(core, 0, 0, 3, 0);
}

TEST_CASE("PoolCore slot_ready makes a connecting slot idle", "[pool_core]")
{
    ReadyPool p(2);
    CHECK(p.core.state(0) == SlotState::idle);
    CHECK(p.core.state(1) == SlotState::idle);
    check_counts(p.core, 2, 0, 0, 0);
    CHECK_FALSE(p.core.slot_ready(0).has_value()); // not connecting: nothing happens
    check_counts(p.core, 2, 0, 0, 0);
}

TEST_CASE("PoolCore grants the most recently idle slot first", "[pool_core]")
{
    ReadyPool p(3);
    const Grant a = granted(p.core.acquire(100, false));
    const Grant b = granted(p.core.acquire(101, false));
    const Grant c = granted(p.core.acquire(102, false));
    CHECK(a.slot == 2);
    CHECK(b.slot == 1);
    CHECK(c.slot == 0);
    CHECK(a.waiter == 100);
    CHECK(c.waiter == 102);
    CHECK(p.core.state(1) == SlotState::leased);
    CHECK(p.core.lease_of(1) == b.lease);
    CHECK(p.core.lease_current(1, b.lease));
    check_counts(p.core, 0, 3, 0, 0);

    REQUIRE(p.core.release(c.slot, c.lease, true).ended);
    REQUIRE(p.core.release(a.slot, a.lease, true).ended);
    CHECK(granted(p.core.acquire(103, false)).slot == a.slot); // the last one returned
    CHECK(granted(p.core.acquire(104, false)).slot == c.slot);
}

TEST_CASE("PoolCore reports exhaustion or queues when nothing is idle", "[pool_core]")
{
    ReadyPool p(1);
    granted(p.core.acquire(1, false));
    const auto fail_fast = p.core.acquire(2, false);
    CHECK(fail_fast.outcome == Outcome::exhausted);
    check_counts(p.core, 0, 1, 0, 0);
    CHECK(p.core.acquire(3, true).outcome == Outcome::queued);
    check_counts(p.core, 0, 1, 0, 1);
}

TEST_CASE("PoolCore serves waiters first come, first served", "[pool_core]")
{
    ReadyPool p(1);
    Grant held = granted(p.core.acquire(1, false));
    for (std::uint64_t w : {10, 11, 12}) {
        REQUIRE(p.core.acquire(w, true).outcome == Outcome::queued);
    }
    for (std::uint64_t expected : {10, 11, 12}) {
        const auto r = p.core.release(held.slot, held.lease, true);
        REQUIRE(r.ended);
        REQUIRE(r.next.has_value());
        CHECK(r.next->waiter == expected);
        CHECK(r.next->slot == held.slot);
        CHECK(r.next->lease != held.lease);
        CHECK_FALSE(p.core.lease_current(held.slot, held.lease));
        CHECK(p.core.lease_current(held.slot, r.next->lease));
        held = *r.next;
    }
    const auto last = p.core.release(held.slot, held.lease, true);
    CHECK(last.ended);
    CHECK_FALSE(last.next.has_value());
    check_counts(p.core, 1, 0, 0, 0);
}

TEST_CASE("PoolCore cancel removes a waiter, which is then skipped", "[pool_core]")
{
    ReadyPool p(1);
    const Grant held = granted(p.core.acquire(1, false));
    for (std::uint64_t w : {10, 11, 12}) {
        REQUIRE(p.core.acquire(w, true).outcome == Outcome::queued);
    }
    CHECK(p.core.cancel(11));
    CHECK_FALSE(p.core.cancel(11)); // no longer waiting
    CHECK_FALSE(p.core.cancel(99)); // never waited
    check_counts(p.core, 0, 1, 0, 2);

    const auto first = p.core.release(held.slot, held.lease, true);
    REQUIRE(first.next.has_value());
    CHECK(first.next->waiter == 10);
    const auto second = p.core.release(first.next->slot, first.next->lease, true);
    REQUIRE(second.next.has_value());
    CHECK(second.next->waiter == 12);
    CHECK_FALSE(p.core.cancel(12)); // served, so not waiting
    check_counts(p.core, 0, 1, 0, 0);
}

TEST_CASE("PoolCore release of a stale or unknown lease changes nothing", "[pool_core]")
{
    ReadyPool p(2);
    const Grant g = granted(p.core.acquire(1, false));
    REQUIRE(p.core.acquire(2, true).outcome == Outcome::granted);
    REQUIRE(p.core.acquire(3, true).outcome == Outcome::queued);

    const auto wrong_lease = p.core.release(g.slot, g.lease + 1000, true);
    CHECK_FALSE(wrong_lease.ended);
    CHECK_FALSE(wrong_lease.next.has_value());
    CHECK_FALSE(p.core.release(99, g.lease, true).ended); // no such slot
    CHECK(p.core.state(g.slot) == SlotState::leased);
    check_counts(p.core, 0, 2, 0, 1);

    REQUIRE(p.core.release(g.slot, g.lease, true).ended); // goes to waiter 3
    const auto again = p.core.release(g.slot, g.lease, true);
    CHECK_FALSE(again.ended);
    CHECK_FALSE(again.next.has_value());
    check_counts(p.core, 0, 2, 0, 0);
}

TEST_CASE("PoolCore release of an unhealthy slot starts it connecting", "[pool_core]")
{
    ReadyPool p(1);
    const Grant g = granted(p.core.acquire(1, false));
    REQUIRE(p.core.acquire(2, true).outcome == Outcome::queued);

    const auto r = p.core.release(g.slot, g.lease, false);
    CHECK(r.ended);
    CHECK_FALSE(r.next.has_value()); // the waiter keeps waiting for a live connection
    CHECK(p.core.state(g.slot) == SlotState::connecting);
    CHECK(p.core.lease_of(g.slot) == 0);
    check_counts(p.core, 0, 0, 1, 1);

    const auto ready = p.core.slot_ready(g.slot);
    REQUIRE(ready.has_value());
    CHECK(ready->waiter == 2);
    CHECK(ready->slot == g.slot);
    CHECK(p.core.lease_current(g.slot, ready->lease));
    check_counts(p.core, 0, 1, 0, 0);
}

TEST_CASE("PoolCore slot_ready hands a new connection to the first live waiter", "[pool_core]")
{
    std::uint64_t counter = 0;
    PoolCore core(2, counter);
    const auto slot = core.add_slot();
    REQUIRE(slot.has_value());
    REQUIRE(core.acquire(7, true).outcome == Outcome::queued);
    REQUIRE(core.acquire(8, true).outcome == Outcome::queued);
    REQUIRE(core.cancel(7));

    const auto g = core.slot_ready(*slot);
    REQUIRE(g.has_value());
    CHECK(g->waiter == 8);
    CHECK(g->slot == *slot);
    CHECK(g->lease == counter);
    check_counts(core, 0, 1, 0, 0);
}

TEST_CASE("PoolCore slot_lost affects only idle slots", "[pool_core]")
{
    ReadyPool p(3);
    const Grant leased = granted(p.core.acquire(1, false)); // slot 2
    p.core.slot_lost(1);
    CHECK(p.core.state(1) == SlotState::connecting);
    check_counts(p.core, 1, 1, 1, 0);

    p.core.slot_lost(leased.slot); // leased: comes back through release
    CHECK(p.core.state(leased.slot) == SlotState::leased);
    p.core.slot_lost(1); // already connecting
    check_counts(p.core, 1, 1, 1, 0);

    CHECK(granted(p.core.acquire(2, false)).slot == 0); // the lost slot is not handed out
    CHECK(p.core.acquire(3, false).outcome == Outcome::exhausted);
}

TEST_CASE("PoolCore close_idle closes only idle slots, and add_slot reopens closed ones first", "[pool_core]")
{
    ReadyPool p(3);
    const auto leased = granted(p.core.acquire(1, false));
    CHECK(leased.slot == 2);
    p.core.close_idle(leased.slot); // leased: not idle, nothing happens
    check_counts(p.core, 2, 1, 0, 0);
    p.core.close_idle(0);
    CHECK(p.core.state(0) == SlotState::closed);
    check_counts(p.core, 1, 1, 0, 0);
    CHECK(p.core.open_slots() == 2);
    CHECK(p.core.idle_slots() == std::vector<std::uint32_t>{1});
    p.core.close_idle(0); // twice: no change
    CHECK(p.core.open_slots() == 2);

    // The pool is at its maximum of 3 slots, but a closed one can be opened again.
    const auto reopened = p.core.add_slot();
    REQUIRE(reopened == 0u);
    CHECK(p.core.state(0) == SlotState::connecting);
    check_counts(p.core, 1, 1, 1, 0);
    CHECK_FALSE(p.core.add_slot().has_value());
    CHECK(p.core.slot_count() == 3);
}

TEST_CASE("PoolCore requeue_first puts a waiter ahead of those already waiting", "[pool_core]")
{
    ReadyPool p(1);
    const auto lease = granted(p.core.acquire(1, false));
    REQUIRE(p.core.acquire(2, true).outcome == Outcome::queued);
    p.core.requeue_first(3);
    p.core.requeue_first(3); // already waiting: not twice
    check_counts(p.core, 0, 1, 0, 2);
    const auto next = p.core.release(lease.slot, lease.lease, true);
    REQUIRE(next.next.has_value());
    CHECK(next.next->waiter == 3);
    CHECK(p.core.take_all_waiters() == std::vector<std::uint64_t>{2});
}

TEST_CASE("PoolCore take_all_waiters empties the queue in order, without the cancelled", "[pool_core]")
{
    ReadyPool p(0, 1);
    for (std::uint64_t w = 1; w <= 6; ++w) {
        REQUIRE(p.core.acquire(w, true).outcome == Outcome::queued);
    }
    REQUIRE(p.core.cancel(2));
    REQUIRE(p.core.cancel(5));
    CHECK(p.core.take_all_waiters() == std::vector<std::uint64_t>{1, 3, 4, 6});
    CHECK(p.core.counts().waiting == 0);
    CHECK(p.core.take_all_waiters().empty());
}

TEST_CASE("PoolCore lease ids are unique across cores that share a counter", "[pool_core]")
{
    std::uint64_t counter = 0;
    PoolCore a(4, counter);
    PoolCore b(4, counter);
    for (std::uint32_t i = 0; i < 4; ++i) {
        a.add_slot();
        a.slot_ready(i);
        b.add_slot();
        b.slot_ready(i);
    }
    std::set<std::uint64_t> leases;
    std::uint64_t previous = 0;
    for (int round = 0; round < 1000; ++round) {
        PoolCore& core = round % 3 == 0 ? a : b;
        const Grant g = granted(core.acquire(static_cast<std::uint64_t>(round), false));
        CHECK(g.lease > previous);
        previous = g.lease;
        leases.insert(g.lease);
        REQUIRE(core.release(g.slot, g.lease, true).ended);
    }
    CHECK(leases.size() == 1000);
    CHECK(counter == 1000);
    CHECK_FALSE(leases.contains(0));
}

TEST_CASE("PoolCore stays bounded through many queue and cancel cycles", "[pool_core]")
{
    ReadyPool p(1);
    const Grant held = granted(p.core.acquire(1, false));
    std::uint64_t waiter = 100;
    for (int cycle = 0; cycle < 200000; ++cycle) {
        REQUIRE(p.core.acquire(++waiter, true).outcome == Outcome::queued);
        // Keep a few waiting across cycles, as timeouts in a busy pool would.
        if (cycle % 1000 != 0) {
            REQUIRE(p.core.cancel(waiter));
        }
    }
    const std::size_t survivors = 200;
    CHECK(p.core.counts().waiting == survivors);
    const auto all = p.core.take_all_waiters();
    REQUIRE(all.size() == survivors);
    CHECK(all.front() == 101);
    CHECK(std::is_sorted(all.begin(), all.end()));
    CHECK(p.core.counts().waiting == 0);

    REQUIRE(p.core.acquire(++waiter, true).outcome == Outcome::queued);
    const auto r = p.core.release(held.slot, held.lease, true);
    REQUIRE(r.next.has_value());
    CHECK(r.next->waiter == waiter);
}

TEST_CASE("PoolCore matches a simple model over random operation sequences", "[pool_core]")
{
    for (const std::uint32_t seed : {1u, 2u, 3u, 42u, 20240611u}) {
        CAPTURE(seed);
        std::mt19937 random(seed);
        const auto chance = [&](int percent) { return static_cast<int>(random() % 100) < percent; };
        const std::uint32_t max_slots = 1 + random() % 6;
        std::uint64_t core_counter = 0;
        std::uint64_t model_counter = 0;
        PoolCore core(max_slots, core_counter);
        ModelPool model(max_slots, model_counter);
        std::uint64_t next_waiter = 1;

        for (int step = 0; step < 5000; ++step) {
            CAPTURE(step);
            const int op = static_cast<int>(random() % 8);
            const std::uint32_t any_slot = core.slot_count() == 0 ? 0 : random() % core.slot_count();
            switch (op) {
            case 0:
                REQUIRE(core.add_slot() == model.add_slot());
                break;
            case 1:
                if (core.slot_count() > 0) {
                    REQUIRE(same_grant(core.slot_ready(any_slot), model.slot_ready(any_slot)));
                }
                break;
            case 2:
                if (core.slot_count() > 0) {
                    core.slot_lost(any_slot);
                    model.slot_lost(any_slot);
                }
                break;
            case 3:
            case 4: {
                const bool may_wait = chance(70);
                const std::uint64_t waiter = next_waiter++;
                const auto got = core.acquire(waiter, may_wait);
                const auto want = model.acquire(waiter, may_wait);
                REQUIRE(got.outcome == want.outcome);
                if (got.outcome == Outcome::granted) {
                    REQUIRE(same_grant(got.grant, want.grant));
                }
                break;
            }
            case 5:
            case 6: {
                // Mostly the current lease of a slot; sometimes a stale one or a slot that does not exist.
                std::uint32_t slot = any_slot;
                std::uint64_t lease = core.slot_count() == 0 ? 0 : core.lease_of(slot);
                if (chance(15)) {
                    lease = random() % (core_counter + 2);
                }
                if (chance(3)) {
                    slot = core.slot_count() + random() % 3;
                }
                const bool healthy = chance(80);
                const auto got = core.release(slot, lease, healthy);
                const auto want = model.release(slot, lease, healthy);
                REQUIRE(got.ended == want.ended);
                REQUIRE(same_grant(got.next, want.next));
                break;
            }
            case 7: {
                if (chance(5)) {
                    REQUIRE(core.take_all_waiters() == model.take_all_waiters());
                    break;
                }
                const auto& waiting = model.waiters();
                const std::uint64_t waiter
                    = !waiting.empty() && chance(80) ? waiting[random() % waiting.size()] : random() % next_waiter;
                REQUIRE(core.cancel(waiter) == model.cancel(waiter));
                break;
            }
            default:
                break;
            }
            require_same_state(core, model);
            REQUIRE(core_counter == model_counter);
        }
    }
}

TEST_CASE("PoolCore benchmark", "[.][bench]")
{
    ReadyPool p(8);
    std::uint64_t waiter = 0;
    BENCHMARK("pool_core lease+return")
    {
        const auto r = p.core.acquire(++waiter, false);
        p.core.release(r.grant.slot, r.grant.lease, true);
        return r.grant.lease;
    };
}
