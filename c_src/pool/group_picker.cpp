#include "pool/group_picker.hpp"

#include <algorithm>

#include "util/stable_hash.hpp"

namespace dpool::pool {

std::string_view strategy_name(Strategy strategy)
{
    return strategy == Strategy::least_in_use ? "least_in_use" : "round_robin";
}

std::optional<Strategy> parse_strategy(std::string_view name)
{
    if (name == "round_robin") {
        return Strategy::round_robin;
    }
    if (name == "least_in_use") {
        return Strategy::least_in_use;
    }
    return std::nullopt;
}

std::optional<Pick> GroupPicker::pick(const std::vector<Candidate>& members, Strategy strategy,
                                      std::optional<std::uint64_t> key, std::optional<std::size_t> exclude)
{
    const std::size_t n = members.size();
    if (n == 0) {
        return std::nullopt;
    }
    // 2: up with a live connection; 1: up, reconnecting; 0: down.
    const auto rank = [&](std::size_t i) { return members[i].up ? (members[i].live ? 2 : 1) : 0; };
    const auto eligible = [&](std::size_t i, int min_rank) {
        return members[i].pickable && i != exclude && rank(i) >= min_rank;
    };
    int best_rank = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (eligible(i, 0)) {
            best_rank = std::max(best_rank, rank(i));
        }
    }
    if (best_rank == 0 && exclude) {
        return std::nullopt; // a retry goes to a member that is up, or nowhere
    }
    const std::size_t start = cursor_ % n;
    // The rule over the members of `min_rank` or better; n when there is none.
    const auto choose = [&](int min_rank) {
        std::size_t best = n;
        if (key) {
            std::uint64_t best_weight = 0;
            for (std::size_t i = 0; i < n; ++i) {
                if (!eligible(i, min_rank)) {
                    continue;
                }
                const auto weight = util::rendezvous_weight(*key, members[i].target);
                if (best == n || weight > best_weight) {
                    best = i;
                    best_weight = weight;
                }
            }
            return best;
        }
        // From the cursor on, so that ties (and every pick of round robin) go round.
        for (std::size_t k = 0; k < n; ++k) {
            const std::size_t i = (start + k) % n;
            if (!eligible(i, min_rank)) {
                continue;
            }
            if (strategy == Strategy::round_robin) {
                return i;
            }
            if (best == n || members[i].load < members[best].load) {
                best = i;
            }
        }
        return best;
    };
    const std::size_t natural = choose(0);
    if (natural == n) {
        return std::nullopt;
    }
    const std::size_t chosen = choose(best_rank);
    if (!key) {
        cursor_ = chosen + 1;
    }
    return Pick{chosen, chosen != natural};
}

} // namespace dpool::pool
