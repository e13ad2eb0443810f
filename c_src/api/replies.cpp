#include "api/replies.hpp"

#include <iterator>

namespace dpool::api {

std::string_view reply_alias(std::string_view tag)
{
    protocol::TermReader r(tag);
    if (r.list_header() != 1u || r.atom() != std::optional<std::string_view>("alias")) {
        return {};
    }
    const std::string_view tail = r.rest();
    return r.ref() && r.at_end() ? tail : std::string_view{};
}

void reply_error(const pool::CallerView& caller, const pool::Failure& failure)
{
    reply(caller, [&failure](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        if (failure.kind.empty()) {
            w.atom(failure.error);
            return;
        }
        w.tuple(2);
        w.atom(failure.error);
        w.tuple(2);
        w.atom(failure.kind);
        w.binary(failure.text);
    });
}

void reply_atom(const pool::CallerView& caller, std::string_view atom)
{
    reply(caller, [atom](protocol::TermWriter& w) { w.atom(atom); });
}

void reply_ok_integer(const pool::CallerView& caller, std::int64_t n)
{
    reply(caller, [n](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.integer(n);
    });
}

void reply_invalid_config(const pool::CallerView& caller, const ConfigError& why)
{
    reply(caller, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        w.tuple(2);
        w.atom("invalid_config");
        write_config_error(w, why);
    });
}

void reply_pool_error(const pool::CallerView& caller, std::string_view error, std::uint64_t pool)
{
    reply(caller, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        w.tuple(2);
        w.atom(error);
        w.integer(static_cast<std::int64_t>(pool));
    });
}

void reply_pool_handle(const pool::CallerView& caller, std::string_view status, std::uint64_t pool,
                       std::uint32_t acquire_timeout_ms)
{
    reply(caller, [&](protocol::TermWriter& w) {
        if (status != "ok") {
            w.tuple(2);
            w.atom("error");
        }
        w.tuple(3);
        w.atom(status);
        w.integer(static_cast<std::int64_t>(pool));
        w.integer(acquire_timeout_ms);
    });
}

void reply_pools(const pool::CallerView& caller, const std::vector<std::uint64_t>& pools)
{
    reply(caller, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        if (!pools.empty()) {
            w.list(pools.size());
            for (const auto id : pools) {
                w.integer(static_cast<std::int64_t>(id));
            }
        }
        w.nil();
    });
}

void reply_lanes(const pool::CallerView& caller, const std::vector<protocol::NodeIdentity>& lanes)
{
    reply(caller, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        if (!lanes.empty()) {
            w.list(lanes.size());
            for (const auto& lane : lanes) {
                w.binary(lane.node_name());
            }
        }
        w.nil();
    });
}

