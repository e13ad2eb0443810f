#include "api/caller_quotas.hpp"

namespace dpool::api {

CallerQuotas::Usage CallerQuotas::usage(std::string_view node) const
{
    const auto it = nodes_.find(std::string(node));
    return it == nodes_.end() ? Usage{} : it->second;
}

std::optional<pool::Limit> CallerQuotas::exceeded(std::string_view node, Usage more) const
{
    const Usage used = usage(node);
    // 64-bit sums: a bound near 2^32 cannot wrap.
    if (std::uint64_t{used.pools} + more.pools > bounds_.pools) {
        return pool::Limit::max_pools_per_caller;
    }
    if (std::uint64_t{used.connections} + more.connections > bounds_.connections) {
        return pool::Limit::max_connections_per_caller;
    }
    return std::nullopt;
}

void CallerQuotas::add(std::uint64_t pool, std::string_view node, std::uint32_t connections)
{
    if (!pools_.try_emplace(pool, Owned{std::string(node), connections}).second) {
        return;
    }
    Usage& used = nodes_[std::string(node)];
    ++used.pools;
    used.connections += connections;
}

void CallerQuotas::remove(std::uint64_t pool)
{
    const auto it = pools_.find(pool);
    if (it == pools_.end()) {
        return;
    }
    if (const auto n = nodes_.find(it->second.node); n != nodes_.end()) {
        --n->second.pools;
        n->second.connections -= it->second.connections;
        if (n->second.pools == 0) {
            nodes_.erase(n);
        }
    }
    pools_.erase(it);
}

} // namespace dpool::api
