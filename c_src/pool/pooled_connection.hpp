#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pool/caller.hpp"
#include "pool/connection_names.hpp"
#include "pool/operations.hpp"
#include "pool/scheduler.hpp"
#include "protocol/dist_header.hpp"
#include "protocol/node_identity.hpp"
#include "protocol/rpc.hpp"
#include "transport/dist_link.hpp"
#include "transport/handshake.hpp"
#include "util/asio.hpp"
#include "util/byte_buffer.hpp"

namespace dpool::pool {

class PooledConnection;

// What a pooled connection hears that its pool must act on. The pool implements it; tests may too.
class ConnectionEvents {
public:
    // A message to the connection's process: the answer {Ref, Reply} of a gen_server call (version byte first).
    virtual void on_reply(PooledConnection& c, std::string_view message) = 0;
    // MONITOR_P_EXIT of a monitor we set: `ref` and `reason` encoded.
    virtual void on_down(PooledConnection& c, std::string_view ref, std::string_view reason) = 0;
    // SPAWN_REPLY: `result` is the spawned pid, or an error atom when the target could not spawn.
    virtual void on_spawn_reply(PooledConnection& c, std::string_view ref, std::string_view result) = 0;
    // The link's output queue drained below its busy limit.
    virtual void on_drained(PooledConnection& c) = 0;
    virtual void on_link_closed(PooledConnection& c, transport::DistLink& link, std::string_view reason) = 0;

protected:
    ~ConnectionEvents() = default;
};

// Why a connection has a request in flight. caller: a request or call of a caller; health: a health check;
// group_leader: the lookup of the target's `user`, the group leader of spawned calls.
enum class Purpose : std::uint8_t { caller, health, group_leader };

struct PendingRequest {
    std::uint64_t ref = 0; // 0: free entry
    Purpose purpose = Purpose::caller;
    // Spawned on the target (SPAWN_REQUEST of erpc:execute_call/4, monitored): answered by the exit of that
    // process, not by a {Ref, Reply} message; there is no monitor of ours to take back.
    bool spawned = false;
    Caller caller;
    std::string destination;
    std::uint64_t one_shot_lease = 0; // a pooled_request's lease, returned with the answer
    Clock::time_point written;        // when the request was queued on the connection (stats: request_rtt)
};

// The requests in flight on one connection, by reference number. Entries are reused: a connection that keeps
// a few requests in flight allocates nothing per request.
class PendingRequests {
public:
    // A fresh entry for `ref` (its caller, destination and lease cleared).
    PendingRequest& add(std::uint64_t ref, Purpose purpose, bool spawned, Clock::time_point now);
    PendingRequest* find(std::uint64_t ref);
    void finish(PendingRequest& p);
    std::size_t size() const;
    // Requests and calls of callers in flight (not the connection's own health checks and lookups).
    std::size_t for_callers() const { return for_callers_; }
    // Calls `f` on every request in flight; `f` may finish the one it is given.
    template <class F>
    void for_each(F&& f)
    {
        for (auto& p : entries_) {
            if (p.ref != 0) {
                f(p);
            }
        }
    }

private:
    std::vector<PendingRequest> entries_;
    std::size_t for_callers_ = 0;
};

// The head of a connection's messages to one destination (pass-through byte or distribution header, control
// term, version bytes): the same for every message to that destination, so encoded once, not per message.
class MessageHeads {
public:
    // The head of a message from `me` to `to`, valid until the next call. With an atom cache (`atoms`
    // non-null), a head that defines entries is good for one packet only, and a kept head is made again once
    // the cache's entries changed.
    std::string_view head(const protocol::NodeIdentity& me, const Destination& to, protocol::AtomCacheOut* atoms);
    // The sender pid in the kept head is no longer ours (a new identity).
    void forget() { head_.clear(); }

private:
    ByteBuffer scratch_;
    std::string destination_;
    bool to_name_ = false;
    std::string head_;
    std::uint64_t atoms_changes_ = 0;
};

// A connection's output answered once it has drained: `ok` to a send, or one connection of a cast batch.
struct ParkedBatch {
    Caller caller;
    std::int64_t count = 0;
    std::uint32_t links_left = 0;
    bool answered = false;
};
struct ParkedAck {
    Caller caller;
    std::shared_ptr<ParkedBatch> batch;
    bool counted = false; // its messages are in the stats already (send_many)
};

// A checkout that got an idle connection and waits for the round trip of validate_on_checkout.
struct Validation {
    std::uint64_t waiter = 0;
    Caller caller;
    Clock::time_point started;
    Clock::time_point deadline;
    bool may_wait = false;
    std::optional<OneShot> job;
    Failover failover;
};

// One pooled distribution connection, under its own hidden node name: its link, its identity on the target
// and what it has in flight there. The pool's decisions about it (leases, attempts, lifetime) are in `slot`.
class PooledConnection final : public transport::LinkHandler {
public:
    PooledConnection(ConnectionEvents& events, std::uint32_t index, ConnectionNames::Name name);
    ~PooledConnection();
    PooledConnection(const PooledConnection&) = delete;
    PooledConnection& operator=(const PooledConnection&) = delete;

    void on_packet(transport::DistLink& link, std::string_view packet) override;
    void on_drained(transport::DistLink& link) override;
    void on_closed(transport::DistLink& link, std::string_view reason) override;