namespace {

// A map's entries as a table: the entry count is the table's size, never kept by hand.
template <class T>
struct Field {
    std::string_view key;
    void (*write)(protocol::TermWriter& w, const T& value);
};

// The entries alone, for a map that has more (`extra`) after them.
template <class T, std::size_t N>
void write_map(protocol::TermWriter& w, const Field<T> (&fields)[N], const T& value, std::size_t extra = 0)
{
    w.map(N + extra);
    for (const auto& f : fields) {
        w.atom(f.key);
        f.write(w, value);
    }
}

void integer(protocol::TermWriter& w, std::uint64_t value) { w.integer(static_cast<std::int64_t>(value)); }

using PoolStats = pool::PoolStats;

// #{Limit => Refusals} for the first `count` limits (pool/limits.hpp).
void write_limit_counts(protocol::TermWriter& w, const pool::LimitCounts& counts, std::size_t count)
{
    w.map(static_cast<std::uint32_t>(count));
    for (std::size_t l = 0; l < count; ++l) {
        w.atom(pool::limit_name(static_cast<pool::Limit>(l)));
        integer(w, counts.refused[l]);
    }
}

std::string_view connection_state_name(PoolStats::ConnectionState s)
{
    switch (s) {
    case PoolStats::ConnectionState::available:
        return "available";
    case PoolStats::ConnectionState::in_use:
        return "in_use";
    case PoolStats::ConnectionState::connecting:
        break;
    }
    return "connecting";
}

constexpr Field<PoolStats> kStatsFields[] = {
    {"pool_id", [](auto& w, const PoolStats& s) { integer(w, s.pool_id); }},
    {"name", [](auto& w, const PoolStats& s) { w.atom(s.name.empty() ? std::string_view("undefined") : s.name); }},
    // Node names as atoms, as Erlang shows nodes: the target's is the caller's own atom, and connection names
    // are few (reused per target: ConnectionNames).
    {"target", [](auto& w, const PoolStats& s) { w.atom(s.target); }},
    // A caller node's name, or none (docs/PROTOCOL.md, "Owners").
    {"owner", [](auto& w, const PoolStats& s) { w.atom(s.owner.empty() ? std::string_view("none") : s.owner); }},
    {"owner_grace_ms", [](auto& w, const PoolStats& s) { integer(w, s.owner_grace_ms); }},
    {"tls", [](auto& w, const PoolStats& s) { w.atom(s.tls); }},
    {"last_failure",
     [](auto& w, const PoolStats& s) {
         if (s.last_failure_kind.empty()) {
             w.atom("none");
             return;
         }
         w.tuple(2);
         w.atom(s.last_failure_kind);
         w.binary(s.last_failure_text);
     }},
    {"state", [](auto& w, const PoolStats& s) { w.atom(s.draining ? "draining" : "active"); }},
    {"total_connections", [](auto& w, const PoolStats& s) { integer(w, s.total_connections); }},
    {"available_connections", [](auto& w, const PoolStats& s) { integer(w, s.available_connections); }},
    {"in_use_connections", [](auto& w, const PoolStats& s) { integer(w, s.in_use_connections); }},
    {"connecting_connections", [](auto& w, const PoolStats& s) { integer(w, s.connecting_connections); }},
    {"waiting", [](auto& w, const PoolStats& s) { integer(w, s.waiting); }},
    {"capacity", [](auto& w, const PoolStats& s) { integer(w, s.capacity); }},
    {"max_connections", [](auto& w, const PoolStats& s) { integer(w, s.max_connections); }},
    {"min_connections", [](auto& w, const PoolStats& s) { integer(w, s.min_connections); }},
    {"acquire_timeout_ms", [](auto& w, const PoolStats& s) { integer(w, s.acquire_timeout_ms); }},
    {"max_waiters", [](auto& w, const PoolStats& s) { integer(w, s.max_waiters); }},
    {"max_pending_requests", [](auto& w, const PoolStats& s) { integer(w, s.max_pending_requests); }},
    {"limit_refusals",
     [](auto& w, const PoolStats& s) { write_limit_counts(w, s.counters.limit_refusals, pool::kPoolLimits); }},
    {"successful_operations", [](auto& w, const PoolStats& s) { integer(w, s.counters.successful_operations); }},
    {"failed_operations", [](auto& w, const PoolStats& s) { integer(w, s.counters.failed_operations); }},
    {"dropped_sends", [](auto& w, const PoolStats& s) { integer(w, s.counters.dropped_sends); }},
    {"return_barriers", [](auto& w, const PoolStats& s) { integer(w, s.counters.return_barriers); }},
    {"return_barrier_misses", [](auto& w, const PoolStats& s) { integer(w, s.counters.return_barrier_misses); }},
    {"connections_created", [](auto& w, const PoolStats& s) { integer(w, s.counters.connections_created); }},
    {"connections_closed",
     [](auto& w, const PoolStats& s) {
         w.map(pool::kCloseReasons);
         for (std::size_t r = 0; r < pool::kCloseReasons; ++r) {
             w.atom(pool::close_reason_name(static_cast<pool::CloseReason>(r)));
             integer(w, s.counters.closed[r]);
         }
     }},
    {"reconnect_attempts", [](auto& w, const PoolStats& s) { integer(w, s.counters.reconnect_attempts); }},
    {"health_checks", [](auto& w, const PoolStats& s) { integer(w, s.counters.health_checks); }},
    {"acquire_count", [](auto& w, const PoolStats& s) { integer(w, s.counters.acquires); }},
    {"acquire_timeouts", [](auto& w, const PoolStats& s) { integer(w, s.counters.acquire_timeouts); }},
    {"hits", [](auto& w, const PoolStats& s) { integer(w, s.counters.hits); }},
    {"misses", [](auto& w, const PoolStats& s) { integer(w, s.counters.misses); }},
    {"acquire_wait_avg_us", [](auto& w, const PoolStats& s) { integer(w, s.acquire_wait_avg_us); }},
    {"acquire_wait_max_us", [](auto& w, const PoolStats& s) { integer(w, s.acquire_wait_max_us); }},
    {"acquire_wait_p99_us", [](auto& w, const PoolStats& s) { integer(w, s.acquire_wait_p99_us); }},
    {"request_rtt_avg_us", [](auto& w, const PoolStats& s) { integer(w, s.request_rtt_avg_us); }},
    {"request_rtt_p50_us", [](auto& w, const PoolStats& s) { integer(w, s.request_rtt_p50_us); }},
    {"request_rtt_p99_us", [](auto& w, const PoolStats& s) { integer(w, s.request_rtt_p99_us); }},
    {"connections",
     [](auto& w, const PoolStats& s) {
         if (!s.connections.empty()) {
             w.list(s.connections.size());
             for (const auto& c : s.connections) {
                 w.map(3);
                 w.atom("id");
                 w.integer(c.id);
                 w.atom("node");
                 w.atom(c.node);
                 w.atom("state");
                 w.atom(connection_state_name(c.state));
             }
         }
         w.nil();
     }},
};

constexpr Field<transport::HandshakeCounters> kHandshakeFields[] = {
    {"completed", [](auto& w, const transport::HandshakeCounters& h) { integer(w, h.completed); }},
    {"failed", [](auto& w, const transport::HandshakeCounters& h) { integer(w, h.failed); }},
    {"timed_out", [](auto& w, const transport::HandshakeCounters& h) { integer(w, h.timed_out); }},
    {"in_progress", [](auto& w, const transport::HandshakeCounters& h) { integer(w, h.gate.in_progress); }},
    {"dropped_for_room", [](auto& w, const transport::HandshakeCounters& h) { integer(w, h.gate.dropped_for_room); }},
};

constexpr Field<ServiceLimits> kLimitFields[] = {
    {"max_output_queue_bytes", [](auto& w, const ServiceLimits& l) { integer(w, l.max_output_queue_bytes); }},
    {"max_link_queue_bytes", [](auto& w, const ServiceLimits& l) { integer(w, l.max_link_queue_bytes); }},
    {"max_caller_packet_bytes", [](auto& w, const ServiceLimits& l) { integer(w, l.max_caller_packet_bytes); }},
    {"max_target_packet_bytes", [](auto& w, const ServiceLimits& l) { integer(w, l.max_target_packet_bytes); }},
    {"max_pools_per_caller", [](auto& w, const ServiceLimits& l) { integer(w, l.max_pools_per_caller); }},
    {"max_connections_per_caller",
     [](auto& w, const ServiceLimits& l) { integer(w, l.max_connections_per_caller); }},
    {"max_total_connections", [](auto& w, const ServiceLimits& l) { integer(w, l.max_total_connections); }},
    {"max_handshakes_per_lane", [](auto& w, const ServiceLimits& l) { integer(w, l.max_handshakes_per_lane); }},
    {"max_handshakes_per_address",
     [](auto& w, const ServiceLimits& l) { integer(w, l.max_handshakes_per_address); }},
    {"max_splice_pipes", [](auto& w, const ServiceLimits& l) { integer(w, l.max_splice_pipes); }},
};

constexpr Field<transport::PipeUsage> kSpliceFields[] = {
    {"packets", [](auto& w, const transport::PipeUsage& s) { integer(w, s.counters.packets); }},
    {"bytes", [](auto& w, const transport::PipeUsage& s) { integer(w, s.counters.bytes); }},
    {"fallbacks", [](auto& w, const transport::PipeUsage& s) { integer(w, s.counters.fallbacks); }},
    {"pipes_open", [](auto& w, const transport::PipeUsage& s) { integer(w, s.pipes_open); }},
    {"idle_closed", [](auto& w, const transport::PipeUsage& s) { integer(w, s.counters.idle_closed); }},
};

constexpr Field<DroppedLinks> kDroppedFields[] = {
    {"oversized_packet", [](auto& w, const DroppedLinks& d) { integer(w, d.drops.oversized_packets); }},
    {"out_of_memory", [](auto& w, const DroppedLinks& d) { integer(w, d.drops.out_of_memory); }},
    {"unread_output", [](auto& w, const DroppedLinks& d) { integer(w, d.drops.unread_output); }},
    {"malformed_packet", [](auto& w, const DroppedLinks& d) { integer(w, d.malformed_packets); }},
};

constexpr Field<ServiceInfo> kInfoFields[] = {
    {"node", [](auto& w, const ServiceInfo& i) { w.binary(i.node); }},
    {"lane", [](auto& w, const ServiceInfo& i) { integer(w, i.lane); }},
    {"lanes", [](auto& w, const ServiceInfo& i) { integer(w, i.lanes); }},
    {"service", [](auto& w, const ServiceInfo& i) { w.atom(i.service); }},
    {"version", [](auto& w, const ServiceInfo& i) { w.binary(i.version); }},
    {"tls", [](auto& w, const ServiceInfo& i) { w.atom(i.tls); }},
    {"pools", [](auto& w, const ServiceInfo& i) { integer(w, i.pools); }},
    {"reserved_connections", [](auto& w, const ServiceInfo& i) { integer(w, i.reserved_connections); }},
    {"caller_connections", [](auto& w, const ServiceInfo& i) { integer(w, i.caller_connections); }},
    {"malformed_messages", [](auto& w, const ServiceInfo& i) { integer(w, i.malformed_messages); }},
    {"refused_duplicate_callers", [](auto& w, const ServiceInfo& i) { integer(w, i.refused_duplicate_callers); }},
    {"refused_callers", [](auto& w, const ServiceInfo& i) { integer(w, i.refused_callers); }},
    {"refused_targets", [](auto& w, const ServiceInfo& i) { integer(w, i.refused_targets); }},
    {"orphaned_pools", [](auto& w, const ServiceInfo& i) { integer(w, i.orphaned_pools); }},
    {"orphaned_pools_destroyed", [](auto& w, const ServiceInfo& i) { integer(w, i.orphaned_pools_destroyed); }},
    {"queued_deadlines", [](auto& w, const ServiceInfo& i) { integer(w, i.queued_deadlines); }},
    {"handshakes", [](auto& w, const ServiceInfo& i) { write_map(w, kHandshakeFields, i.handshakes); }},
    {"limits", [](auto& w, const ServiceInfo& i) { write_map(w, kLimitFields, i.limits); }},
    {"limit_refusals", [](auto& w, const ServiceInfo& i) { write_limit_counts(w, i.limit_refusals, pool::kLimits); }},
    {"output_queue_bytes", [](auto& w, const ServiceInfo& i) { integer(w, i.output_queue_bytes); }},
    {"output_queue_peak_bytes", [](auto& w, const ServiceInfo& i) { integer(w, i.output_queue_peak_bytes); }},
    {"splice", [](auto& w, const ServiceInfo& i) { write_map(w, kSpliceFields, i.splice); }},
    {"dropped_links",
     [](auto& w, const ServiceInfo& i) {
         w.map(2);
         w.atom("callers");
         write_map(w, kDroppedFields, i.dropped_callers);
         w.atom("targets");
         write_map(w, kDroppedFields, i.dropped_targets);
     }},
    {"memory_trims", [](auto& w, const ServiceInfo& i) { integer(w, i.memory_trims); }},
    {"output_lines_dropped", [](auto& w, const ServiceInfo& i) { integer(w, i.output_lines_dropped); }},
    {"metrics_port", [](auto& w, const ServiceInfo& i) { integer(w, i.metrics_port); }},
    {"callers",
     [](auto& w, const ServiceInfo& i) {
         w.list(i.callers.size());
         for (const auto& c : i.callers) {
             w.map(2);
             w.atom("node");
             w.binary(c.node);
             w.atom("lane");
             integer(w, c.lane);
         }
         w.nil();
     }},
};

// {error, {badrpc, {'EXIT', Reason}}}, Reason written by `write_reason`: rex's answer to a call that raised.
template <class WriteReason>
void write_badrpc_exit(protocol::TermWriter& w, WriteReason&& write_reason)
{
    w.tuple(2);
    w.atom("error");
    w.tuple(2);
    w.atom("badrpc");
    w.tuple(2);
    w.atom("EXIT");
    write_reason(w);
}

} // namespace

