#include "pool/pool.hpp"

namespace dpool::pool {

PoolStats Pool::snapshot() const
{
    const auto counts = core_.counts();
    PoolStats s;
    s.pool_id = id_;
    s.name = config_.name;
    s.target = config_.target;
    s.owner = config_.owner;
    s.owner_grace_ms = config_.owner_grace_ms;
    s.tls = transport::tls_mode_name(config_.tls_context.mode);
    s.last_failure_kind = last_failure_.kind;
    s.last_failure_text = last_failure_.text;
    s.draining = draining_;
    s.total_connections = core_.open_slots();
    s.available_connections = counts.idle;
    s.in_use_connections = counts.leased;
    s.connecting_connections = counts.connecting;
    s.waiting = counts.waiting;
    s.capacity = capacity_;
    s.max_connections = config_.max_connections;
    s.min_connections = config_.min_connections;
    s.acquire_timeout_ms = config_.acquire_timeout_ms;
    s.max_waiters = config_.max_waiters;
    s.max_pending_requests = config_.max_pending_requests;
    s.counters = counters_;
    s.acquire_wait_avg_us = acquire_wait_.average();
    s.acquire_wait_max_us = acquire_wait_.max();
    s.acquire_wait_p99_us = acquire_wait_.percentile(990);
    s.request_rtt_avg_us = request_rtt_.average();
    s.request_rtt_p50_us = request_rtt_.percentile(500);
    s.request_rtt_p99_us = request_rtt_.percentile(990);
    for (const auto& c : connections_) {
        s.traffic += c->traffic();
    }
    s.acquire_wait = acquire_wait_;
    s.request_rtt = request_rtt_;
    s.connections.reserve(s.total_connections);
    for (const auto& c : connections_) {
        switch (core_.state(c->index())) {
        case SlotState::closed:
            continue;
        case SlotState::idle:
            s.connections.push_back({conn_id(c->index()), c->node_name(), PoolStats::ConnectionState::available});
            break;
        case SlotState::leased:
            s.connections.push_back({conn_id(c->index()), c->node_name(), PoolStats::ConnectionState::in_use});
            break;
        case SlotState::connecting:
            s.connections.push_back({conn_id(c->index()), c->node_name(), PoolStats::ConnectionState::connecting});
            break;
        }
    }
    return s;
}

} // namespace dpool::pool
