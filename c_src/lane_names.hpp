#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace dpool {

// The names the C-node answers under: lane 0 is its node name, lane k (1..count-1) is <alive>_lane<k>@<host>,
// each registered in epmd and listening on its own port. Deterministic, so a caller that learnt them keeps
// them across a restart of the C-node with the same arguments.
struct LaneName {
    std::string alive;
    std::string node_name; // alive@host
};

std::vector<LaneName> lane_names(std::string_view alive, std::string_view host, unsigned count);

} // namespace dpool