void reply_info(const pool::CallerView& caller, const ServiceInfo& info)
{
    reply(caller, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        write_map(w, kInfoFields, info);
    });
}

void write_stats(protocol::TermWriter& w, const pool::PoolStats& stats)
{
    write_map(w, kStatsFields, stats);
}

namespace {

using GroupStats = pool::GroupStats;

// A sum over the members of a group.
template <class Value>
std::uint64_t total(const GroupStats& g, Value value)
{
    std::uint64_t sum = 0;
    for (const auto& m : g.members) {
        sum += value(m.stats);
    }
    return sum;
}

// A group's stats: its own fields, totals over its members, then each member's stats with what the group knows
// of it (docs/PROTOCOL.md, "Pool groups").
constexpr Field<GroupStats> kGroupFields[] = {
    {"pool_id", [](auto& w, const GroupStats& g) { integer(w, g.group_id); }},
    {"name", [](auto& w, const GroupStats& g) { w.atom(g.name.empty() ? std::string_view("undefined") : g.name); }},
    {"strategy", [](auto& w, const GroupStats& g) { w.atom(pool::strategy_name(g.strategy)); }},
    {"state", [](auto& w, const GroupStats& g) { w.atom(g.draining ? "draining" : "active"); }},
    {"owner", [](auto& w, const GroupStats& g) { w.atom(g.owner.empty() ? std::string_view("none") : g.owner); }},
    {"owner_grace_ms", [](auto& w, const GroupStats& g) { integer(w, g.owner_grace_ms); }},
    {"acquire_timeout_ms", [](auto& w, const GroupStats& g) { integer(w, g.acquire_timeout_ms); }},
    {"retries", [](auto& w, const GroupStats& g) { integer(w, g.retries); }},
    {"moved_waiters", [](auto& w, const GroupStats& g) { integer(w, g.moved_waiters); }},
    {"skipped_down", [](auto& w, const GroupStats& g) { integer(w, g.skipped_down); }},
    {"limit_refusals",
     [](auto& w, const GroupStats& g) {
         w.map(1);
         w.atom(pool::limit_name(pool::Limit::max_group_members));
         integer(w, g.member_refusals);
     }},
    {"targets", [](auto& w, const GroupStats& g) { integer(w, g.members.size()); }},
    {"up_targets",
     [](auto& w, const GroupStats& g) {
         integer(w, static_cast<std::uint64_t>(
                        std::count_if(g.members.begin(), g.members.end(), [](const auto& m) { return m.up; })));
     }},
    {"total_connections", [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.total_connections; })); }},
    {"available_connections",
     [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.available_connections; })); }},
    {"in_use_connections",
     [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.in_use_connections; })); }},
    {"connecting_connections",
     [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.connecting_connections; })); }},
    {"waiting", [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.waiting; })); }},
    {"max_connections", [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.max_connections; })); }},
    {"successful_operations",
     [](auto& w, const GroupStats& g) {
         integer(w, total(g, [](const PoolStats& s) { return s.counters.successful_operations; }));
     }},
    {"failed_operations",
     [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.counters.failed_operations; })); }},
    {"dropped_sends",
     [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.counters.dropped_sends; })); }},
    {"acquire_count", [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.counters.acquires; })); }},
    {"acquire_timeouts",
     [](auto& w, const GroupStats& g) { integer(w, total(g, [](const PoolStats& s) { return s.counters.acquire_timeouts; })); }},
    {"members",
     [](auto& w, const GroupStats& g) {
         if (!g.members.empty()) {
             w.list(g.members.size());
             for (const auto& m : g.members) {
                 write_map(w, kStatsFields, m.stats, 3);
                 w.atom("up");
                 w.atom(m.up ? "true" : "false");
                 w.atom("removing");
                 w.atom(m.removing ? "true" : "false");
                 w.atom("picked");
                 integer(w, m.picked);
             }
         }
         w.nil();
     }},
};

} // namespace

