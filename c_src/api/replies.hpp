#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "api/requests.hpp"
#include "api/service_limits.hpp"
#include "pool/answers.hpp"
#include "pool/caller.hpp"
#include "pool/group.hpp"
#include "pool/pool_stats.hpp"
#include "protocol/control.hpp"
#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"
#include "transport/dist_link.hpp"
#include "transport/handshake_gate.hpp"

// Every answer the C-node gives its callers (docs/PROTOCOL.md, "Calls"): the one place the reply terms of the
// caller protocol are written. Requests are read in requests.hpp.
namespace dpool::api {

// The alias of a tag `[alias | Alias]` (gen_server's tags since OTP 24), encoded; empty for any other tag.
// Answers to such a caller go to the alias: once the caller stops waiting it deactivates the alias, and its
// node then drops a late answer instead of putting it in the caller's mailbox.
std::string_view reply_alias(std::string_view tag);

// Sends `From ! {Tag, Reply}` (to the alias of an alias tag), with Reply written by `write_reply`. A caller
// whose node has gone gets nothing.
template <class WriteReply>
void reply(const pool::CallerView& caller, WriteReply&& write_reply)
{
    if (!caller.link || !caller.link->is_open()) {
        return;
    }
    auto w = caller.link->begin_packet();
    w.version();
    // The sender of an alias send is the C-node's pid under the identity of the caller's lane.
    if (const auto alias = reply_alias(caller.tag); !alias.empty() && caller.self != nullptr) {
        protocol::write_alias_send(w, caller.self->self_pid(), alias);
    } else {
        protocol::write_send(w, caller.from);
    }
    w.version();
    w.tuple(2);
    w.raw(caller.tag);
    w.raw(caller.reply_wrap);
    write_reply(w);
    caller.link->end_packet();
    caller.link->write_now();
}

// The CallerView::reply_wrap that makes every answer to a caller {leased, {ConnId, LeaseId, ConnNode}, Answer}:
// the first operation of a quiet checkout's holder tells it the lease's ids so (docs/PROTOCOL.md, "Pipelined
// leases").
std::string leased_wrap(std::uint32_t conn, std::uint64_t lease, std::string_view node);

// {error, Error}, or {error, {Error, {Kind, Text}}} where the cause is known.
void reply_error(const pool::CallerView& caller, const pool::Failure& failure);
// A bare atom: ok, pong.
void reply_atom(const pool::CallerView& caller, std::string_view atom);
// {ok, N}: a count, or a pool id.
void reply_ok_integer(const pool::CallerView& caller, std::int64_t n);
// {error, {invalid_config, Why}}.
void reply_invalid_config(const pool::CallerView& caller, const ConfigError& why);
// {error, {Error, PoolId}}: a restore refused because of one of its pools.
void reply_pool_error(const pool::CallerView& caller, std::string_view error, std::uint64_t pool);
// {ok, Id, AcquireTimeoutMs} (status ok) or {error, {already_started, Id, AcquireTimeoutMs}}: what the library
// needs to make a handle.
void reply_pool_handle(const pool::CallerView& caller, std::string_view status, std::uint64_t pool,
                       std::uint32_t acquire_timeout_ms);
// {ok, [PoolId]}.
void reply_pools(const pool::CallerView& caller, const std::vector<std::uint64_t>& pools);
// {ok, [NodeName]}: the lanes' node names, as binaries.
void reply_lanes(const pool::CallerView& caller, const std::vector<protocol::NodeIdentity>& lanes);

// The links of one kind (callers, targets) that the C-node closed on its own decision.
struct DroppedLinks {
    transport::LinkDrops drops;
    std::uint64_t malformed_packets = 0; // callers only: a packet that is no distribution message
};

// The most caller connections `info` lists (it counts them all: caller_connections).
inline constexpr std::size_t kMaxListedCallers = 1000;

// The C-node at one moment, for `info`.
struct ServiceInfo {
    std::string_view node; // the name the request came in on
    std::size_t lane = 0;
    std::size_t lanes = 0;
    std::string_view service;
    std::string_view version;
    std::string_view tls = "none"; // the C-node's TLS mode (--tls)
    std::size_t pools = 0;
    std::uint32_t reserved_connections = 0;
    std::size_t caller_connections = 0;
    std::uint64_t malformed_messages = 0;
    std::uint64_t refused_duplicate_callers = 0; // connections refused: their node was connected to that lane
    std::uint64_t refused_callers = 0;           // handshakes refused by the caller allow-list
    std::uint64_t refused_targets = 0;           // pools refused by the target allow-list
    std::size_t orphaned_pools = 0;              // pools whose owner node is gone, within its grace
    std::uint64_t orphaned_pools_destroyed = 0;  // pools destroyed because their owner did not come back
    std::size_t queued_deadlines = 0;            // the scheduler's queue (pool::Scheduler)
    transport::HandshakeCounters handshakes;     // callers' handshakes on every lane
    ServiceLimits limits;
    pool::LimitCounts limit_refusals;
    std::size_t output_queue_bytes = 0;
    std::size_t output_queue_peak_bytes = 0;
    transport::PipeUsage splice; // what callers' big packets did in pipes
    DroppedLinks dropped_callers;
    DroppedLinks dropped_targets;
    std::uint64_t memory_trims = 0;
    std::uint64_t output_lines_dropped = 0; // log and event lines dropped: their reader fell behind
    // The caller nodes connected now and the lane of each connection (at most kMaxListedCallers of them).
    struct CallerLink {
        std::string_view node;
        std::size_t lane = 0;
    };
    std::vector<CallerLink> callers;
    std::uint16_t metrics_port = 0; // the Prometheus endpoint's port; 0: none
};
// {ok, InfoMap}.
void reply_info(const pool::CallerView& caller, const ServiceInfo& info);

// The stats map of one pool (docs/PROTOCOL.md, "Stats").
void write_stats(protocol::TermWriter& w, const pool::PoolStats& stats);
// {ok, GroupStatsMap}: a group's stats, its members' among them (docs/PROTOCOL.md, "Pool groups").
void reply_group_stats(const pool::CallerView& caller, const pool::GroupStats& stats);

// How pools answer their callers.
class Replies final : public pool::Answers {
public:
    void ok(const pool::CallerView& caller) const override;
    void error(const pool::CallerView& caller, const pool::Failure& failure) const override;
    void pool_started(const pool::CallerView& caller, std::uint64_t pool) const override;
    void granted(const pool::CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                 std::string_view node) const override;
    void batch_queued(const pool::CallerView& caller, std::int64_t count) const override;
    void answered(const pool::CallerView& caller, std::string_view answer) const override;
    void destination_down(const pool::CallerView& caller, std::string_view reason) const override;
    void call_ended(const pool::CallerView& caller, const protocol::CallExit& exit) const override;
    void call_not_spawned(const pool::CallerView& caller, std::string_view reason) const override;
    void stats(const pool::CallerView& caller, const pool::PoolStats& stats) const override;
};

} // namespace dpool::api
