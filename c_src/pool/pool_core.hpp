#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_set>
#include <vector>

namespace dpool::pool {

// closed: the slot holds no connection (closed as idle or unneeded) and may be opened again.
enum class SlotState : std::uint8_t { connecting, idle, leased, closed };

// A lease handed out: slot `slot` now belongs to waiter `waiter` (0 for a direct acquire) under `lease`.
struct Grant {
    std::uint32_t slot = 0;
    std::uint64_t lease = 0;
    std::uint64_t waiter = 0;
};

// The lease bookkeeping of one pool, with no I/O and no clock, so it can be tested and measured alone.
// Slots are the pool's connections. Idle slots are handed out last-in first-out (the warmest connection
// first, and the coldest ones stay idle long enough to be noticed). Waiters are served first-come first-served.
// Lease ids come from a counter shared by every pool of the process, so a lease id names one lease anywhere.
class PoolCore {
public:
    PoolCore(std::uint32_t max_slots, std::uint64_t& lease_counter);

    std::uint32_t max_slots() const { return max_slots_; }
    std::uint32_t slot_count() const { return static_cast<std::uint32_t>(slots_.size()); }
    // Slots with a connection, or opening one: every state but closed.
    std::uint32_t open_slots() const { return static_cast<std::uint32_t>(idle_.size()) + leased_ + connecting_; }
    SlotState state(std::uint32_t slot) const { return slots_[slot].state; }
    std::uint64_t lease_of(std::uint32_t slot) const { return slots_[slot].lease; }

    // A slot to open, connecting: a closed one if there is one, else a new one; nullopt at the maximum.
    std::optional<std::uint32_t> add_slot();
    // An idle slot's connection is closed on purpose (idle too long, not needed): the slot becomes closed.
    void close_idle(std::uint32_t slot);
    // The idle slots, the one to lease next last.
    const std::vector<std::uint32_t>& idle_slots() const { return idle_; }

    // A connecting slot's connection is up: it goes to the first waiter, or becomes idle.
    std::optional<Grant> slot_ready(std::uint32_t slot);
    // An idle slot lost its connection and is connecting again. Leased slots are not affected: they come
    // back through release().
    void slot_lost(std::uint32_t slot);

    enum class Outcome { granted, queued, exhausted };
    struct AcquireResult {
        Outcome outcome;
        Grant grant;
    };
    // Leases an idle slot; otherwise queues `waiter` (if `may_wait`) or reports exhaustion.
    AcquireResult acquire(std::uint64_t waiter, bool may_wait);
    // Puts a waiter back at the head of the queue (its grant could not be used, so it must not lose its turn).
    void requeue_first(std::uint64_t waiter);

    bool lease_current(std::uint32_t slot, std::uint64_t lease) const
    {
        return slot < slots_.size() && slots_[slot].state == SlotState::leased && slots_[slot].lease == lease;
    }

    // Ends a lease. A healthy slot goes to the first waiter or becomes idle; a broken one starts connecting.
    struct Release {
        bool ended = false;
        std::optional<Grant> next;
    };
    Release release(std::uint32_t slot, std::uint64_t lease, bool healthy);

    // Removes a waiter from the queue; false if it was not waiting.
    bool cancel(std::uint64_t waiter);
    // Removes every waiter, in queue order.
    std::vector<std::uint64_t> take_all_waiters();
    // Gives back the memory of a long line that is short again.
    void shrink_waiters();

    struct Counts {
        std::uint32_t idle = 0;
        std::uint32_t leased = 0;
        std::uint32_t connecting = 0;
        std::size_t waiting = 0;
    };
    Counts counts() const;

private:
    struct Slot {
        SlotState state = SlotState::connecting;
        std::uint64_t lease = 0;
    };

    Grant lease_slot(std::uint32_t slot, std::uint64_t waiter);
    std::optional<std::uint64_t> pop_waiter();

    std::uint32_t max_slots_;
    std::uint64_t& lease_counter_;
    std::vector<Slot> slots_;
    std::vector<std::uint32_t> idle_;
    // Queue order, with cancelled waiters removed lazily; `waiting_` holds the ones still waiting.
    std::deque<std::uint64_t> queue_;
    std::unordered_set<std::uint64_t> waiting_;
    std::uint32_t leased_ = 0;
    std::uint32_t connecting_ = 0;
};

} // namespace dpool::pool
