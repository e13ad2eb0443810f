#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace dpool::api {

// Which caller node owns which pools, and whether it is there (docs/PROTOCOL.md, "Owners"). A node is there
// while it has a connection on any lane; when its last one closes it is gone, and each of its pools is
// destroyed unless the node comes back within the pool's grace. Every absence gets a number of its own, so a
// grace that ends can tell whether the node came back (and maybe left again) meanwhile.
//
// No I/O and no clock: the service feeds it connections and pools, schedules the graces and asks on expiry.
// Bounded by the caller nodes connected plus the nodes that own pools.
class Owners {
public:
    // The node's last connection closed: its pools and the number of this absence.
    struct Gone {
        std::uint64_t absence = 0;
        std::vector<std::uint64_t> pools;
    };

    // A connection of `node` opened. True when the node had been gone with pools: it came back in time.
    bool connected(const std::string& node);
    // A connection of `node` closed. nullopt while the node has others, or when it owns no pool.
    std::optional<Gone> disconnected(const std::string& node);
    // `pool` now belongs to `node` (connected: it has just asked for it), or is gone.
    void adopt(const std::string& node, std::uint64_t pool);
    void release(const std::string& node, std::uint64_t pool);
    // Whether `node` is still gone in the absence numbered `absence`.
    bool still_gone(const std::string& node, std::uint64_t absence) const;
    // Pools whose owner is gone now (their grace runs).
    std::size_t orphaned_pools() const;

private:
    struct Owner {
        std::uint32_t connections = 0;
        std::uint64_t absence = 0; // while gone (connections 0): the number of this absence
        std::unordered_set<std::uint64_t> pools;
    };
    // Forgets a node that is neither connected nor owns a pool.
    void drop_if_unused(std::unordered_map<std::string, Owner>::iterator it);

    std::unordered_map<std::string, Owner> owners_;
    std::uint64_t absences_ = 0;
};

} // namespace dpool::api
