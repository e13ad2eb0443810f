#include "pool/pool_core.hpp"

#include <algorithm>

namespace dpool::pool {

PoolCore::PoolCore(std::uint32_t max_slots, std::uint64_t& lease_counter)
    : max_slots_(max_slots), lease_counter_(lease_counter)
{
    slots_.reserve(max_slots);
    idle_.reserve(max_slots);
}

std::optional<std::uint32_t> PoolCore::add_slot()
{
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
        if (slots_[i].state == SlotState::closed) {
            slots_[i].state = SlotState::connecting;
            ++connecting_;
            return i;
        }
    }
    if (slots_.size() >= max_slots_) {
        return std::nullopt;
    }
    slots_.push_back(Slot{});
    ++connecting_;
    return static_cast<std::uint32_t>(slots_.size() - 1);
}

void PoolCore::close_idle(std::uint32_t slot)
{
    Slot& s = slots_[slot];
    if (s.state != SlotState::idle) {
        return;
    }
    idle_.erase(std::find(idle_.begin(), idle_.end(), slot));
    s.state = SlotState::closed;
}

void PoolCore::requeue_first(std::uint64_t waiter)
{
    if (waiting_.insert(waiter).second) {
        queue_.push_front(waiter);
    }
}

Grant PoolCore::lease_slot(std::uint32_t slot, std::uint64_t waiter)
{
    Slot& s = slots_[slot];
    s.state = SlotState::leased;
    s.lease = ++lease_counter_;
    ++leased_;
    return Grant{slot, s.lease, waiter};
}

std::optional<std::uint64_t> PoolCore::pop_waiter()
{
    while (!queue_.empty()) {
        const std::uint64_t waiter = queue_.front();
        queue_.pop_front();
        if (waiting_.erase(waiter) > 0) {
            return waiter;
        }
    }
    return std::nullopt;
}

std::optional<Grant> PoolCore::slot_ready(std::uint32_t slot)
{
    Slot& s = slots_[slot];
    if (s.state != SlotState::connecting) {
        return std::nullopt;
    }
    --connecting_;
    if (auto waiter = pop_waiter()) {
        return lease_slot(slot, *waiter);
    }
    s.state = SlotState::idle;
    idle_.push_back(slot);
    return std::nullopt;
}

void PoolCore::slot_lost(std::uint32_t slot)
{
    Slot& s = slots_[slot];
    if (s.state != SlotState::idle) {
        return;
    }
    idle_.erase(std::find(idle_.begin(), idle_.end(), slot));
    s.state = SlotState::connecting;
    ++connecting_;
}

PoolCore::AcquireResult PoolCore::acquire(std::uint64_t waiter, bool may_wait)
{
    if (!idle_.empty()) {
        const std::uint32_t slot = idle_.back();
        idle_.pop_back();
        return {Outcome::granted, lease_slot(slot, waiter)};
    }
    if (!may_wait) {
        return {Outcome::exhausted, {}};
    }
    queue_.push_back(waiter);
    waiting_.insert(waiter);
    return {Outcome::queued, {}};
}

PoolCore::Release PoolCore::release(std::uint32_t slot, std::uint64_t lease, bool healthy)
{
    Release r;
    if (!lease_current(slot, lease)) {
        return r;
    }
    r.ended = true;
    --leased_;
    Slot& s = slots_[slot];
    s.lease = 0;
    if (!healthy) {
        s.state = SlotState::connecting;
        ++connecting_;
        return r;
    }
    if (auto waiter = pop_waiter()) {
        r.next = lease_slot(slot, *waiter);
        return r;
    }
    s.state = SlotState::idle;
    idle_.push_back(slot);
    return r;
}

bool PoolCore::cancel(std::uint64_t waiter)
{
    if (waiting_.erase(waiter) == 0) {
        return false;
    }
    // Cancelled entries leave the queue lazily; compact when they dominate, so a long outage in which every
    // waiter times out does not grow the queue without bound.
    if (queue_.size() > 2 * waiting_.size() + 64) {
        std::erase_if(queue_, [this](std::uint64_t w) { return !waiting_.contains(w); });
    }
    return true;
}

void PoolCore::shrink_waiters()
{
    constexpr std::size_t kKeepBuckets = 1024;
    if (waiting_.bucket_count() > kKeepBuckets && waiting_.size() * 8 < waiting_.bucket_count()) {
        waiting_.rehash(0);
        std::erase_if(queue_, [this](std::uint64_t w) { return !waiting_.contains(w); });
        queue_.shrink_to_fit();
    }
}

std::vector<std::uint64_t> PoolCore::take_all_waiters()
{
    std::vector<std::uint64_t> all;
    while (auto waiter = pop_waiter()) {
        all.push_back(*waiter);
    }
    return all;
}

PoolCore::Counts PoolCore::counts() const
{
    return Counts{static_cast<std::uint32_t>(idle_.size()), leased_, connecting_, waiting_.size()};
}

} // namespace dpool::pool
