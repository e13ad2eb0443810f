#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "api/access_list.hpp"
#include "api/caller_quotas.hpp"
#include "api/client_session.hpp"
#include "api/owners.hpp"
#include "api/refused_callers.hpp"
#include "api/replies.hpp"
#include "api/requests.hpp"
#include "pool/group.hpp"
#include "pool/pool.hpp"
#include "pool/return_barrier.hpp"
#include "pool/scheduler.hpp"
#include "protocol/node_identity.hpp"
#include "transport/dist_link.hpp"
#include "util/asio.hpp"
#include "util/memory_trimmer.hpp"

namespace dpool::api {

struct ServiceConfig {
    std::string service_name = "distribute_pool"; // the one registered name callers send to
    std::string cookie;
    std::string alive;
    std::string host;
    // Ticks, busy limit and bulk queue of every link; the bounds below set its packet and queue sizes.
    transport::LinkLimits link_limits;
    ServiceLimits limits;
    std::chrono::milliseconds log_repeat_interval{10000}; // pool::PoolContext::log_repeat_interval
    decltype(pool::PoolContext::events) events;           // pool::PoolContext::events
    // Lines of the C-node's output dropped because their reader fell behind (util::OutputLines); info.
    std::function<std::uint64_t()> output_lines_dropped;
    // Who may use the C-node, and where its pools may connect (README, "Access"); empty lists: anyone with
    // the cookie, anywhere.
    CallerAccess callers;
    TargetAccess targets;
    // TLS (--tls and its files), and the context pools connect with unless their option `tls` says otherwise.
    transport::TlsSettings tls;
    transport::TlsContext connect_tls;
    // Started to replace a C-node that died: until `restore` comes, unknown pools may be ones still to be
    // restored, so requests for them are answered {connection_failed, {cnode_restarting, _}}, not invalid_pool.
    bool await_restore = false;
};

// The C-node's face to its callers: accepts their connections, decodes their requests, answers them, and
// owns the pools. Callers come in on any of the C-node's lanes (its node names); a request is answered on the
// link it came in on, and whatever the C-node sets up towards a caller (monitors) carries that lane's
// identity. Pools, leases and pooled connections are shared by all lanes. Everything runs on one event loop thread, which owns every piece of state here, so the
// request path takes no lock.
class Service : private SessionOwner {
public:
    Service(asio::io_context& io, ServiceConfig config);
    ~Service();

    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Called once the C-node's names are published and their creations known: one identity per lane (its
    // ways in), lane 0 being the C-node's own name.
    void start(std::vector<protocol::NodeIdentity> lanes);
    // Why a caller node that names itself in a handshake on `lane`, connecting from `from`, may not go on,
    // nullopt when it may: the allow-list (ServiceConfig::callers) does not let it in (logged here, once per
    // name; info: refused_callers), or a node of that name is connected to that lane already, as OTP refuses a
    // name in use (counted with the refusals below). The handshake then answers status not_allowed.
    std::optional<transport::PeerRefusal> refusal_of_caller(std::size_t lane, std::string_view peer_node,
                                                            const asio::ip::address& from);
    // Where `info` reads the counters of the lanes' handshakes (the lanes are the C-node's, above this layer).
    // The port the Prometheus endpoint listens on (info: metrics_port); 0: none.
    void set_metrics_port(std::uint16_t port) { metrics_port_ = port; }
    void set_handshake_counters(std::function<transport::HandshakeCounters()> read)
    {
        handshake_counters_ = std::move(read);
    }
    // A caller node finished its handshake on `lane`. Refused (the socket closed) while a node of that name is
    // connected to that lane (a name that connected during the handshake): the connected caller keeps its
    // session and leases.
    void add_client(std::size_t lane, transport::DistStream stream, std::string peer_node);
    // Whether `peer_node` has an open connection on `lane`.
    bool caller_connected(std::size_t lane, std::string_view peer_node) const;
    // Closes every pool and every caller connection.
    void stop();

private:
    // SessionOwner: what the caller links report.
    void on_client_packet(ClientSession& session, std::string_view packet) override;
    void on_client_closed(ClientSession& session) override;
    // A big packet whose tail is in pipes: a send on a lease goes out with the tail spliced after it.
    bool on_client_spliced_packet(ClientSession& session, std::string_view prefix,
                                  std::unique_ptr<transport::SplicedTail>& tail) override;
    void handle_message(ClientSession& session, std::string_view message);
    // The caller of a call that came over `session`, or nullopt when its sender is on another node: the answer
    // can only travel back over the connection the request came on.
    static std::optional<pool::CallerView> caller_of(ClientSession& session, const Envelope& call);
    // What callers' big packets did in pipes (none when pipes are off).
    transport::PipeUsage splice_usage() const;
    // Whether an encoded REG_SEND destination is the service's registered name.
    bool names_service(std::string_view encoded_to) const;
    // The message of a send handled from a spliced packet: the emptied binary the request decoded to
    // (`placeholder`), its real bytes in the packet's prefix (header included) and the rest in `tail`.
    struct SplicedMessage {
        const char* placeholder;
        std::string_view in_prefix;
        std::unique_ptr<transport::SplicedTail> tail;
    };
    // `key`: the request came inside {keyed, Key, Request} (docs/PROTOCOL.md, "Pool groups"). `spliced`: the
    // request is the emptied packet of on_client_spliced_packet, its Send's message that one.
    void handle_call(const pool::CallerView& caller, std::string_view request, std::size_t lane,
                     std::optional<std::uint64_t> key = std::nullopt, SplicedMessage* spliced = nullptr);
    void handle_cast(std::string_view request);
    void on_monitored_exit(const ClientSession& session, std::string_view ref);
    void create_pool(const pool::CallerView& caller, pool::PoolConfig config, std::string_view target_term);
    // Whether a pool of `config` (target `target_term`) may be made: not to the C-node itself, to an allowed
    // target, with a usable tls option (its context resolved into `config`); answers the caller why not.
    bool admissible(const pool::CallerView& caller, pool::PoolConfig& config, std::string_view target_term);
    // The id and acquire timeout of the pool or group registered as `name`, unless it is being destroyed.
    std::optional<std::pair<std::uint64_t, std::uint32_t>> named(std::string_view name);

