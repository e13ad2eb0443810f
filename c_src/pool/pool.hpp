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
#include <vector>

#include "pool/caller.hpp"
#include "pool/connection_names.hpp"
#include "pool/pool_core.hpp"
#include "pool/return_barrier.hpp"
#include "pool/scheduler.hpp"
#include "protocol/node_identity.hpp"
#include "transport/connector.hpp"
#include "transport/dist_link.hpp"
#include "util/asio.hpp"
#include "util/latency_histogram.hpp"

namespace dpool::pool {

struct PoolConfig {
    std::string target;
    std::string name; // the pool's registered name (an atom's text), empty for none
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
};

// What every pool of the C-node shares: the event loop, the handshake threads, the cookie, the deadline
// scheduler and the process-wide lease counter (monitors of callers are set by the identity of the lane each
// caller came in on: CallerView::self).
struct PoolContext {
    PoolContext(asio::any_io_executor ex, asio::thread_pool& pool, std::string alive, std::string host_name)
        : executor(std::move(ex)), handshakes(pool), cnode_alive(alive), host(host_name), names(alive, host_name)
    {
    }

    asio::any_io_executor executor;
    asio::thread_pool& handshakes;
    std::string cookie;
    std::string cnode_alive;
    std::string host;
    Scheduler* scheduler = nullptr;
    // Return barriers over caller links (see ReturnBarriers); the service feeds them answers and lost links.
    ReturnBarriers* barriers = nullptr;
    transport::LinkLimits link_limits;
    ConnectionNames names;
    std::uint64_t lease_counter = 0;
    std::uint64_t waiter_counter = 0;
    std::mt19937 random{std::random_device{}()};
    // Called (from the event loop) when a pool failed to start and must be forgotten.
    std::function<void(std::uint64_t pool)> drop_pool;
};

// Where an operation goes on the target: a registered name or a pid; `encoded` is the term as it came.
struct Destination {
    bool is_name = false;
    std::string_view encoded;
};

// A one-shot operation (pooled_send, pooled_request, pooled_call): the pool takes a lease for it, does it and
// returns the lease itself, as soon as the message is queued (send) or the request or call answered.
enum class OneShotKind : std::uint8_t { send, request, call };

struct OneShotView {
    OneShotKind kind = OneShotKind::send;
    Destination to;                          // send and request
    std::string_view payload;                // the message, the request, or a call's M, F and A, encoded
    std::optional<std::uint32_t> timeout_ms; // request and call; nullopt: infinity
    std::shared_ptr<const void> owner = {};  // keeps `payload` alive when it is not in the packet being handled
};

// A OneShotView's bytes, kept by a caller that waits for a lease: copied, or, for a big payload in the packet
// being handled, shared with that packet (DistLink::share_packet).
struct OneShot {
    OneShotKind kind = OneShotKind::send;
    bool to_name = false;
    std::string destination;
    std::string payload;
    std::optional<std::uint32_t> timeout_ms;
    std::shared_ptr<const void> owner;
    std::string_view shared_payload; // the payload when `owner` keeps it

    OneShot(const OneShotView& v, std::shared_ptr<const void> payload_owner)
        : kind(v.kind), to_name(v.to.is_name), destination(v.to.encoded),
          payload(payload_owner ? std::string_view() : v.payload), timeout_ms(v.timeout_ms),
          owner(std::move(payload_owner)), shared_payload(owner ? v.payload : std::string_view())
    {
    }
    OneShotView view() const
    {
        return OneShotView{kind, Destination{to_name, destination}, owner ? shared_payload : payload, timeout_ms,
                           owner};
    }
};

// One message of a cast batch: its encoded term and, for a keyed batch, the hash of its key.
struct BatchMessage {
    std::uint32_t hash = 0;
    std::string_view term;
};

// A cast batch whose answer waits for the output of busy connections to drain.
struct ParkedBatch {
    Caller caller;
    std::int64_t count = 0;
    std::uint32_t links_left = 0;
    bool answered = false;
};

// Why the pool closed a connection (stats: connections_closed).
enum class CloseReason : std::uint8_t { idle, lifetime, broken, health, destroy, target_down, count_ };

class Pool;

// One pooled distribution connection, under its own hidden node name.
class PooledConnection final : public transport::LinkHandler {
public:
    PooledConnection(Pool& pool, std::uint32_t index, ConnectionNames::Name name);
    ~PooledConnection();

    void on_packet(transport::DistLink& link, std::string_view packet) override;
    void on_drained(transport::DistLink& link) override;
    void on_closed(transport::DistLink& link, std::string_view reason) override;

