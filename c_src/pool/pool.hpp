#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "pool/answers.hpp"
#include "pool/caller.hpp"
#include "pool/connection_names.hpp"
#include "pool/limits.hpp"
#include "pool/member_events.hpp"
#include "pool/operations.hpp"
#include "pool/pool_config.hpp"
#include "util/log.hpp"
#include "util/repeat_log.hpp"
#include "pool/pool_core.hpp"
#include "pool/pool_stats.hpp"
#include "pool/pooled_connection.hpp"
#include "pool/return_barrier.hpp"
#include "pool/scheduler.hpp"
#include "protocol/node_identity.hpp"
#include "transport/connector.hpp"
#include "transport/dist_link.hpp"
#include "util/asio.hpp"
#include "util/latency_histogram.hpp"

namespace dpool::pool {

// What every pool of the C-node shares: the event loop, where targets listen, the cookie, the deadline
// scheduler and the process-wide lease counter (monitors of callers are set by the identity of the lane each
// caller came in on: CallerView::self).
struct PoolContext {
    PoolContext(asio::any_io_executor ex, std::string alive, std::string host_name)
        : executor(std::move(ex)), cnode_alive(alive), host(host_name), names(alive, host_name)
    {
    }

    asio::any_io_executor executor;
    // The targets' ports, asked of their epmd once for all connections (transport::NodePorts).
    transport::NodePorts ports;
    std::string cookie;
    std::string cnode_alive;
    std::string host;
    Scheduler* scheduler = nullptr;
    // Return barriers over caller links (see ReturnBarriers); the service feeds them answers and lost links.
    ReturnBarriers* barriers = nullptr;
    transport::LinkLimits link_limits;
    // Requests the limits refused, in every pool (info: limit_refusals).
    LimitCounts limit_refusals;
    ConnectionNames names;
    std::uint64_t lease_counter = 0;
    std::mt19937 random{std::random_device{}()};
    // A run of repeated failures (failed connects, lost connections) is logged once, then summarized this often
    // (log::RepeatLog; --log-repeat-interval-ms).
    std::chrono::milliseconds log_repeat_interval{10000};
    // Where pools report their connections going up and down (kind connection_up or connection_down, the
    // pool's id, what it is about, the reason for a down); empty: nowhere. The C-node's --events.
    std::function<void(std::string_view kind, std::uint64_t pool, const log::About& about, std::string_view detail)>
        events;
    // Called (from the event loop) when a pool failed to start and must be forgotten.
    std::function<void(std::uint64_t pool)> drop_pool;
    // How pools answer their callers (api::Replies): the terms of the caller protocol are the api layer's.
    const Answers* answers = nullptr;
    // How pooled connections reach their targets; empty: transport::connect_node with `ports` and the cookie (tests put a connector of their own here).
    std::function<asio::awaitable<transport::ConnectOutcome>(const std::string& target,
                                                              transport::HandshakeIdentity self,
                                                              std::chrono::milliseconds timeout)>
        connect;

    // Has the service forget `pool` (drop_pool) once the event being handled is over, never in the middle of it.
    void post_drop(std::uint64_t pool) const
    {
        if (drop_pool) {
            asio::post(executor, [drop = drop_pool, pool] { drop(pool); });
        }
    }
};

// A pool of distribution connections to one target node, and everything in flight on them. Lives on the
// event loop; owned by the service through a shared_ptr, so connect attempts that finish after a destroy can
// tell that their pool is gone. Its work is in five files: leases and waiters (pool.cpp), return barriers
// (pool_returns.cpp), operations on connections and the target's answers (pool_operations.cpp), the life of
// connections, timers and resizing (pool_lifecycle.cpp), and stats (pool_stats.cpp).
class Pool final : public std::enable_shared_from_this<Pool>, private ConnectionEvents {
public:
    Pool(PoolContext& context, std::uint64_t id, PoolConfig config);
    ~Pool();