void reply_group_stats(const pool::CallerView& caller, const pool::GroupStats& stats)
{
    reply(caller, [&stats](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        write_map(w, kGroupFields, stats);
    });
}

void Replies::ok(const pool::CallerView& caller) const { reply_atom(caller, "ok"); }

void Replies::error(const pool::CallerView& caller, const pool::Failure& failure) const
{
    reply_error(caller, failure);
}

void Replies::pool_started(const pool::CallerView& caller, std::uint64_t pool) const
{
    reply_ok_integer(caller, static_cast<std::int64_t>(pool));
}

void Replies::granted(const pool::CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                      std::string_view node) const
{
    // {ok, {ConnId, LeaseId, ConnNode}}
    reply(caller, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.tuple(3);
        w.integer(conn);
        w.integer(static_cast<std::int64_t>(lease));
        w.atom(node); // as stats name it: a node name is an atom
    });
}

std::string leased_wrap(std::uint32_t conn, std::uint64_t lease, std::string_view node)
{
    // {leased, {ConnId, LeaseId, ConnNode}, _: the answer written after it is the third element.
    ByteBuffer bytes(64 + node.size());
    protocol::TermWriter w(bytes);
    w.tuple(3);
    w.atom("leased");
    w.tuple(3);
    w.integer(conn);
    w.integer(static_cast<std::int64_t>(lease));
    w.atom(node);
    return std::string(bytes.view());
}