    // Pool groups (service_groups.cpp). A request naming a group: answered here (false), or given the id of the
    // member that serves it and, in `failover`, what that member may do when it cannot serve it (true: the
    // request goes on as one naming that pool; also for a request that names no group).
    bool route_to_group(const pool::CallerView& caller, Decoded& decoded, std::optional<std::uint64_t> key,
                        pool::Failover& failover);
    // The same for casts (checkin, discard, cancel), which nobody answers.
    bool route_cast_to_group(Decoded& decoded);
    void create_group(const pool::CallerView& caller, NewGroup request);
    void add_target(const pool::CallerView& caller, AddTarget request);
    void remove_target(const pool::CallerView& caller, const RemoveTarget& request);
    // Makes group `id` for `caller` (checked and budgeted already), without members: its owner (unless
    // owner => none), and records it, its name and its owner.
    pool::Group& add_group(const pool::CallerView& caller, std::uint64_t id, pool::GroupConfig config);
    // Makes member `id` of `group` for `caller` (checked and budgeted already): a pool owned through the group.
    std::shared_ptr<pool::Pool> add_member(const pool::CallerView& caller, pool::Group& group, pool::PoolConfig config,
                                           std::uint64_t id);
    // Removes `member` from `group` (answered ok, or {ok, MemberId} with `answer_member_id`, once drained);
    // refused when it is the group's last.
    void remove_member(const pool::CallerView& caller, pool::Group& group, pool::Pool& member,
                       std::string_view target_term, std::uint32_t drain_ms, bool answer_member_id = false);
    pool::Group* find_group(std::uint64_t id);
    // The group `member` belongs to; nullptr for a pool in no group.
    pool::Group* group_of(const pool::Pool& member);
    // Whether `node` is the C-node itself under one of its names: a lane, or a pooled connection's.
    bool is_own_node(std::string_view node) const;
    // Whether pools may connect to `target` (ServiceConfig::targets); counts and logs a refusal.
    bool target_allowed(std::string_view target);
    // The caller connections `info` lists: node and lane, sorted, at most kMaxListedCallers.
    std::vector<ServiceInfo::CallerLink> listed_callers() const;

public:
    // Every pool's figures and the C-node's, in the Prometheus exposition format (api/metrics).
    std::string metrics_text() const;

private:
    // Gives `config` the TLS context of its option `tls` (or the C-node's); else why it cannot.
    std::optional<std::string> resolve_tls(pool::PoolConfig& config) const;
    // Makes pool `id` for `caller`, its owner (unless owner => none), and records it, its name and its owner.
    // `adopt_owner` false: a group's member, owned through its group.
    std::shared_ptr<pool::Pool> add_pool(const pool::CallerView& caller, std::uint64_t id, pool::PoolConfig config,
                                         bool adopt_owner = true);
    // A pool's grace after its owner left ended: destroyed if the owner is still gone.
    void on_owner_grace_over(const pool::Deadline& d);
    // Every kSparePipeInterval: the spare pipes no big packet took since the last time are closed.
    void schedule_spare_pipe_check();
    void close_unused_spare_pipes();
    static constexpr auto kSparePipeInterval = std::chrono::seconds(5);
    void restore_pools(const pool::CallerView& caller, Restore restore);
    // Drops a pool that failed to start or was destroyed, and its name.
    void forget_pool(std::uint64_t id);
    void reply_info(const pool::CallerView& caller, std::size_t lane);
    // Why `more` pools and connections do not fit, for `node`, with `in_use` connections held by all pools: the
    // C-node's budget or the node's own (counted); nullopt when they fit.
    std::optional<pool::Failure> budget_refusal(std::string_view node, CallerQuotas::Usage more,
                                                std::uint32_t in_use);
    // Hands barriers that ended to their pools (a pool gone meanwhile has nobody left to answer).
    void finish_barriers(const std::vector<pool::ReturnBarriers::Finished>& finished);
    pool::Pool* find_pool(std::uint64_t id);
    std::uint32_t connections_in_use() const;