    std::uint64_t id() const { return id_; }
    const PoolConfig& config() const { return config_; }
    bool failed() const { return start_failed_; }
    // Being destroyed: leases still out are waited for, nothing new is handed out.
    bool draining() const { return draining_; }

    // Opens min_connections; answers the creator {ok, Id} when they are all up, or {error, {connection_failed,
    // {Kind, Text}}} (and marks the pool failed, for the service to drop) when one cannot be opened.
    void start(Caller creator);
    // Opens min_connections without anyone waiting for them (a restored pool): a connection that cannot be
    // opened is retried with the reconnect backoff, as one whose target went away.
    void start_in_background();

    // A checkout; with `job`, a one-shot operation: the pool leases a connection (waiting, like a checkout,
    // in line), does the job on it, answers the caller with the job's answer and ends the lease itself.
    // `failover`: what the pool's group may do with it when the pool cannot serve it (MemberEvents::take_over).
    // `quiet` (a checkout without a job): a lease granted at once is not answered; the caller learns its ids
    // from its first operation by the checkout's tag (leased_by_checkout), or asks (lease_of). One granted
    // after a wait in line, or an error, is answered as any.
    void checkout(const CallerView& caller, std::optional<std::uint32_t> timeout_ms,
                  const OneShotView* job = nullptr, const Failover& failover = {}, bool quiet = false);
    // Spreads `messages` over every live connection, leased or not (each message is one packet, so a holder's
    // own messages keep their order), round robin, or by hash when `keyed`; answers {ok, N} once all are
    // queued and busy connections have drained.
    void cast_batch(const CallerView& caller, const Destination& to, const std::vector<BatchMessage>& messages,
                    bool keyed);
    // Ends a lease; `discard`: the holder found the connection broken, so it is closed and reopened. False
    // when that lease had already ended (or never was).
    bool checkin(std::uint32_t conn, std::uint64_t lease, bool discard = false);
    void cancel(std::string_view pid, std::string_view tag);
    struct LeaseIds {
        std::uint32_t conn = 0;
        std::uint64_t lease = 0;
    };
    // A lease found by its checkout's tag for an operation of the holder's: with `node` when the holder has not
    // been told the ids (a quiet checkout), which this operation's answer then tells ({leased, Ids, Answer}).
    struct TaggedLease {
        LeaseIds ids;
        std::optional<std::string_view> untold_node;
    };
    // The lease that the checkout sent with `tag` got (a pipelined lease, api::LeaseRef::checkout_tag), as the
    // ids the other operations take; nullopt after answering the caller why there is none: lease_pending
    // while that checkout still waits in line (the library then waits for the checkout's own answer and
    // tries again), or invalid_connection (no such checkout, or its lease has ended).
    std::optional<TaggedLease> leased_by_checkout(const CallerView& caller, std::string_view tag);
    // Answers the ids of that lease as the checkout's answer gives them, or why there are none.
    void lease_of(const CallerView& caller, std::string_view tag);
    // The lease of the checkout sent with `tag`, or lease_pending / invalid_connection. A scan of the
    // connections and the line, as cancel's: only a pipelined lease's first operation asks.
    std::variant<LeaseIds, Failure> find_checkout(std::string_view tag) const;
    // `tail`: the message's bytes after `message`, in pipes (a spliced packet's).
    void send(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
              std::string_view message, std::unique_ptr<transport::SplicedTail> tail = nullptr);
    // Sends in order over one lease, each to its own destination (nullopt: none on the target, dropped and
    // counted); answered once, as send() is: ok when all are queued and the connection is not busy.
    void send_many(const CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                   const std::vector<std::pair<std::optional<Destination>, std::string_view>>& messages);
    void request(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                 std::optional<std::uint32_t> timeout_ms, std::string_view request);
    // apply(M, F, A) on the target over the lease; `mfa` is M, F and A encoded back to back, A a proper list.
    void call(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, std::string_view mfa,
              std::optional<std::uint32_t> timeout_ms);
    // The pool's stats now.
    PoolStats snapshot() const;
    // Answers the stats: at once, or after a return barrier when other links hold leases (a checkin sent
    // before this request may still be on its way).
    void stats(const CallerView& caller);
    // The return barrier of a held answer (a stats read, or waiter `key` about to get pool_exhausted) ended;
    // `complete`: every link it covered answered.
    void on_barrier_done(std::uint64_t key, bool complete);

