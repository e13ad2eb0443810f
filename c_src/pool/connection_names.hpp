#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "protocol/node_identity.hpp"

namespace dpool::pool {

// Hands out the hidden node names of pooled connections: `<cnode alive>_<n>@<host>`, with n the smallest
// number free towards that target. Every distinct node name becomes an atom on the target, and atoms are never
// collected there, so names are reused rather than minted per pool: a target sees at most as many names as the
// C-node held connections to it at once, plus those cooling down.
//
// A released name cools down before reuse: until the target has processed the close of the old connection it
// answers a handshake under the same name with "alive", which ei treats as a refusal.
class ConnectionNames {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::milliseconds kCoolDown{2000};

    struct Name {
        std::uint32_t number;
        std::string node_name;
    };

    ConnectionNames(std::string alive, std::string host) : alive_(std::move(alive)), host_(std::move(host)) {}

    Name acquire(const std::string& target, Clock::time_point now = Clock::now())
    {
        forget_idle_targets(now);
        Names& names = targets_[target];
        std::uint32_t n = 0;
        while (names.used.contains(n) || names.cooling.contains(n)) {
            ++n;
        }
        names.used.insert(n);
        return Name{n, alive_ + "_" + std::to_string(n) + "@" + host_};
    }

    void release(const std::string& target, std::uint32_t number, Clock::time_point now = Clock::now())
    {
        const auto it = targets_.find(target);
        if (it == targets_.end() || it->second.used.erase(number) == 0) {
            return;
        }
        it->second.cooling[number] = now + kCoolDown;
    }

    // Whether `node` has the form of the names handed out here, whatever its number (any of them may be in use
    // towards some target at any time): a target of that name would be the C-node itself.
    bool is_pooled_name(std::string_view node) const
    {
        const auto name = protocol::parse_node_name(node);
        if (!name || !protocol::same_host(name->host, host_) || name->alive.size() <= alive_.size() + 1 ||
            !name->alive.starts_with(alive_) || name->alive[alive_.size()] != '_') {
            return false;
        }
        const auto number = name->alive.substr(alive_.size() + 1);
        return std::all_of(number.begin(), number.end(), [](char c) { return c >= '0' && c <= '9'; });
    }

    // Names in use or cooling down towards `target`.
    std::size_t held(const std::string& target) const
    {
        const auto it = targets_.find(target);
        return it == targets_.end() ? 0 : it->second.used.size() + it->second.cooling.size();
    }

private:
    // Targets with no name in use and none cooling need no entry (pools to many short-lived targets).
    void forget_idle_targets(Clock::time_point now)
    {
        for (auto it = targets_.begin(); it != targets_.end();) {
            std::erase_if(it->second.cooling, [now](const auto& c) { return c.second <= now; });
            it = it->second.used.empty() && it->second.cooling.empty() ? targets_.erase(it) : std::next(it);
        }
    }

    struct Names {
        std::set<std::uint32_t> used;
        std::map<std::uint32_t, Clock::time_point> cooling;
    };

    std::string alive_;
    std::string host_;
    std::map<std::string, Names> targets_;
};

} // namespace dpool::pool