    std::uint32_t index() const { return index_; }
    const std::string& node_name() const { return node_name_; }
    std::uint32_t name_number() const { return name_number_; }
    bool live() const { return link_ && link_->is_open(); }
    transport::DistLink* link() const { return link_.get(); }
    // What went over this slot's links, the closed ones included.
    transport::LinkTraffic traffic() const
    {
        auto t = closed_traffic_;
        for (const auto* l : {link_.get(), retiring_.get()}) {
            if (l != nullptr) {
                t += l->traffic();
            }
        }
        return t;
    }
    // The node name of the connection being replaced (retire_link), while it is open.
    const std::string& retiring_node_name() const { return retiring_node_name_; }
    const protocol::NodeIdentity* identity() const { return identity_ ? &*identity_ : nullptr; }

    // A new identity for a connect attempt (a new creation per attempt: the target treats a reconnected name
    // as a new incarnation, and stale pids of the old one cannot reach the new connection).
    transport::HandshakeIdentity begin_attempt(std::string_view host, std::uint32_t creation,
                                               std::uint32_t ref_salt);
    // The handshake succeeded: the connection speaks over `socket` from now on.
    void attach(transport::DistStream stream, const std::string& target, const transport::LinkLimits& limits,
                bool atom_cache);
    // Lets the link go and closes it; false if there was none.
    bool close_link(std::string_view reason);
    // Keeps the link open, detached, until its successor is up (max_lifetime_ms), and takes `successor` as
    // the name to connect under: the target would take the same name for a reconnect of the old connection.
    void retire_link(ConnectionNames::Name successor);
    // Closes the retired link; its name's number, for the pool to release, or nullopt if none was retired.
    std::optional<std::uint32_t> close_retired(std::string_view reason);

    // The target's `user`, encoded, once learned (calls are then spawned with it as their group leader, as
    // rex gives its workers); empty: calls go to rex.
    const std::string& group_leader() const { return group_leader_; }
    void set_group_leader(std::string_view pid) { group_leader_.assign(pid); }
    void forget_group_leader() { group_leader_.clear(); }

    // Output, on a live connection. `owner` keeps `message` alive, so that a big one is written without a copy.
    // `tail`: the message goes on with these bytes in pipes (a spliced packet's).
    void write_message(const Destination& to, std::string_view message, const std::shared_ptr<const void>& owner,
                       std::unique_ptr<transport::SplicedTail> tail = nullptr);
    // As gen_server:call does: monitor the destination, then {'$gen_call', {Self, Ref}, Request}, Request
    // written by `write_request`. Returns the request's reference number.
    template <class WriteRequest>
    std::uint64_t write_gen_call(const Destination& to, WriteRequest&& write_request);
    // As erpc:call does: SPAWN_REQUEST of erpc:execute_call(Ref, M, F, A), M, F and A written by `write_mfa`.
    template <class WriteMfa>
    std::uint64_t spawn_execute_call(std::string_view group_leader, WriteMfa&& write_mfa);
    // Takes back the monitor of a gen_server call (a no-op once the link is down).
    void write_demonitor(std::string_view destination, std::uint64_t ref);

    PendingRequests& pending() { return pending_; }
    // The request a reference of ours names, if it is in flight.
    PendingRequest* find_pending(const protocol::RefView& ref);
    // The same for an encoded reference (as MONITOR_P_EXIT and SPAWN_REPLY carry it).
    PendingRequest* find_pending(std::string_view ref_term);

    // The pool's bookkeeping for this connection.
    struct Slot {
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
        Caller holder;               // the lease holder, while leased
        bool holder_watched = false; // a monitor on the holder is set (see Pool::watch_holder)
        bool one_shot = false;       // leased by the pool itself for a one-shot operation of `holder`
        bool ids_untold = false;     // granted to a quiet checkout, whose caller has not been told the ids yet
        std::deque<ParkedAck> parked;
    };
    Slot slot;

private:
    std::uint64_t next_ref() { return next_ref_++; }

    ConnectionEvents& events_;
    std::uint32_t index_; // the connection's stable id
    std::uint32_t name_number_; // in the C-node's ConnectionNames
    std::string node_name_;
    std::optional<protocol::NodeIdentity> identity_; // changes with each connection attempt
    std::shared_ptr<transport::DistLink> link_;
    std::shared_ptr<transport::DistLink> retiring_; // the connection being replaced
    std::string retiring_node_name_;                // and its node name
    transport::LinkTraffic closed_traffic_;         // of links let go of
    std::uint32_t retiring_name_number_ = 0;
    std::string group_leader_;
    std::uint64_t next_ref_ = 1; // references minted on this connection
    PendingRequests pending_;
    MessageHeads heads_;
};

template <class WriteRequest>
std::uint64_t PooledConnection::write_gen_call(const Destination& to, WriteRequest&& write_request)
{
    const std::uint64_t ref = next_ref();
    auto monitor = link_->begin_packet();
    monitor.version();
    protocol::write_call_monitor(monitor, *identity_, to, ref);
    link_->end_packet();

    auto w = link_->begin_packet();
    w.version();
    protocol::write_call_message_head(w, *identity_, to, ref);
    write_request(w);
    link_->end_packet();
    return ref;
}

template <class WriteMfa>
std::uint64_t PooledConnection::spawn_execute_call(std::string_view group_leader, WriteMfa&& write_mfa)
{
    const std::uint64_t ref = next_ref();
    auto w = link_->begin_packet();
    w.version();
    protocol::write_execute_call_head(w, *identity_, ref, group_leader);
    write_mfa(w);
    protocol::write_execute_call_tail(w);
    link_->end_packet();
    return ref;
}

} // namespace dpool::pool