    void on_deadline(const Deadline& d);
    // Whether deadline `d` of this pool may still do something when it comes due: false for those of a request
    // answered, a waiter gone, a lease returned or its holder already watched (on_deadline would find nothing
    // to do), so that the scheduler's compactions drop them long before they are due (Scheduler).
    bool deadline_wanted(const Deadline& d) const;
    // A monitor of the C-node's identity fired: the holder of lease `number`, or waiter `number`, has exited.
    void on_monitor_down(std::uint64_t number);
    // A client node's connection is gone: its leases come back, its waiters leave.
    void on_client_gone(const transport::DistLink* client);
    // Refuses new leases and waiters at once, waits up to `drain_timeout_ms` for the leases still out, then
    // closes everything and answers `destroyer` ok, or {ok, Id} with `answer_id` (if any: the service destroys
    // pools whose owner is gone); the service forgets the pool then (context.drop_pool).
    void destroy(std::optional<Caller> destroyer, std::uint32_t drain_timeout_ms, bool answer_id = false);
    // Closes everything now; callers still waiting are answered {error, invalid_pool}.
    void close_now();

    std::size_t live_connections() const;

    // Membership of a pool group (pool/group.hpp). The pool tells `events` what its group must know, and its
    // connection ids start at `conn_base` (a group tells its members' leases apart by their ConnId).
    void join_group(MemberEvents* events, std::uint32_t conn_base);
    void leave_group() { group_ = nullptr; }
    bool in_group() const { return group_ != nullptr; }
    // Whether the pool can serve now: a connection is up, or no attempt to open one has failed since the last
    // success (its first connections are still being made, or a lost one is being reopened).
    bool up() const { return !draining_ && (!target_down_ || live_connections() > 0); }
    // Its first connections were made or failed: a connection is up, an attempt failed, or none is wanted.
    bool settled() const { return target_down_ || config_.min_connections == 0 || live_connections() > 0; }
    // Callers served or waiting now: leases out and callers in line (a group's least_in_use).
    std::uint64_t load() const;
    // What a caller would be told now that no connection is up.
    Failure no_connection() const;
    // What the pool's log lines are about: the pool (its name, or its id), its target and, given one, a
    // connection.
    log::About about(const PooledConnection* c = nullptr) const
    {
        return {.pool = label_, .target = config_.target, .connection = c ? std::string_view(c->node_name()) : "",
                .caller = {}};
    }

private:
    struct Waiter {
        Caller caller;
        Clock::time_point started;
        Clock::time_point deadline;
        std::optional<OneShot> job;
        // Its pool_exhausted waits for a return barrier (it stays in line meanwhile, and a checkin may still
        // grant it).
        bool held_for_returns = false;
        Failover failover;
        bool watched = false; // monitored (watch_waiter_now), so its line ends with a DEMONITOR_P
    };
    // One try at serving a checkout: the first, or a retry of one in line (after a validation failed, or a
    // return barrier ended).
    struct Attempt {
        std::uint64_t waiter = 0;
        Clock::time_point started;
        Clock::time_point deadline;
        bool may_wait = false;        // it may wait in line (a timeout above 0 that has not passed)
        bool first_try = true;        // counted in the stats (acquires, hits, misses) and queued last in line
        bool returns_checked = false; // a return barrier was run for it: pool_exhausted is then final
        Failover failover;
        bool quiet = false; // a quiet checkout: not answered when granted at once
    };