    // Pool internals, public only for the helpers in pool.cpp.
    // caller: a request or call of a caller; health: a health check; group_leader: the lookup of the target's
    // `user`, the group leader of spawned calls.
    enum class Purpose : std::uint8_t { caller, health, group_leader };
    struct PendingRequest {
        std::uint64_t ref = 0; // 0: free entry
        Purpose purpose = Purpose::caller;
        // Spawned on the target (SPAWN_REQUEST of erpc:execute_call/4, monitored): answered by the exit of
        // that process, not by a {Ref, Reply} message; there is no monitor of ours to take back.
        bool spawned = false;
        Caller caller;
        std::string destination;
        std::uint64_t one_shot_lease = 0; // a pooled_request's lease, returned with the answer
        Clock::time_point written;        // when the request was queued on the connection (stats: request_rtt)
    };
    // An answer held back until the output drains: `ok` to a send, or one connection of a cast batch.
    struct ParkedAck {
        Caller caller;
        std::shared_ptr<ParkedBatch> batch;
        bool counted = false; // its messages are in the stats already (send_many)
    };
    // A checkout that got this idle connection and waits for the round trip of validate_on_checkout.
    struct Validation {
        std::uint64_t waiter = 0;
        Caller caller;
        Clock::time_point started;
        Clock::time_point deadline;
        bool may_wait = false;
        std::optional<OneShot> job;
    };

private:
    friend class Pool;

    bool live() const { return link && link->is_open(); }
    PendingRequest* find_pending(std::uint64_t ref);

    Pool& pool;
    std::uint32_t index; // the connection's stable id
    std::uint32_t name_number; // in the C-node's ConnectionNames
    std::string node_name;
    std::optional<protocol::NodeIdentity> identity; // changes with each connection attempt (new creation)
    std::shared_ptr<transport::DistLink> link;
    // The target's `user` process, encoded, once learned over this link: calls are then spawned on the target
    // (erpc:execute_call/4 with `user` as group leader, as rex gives its workers). Empty: calls go to rex.
    std::string group_leader;
    // The connection being replaced (max_lifetime_ms): kept open, detached, until its successor is up.
    std::shared_ptr<transport::DistLink> retiring;
    std::uint32_t retiring_name_number = 0;
    std::uint64_t attempt = 0;    // a connect attempt's result counts only if no newer attempt started
    std::uint64_t generation = 0; // one per established connection: tells stale lifetime and health deadlines
    bool connecting = false;
    std::uint32_t failures = 0;
    // Why its link is down (connect failure or loss): what the holder's operations are told.
    Failure down{"connection_failed", "connection_lost", "not connected yet"};
    Clock::time_point idle_since{};
    Clock::time_point expires_at = Clock::time_point::max();
    bool health_check_in_flight = false;
    std::optional<Validation> validating;
    Caller holder;              // the lease holder, while leased
    bool holder_watched = false; // a monitor on the holder is set (see Pool::watch_holder)
    bool one_shot = false;      // leased by the pool itself for a pooled_request of `holder`
    std::uint64_t next_ref = 1; // references minted on this connection
    std::vector<PendingRequest> pending;
    std::size_t pending_count = 0;
    std::deque<ParkedAck> parked;
    // The head of the last destination's packets (pass-through byte, version, control term, version): the
    // same for every message to that destination over this connection, so encoded once, not per message.
    // Emptied when the connection's identity (its sender pid) changes.
    std::string head_destination;
    bool head_to_name = false;
    std::string head;
    // With an atom cache: the link's atoms_sent().changes() when `head` was made. A head that defined new
    // entries must not be sent again as it is, nor one whose entries were taken by other atoms since.
    std::uint64_t head_atoms = 0;
};

// A pool of distribution connections to one target node, and everything in flight on them. Lives on the
// event loop; owned by the service through a shared_ptr, so connect attempts that finish after a destroy can
// tell that their pool is gone.
class Pool : public std::enable_shared_from_this<Pool> {
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
    void checkout(const CallerView& caller, std::optional<std::uint32_t> timeout_ms,
                  const OneShotView* job = nullptr);
    // Spreads `messages` over every live connection, leased or not (each message is one packet, so a holder's
    // own messages keep their order), round robin, or by hash when `keyed`; answers {ok, N} once all are
    // queued and busy connections have drained.
    void cast_batch(const CallerView& caller, const Destination& to, const std::vector<BatchMessage>& messages,
                    bool keyed);
    // Ends a lease; `discard`: the holder found the connection broken, so it is closed and reopened. False
    // when that lease had already ended (or never was).
    bool checkin(std::uint32_t conn, std::uint64_t lease, bool discard = false);
    void cancel(std::string_view pid, std::string_view tag);
    void send(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
              std::string_view message);
    // Sends in order over one lease, each to its own destination (nullopt: none on the target, dropped and
    // counted); answered once, as send() is: ok when all are queued and the connection is not busy.
    void send_many(const CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                   const std::vector<std::pair<std::optional<Destination>, std::string_view>>& messages);
    void request(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                 std::optional<std::uint32_t> timeout_ms, std::string_view request);
    // apply(M, F, A) on the target over the lease; `mfa` is M, F and A encoded back to back, A a proper list.
    void call(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, std::string_view mfa,
              std::optional<std::uint32_t> timeout_ms);
    void write_stats(protocol::TermWriter& w) const;
    // Answers {ok, StatsMap}: at once, or after a return barrier when other links hold leases (a checkin sent
    // before this request may still be on its way).
    void stats(const CallerView& caller);
    // The return barrier of a held answer (a stats read, or waiter `key` about to get pool_exhausted) ended;
    // `complete`: every link it covered answered.
    void on_barrier_done(std::uint64_t key, bool complete);