void Replies::batch_queued(const pool::CallerView& caller, std::int64_t count) const
{
    reply_ok_integer(caller, count);
}

void Replies::answered(const pool::CallerView& caller, std::string_view answer) const
{
    reply(caller, [answer](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.raw(answer);
    });
}

void Replies::destination_down(const pool::CallerView& caller, std::string_view reason) const
{
    reply(caller, [reason](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        w.tuple(2);
        w.atom("down");
        w.raw(reason);
    });
}

void Replies::call_ended(const pool::CallerView& caller, const protocol::CallExit& exit) const
{
    // In rex's terms, which a call has always answered in: the value of return and throw, else
    // {badrpc, {'EXIT', ...}} ({erpc, Reason}, a call that could not be made, as rex says it: {'EXIT', Reason}).
    using Kind = protocol::CallExit::Kind;
    switch (exit.kind) {
    case Kind::returned:
    case Kind::thrown:
        answered(caller, exit.value);
        return;
    case Kind::raised:
        reply(caller, [&](protocol::TermWriter& w) {
            write_badrpc_exit(w, [&](protocol::TermWriter& x) {
                x.tuple(2);
                x.raw(exit.value);
                x.raw(exit.stack);
            });
        });
        return;
    case Kind::exited:
    case Kind::not_called:
    case Kind::errored:
    case Kind::other:
        break;
    }
    reply(caller, [&](protocol::TermWriter& w) {
        write_badrpc_exit(w, [&](protocol::TermWriter& x) { x.raw(exit.value); });
    });
}

void Replies::call_not_spawned(const pool::CallerView& caller, std::string_view reason) const
{
    reply(caller, [reason](protocol::TermWriter& w) {
        write_badrpc_exit(w, [reason](protocol::TermWriter& x) { x.raw(reason); });
    });
}

void Replies::stats(const pool::CallerView& caller, const pool::PoolStats& stats) const
{
    reply(caller, [&stats](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        write_stats(w, stats);
    });
}

} // namespace dpool::api