    // What a grant needs of the checkout besides the connection: when it was asked for, until when it may be
    // served, and what its group may do with it should the connection turn out to be down.
    struct Asked {
        Clock::time_point started;
        Clock::time_point deadline;
        Failover failover;
        bool quiet = false; // granted at once to a quiet checkout: the grant is not answered
    };

    // ConnectionEvents (pool_operations.cpp, pool_lifecycle.cpp).
    void on_reply(PooledConnection& c, std::string_view message) override;
    void on_down(PooledConnection& c, std::string_view ref, std::string_view reason) override;
    void on_spawn_reply(PooledConnection& c, std::string_view ref, std::string_view result) override;
    void on_drained(PooledConnection& c) override { release_parked(c); }
    void on_link_closed(PooledConnection& c, transport::DistLink& link, std::string_view reason) override;

    const Answers& answers() const { return *context_.answers; }

    // Limits (pool.cpp). A refusal by `limit`, counted in the pool and the C-node.
    Failure refuse(Limit limit, std::string text);
    // Answers a caller that a limit refused, and counts the failed operation.
    void answer_refused(const CallerView& caller, const Failure& why);
    // Why `bytes` more of a caller's data cannot be queued on `c` now: its own queue is full
    // (max_link_queue_bytes) or that of every link together (max_output_queue_bytes); nullopt when they can.
    std::optional<Failure> output_refusal(const PooledConnection& c, std::size_t bytes);
    std::optional<Failure> link_queue_refusal(const PooledConnection& c, std::size_t bytes);
    std::optional<Failure> output_queue_refusal(std::size_t bytes);
    // A caller's request or call on `c` (answered with its one-shot lease returned) when the connection has
    // max_pending_requests in flight or its output is full; true when it may go.
    bool admit_request(PooledConnection& c, const CallerView& caller, std::size_t bytes,
                       std::uint64_t one_shot_lease);
    // Gives back the memory of a line of waiters that was long and is short again.
    void shrink_waiters();

    // Leases and waiters (pool.cpp).
    void serve(const Attempt& attempt, const CallerView& caller, const OneShotView* job);
    // Return barriers (pool_returns.cpp). Starts a return barrier for the answer `key` of a caller on `requester`; false when none is needed (or
    // possible): answer now.
    bool hold_for_returns(const transport::DistLink* requester, std::uint64_t key);
    // Puts a checkout in line (a retry in its old place); its caller is watched once it has waited kWatchDelay
    // (a waiter_watch deadline). The acquire deadline is the caller's to schedule.
    Waiter& enqueue_waiter(const Attempt& attempt, const CallerView& caller, const OneShotView* job);
    void grant(const Grant& g, const CallerView& caller, const Asked& asked, const OneShotView* job);
    void grant_to_waiter(const Grant& g);
    void grant_queued(const Grant& g);
    void run_one_shot(PooledConnection& c, std::uint64_t lease, const CallerView& caller, const OneShotView& job,
                      const Asked& asked);
    void end_one_shot(PooledConnection& c, std::uint64_t lease);
    void end_lease(PooledConnection& c, std::uint64_t lease, bool notify_holder);
    void monitor_caller(const CallerView& caller, std::uint64_t number);
    void watch_holder(PooledConnection& c, std::uint64_t lease);
    void demonitor_caller(const CallerView& caller, std::uint64_t number);
    void fail_waiters(const Failure& reason);
    void expire_waiter(std::uint64_t waiter);
    void watch_holder_now(std::uint64_t key);
    // A caller still in line after kWatchDelay is monitored: one that exits then leaves the line.
    void watch_waiter_now(std::uint64_t waiter);
    void unwatch_waiter(const Waiter& w, std::uint64_t waiter);
    // The connection of holder deadline `key` while it is still leased under that lease and its holder not yet
    // watched (watch_holder_now has something to do, deadline_wanted keeps the deadline); else nullptr.
    PooledConnection* unwatched_holder(std::uint64_t key) const;
    // Why `lease` of connection `conn` cannot be used now (invalid_connection, connection_failed); nullopt
    // when it can.
    std::optional<Failure> lease_error(std::uint32_t conn, std::uint64_t lease) const;
    bool validate_lease(const CallerView& caller, std::uint32_t conn, std::uint64_t lease);