    void on_deadline(const Deadline& d);
    // A monitor of the C-node's identity fired: the holder of lease `number`, or waiter `number`, has exited.
    void on_monitor_down(std::uint64_t number);
    // A client node's connection is gone: its leases come back, its waiters leave.
    void on_client_gone(const transport::DistLink* client);
    // Refuses new leases and waiters at once, waits up to `drain_timeout_ms` for the leases still out, then
    // closes everything and answers `destroyer` ok; the service forgets the pool then (context.drop_pool).
    void destroy(Caller destroyer, std::uint32_t drain_timeout_ms);
    // Closes everything now; callers still waiting are answered {error, invalid_pool}.
    void close_now();

    std::size_t live_connections() const;

private:
    friend class PooledConnection;

    struct Waiter {
        Caller caller;
        Clock::time_point started;
        Clock::time_point deadline;
        std::optional<OneShot> job;
        // Its pool_exhausted waits for a return barrier (it stays in line meanwhile, and a checkin may still
        // grant it).
        bool held_for_returns = false;
    };
    struct Counters {
        std::uint64_t connections_created = 0;
        std::uint64_t closed[static_cast<std::size_t>(CloseReason::count_)] = {};
        std::uint64_t reconnect_attempts = 0;
        std::uint64_t acquires = 0;
        std::uint64_t acquire_timeouts = 0;
        std::uint64_t hits = 0;
        std::uint64_t misses = 0;
        std::uint64_t health_checks = 0;
        std::uint64_t successful_operations = 0;
        std::uint64_t failed_operations = 0;
        std::uint64_t dropped_sends = 0; // send_many messages that could not be queued
        std::uint64_t return_barriers = 0;       // answers held for a return barrier
        std::uint64_t return_barrier_misses = 0; // answers given without hearing from every link they needed
    };

