#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "transport/tls.hpp"

namespace dpool::pool {

// A pool's options, as `new` gave them (docs/PROTOCOL.md, "Types": ranges and defaults are checked by the api
// layer before a pool sees them).
struct PoolConfig {
    std::string target;
    std::string name; // the pool's registered name (an atom's text), empty for none
    // The cookie of this pool's handshakes with its target, for a target in another cookie domain; empty: the
    // C-node's. A secret: never logged, never in stats or errors.
    std::string cookie;
    // The option `tls`: how this pool's connections are carried, over the C-node's (--tls). Files not given
    // are the C-node's; the service fills in `tls_context` from them before the pool sees the config.
    // nullopt: as the C-node's.
    std::optional<transport::TlsSettings> tls;
    // What the pool's connections use: the context of `tls`, or the C-node's own for connecting.
    transport::TlsContext tls_context;
    std::uint32_t max_connections = 0;
    std::uint32_t min_connections = 0;
    std::uint32_t acquire_timeout_ms = 5000;
    std::uint32_t connect_timeout_ms = 5000;
    // Reconnect delays: doubling from min to max after each failure, with jitter.
    std::uint32_t backoff_min_ms = 100;
    std::uint32_t backoff_max_ms = 5000;
    // 0 disables each of the following.
    std::uint32_t max_idle_ms = 600'000;          // idle connections above the minimum are closed after this
    std::uint32_t max_lifetime_ms = 1'800'000;    // a connection is replaced after this, minus up to 1/8 jitter
    std::uint32_t health_check_interval_ms = 30'000; // idle connections get a round trip this often
    std::uint32_t health_check_timeout_ms = 5000;
    bool validate_on_checkout = false;            // a round trip before every lease of an idle connection
    // Adaptive capacity: judged over this window (see Pool::adapt).
    std::uint32_t resize_window_ms = 10'000;
    // Ownership (docs/PROTOCOL.md, "Owners"): the pool is destroyed once the caller node that made it has been
    // gone (no connection on any lane) for owner_grace_ms. `ownerless` is the option owner => none: kept until
    // destroyed by hand.
    bool ownerless = false;
    std::uint32_t owner_grace_ms = 30'000;
    std::string owner; // the owner's node name, set by the service when it makes the pool; empty: none
    // Bounds on what callers make the pool hold (pool/limits.hpp): callers in line for a lease, and caller
    // requests and calls in flight on one connection.
    std::uint32_t max_waiters = 10'000;
    std::uint32_t max_pending_requests = 1000;
};

} // namespace dpool::pool