    // Operations and the target's answers (pool_operations.cpp).
    template <class WriteRequest>
    void start_request(PooledConnection& c, const CallerView& caller, const Destination& to,
                       std::optional<std::uint32_t> timeout_ms, WriteRequest&& write_request,
                       std::uint64_t one_shot_lease);
    // A request whose term came encoded (request, pooled_request).
    void start_raw_request(PooledConnection& c, const CallerView& caller, const Destination& to,
                           std::optional<std::uint32_t> timeout_ms, std::string_view request,
                           std::uint64_t one_shot_lease);
    void start_call(PooledConnection& c, const CallerView& caller, std::string_view mfa,
                    std::optional<std::uint32_t> timeout_ms, std::uint64_t one_shot_lease);
    void learn_group_leader(PooledConnection& c);
    void schedule_request_deadline(const PooledConnection& c, const PendingRequest& p, std::uint32_t timeout_ms);
    void answer_call_exit(PooledConnection& c, PendingRequest& p, std::string_view reason, Clock::time_point read);
    void finish_request(PooledConnection& c, PendingRequest& p);
    // The target answered a caller's request, its answer read at `read` (request_rtt ends there, before the
    // answer to the caller is written): counted and timed, then ended (end_request).
    void complete_request(PooledConnection& c, PendingRequest& p, bool succeeded, Clock::time_point read);
    // Finishes a caller's request and returns its one-shot lease, if it had one.
    void end_request(PooledConnection& c, PendingRequest& p);
    void expire_request(std::uint64_t key);
    void fail_pending(PooledConnection& c, const Failure& reason);
    // Answers what waits for `c`'s output to drain: the data is queued (on `c`, or on the link it retires).
    void release_parked(PooledConnection& c);
    void fail_parked(PooledConnection& c, const Failure& reason);
    // What the senders are told when a connection closed while their messages were being queued on it.
    Failure closed_under_writes(const PooledConnection& c) const;

    // The life of connections, timers and resizing (pool_lifecycle.cpp).
    PooledConnection& open_connection();
    void connect(PooledConnection& c);
    void on_connected(PooledConnection& c, transport::DistStream stream, std::uint64_t peer_flags);
    void on_connect_failed(PooledConnection& c, transport::ConnectError kind, const std::string& error);
    void start_progress(bool ok);
    // The caller of a checkout that cannot be served, before anything of it was written: answered `failure`
    // (counted in failed_operations; true), unless the pool's group takes it over (another member serves and
    // counts it; false).
    bool answer_unserved(const CallerView& caller, const OneShotView* job, Clock::time_point deadline,
                         const Failover& failover, const Failure& failure);
    // The checkout validating `c` gets no connection of this pool: answer_unserved with `failure`.
    void unserve_validation(PooledConnection& c, const Failure& failure);
    // A connection id as callers see it (conn_base_ above the index), and back: an id of no connection of the
    // pool gives an index past every connection.
    std::uint32_t conn_id(std::uint32_t index) const { return conn_base_ + index; }
    std::uint32_t conn_index(std::uint32_t conn) const { return conn - conn_base_; }
    // Closes the current link of `c` on the pool's own decision (or records the loss of one that closed) and
    // fails what was in flight on it. The slot's state is the caller's business. `detail`: why, in words.
    void drop_link(PooledConnection& c, CloseReason reason, std::string_view detail);
    // Tells context_.events (if any) that a connection of the pool (by default `c`'s current one) went up or
    // down; `detail` is made only when someone listens.
    template <class Detail>
    void report(std::string_view kind, const PooledConnection& c, Detail detail,
                std::string_view connection = {}) const
    {
        if (context_.events) {
            auto about_it = about(&c);
            if (!connection.empty()) {
                about_it.connection = connection;
            }
            context_.events(kind, id_, about_it, detail());
        }
    }
    void close_retiring(PooledConnection& c);
    // After a link was lost: an idle slot reconnects, a validating checkout tries again elsewhere; a leased
    // slot stays with its holder (whose operations now fail) and reconnects when returned.
    void after_link_lost(PooledConnection& c);
    void retire(PooledConnection& c);
    std::chrono::milliseconds backoff(std::uint32_t failures);
    void schedule_reconnect(PooledConnection& c);
    void reconnect(std::uint64_t conn);
    void start_health_check(PooledConnection& c);
    void on_health_result(PooledConnection& c, bool ok);
    void check_health(std::uint64_t key);
    void end_lifetime(std::uint64_t key);
    void schedule_maintenance();
    void maintain();
    void adapt();
    void finish_destroy();

