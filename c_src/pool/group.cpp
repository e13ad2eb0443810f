// A pool group: members, picks, failover to another member, admission of new members, removal and destroy.
#include "pool/group.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/node_identity.hpp"

namespace dpool::pool {

Group::Group(PoolContext& context, std::uint64_t id, GroupConfig config)
    : context_(context), id_(id), config_(std::move(config)), label_(pool_label(config_.name, id_))
{
    members_.reserve(kMaxGroupMembers);
}

Group::~Group()
{
    // Members outlive their group only in the service's table, for a moment: they must not call back here.
    for (auto& m : members_) {
        if (m.pool) {
            m.pool->leave_group();
        }
    }
}

bool Group::full() const
{
    return members_.size() == kMaxGroupMembers &&
           std::all_of(members_.begin(), members_.end(), [](const Member& m) { return m.pool != nullptr; });
}

std::string Group::refuse_member()
{
    ++member_refusals_;
    return fmt::format("group {} holds {} members, its limit (members being removed count until they have drained)",
                       label_, kMaxGroupMembers);
}

Pool* Group::member_for(std::string_view target) const
{
    for (const auto& m : members_) {
        if (m.pool && !m.removing && protocol::same_node(m.pool->config().target, target)) {
            return m.pool.get();
        }
    }
    return nullptr;
}

bool Group::serves_without(const Pool& member) const
{
    return std::any_of(members_.begin(), members_.end(), [&](const Member& m) {
        return m.pool && m.pool.get() != &member && m.joined && !m.removing;
    });
}

std::uint32_t Group::acquire_timeout_ms() const
{
    std::uint32_t longest = 0;
    for (const auto& m : members_) {
        if (m.pool) {
            longest = std::max(longest, m.pool->config().acquire_timeout_ms);
        }
    }
    return longest;
}

void Group::add(std::shared_ptr<Pool> member)
{
    auto free = std::find_if(members_.begin(), members_.end(), [](const Member& m) { return m.pool == nullptr; });
    if (free == members_.end()) {
        members_.emplace_back();
        free = members_.end() - 1;
    }
    const auto slot = static_cast<std::uint32_t>(free - members_.begin());
    member->join_group(this, slot << kMemberConnIdBits);
    *free = Member{std::move(member), false, false, 0, next_order_++};
}

void Group::start(Caller creator)
{
    Admission admission{std::move(creator), {}, true};
    for (const auto& m : members_) {
        if (m.pool) {
            admission.orders.push_back(m.order);
        }
    }
    admissions_.push_back(std::move(admission));
    for (const auto order : admissions_.back().orders) {
        member_by_order(order)->pool->start_in_background();
    }
    settle_admissions();
}

void Group::start_restored()
{
    // As at creation every member joins, and with nobody to answer: a restored pool connects in the background.
    for (auto& m : members_) {
        if (m.pool) {
            m.joined = true;
            m.pool->start_in_background();
        }
    }
}

void Group::admit(Pool& member, Caller adder)
{
    const auto slot = slot_of(member);
    if (!slot) {
        return;
    }
    admissions_.push_back(Admission{std::move(adder), {members_[*slot].order}, false});
    member.start_in_background();
    settle_admissions();
}

void Group::remove(Pool& member, std::optional<Caller> remover, std::uint32_t drain_ms, bool answer_member_id)
{
    const auto slot = slot_of(member);
    if (!slot) {
        return;
    }
    members_[*slot].removing = true;
    log::write(spdlog::level::info, {.pool = label_, .target = member.config().target},
               "removing the target from the group; waiting up to {} ms for its leases", drain_ms);
    member.destroy(std::move(remover), drain_ms, answer_member_id); // its callers in line come back through take_over
    post_settle(); // an add_target still waiting for it is answered (invalid_pool)
}

void Group::on_member_progress(Pool&)
{
    post_settle();
}

Group::Member* Group::member_by_order(std::uint64_t order)
{
    const auto it = std::find_if(members_.begin(), members_.end(),
                                 [&](const Member& m) { return m.pool && m.order == order; });
    return it == members_.end() ? nullptr : &*it;
}

void Group::post_settle()
{
    if (admissions_.empty() || settle_posted_) {
        return;
    }
    settle_posted_ = true;
    asio::post(context_.executor, [weak = weak_from_this()] {
        if (auto self = weak.lock()) {
            self->settle_posted_ = false;
            self->settle_admissions();
        }
    });
}

void Group::settle_admissions()
{
    const auto settled = [&](std::uint64_t order) {
        const Member* m = member_by_order(order);
        return !m || m->removing || m->pool->settled();
    };
    for (auto it = admissions_.begin(); it != admissions_.end();) {
        if (!std::all_of(it->orders.begin(), it->orders.end(), settled)) {
            ++it;
            continue;
        }
        Admission admission = std::move(*it);
        it = admissions_.erase(it);
        if (draining_) {
            answers().error(admission.caller.view(), "invalid_pool");
            continue;
        }
        Pool* first = nullptr;
        bool any_up = false;
        for (const auto order : admission.orders) {
            Member* m = member_by_order(order);
            if (!m || m->removing) {
                continue;
            }
            first = first ? first : m->pool.get();
            any_up = any_up || m->pool->up();
            // At creation every member joins, up or not (the group is there to fail over); an added one only up.
            m->joined = admission.creation || m->pool->up();
        }
        if (any_up) {
            // {ok, GroupId} to the creator, {ok, MemberId} to an add_target (the registry records it).
            answers().pool_started(admission.caller.view(), admission.creation ? id_ : first->id());
            continue;
        }
        const Failure why = first ? first->no_connection() : Failure("invalid_pool");
        answers().error(admission.caller.view(), why);
        if (admission.creation) {
            destroy(std::nullopt, 0);
            return;
        }
        if (first) {
            remove(*first, std::nullopt, 0);
        }
    }
}

Pool* Group::pick(std::optional<std::uint64_t> key, bool need_live)
{
    return pick_slot(key, need_live, std::nullopt);
}

Pool* Group::pick_slot(std::optional<std::uint64_t> key, bool need_live, std::optional<std::size_t> exclude)
{
    candidates_.clear();
    for (const auto& m : members_) {
        Candidate c;
        if (m.pool) {
            c.target = m.pool->config().target;
            c.pickable = m.joined && !m.removing;
            c.live = c.pickable && m.pool->live_connections() > 0;
            c.up = c.pickable && (need_live ? c.live : m.pool->up());
            c.load = config_.strategy == Strategy::least_in_use && c.pickable ? m.pool->load() : 0;
        } else {
            c.pickable = false;
        }
        candidates_.push_back(c);
    }
    const auto got = picker_.pick(candidates_, config_.strategy, key, exclude);
    if (!got) {
        return nullptr;
    }
    auto& m = members_[got->index];
    ++m.picked;
    // Once per operation: its first pick (a retry's is no new skip).
    skipped_down_ += got->skipped_down && !exclude ? 1 : 0;
    return m.pool.get();
}

Pool* Group::member_of_conn(std::uint32_t conn) const
{
    const std::size_t slot = conn >> kMemberConnIdBits;
    return slot < members_.size() ? members_[slot].pool.get() : nullptr;
}

std::variant<std::pair<Pool*, Pool::LeaseIds>, Failure> Group::find_checkout(std::string_view tag) const
{
    bool pending = false;
    for (const auto& m : members_) {
        if (!m.pool) {
            continue;
        }
        auto found = m.pool->find_checkout(tag);
        if (const auto* ids = std::get_if<Pool::LeaseIds>(&found)) {
            return std::pair<Pool*, Pool::LeaseIds>{m.pool.get(), *ids};
        }
        pending = pending || std::get<Failure>(found).error == "lease_pending";
    }
    return Failure(pending ? "lease_pending" : "invalid_connection");
}

void Group::cancel(std::string_view pid, std::string_view tag)
{
    for (const auto& m : members_) {
        if (m.pool) {
            m.pool->cancel(pid, tag);
        }
    }
}

bool Group::take_over(Pool& member, const CallerView& caller, const OneShotView* job, Clock::time_point deadline,
                      const Failover& failover, const Failure& failure)
{
    const auto slot = slot_of(member);
    if (draining_ || !slot || !failover.portable) {
        return false;
    }
    const bool removing = members_[*slot].removing;
    if (!removing && !(failure.error == "connection_failed" && failover.retry_left)) {
        return false;
    }
    Pool* next = pick_slot(failover.key, false, *slot);
    if (!next) {
        return false; // no other member is up: the caller gets this member's own error
    }
    ++(removing ? moved_waiters_ : retries_);
    Failover again = failover;
    again.retry_left = removing && failover.retry_left;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    next->checkout(caller, static_cast<std::uint32_t>(std::max<std::int64_t>(left, 0)), job, again);
    return true;
}

void Group::on_member_closed(Pool& member)
{
    const auto slot = slot_of(member);
    if (!slot) {
        return;
    }
    // The service still holds the pool (it forgets it a moment later): the slot can let it go now.
    member.leave_group();
    members_[*slot] = Member{};
    if (draining_) {
        finish_destroy();
        return;
    }
    post_settle();
}

std::optional<std::size_t> Group::slot_of(const Pool& member) const
{
    for (std::size_t slot = 0; slot < members_.size(); ++slot) {
        if (members_[slot].pool.get() == &member) {
            return slot;
        }
    }
    return std::nullopt;
}

GroupStats Group::snapshot() const
{
    GroupStats s;
    s.group_id = id_;
    s.name = config_.name;
    s.strategy = config_.strategy;
    s.draining = draining_;
    s.owner = config_.owner;
    s.owner_grace_ms = config_.owner_grace_ms;
    s.acquire_timeout_ms = acquire_timeout_ms();
    s.retries = retries_;
    s.moved_waiters = moved_waiters_;
    s.skipped_down = skipped_down_;
    s.member_refusals = member_refusals_;
    std::vector<const Member*> joined;
    for (const auto& m : members_) {
        if (m.pool) {
            joined.push_back(&m);
        }
    }
    std::sort(joined.begin(), joined.end(), [](const Member* a, const Member* b) { return a->order < b->order; });
    for (const Member* m : joined) {
        s.members.push_back(GroupStats::Member{m->pool->snapshot(), m->pool->up(), m->removing, m->picked});
    }
    return s;
}

void Group::destroy(std::optional<Caller> destroyer, std::uint32_t drain_ms)
{
    if (!may_begin_destroy(draining_, destroyer, answers())) {
        return;
    }
    draining_ = true;
    destroyer_ = std::move(destroyer);
    log::write(spdlog::level::info, {.pool = label_}, "destroying the group; waiting up to {} ms for its leases",
               drain_ms);
    // A member that finishes at once frees its slot under this loop: slots are never erased, only emptied.
    for (std::size_t slot = 0; slot < members_.size(); ++slot) {
        if (auto member = members_[slot].pool; member && !member->draining()) {
            member->destroy(std::nullopt, drain_ms);
        }
    }
    finish_destroy();
}

void Group::finish_destroy()
{
    if (finished_ || std::any_of(members_.begin(), members_.end(), [](const Member& m) { return m.pool != nullptr; })) {
        return;
    }
    finished_ = true;
    for (auto& admission : admissions_) {
        answers().error(admission.caller.view(), "invalid_pool");
    }
    admissions_.clear();
    if (destroyer_) {
        answers().ok(destroyer_->view());
        destroyer_.reset();
    }
    context_.post_drop(id_);
}

} // namespace dpool::pool
