#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pool/group_picker.hpp"

namespace dpool::pool {

// The most members a group holds; a member being removed holds its place until it has drained.
inline constexpr std::size_t kMaxGroupMembers = 64;

// A group's own options (docs/PROTOCOL.md, "Pool groups"); its members' are ordinary pool options.
struct GroupConfig {
    std::string name; // registered name, empty for none (unique per C-node, shared with pools' names)
    Strategy strategy = Strategy::round_robin;
    bool ownerless = false;
    std::uint32_t owner_grace_ms = 30'000;
    std::string owner; // set by the service, as a pool's; empty: none
    // The options map every member's own options go over, encoded as new_group gave it (add_target's too).
    std::string pool_options;
};

} // namespace dpool::pool