    PoolContext& context_;
    std::uint64_t id_;
    PoolConfig config_;
    PoolCore core_;
    std::vector<std::unique_ptr<PooledConnection>> connections_;
    std::unordered_map<std::uint64_t, Waiter> waiters_;
    std::optional<Caller> creator_;
    std::uint32_t start_remaining_ = 0;
    bool start_failed_ = false;
    bool draining_ = false; // being destroyed: leases still out are waited for, nothing new is handed out
    bool destroyed_ = false;
    std::optional<Caller> destroyer_;
    bool destroyer_wants_id_ = false;
    // The last connect attempt failed and none has succeeded since: waiters are told at once.
    bool target_down_ = false;
    // Why the last connect attempt failed, or why the last connection was lost (stats: last_failure); no kind
    // until then.
    Failure last_failure_{"connection_failed"};
    std::string label_; // the pool's name, or its id, in its log lines
    // Runs of failed connects and of lost connections, logged collapsed (log::RepeatLog).
    log::RepeatLog connect_failures_;
    log::RepeatLog lost_connections_;
    // Adaptive capacity: the number of connections the pool keeps open, between min and max.
    std::uint32_t capacity_ = 0;
    std::uint32_t window_samples_ = 0;
    double window_idle_share_ = 0;
    bool window_saw_waiters_ = false;
    PoolCounters counters_;
    util::LatencyHistogram acquire_wait_;
    // From a caller's request queued on a pooled connection to its answer read from it: the target's share of
    // a request, as the C-node sees it.
    util::LatencyHistogram request_rtt_;
    // Grants made while one is being made (a one-shot send returns its lease at once, which may grant the next
    // waiter): queued and made in a loop, so a long line of waiters never deepens the stack.
    std::deque<Grant> grants_to_make_;
    bool granting_ = false;
    // Where the next unkeyed cast batch starts, so that small batches spread over the connections too.
    std::uint64_t batch_cursor_ = 0;
    // Stats reads waiting for their return barrier, by key (bounded by the barriers in flight).
    std::unordered_map<std::uint64_t, Caller> held_stats_;
    // The group the pool is a member of (none: nullptr), and where its connection ids start.
    MemberEvents* group_ = nullptr;
    std::uint32_t conn_base_ = 0;
};

// An owner of `payload` when it is big and lies in the packet of `caller` being handled now (so that it is
// forwarded without a copy); nullptr otherwise.
std::shared_ptr<const void> payload_owner(const CallerView& caller, std::string_view payload);

// Deadline keys of one connection: its index above, a reference, lease or generation number below.
inline constexpr unsigned kConnectionKeyBits = 40;
inline std::uint64_t connection_key(std::uint32_t conn, std::uint64_t number)
{
    return (std::uint64_t{conn} << kConnectionKeyBits) | (number & ((std::uint64_t{1} << kConnectionKeyBits) - 1));
}
inline std::uint32_t key_connection(std::uint64_t key) { return static_cast<std::uint32_t>(key >> kConnectionKeyBits); }
inline std::uint64_t key_number(std::uint64_t key) { return key & ((std::uint64_t{1} << kConnectionKeyBits) - 1); }

} // namespace dpool::pool
