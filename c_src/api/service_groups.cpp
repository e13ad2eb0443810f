// Pool groups in the service: making them, adding and removing targets, and routing each request that names a
// group to the member that serves it (docs/PROTOCOL.md, "Pool groups").
#include "api/service.hpp"

#include <cstdint>
#include <numeric>
#include <variant>

#include <spdlog/spdlog.h>

#include "api/pool_options.hpp"
#include "api/replies.hpp"
#include "api/requests.hpp"
#include "util/log.hpp"
#include "util/overloaded.hpp"

namespace dpool::api {

using util::Overloaded;

// A lease's ConnId (32 bits) is its member's slot << kMemberConnIdBits plus the connection's index: every index
// of a pool fits below that shift, and the last member's ids fit in 32 bits.
static_assert(kMaxConnectionsPerPool <= (1u << pool::kMemberConnIdBits));
static_assert((std::uint64_t{pool::kMaxGroupMembers} << pool::kMemberConnIdBits) <= (std::uint64_t{1} << 32));

pool::Group* Service::find_group(std::uint64_t id)
{
    const auto it = groups_.find(id);
    return it == groups_.end() ? nullptr : it->second.get();
}

pool::Group* Service::group_of(const pool::Pool& member)
{
    if (!member.in_group()) {
        return nullptr;
    }
    for (const auto& [id, g] : groups_) {
        if (g->has_member(member)) {
            return g.get();
        }
    }
    return nullptr;
}

void Service::create_group(const pool::CallerView& caller, NewGroup request)
{
    for (auto& m : request.members) {
        if (!admissible(caller, m.config, m.target_term)) {
            return;
        }
    }
    auto& config = request.config;
    if (!config.name.empty()) {
        if (const auto taken = named(config.name)) {
            reply_pool_handle(caller, "already_started", taken->first, taken->second);
            return;
        }
    }
    const std::string_view creator = caller.link->peer_node();
    // Every member is a pool of its creator's, against its quotas and the C-node's budget.
    const CallerQuotas::Usage more{
        static_cast<std::uint32_t>(request.members.size()),
        std::accumulate(request.members.begin(), request.members.end(), std::uint32_t{0},
                        [](std::uint32_t sum, const NewPool& m) { return sum + m.config.max_connections; })};
    if (const auto refused = budget_refusal(creator, more, connections_in_use())) {
        reply_error(caller, *refused);
        return;
    }
    pools_created_ = true;
    auto& group = add_group(caller, next_pool_id_++, std::move(config));
    // Members get the ids after the group's, in the order of the list (docs/PROTOCOL.md): the library's
    // registry records them so, for a restore.
    for (auto& m : request.members) {
        group.add(add_member(caller, group, std::move(m.config), next_pool_id_++));
    }
    log::write(spdlog::level::info, {.pool = group.label(), .caller = creator}, "group of {} targets ({})",
               request.members.size(), pool::strategy_name(group.config().strategy));
    group.start(pool::Caller(caller));
}

pool::Group& Service::add_group(const pool::CallerView& caller, std::uint64_t id, pool::GroupConfig config)
{
    if (!config.ownerless) {
        config.owner = caller.link->peer_node();
    }
    auto& group = *groups_.emplace(id, std::make_shared<pool::Group>(context_, id, std::move(config))).first->second;
    if (!group.config().name.empty()) {
        names_[group.config().name] = id;
    }
    if (!group.config().owner.empty()) {
        owners_.adopt(group.config().owner, id);
    }
    return group;
}

std::shared_ptr<pool::Pool> Service::add_member(const pool::CallerView& caller, pool::Group& group,
                                                pool::PoolConfig config, std::uint64_t id)
{
    // Its group's owner is its own, but the group is what its owner's absence destroys.
    config.ownerless = group.config().ownerless;
    config.owner_grace_ms = group.config().owner_grace_ms;
    return add_pool(caller, id, std::move(config), false);
}

void Service::add_target(const pool::CallerView& caller, AddTarget request)
{
    auto* group = find_group(request.group);
    if (!group || group->draining()) {
        reply_error(caller, "invalid_pool");
        return;
    }
    auto spec = read_pool_spec(request.target_term, request.options, group->config().pool_options);
    if (const auto* rejected = std::get_if<Rejected>(&spec)) {
        reply_invalid_config(caller, *rejected->config);
        return;
    }
    auto& member_spec = std::get<NewPool>(spec);
    auto& config = member_spec.config;
    if (group->member_for(config.target)) {
        ConfigError why;
        why.kind = ConfigError::Kind::duplicate_target;
        why.term = member_spec.target_term;
        reply_invalid_config(caller, why);
        return;
    }
    if (group->full()) {
        reply_error(caller, context_.limit_refusals.refuse(pool::Limit::max_group_members, group->refuse_member()));
        return;
    }
    if (!admissible(caller, config, member_spec.target_term)) {
        return;
    }
    if (const auto refused = budget_refusal(caller.link->peer_node(), {1, config.max_connections},
                                            connections_in_use())) {
        reply_error(caller, *refused);
        return;
    }
    auto member = add_member(caller, *group, std::move(config), next_pool_id_++);
    log::write(spdlog::level::info, {.pool = group->label(), .target = member->config().target},
               "adding the target to the group");
    group->add(member);
    group->admit(*member, pool::Caller(caller));
}

void Service::remove_target(const pool::CallerView& caller, const RemoveTarget& request)
{
    auto* group = find_group(request.group);
    if (!group || group->draining()) {
        reply_error(caller, "invalid_pool");
        return;
    }
    auto* member = group->member_for(request.target);
    if (!member) {
        ConfigError why;
        why.kind = ConfigError::Kind::unknown_target;
        why.term = request.target_term;
        reply_invalid_config(caller, why);
        return;
    }
    remove_member(caller, *group, *member, request.target_term, request.drain_timeout_ms, request.answer_member_id);
}

void Service::remove_member(const pool::CallerView& caller, pool::Group& group, pool::Pool& member,
                            std::string_view target_term, std::uint32_t drain_ms, bool answer_member_id)
{
    if (!group.serves_without(member)) {
        ConfigError why;
        why.kind = ConfigError::Kind::last_target;
        why.term = target_term;
        reply_invalid_config(caller, why);
        return;
    }
    group.remove(member, pool::Caller(caller), drain_ms, answer_member_id);
}

bool Service::route_to_group(const pool::CallerView& caller, Decoded& decoded, std::optional<std::uint64_t> key,
                             pool::Failover& failover)
{
    // The group a request names (nullptr: the request goes on as it is).
    const auto group_named = [&](std::uint64_t id) { return groups_.empty() ? nullptr : find_group(id); };
    // A lease named by its checkout's tag goes to the member whose line or lease has it (its id in `pool`).
    const auto to_checkout_member = [&](pool::Group& g, std::string_view tag, std::uint64_t& pool) {
        auto found = g.find_checkout(tag);
        if (const auto* at = std::get_if<std::pair<pool::Pool*, pool::Pool::LeaseIds>>(&found)) {
            pool = at->first->id();
            return true;
        }
        reply_error(caller, std::get<pool::Failure>(found));
        return false;
    };
    // A lease of a group goes to its member (whose ConnIds are its own), which answers as for any lease.
    const auto to_member_lease = [&](pool::Group& g, LeaseRef& lease) {
        if (lease.checkout_tag.empty()) {
            if (auto* m = g.member_of_conn(lease.conn)) {
                lease.pool = m->id();
                return true;
            }
            reply_error(caller, "invalid_connection");
            return false;
        }
        return to_checkout_member(g, lease.checkout_tag, lease.pool);
    };
    // An operation that takes a lease of its own (or none: a cast batch) goes to the member picked for it; a
    // destination on one node (a pid, {Name, Node}) to that node's member, and nowhere else.
    const auto to_member = [&](pool::Group& g, std::uint64_t& pool, std::string_view destination, bool batch) {
        if (g.draining()) {
            reply_error(caller, "invalid_pool");
            return false;
        }
        pool::Pool* member = nullptr;
        const auto node = destination.empty() ? std::nullopt : destination_node(destination);
        if (node) {
            member = g.member_for(*node);
            if (!member) {
                reply_error(caller, "badarg");
                return false;
            }
        } else {
            member = g.pick(key, batch);
        }
        if (!member) {
            reply_error(caller, "invalid_pool");
            return false;
        }
        pool = member->id();
        failover = pool::Failover{.portable = !node, .retry_left = !batch, .key = key};
        return true;
    };
    // The same, for a request that names a group (or not: it goes on as it is).
    const auto one_member = [&](std::uint64_t& pool, std::string_view destination, bool batch) {
        auto* g = group_named(pool);
        return !g || to_member(*g, pool, destination, batch);
    };
    const auto lease_member = [&](LeaseRef& lease) {
        auto* g = group_named(lease.pool);
        return !g || to_member_lease(*g, lease);
    };
    return std::visit(
        Overloaded{
            [&](Checkout& r) { return one_member(r.pool, {}, false); },
            [&](PooledCall& r) { return one_member(r.pool, {}, false); },
            [&](PooledSend& r) { return one_member(r.pool, r.destination, false); },
            [&](PooledRequest& r) { return one_member(r.pool, r.destination, false); },
            [&](CastBatch& r) { return one_member(r.pool, r.destination, true); },
            [&](Send& r) { return lease_member(r.lease); },
            [&](SendMany& r) { return lease_member(r.lease); },
            [&](Request& r) { return lease_member(r.lease); },
            [&](Call& r) { return lease_member(r.lease); },
            [&](Checkin& r) { return lease_member(r.lease); },
            [&](LeaseOf& r) {
                auto* g = group_named(r.pool);
                return !g || to_checkout_member(*g, r.tag, r.pool);
            },
            [&](const Stats& r) {
                auto* g = group_named(r.pool);
                if (!g) {
                    return true;
                }
                reply_group_stats(caller, g->snapshot());
                return false;
            },
            [&](const Destroy& r) {
                if (auto* g = group_named(r.pool)) {
                    g->destroy(pool::Caller(caller), r.drain_timeout_ms);
                    return false;
                }
                // A member is destroyed with its group, or removed from it as by remove_target.
                auto* member = find_pool(r.pool);
                auto* g = member ? group_of(*member) : nullptr;
                if (!g) {
                    return true;
                }
                if (g->draining() || member->draining()) {
                    reply_error(caller, "invalid_pool");
                    return false;
                }
                // The target as a term, for a refusal that names it.
                ByteBuffer target_term;
                protocol::TermWriter(target_term).atom(member->config().target);
                remove_member(caller, *g, *member, target_term.view(), r.drain_timeout_ms);
                return false;
            },
            [&](const auto&) { return true; },
        },
        decoded);
}

bool Service::route_cast_to_group(Decoded& decoded)
{
    if (groups_.empty()) {
        return true;
    }
    if (auto* checkin = std::get_if<Checkin>(&decoded)) {
        auto* g = find_group(checkin->lease.pool);
        if (!g || !checkin->lease.checkout_tag.empty()) {
            return true;
        }
        auto* member = g->member_of_conn(checkin->lease.conn);
        if (member) {
            checkin->lease.pool = member->id();
        }
        return member != nullptr; // a lease no member has is stale: ignored, as a pool ignores one
    }
    if (const auto* cancel = std::get_if<Cancel>(&decoded)) {
        if (auto* g = find_group(cancel->pool)) {
            g->cancel(cancel->pid, cancel->tag);
            return false;
        }
    }
    return true;
}

} // namespace dpool::api