    PooledConnection& open_connection();
    void connect(PooledConnection& c);
    void on_connected(PooledConnection& c, tcp::socket socket, std::uint64_t peer_flags);
    void on_connect_failed(PooledConnection& c, transport::ConnectError kind, const std::string& error);
    // What a caller is told when no connection is up: the cause of the last failed attempt.
    Failure no_connection() const;
    // What the senders are told when a connection closed while their messages were being queued on it.
    Failure closed_under_writes(const PooledConnection& c) const;
    // How logs name the pool: its name, or its id.
    std::string label() const;
    void on_link_closed(PooledConnection& c, transport::DistLink& link, std::string_view reason);
    // Closes the current link of `c` on the pool's own decision (or records the loss of one that closed) and
    // fails what was in flight on it. The slot's state is the caller's business. `detail`: why, in words.
    void drop_link(PooledConnection& c, CloseReason reason, std::string_view detail);
    void close_retiring(PooledConnection& c);
    // After a link was lost: an idle slot reconnects, a validating checkout tries again elsewhere; a leased
    // slot stays with its holder (whose operations now fail) and reconnects when returned.
    void after_link_lost(PooledConnection& c);
    void became_idle(PooledConnection& c);
    void retire(PooledConnection& c);
    void schedule_reconnect(PooledConnection& c);
    // `returns_checked`: a return barrier was run for this checkout; pool_exhausted is then final.
    void serve(std::uint64_t waiter, const CallerView& caller, Clock::time_point started, Clock::time_point deadline,
               bool may_wait, bool first_try, const OneShotView* job, bool returns_checked = false);
    // Starts a return barrier for the answer `key` of a caller on `requester`; false when none is needed (or
    // possible): answer now.
    bool hold_for_returns(const transport::DistLink* requester, std::uint64_t key);
    void reply_stats(const CallerView& caller) const;
    // Puts a checkout in line (a retry in its old place) and watches its caller; the deadline is the caller's.
    Waiter& enqueue_waiter(std::uint64_t waiter, const CallerView& caller, Clock::time_point started,
                           Clock::time_point deadline, bool first_try, const OneShotView* job);
    void grant(const Grant& g, const CallerView& caller, Clock::time_point started, const OneShotView* job);
    void grant_to_waiter(const Grant& g);
    void grant_queued(const Grant& g);
    void run_one_shot(PooledConnection& c, std::uint64_t lease, const CallerView& caller, const OneShotView& job);
    void end_one_shot(PooledConnection& c, std::uint64_t lease);
    // `owner`: keeps `message` alive, so that a big one is written without a copy (nullptr: copied).
    void write_message(PooledConnection& c, const Destination& to, std::string_view message,
                       const std::shared_ptr<const void>& owner);
    template <class WriteRequest>
    void start_request(PooledConnection& c, const CallerView& caller, const Destination& to,
                       std::optional<std::uint32_t> timeout_ms, WriteRequest&& write_request,
                       std::uint64_t one_shot_lease);
    void start_call(PooledConnection& c, const CallerView& caller, std::string_view mfa,
                    std::optional<std::uint32_t> timeout_ms, std::uint64_t one_shot_lease);
    void learn_group_leader(PooledConnection& c);
    PooledConnection::PendingRequest& add_pending(PooledConnection& c, std::uint64_t ref,
                                                  PooledConnection::Purpose purpose, bool spawned);
    void answer_spawn_reply(PooledConnection& c, std::string_view ref, std::string_view result);
    void answer_call_exit(PooledConnection& c, PooledConnection::PendingRequest& p, std::string_view reason);
    // Answers what waits for `c`'s output to drain: the data is queued (on `c`, or on the link it retires).
    void release_parked(PooledConnection& c);
    void fail_parked(PooledConnection& c, const Failure& reason);
    void end_lease(PooledConnection& c, std::uint64_t lease, bool notify_holder);
    void start_health_check(PooledConnection& c);
    void on_health_result(PooledConnection& c, bool ok);
    void fail_waiters(const Failure& reason);
    void fail_pending(PooledConnection& c, const Failure& reason);
    void answer_reply(PooledConnection& c, std::string_view message);
    void answer_down(PooledConnection& c, std::string_view ref, std::string_view reason);
    void finish_request(PooledConnection& c, PooledConnection::PendingRequest& p);
    void write_demonitor(PooledConnection& c, std::string_view destination, std::uint64_t ref);
    void monitor_caller(const CallerView& caller, std::uint64_t number);
    void watch_holder(PooledConnection& c, std::uint64_t lease);
    void demonitor_caller(const CallerView& caller, std::uint64_t number);
    void start_progress(bool ok);
    // Why `lease` of connection `conn` cannot be used now (invalid_connection, connection_failed); nullopt
    // when it can.
    std::optional<Failure> lease_error(std::uint32_t conn, std::uint64_t lease) const;
    bool validate_lease(const CallerView& caller, std::uint32_t conn, std::uint64_t lease);
    std::chrono::milliseconds backoff(std::uint32_t failures);
    void schedule_maintenance();
    void maintain();
    void adapt();
    void grow();
    void finish_destroy();
    void count_closed(CloseReason reason) { ++counters_.closed[static_cast<std::size_t>(reason)]; }

    PoolContext& context_;
    std::uint64_t id_;
    PoolConfig config_;
    PoolCore core_;
    std::vector<std::unique_ptr<PooledConnection>> connections_;
    std::unordered_map<std::uint64_t, Waiter> waiters_;
    std::optional<Caller> creator_;
    std::uint32_t start_remaining_ = 0;
    bool start_failed_ = false;
    bool draining_ = false;
    bool destroyed_ = false;
    std::optional<Caller> destroyer_;
    // The last connect attempt failed and none has succeeded since: waiters are told at once.
    bool target_down_ = false;
    // Why the last connect attempt failed, or why the last connection was lost (stats: last_failure); no kind
    // until then.
    Failure last_failure_{"connection_failed"};
    // Adaptive capacity: the number of connections the pool keeps open, between min and max.
    std::uint32_t capacity_ = 0;
    std::uint32_t window_samples_ = 0;
    double window_idle_share_ = 0;
    bool window_saw_waiters_ = false;
    Counters counters_;
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
};

} // namespace dpool::pool