    ServiceConfig config_;
    asio::any_io_executor executor_;
    transport::LinkLimits caller_links_; // the links of caller nodes (the pools' are in context_)
    // One identity per lane; never resized after start(), so callers may point at them.
    std::vector<protocol::NodeIdentity> lanes_;
    pool::Scheduler scheduler_;
    Replies replies_; // how pools answer; outlives them
    pool::PoolContext context_;
    std::uint16_t metrics_port_ = 0;
    std::vector<transport::LinkTraffic> closed_lane_traffic_; // of caller connections that closed, per lane
    pool::ReturnBarriers barriers_; // numbered from context_.lease_counter: declared after it
    std::unordered_map<const transport::DistLink*, std::unique_ptr<ClientSession>> sessions_;
    std::unordered_map<std::uint64_t, std::shared_ptr<pool::Pool>> pools_;
    // Pool groups, by id (from the pools' id space); their members are in pools_.
    std::unordered_map<std::uint64_t, std::shared_ptr<pool::Group>> groups_;
    // Names of the pools that have one (unique per C-node). Keys are copies: a name passes from a pool being
    // destroyed to a new one while the old pool still lives, so a view of either pool's config could dangle.
    std::unordered_map<std::string, std::uint64_t> names_;
    std::uint64_t next_pool_id_;
    bool awaiting_restore_;
    // A pool was created or restored by this incarnation: a restore now could reuse the id of a destroyed one.
    bool pools_created_ = false;
    Owners owners_;
    std::uint64_t malformed_messages_ = 0;
    std::function<transport::HandshakeCounters()> handshake_counters_;
    std::uint64_t refused_duplicate_callers_ = 0;
    RefusedCallers refused_callers_;
    std::uint64_t refused_targets_ = 0; // `new` (and restores) to a target outside ServiceConfig::targets
    std::uint64_t orphaned_pools_destroyed_ = 0;
    std::uint64_t malformed_packets_ = 0; // caller links closed over a packet that is no distribution message
    CallerQuotas quotas_;
    util::MemoryTrimmer trimmer_;
};

} // namespace dpool::api
