#include "api/owners.hpp"

namespace dpool::api {

bool Owners::connected(const std::string& node)
{
    Owner& o = owners_[node];
    const bool came_back = o.connections == 0 && !o.pools.empty();
    ++o.connections;
    o.absence = 0;
    return came_back;
}

std::optional<Owners::Gone> Owners::disconnected(const std::string& node)
{
    const auto it = owners_.find(node);
    if (it == owners_.end() || it->second.connections == 0) {
        return std::nullopt;
    }
    Owner& o = it->second;
    if (--o.connections > 0) {
        return std::nullopt;
    }
    if (o.pools.empty()) {
        owners_.erase(it);
        return std::nullopt;
    }
    o.absence = ++absences_;
    return Gone{o.absence, std::vector<std::uint64_t>(o.pools.begin(), o.pools.end())};
}

void Owners::adopt(const std::string& node, std::uint64_t pool)
{
    owners_[node].pools.insert(pool);
}

void Owners::release(const std::string& node, std::uint64_t pool)
{
    const auto it = owners_.find(node);
    if (it != owners_.end()) {
        it->second.pools.erase(pool);
        drop_if_unused(it);
    }
}

bool Owners::still_gone(const std::string& node, std::uint64_t absence) const
{
    const auto it = owners_.find(node);
    return it != owners_.end() && it->second.connections == 0 && it->second.absence == absence;
}

std::size_t Owners::orphaned_pools() const
{
    std::size_t n = 0;
    for (const auto& [node, o] : owners_) {
        if (o.connections == 0) {
            n += o.pools.size();
        }
    }
    return n;
}

void Owners::drop_if_unused(std::unordered_map<std::string, Owner>::iterator it)
{
    if (it->second.connections == 0 && it->second.pools.empty()) {
        owners_.erase(it);
    }
}

} // namespace dpool::api
