#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace dpool::pool {

// How a pool group picks the member of an operation that carries no key (docs/PROTOCOL.md, "Pool groups").
enum class Strategy : std::uint8_t {
    round_robin,  // a cursor over the members that are up
    least_in_use, // the fewest leases out plus callers in line; ties broken round robin
};
std::string_view strategy_name(Strategy strategy);
std::optional<Strategy> parse_strategy(std::string_view name);

// One member as the picker sees it.
struct Candidate {
    std::string_view target;
    bool pickable = true; // false: being added or removed, never picked
    bool up = false;      // Pool::up (or, for a cast batch, a live connection)
    std::uint64_t load = 0;
    bool live = false; // up with a live connection now, not only reconnecting: preferred to one that is not
};

struct Pick {
    std::size_t index = 0;
    // The strategy (or the key) alone would have picked a member that is down (or up without a live connection
    // while another has one): another one was taken.
    bool skipped_down = false;
};

// The choice of a member per operation, without I/O (unit-tested on its own). With a key: rendezvous hashing
// (util::rendezvous_weight) over the members that are up, so a key keeps its member while that member is up
// and only a lost member's keys move. Without: the strategy, over the members that are up. Members up with a
// live connection come first, then those up but only reconnecting (a reconnect that hangs would hold their
// callers in line until they time out), then the rest. When none is up the same rule runs over every
// pickable member, so that the caller gets that member's own error.
class GroupPicker {
public:
    // nullopt: no member is pickable; or, with `exclude` (a retry after that member failed), no other is up.
    std::optional<Pick> pick(const std::vector<Candidate>& members, Strategy strategy,
                             std::optional<std::uint64_t> key, std::optional<std::size_t> exclude = std::nullopt);

private:
    // Where round robin goes on: the member after the last one it picked.
    std::size_t cursor_ = 0;
};

} // namespace dpool::pool
