#include "lane_names.hpp"

namespace dpool {

std::vector<LaneName> lane_names(std::string_view alive, std::string_view host, unsigned count)
{
    std::vector<LaneName> names;
    names.reserve(count);
    for (unsigned k = 0; k < count; ++k) {
        std::string lane_alive(alive);
        if (k > 0) {
            lane_alive += "_lane" + std::to_string(k);
        }
        std::string node_name = lane_alive + "@";
        node_name += host;
        names.push_back(LaneName{std::move(lane_alive), std::move(node_name)});
    }
    return names;
}

} // namespace dpool
