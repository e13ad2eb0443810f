#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pool/limits.hpp"

namespace dpool::api {

// The pools each caller node created and the connections they may hold (their max_connections), against the
// bounds per caller node (--max-pools-per-caller, --max-connections-per-caller): one caller cannot take the
// C-node's whole budget of connections (--max-total-connections) from the others.
class CallerQuotas {
public:
    struct Bounds {
        std::uint32_t pools = 0;
        std::uint32_t connections = 0;
    };
    struct Usage {
        std::uint32_t pools = 0;
        std::uint32_t connections = 0;
    };

    explicit CallerQuotas(Bounds bounds) : bounds_(bounds) {}

    const Bounds& bounds() const { return bounds_; }
    Usage usage(std::string_view node) const;
    // The bound that `more` pools and connections, created by `node`, would pass; nullopt when none.
    std::optional<pool::Limit> exceeded(std::string_view node, Usage more) const;
    void add(std::uint64_t pool, std::string_view node, std::uint32_t connections);
    void remove(std::uint64_t pool);

private:
    struct Owned {
        std::string node;
        std::uint32_t connections = 0;
    };

    Bounds bounds_;
    std::unordered_map<std::uint64_t, Owned> pools_;
    std::unordered_map<std::string, Usage> nodes_;
};

} // namespace dpool::api
