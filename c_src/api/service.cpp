#include "api/service.hpp"

#include "api/metrics.hpp"

#include "util/log.hpp"

#include <algorithm>
#include <chrono>
#include <tuple>
#include <type_traits>
#include <variant>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "api/replies.hpp"
#include "api/requests.hpp"
#include "protocol/control.hpp"
#include "protocol/framing.hpp"
#include "util/overloaded.hpp"

namespace dpool::api {

namespace {

constexpr std::string_view kVersion = "0.1.0";

using util::Overloaded;

// Links of one kind: their longest packet, the output budget all links share, their own drop counts.
transport::LinkLimits links_of_kind(transport::LinkLimits base, const ServiceLimits& limits,
                                    std::size_t max_packet_bytes, std::shared_ptr<transport::OutputBudget> output)
{
    base.max_packet_bytes = max_packet_bytes;
    base.max_queued_bytes = limits.max_link_queue_bytes;
    base.output = std::move(output);
    base.drops = std::make_shared<transport::LinkDrops>();
    return base;
}

// The answer while a restarted C-node waits for the pools it is to restore.
pool::Failure restarting()
{
    return pool::Failure("connection_failed", "cnode_restarting",
                         "the C-node has restarted and is restoring its pools; try again in a moment");
}

} // namespace

Service::Service(asio::io_context& io, ServiceConfig config)
    : config_(std::move(config)),
      executor_(io.get_executor()),
      caller_links_(links_of_kind(config_.link_limits, config_.limits, config_.limits.max_caller_packet_bytes,
                                  std::make_shared<transport::OutputBudget>(config_.limits.max_output_queue_bytes))),
      scheduler_(
          executor_,
          [this](const pool::Deadline& d) {
              if (d.kind == pool::DeadlineKind::barrier) {
                  // Served here, not by its pool: a barrier must end even when its pool is gone.
                  if (const auto finished = barriers_.expire(d.key)) {
                      finish_barriers({*finished});
                  }
              } else if (d.kind == pool::DeadlineKind::owner) {
                  on_owner_grace_over(d);
              } else if (d.kind == pool::DeadlineKind::spare_pipes) {
                  close_unused_spare_pipes();
              } else if (auto* p = find_pool(d.pool)) {
                  p->on_deadline(d);
              }
          },
          // What a compaction keeps: barriers, the service's own, and the deadlines of pools not forgotten yet
          // that may still matter (not those of requests answered, leases returned, waiters gone).
          [this](const pool::Deadline& d) {
              if (d.kind == pool::DeadlineKind::barrier || d.kind == pool::DeadlineKind::spare_pipes) {
                  return true;
              }
              if (const auto it = pools_.find(d.pool); it != pools_.end()) {
                  return it->second->deadline_wanted(d);
              }
              return groups_.contains(d.pool);
          }),
      context_(executor_, config_.alive, config_.host),
      barriers_(context_.lease_counter),
      // Pool ids start from the clock, so a handle kept from before a restart of the C-node cannot name a
      // pool of the new incarnation.
      next_pool_id_(static_cast<std::uint64_t>(
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count()) *
                    1000),
      awaiting_restore_(config_.await_restore),
      quotas_(CallerQuotas::Bounds{config_.limits.max_pools_per_caller, config_.limits.max_connections_per_caller}),
      trimmer_(executor_)
{
    if (config_.limits.max_splice_pipes > 0) {
        caller_links_.pipes = std::make_shared<transport::PipeBudget>(config_.limits.max_splice_pipes);
    }
    context_.cookie = config_.cookie;
    context_.log_repeat_interval = config_.log_repeat_interval;
    context_.events = config_.events;
    context_.scheduler = &scheduler_;
    context_.barriers = &barriers_;
    context_.link_limits = links_of_kind(config_.link_limits, config_.limits, config_.limits.max_target_packet_bytes,
                                         caller_links_.output);
    context_.drop_pool = [this](std::uint64_t id) { forget_pool(id); };
    context_.answers = &replies_;
}

Service::~Service() { stop(); }

void Service::start(std::vector<protocol::NodeIdentity> lanes)
{
    lanes_ = std::move(lanes);
    trimmer_.start();
    if (caller_links_.pipes) {
        schedule_spare_pipe_check();
    }
}

void Service::schedule_spare_pipe_check()
{
    scheduler_.schedule(
        pool::Deadline{pool::Clock::now() + kSparePipeInterval, pool::DeadlineKind::spare_pipes, 0, 0});
}

void Service::close_unused_spare_pipes()
{
    if (const auto closed = caller_links_.pipes->close_unused_spares(); closed > 0) {
        log::write(spdlog::level::debug, {}, "closed {} spare pipes unused for {} s", closed,
                   std::chrono::duration_cast<std::chrono::seconds>(kSparePipeInterval).count());
    }
    schedule_spare_pipe_check();
}

void Service::stop()
{
    trimmer_.stop();
    scheduler_.stop();
    for (auto& [id, p] : pools_) {
        p->close_now();
    }
    names_.clear();
    pools_.clear();
    groups_.clear();
    sessions_.clear();
}

std::optional<transport::PeerRefusal> Service::refusal_of_caller(std::size_t lane, std::string_view peer_node,
                                                                 const asio::ip::address& from)
{
    if (auto why = config_.callers.refusal(peer_node, from)) {
        switch (refused_callers_.record(peer_node)) {
        case RefusedCallers::Log::first:
            log::write(spdlog::level::warn, {.caller = peer_node},
                       "refused from {} on lane {}: {} (each name is logged once; info: refused_callers)",
                       from.to_string(), lane, *why);
            break;
        case RefusedCallers::Log::table_full:
            if (refused_callers_.unlogged() == 1) {
                spdlog::warn("{} refused caller names logged: the refusals of further names are counted, not logged "
                             "(info: refused_callers)",
                             refused_callers_.names());
            }
            break;
        case RefusedCallers::Log::again:
            break;
        }
        return transport::PeerRefusal{.why = std::move(*why), .reported = true};
    }
    if (!caller_connected(lane, peer_node)) {
        return std::nullopt;
    }
    ++refused_duplicate_callers_;
    return transport::PeerRefusal{.why = "a node of this name is connected to this lane already"};
}

void Service::add_client(std::size_t lane, transport::DistStream stream, std::string peer_node)
{
    // Distribution keeps one connection per node pair (here: per caller node and lane). While the one there is
    // open, a second is another node under the same name, or one that believes the first dead: refused, as
    // OTP refuses a name in use, so that nobody can take over a caller's session and leases. The first's
    // closing (seen at once for a node that exited, within the tick timeout for one that vanished) lets the
    // next attempt in.
    if (caller_connected(lane, peer_node)) {
        ++refused_duplicate_callers_;
        log::write(spdlog::level::warn, {.caller = peer_node},
                   "refused a connection to lane {}: a node of that name is connected there already", lane);
        error_code ignored;
        stream.socket().close(ignored);
        return;
    }
    auto link = std::make_shared<transport::DistLink>(std::move(stream), peer_node, caller_links_);
    auto session = std::make_unique<ClientSession>(static_cast<SessionOwner&>(*this), link, lane, lanes_.at(lane));
    link->start(*session);
    sessions_.emplace(link.get(), std::move(session));
    log::write(spdlog::level::info, {.caller = peer_node}, "caller connected to lane {}", lane);
    if (owners_.connected(peer_node)) {
        log::write(spdlog::level::info, {.caller = peer_node},
                   "caller is back within the grace of its pools: they are kept");
    }
}

bool Service::caller_connected(std::size_t lane, std::string_view peer_node) const
{
    return std::any_of(sessions_.begin(), sessions_.end(), [&](const auto& entry) {
        const auto& session = *entry.second;
        return session.lane() == lane && session.link()->is_open() && session.link()->peer_node() == peer_node;
    });
}

void Service::on_client_closed(ClientSession& session)
{
    const transport::DistLink* link = session.link().get();
    if (const auto gone = owners_.disconnected(link->peer_node())) {
        // Its last connection: each of its pools is destroyed unless it comes back within that pool's grace.
        const auto now = pool::Clock::now();
        for (const auto id : gone->pools) {
            const auto* p = find_pool(id);
            const auto* g = p ? nullptr : find_group(id); // a group is owned as a whole
            if (p || g) {
                const auto grace = p ? p->config().owner_grace_ms : g->config().owner_grace_ms;
                scheduler_.schedule(pool::Deadline{now + std::chrono::milliseconds(grace), pool::DeadlineKind::owner,
                                                   id, gone->absence});
            }
        }
        log::write(spdlog::level::info, {.caller = link->peer_node()},
                   "caller is gone: its {} pools are destroyed unless it comes back in time", gone->pools.size());
    }
    for (auto& [id, p] : pools_) {
        p->on_client_gone(link);
    }
    // After the pools took back its leases: a barrier waiting for this link re-evaluates without them.
    finish_barriers(barriers_.link_gone(link));
    if (closed_lane_traffic_.size() <= session.lane()) {
        closed_lane_traffic_.resize(session.lane() + 1);
    }
    closed_lane_traffic_[session.lane()] += link->traffic();
    // Not erased here: this runs inside the session's own callback.
    asio::post(executor_, [this, link] { sessions_.erase(link); });
}

void Service::on_client_packet(ClientSession& session, std::string_view packet)
{
    const auto control = protocol::parse_packet(packet);
    if (!control) {
        // No distribution message at all (a corrupt control term, a message cut short or followed by more
        // bytes): the caller's node is broken or hostile. Its link is closed, as an Erlang node closes a
        // connection over an invalid distribution message; a well-formed message of a shape we do not serve
        // is only counted (handle_message).
        ++malformed_packets_;
        log::write(spdlog::level::warn, {.caller = session.link()->peer_node()},
                   "malformed distribution packet of {} bytes, closing its link", packet.size());
        session.link()->close("malformed distribution packet");
        return;
    }
    protocol::TermReader to(control->to);
    switch (control->op) {
    case protocol::ControlOp::reg_send:
    case protocol::ControlOp::reg_send_tt:
        if (names_service(control->to)) {
            handle_message(session, control->payload);
        }
        break;
    case protocol::ControlOp::monitor_p: {
        // Callers monitor the service name, as gen_server:call does; the monitor fires when the connection
        // goes. Any other name here has no process behind it.
        const auto name = to.atom();
        const bool ours = name ? *name == config_.service_name : control->to == session.self().self_pid();
        if (!ours) {
            auto w = session.link()->begin_packet();
            w.version();
            protocol::write_monitor_exit(w, control->to, control->from, control->ref, "noproc");
            session.link()->end_packet();
        }
        break;
    }
    case protocol::ControlOp::monitor_p_exit:
        on_monitored_exit(session, control->ref);
        break;
    default:
        break;
    }
}

bool Service::on_client_spliced_packet(ClientSession& session, std::string_view prefix,
                                       std::unique_ptr<transport::SplicedTail>& tail)
{
    const auto at = protocol::trailing_binary_at(prefix, prefix.size() + tail->size());
    if (!at) {
        return false;
    }
    // The packet with its binary emptied: small and whole, parsed and checked as any other. Only a send on a
    // lease is served from it; every other request, and anything malformed, is left to the whole packet.
    std::string emptied(prefix.substr(0, *at + protocol::kBinaryHeaderBytes));
    protocol::put_frame_length(emptied.data() + *at + 1, 0);
    const auto control = protocol::parse_packet(emptied);
    if (!control || (control->op != protocol::ControlOp::reg_send && control->op != protocol::ControlOp::reg_send_tt) ||
        !names_service(control->to)) {
        return false;
    }
    const auto env = parse_envelope(control->payload);
    const auto caller = env && env->is_call ? caller_of(session, *env) : std::nullopt;
    if (!caller) {
        return false;
    }
    const auto decoded = decode_request(env->request);
    const auto* send = std::get_if<Send>(&decoded);
    // The message is the request's last term, and the emptied binary its last part (trailing_binary_at).
    if (send == nullptr || send->message.data() + send->message.size() != emptied.data() + emptied.size()) {
        return false;
    }
    const auto message_at = static_cast<std::size_t>(send->message.data() - emptied.data());
    SplicedMessage spliced{send->message.data(), prefix.substr(message_at), std::move(tail)};
    handle_call(*caller, env->request, session.lane(), std::nullopt, &spliced);
    return true;
}

transport::PipeUsage Service::splice_usage() const
{
    return caller_links_.pipes ? caller_links_.pipes->usage() : transport::PipeUsage{};
}

bool Service::names_service(std::string_view encoded_to) const
{
    return protocol::TermReader(encoded_to).atom() == std::optional<std::string_view>(config_.service_name);
}

void Service::on_monitored_exit(const ClientSession& session, std::string_view ref_term)
{
    // The monitor was set by the identity of this session's lane (pool::monitor_caller), so only that
    // identity's references count.
    protocol::TermReader r(ref_term);
    const auto ref = r.ref();
    const auto lease = ref ? session.self().ref_number(*ref) : std::nullopt;
    if (!lease) {
        return;
    }
    // A return barrier's probe (its number comes from the same counter as leases and waiters).
    if (const auto finished = barriers_.answered(session.link().get(), *lease)) {
        finish_barriers(*finished);
        return;
    }
    // A lease holder or a waiting caller exited. Their numbers are unique across pools; there are few pools,
    // so asking each is cheap.
    for (auto& [id, p] : pools_) {
        p->on_monitor_down(*lease);
    }
}

void Service::handle_message(ClientSession& session, std::string_view message)
{
    const auto env = parse_envelope(message);
    if (!env) {
        ++malformed_messages_;
        return;
    }
    if (!env->is_call) {
        handle_cast(env->request);
        return;
    }
    const auto caller = caller_of(session, *env);
    if (!caller) {
        ++malformed_messages_;
        return;
    }
    handle_call(*caller, env->request, session.lane());
}

std::optional<pool::CallerView> Service::caller_of(ClientSession& session, const Envelope& call)
{
    if (call.from.node != session.link()->peer_node()) {
        return std::nullopt;
    }
    return pool::CallerView{session.link(), &session.self(), call.from.encoded, call.tag};
}

void Service::handle_call(const pool::CallerView& caller, std::string_view request, std::size_t lane,
                          std::optional<std::uint64_t> key, SplicedMessage* spliced)
{
    const auto with_pool = [&](std::uint64_t id, auto&& action) {
        if (auto* p = find_pool(id)) {
            action(*p);
        } else {
            // Before the restore, the pool may be one of those about to come back.
            if (awaiting_restore_) {
                reply_error(caller, restarting());
            } else {
                reply_error(caller, "invalid_pool");
            }
        }
    };
    // Runs `act(answer_to, ids)` on the lease an operation names. One named by the tag of its checkout (the
    // library's pipelined with_connection) is looked up, and when there is none the caller is answered why; when
    // its holder was not told its ids (a quiet checkout), this operation's answers tell them: {leased, {ConnId,
    // LeaseId, ConnNode}, Answer}.
    const auto on_lease = [&](pool::Pool& p, const LeaseRef& lease, auto&& act) {
        if (lease.checkout_tag.empty()) {
            act(caller, pool::Pool::LeaseIds{lease.conn, lease.lease});
            return;
        }
        const auto found = p.leased_by_checkout(caller, lease.checkout_tag);
        if (!found) {
            return;
        }
        if (!found->untold_node) {
            act(caller, found->ids);
            return;
        }
        const std::string wrap = leased_wrap(found->ids.conn, found->ids.lease, *found->untold_node);
        act(pool::CallerView{caller.link, caller.self, caller.from, caller.tag, wrap}, found->ids);
    };
    auto decoded = decode_request(request);
    pool::Failover failover; // what a group's member may do with a checkout it cannot serve
    if (!route_to_group(caller, decoded, key, failover)) {
        return;
    }
    std::visit(Overloaded{
                   [&](NewPool& r) {
                       if (awaiting_restore_) {
                           // Its id could be one the restore is about to bring back.
                           reply_error(caller, restarting());
                           return;
                       }
                       create_pool(caller, std::move(r.config), r.target_term);
                   },
                   [&](Restore& r) { restore_pools(caller, std::move(r)); },
                   [&](const Checkout& r) {
                       with_pool(r.pool, [&](pool::Pool& p) {
                           p.checkout(caller, r.timeout_ms, nullptr, failover, r.quiet);
                       });
                   },
                   [&](const LeaseOf& r) { with_pool(r.pool, [&](pool::Pool& p) { p.lease_of(caller, r.tag); }); },
                   [&](const Send& r) {
                       with_pool(r.lease.pool, [&](pool::Pool& p) {
                           const auto to = parse_destination(r.destination, p.config().target);
                           if (!to) {
                               reply_error(caller, "badarg");
                               return;
                           }
                           on_lease(p, r.lease, [&](const pool::CallerView& to_caller, pool::Pool::LeaseIds ids) {
                               if (spliced != nullptr && r.message.data() == spliced->placeholder) {
                                   p.send(to_caller, ids.conn, ids.lease, *to, spliced->in_prefix,
                                          std::move(spliced->tail));
                               } else {
                                   p.send(to_caller, ids.conn, ids.lease, *to, r.message);
                               }
                           });
                       });
                   },
                   [&](const SendMany& r) {
                       with_pool(r.lease.pool, [&](pool::Pool& p) {
                           std::vector<std::pair<std::optional<pool::Destination>, std::string_view>> messages;
                           messages.reserve(r.messages.size());
                           for (const auto& [destination, message] : r.messages) {
                               messages.emplace_back(parse_destination(destination, p.config().target), message);
                           }
                           on_lease(p, r.lease, [&](const pool::CallerView& to_caller, pool::Pool::LeaseIds ids) {
                               p.send_many(to_caller, ids.conn, ids.lease, messages);
                           });
                       });
                   },
                   [&](const Request& r) {
                       with_pool(r.lease.pool, [&](pool::Pool& p) {
                           const auto to = parse_destination(r.destination, p.config().target);
                           if (!to) {
                               reply_error(caller, "badarg");
                               return;
                           }
                           on_lease(p, r.lease, [&](const pool::CallerView& to_caller, pool::Pool::LeaseIds ids) {
                               p.request(to_caller, ids.conn, ids.lease, *to, r.timeout_ms, r.request);
                           });
                       });
                   },
                   [&](const Call& r) {
                       with_pool(r.lease.pool, [&](pool::Pool& p) {
                           on_lease(p, r.lease, [&](const pool::CallerView& to_caller, pool::Pool::LeaseIds ids) {
                               p.call(to_caller, ids.conn, ids.lease, r.mfa, r.timeout_ms);
                           });
                       });
                   },
                   [&](const PooledCall& r) {
                       with_pool(r.pool, [&](pool::Pool& p) {
                           const pool::OneShotView job{pool::OneShotKind::call, {}, r.mfa, r.timeout_ms};
                           p.checkout(caller, r.acquire_timeout_ms, &job, failover);
                       });
                   },
                   [&](const PooledSend& r) {
                       with_pool(r.pool, [&](pool::Pool& p) {
                           const auto to = parse_destination(r.destination, p.config().target);
                           if (!to) {
                               reply_error(caller, "badarg");
                               return;
                           }
                           const pool::OneShotView job{pool::OneShotKind::send, *to, r.message, std::nullopt};
                           p.checkout(caller, r.acquire_timeout_ms, &job, failover);
                       });
                   },
                   [&](const PooledRequest& r) {
                       with_pool(r.pool, [&](pool::Pool& p) {
                           const auto to = parse_destination(r.destination, p.config().target);
                           if (!to) {
                               reply_error(caller, "badarg");
                               return;
                           }
                           const pool::OneShotView job{pool::OneShotKind::request, *to, r.request, r.timeout_ms};
                           p.checkout(caller, r.acquire_timeout_ms, &job, failover);
                       });
                   },
                   [&](const CastBatch& r) {
                       with_pool(r.pool, [&](pool::Pool& p) {
                           const auto to = parse_destination(r.destination, p.config().target);
                           if (!to) {
                               reply_error(caller, "badarg");
                               return;
                           }
                           p.cast_batch(caller, *to, r.messages, r.keyed);
                       });
                   },
                   [&](const Stats& r) { with_pool(r.pool, [&](pool::Pool& p) { p.stats(caller); }); },
                   [&](const Destroy& r) {
                       // Answered when the drain ends; the pool then drops itself (context.drop_pool).
                       with_pool(r.pool, [&](pool::Pool& p) { p.destroy(pool::Caller(caller), r.drain_timeout_ms); });
                   },
                   [&](const ListPools&) {
                       if (awaiting_restore_) {
                           reply_error(caller, restarting()); // the list is not complete yet
                           return;
                       }
                       std::vector<std::uint64_t> ids;
                       ids.reserve(pools_.size() + groups_.size());
                       for (const auto& [id, p] : pools_) {
                           if (!p->in_group()) { // listed by its group's stats
                               ids.push_back(id);
                           }
                       }
                       for (const auto& [id, g] : groups_) {
                           ids.push_back(id);
                       }
                       reply_pools(caller, ids);
                   },
                   [&](const Whereis& r) {
                       if (awaiting_restore_) {
                           reply_error(caller, restarting()); // the name may be one about to come back
                           return;
                       }
                       const auto found = named(r.name);
                       if (!found) {
                           reply_error(caller, "invalid_pool");
                           return;
                       }
                       reply_pool_handle(caller, "ok", found->first, found->second);
                   },
                   [&](const Info&) { reply_info(caller, lane); },
                   [&](const ListLanes&) { reply_lanes(caller, lanes_); },
                   [&](const Ping&) { reply_atom(caller, "pong"); },
                   [&](const Rejected& r) {
                       if (r.config) {
                           reply_invalid_config(caller, *r.config);
                       } else {
                           reply_error(caller, r.error);
                       }
                   },
                   [&](const RejectedPool& r) { reply_pool_error(caller, r.error, r.pool); },
                   // A discard (or checkin) sent as a call is answered: ok, or invalid_connection for a lease that
                   // had already ended.
                   [&](const Checkin& r) {
                       with_pool(r.lease.pool, [&](pool::Pool& p) {
                           on_lease(p, r.lease, [&](const pool::CallerView& to_caller, pool::Pool::LeaseIds ids) {
                               if (p.checkin(ids.conn, ids.lease, r.discard)) {
                                   reply_atom(to_caller, "ok");
                               } else {
                                   reply_error(to_caller, "invalid_connection");
                               }
                           });
                       });
                   },
                   // Casts that arrived as calls.
                   [&](const Cancel&) { reply_error(caller, "badarg"); },
                   [&](NewGroup& r) {
                       if (awaiting_restore_) {
                           reply_error(caller, restarting());
                           return;
                       }
                       create_group(caller, std::move(r));
                   },
                   [&](AddTarget& r) { add_target(caller, std::move(r)); },
                   [&](const RemoveTarget& r) { remove_target(caller, r); },
                   [&](const Keyed& r) {
                       if (key) {
                           reply_error(caller, "badarg"); // a key in a key
                           return;
                       }
                       handle_call(caller, r.request, lane, r.key);
                   },
               },
               decoded);
}

void Service::handle_cast(std::string_view request)
{
    auto decoded = decode_request(request);
    if (!route_cast_to_group(decoded)) {
        return;
    }
    std::visit(Overloaded{
                   [&](const Checkin& r) {
                       if (!r.lease.checkout_tag.empty()) {
                           ++malformed_messages_; // a cast has nobody to answer lease_pending to
                       } else if (auto* p = find_pool(r.lease.pool)) {
                           p->checkin(r.lease.conn, r.lease.lease, r.discard);
                       }
                   },
                   [&](const Cancel& r) {
                       if (auto* p = find_pool(r.pool)) {
                           p->cancel(r.pid, r.tag);
                       }
                   },
                   [&](const auto&) { ++malformed_messages_; },
               },
               decoded);
}

void Service::create_pool(const pool::CallerView& caller, pool::PoolConfig config, std::string_view target_term)
{
    if (!admissible(caller, config, target_term)) {
        return;
    }
    if (!config.name.empty()) {
        // A pool or group being destroyed has given up its name already.
        if (const auto taken = named(config.name)) {
            reply_pool_handle(caller, "already_started", taken->first, taken->second);
            return;
        }
    }
    const std::string_view creator = caller.link->peer_node();
    if (const auto refused = budget_refusal(creator, {1, config.max_connections}, connections_in_use())) {
        reply_error(caller, *refused);
        return;
    }
    const std::uint64_t id = next_pool_id_++;
    pools_created_ = true;
    add_pool(caller, id, std::move(config))->start(pool::Caller(caller));
}

std::optional<std::pair<std::uint64_t, std::uint32_t>> Service::named(std::string_view name)
{
    const auto it = names_.find(std::string(name));
    if (it == names_.end()) {
        return std::nullopt;
    }
    if (auto* p = find_pool(it->second); p && !p->draining()) {
        return std::pair{p->id(), p->config().acquire_timeout_ms};
    }
    if (auto* g = find_group(it->second); g && !g->draining()) {
        return std::pair{g->id(), g->acquire_timeout_ms()};
    }
    return std::nullopt;
}

bool Service::admissible(const pool::CallerView& caller, pool::PoolConfig& config, std::string_view target_term)
{
    if (is_own_node(config.target)) {
        // Its connections would come back in as callers, and each would hold two handshakes of the C-node's.
        log::write(spdlog::level::warn, {.target = config.target, .caller = caller.link->peer_node()},
                   "refusing a pool: its target is the C-node itself");
        ConfigError why;
        why.kind = ConfigError::Kind::target_is_self;
        why.term = target_term;
        reply_invalid_config(caller, why);
        return false;
    }
    if (!target_allowed(config.target)) {
        ConfigError why;
        why.kind = ConfigError::Kind::target_not_allowed;
        why.term = target_term;
        reply_invalid_config(caller, why);
        return false;
    }
    if (auto unusable = resolve_tls(config)) {
        ConfigError why;
        why.kind = ConfigError::Kind::tls_unusable;
        why.allowed = std::move(*unusable);
        reply_invalid_config(caller, why);
        return false;
    }
    return true;
}

std::shared_ptr<pool::Pool> Service::add_pool(const pool::CallerView& caller, std::uint64_t id,
                                              pool::PoolConfig config, bool adopt_owner)
{
    const std::string_view creator = caller.link->peer_node();
    if (!config.ownerless) {
        config.owner = creator;
    }
    auto p = pools_.emplace(id, std::make_shared<pool::Pool>(context_, id, std::move(config))).first->second;
    if (!p->config().name.empty()) {
        names_[p->config().name] = id;
    }
    // Counted against its creator's quotas whether or not it has an owner (owner => none).
    quotas_.add(id, creator, p->config().max_connections);
    if (adopt_owner && !p->config().owner.empty()) {
        owners_.adopt(p->config().owner, id);
    }
    return p;
}

bool Service::is_own_node(std::string_view node) const
{
    return context_.names.is_pooled_name(node) ||
           std::any_of(lanes_.begin(), lanes_.end(),
                       [&](const protocol::NodeIdentity& lane) { return protocol::same_node(lane.node_name(), node); });
}

std::optional<std::string> Service::resolve_tls(pool::PoolConfig& config) const
{
    if (!config.tls) {
        config.tls_context = config_.connect_tls;
        return std::nullopt;
    }
    // The files the option leaves out are the C-node's.
    transport::TlsSettings settings = config_.tls;
    settings.mode = config.tls->mode;
    for (auto field : {&transport::TlsSettings::certfile, &transport::TlsSettings::keyfile,
                       &transport::TlsSettings::cacertfile, &transport::TlsSettings::password}) {
        if (!((*config.tls).*field).empty()) {
            settings.*field = (*config.tls).*field;
        }
    }
    if (settings == config_.tls) {
        config.tls_context = config_.connect_tls;
        return std::nullopt;
    }
    // Read on the event loop: a few KiB of local files, once per pool.
    auto made = transport::make_tls_context(settings, transport::TlsRole::connect);
    if (auto* why = std::get_if<std::string>(&made)) {
        return std::move(*why);
    }
    config.tls_context = std::get<transport::TlsContext>(std::move(made));
    return std::nullopt;
}

bool Service::target_allowed(std::string_view target)
{
    if (config_.targets.allows(target)) {
        return true;
    }
    ++refused_targets_;
    // Asked by a caller that holds the cookie: one line per request, as every refused `new` has.
    log::write(spdlog::level::warn, {.target = target},
               "refusing a pool: its target matches no allowed target pattern (--allow-target)");
    return false;
}

void Service::on_owner_grace_over(const pool::Deadline& d)
{
    if (auto* g = find_group(d.pool)) {
        if (!g->draining() && owners_.still_gone(g->config().owner, d.key)) {
            ++orphaned_pools_destroyed_;
            log::write(spdlog::level::warn, {.pool = g->label()},
                       "destroying the group, its owner {} has been gone for {} ms", g->config().owner,
                       g->config().owner_grace_ms);
            g->destroy(std::nullopt, kDefaultDrainTimeoutMs);
        }
        return;
    }
    auto* p = find_pool(d.pool);
    if (!p || p->draining() || !owners_.still_gone(p->config().owner, d.key)) {
        return; // destroyed meanwhile, or its owner came back
    }
    ++orphaned_pools_destroyed_;
    log::write(spdlog::level::warn, p->about(), "destroying it, its owner {} has been gone for {} ms",
               p->config().owner, p->config().owner_grace_ms);
    p->destroy(std::nullopt, kDefaultDrainTimeoutMs);
}

void Service::forget_pool(std::uint64_t id)
{
    if (const auto g = groups_.find(id); g != groups_.end()) {
        const auto& config = g->second->config();
        if (const auto n = names_.find(config.name); !config.name.empty() && n != names_.end() && n->second == id) {
            names_.erase(n);
        }
        if (!config.owner.empty()) {
            owners_.release(config.owner, id);
        }
        groups_.erase(g);
        return;
    }
    const auto it = pools_.find(id);
    if (it == pools_.end()) {
        return;
    }
    const auto& config = it->second->config();
    if (!config.name.empty()) {
        if (const auto n = names_.find(config.name); n != names_.end() && n->second == id) {
            names_.erase(n);
        }
    }
    if (!config.owner.empty()) {
        owners_.release(config.owner, id);
    }
    pools_.erase(it);
    quotas_.remove(id);
}

std::optional<pool::Failure> Service::budget_refusal(std::string_view node, CallerQuotas::Usage more,
                                                     std::uint32_t in_use)
{
    const auto& limits = config_.limits;
    auto& counts = context_.limit_refusals;
    std::optional<pool::Failure> refused;
    if (std::uint64_t{in_use} + more.connections > limits.max_total_connections) {
        refused = counts.refuse(pool::Limit::max_total_connections,
                                fmt::format("the C-node keeps at most {} connections (--max-total-connections) and "
                                            "its pools hold {}: {} more do not fit",
                                            limits.max_total_connections, in_use, more.connections));
    } else if (const auto limit = quotas_.exceeded(node, more)) {
        const auto used = quotas_.usage(node);
        refused = *limit == pool::Limit::max_pools_per_caller
                      ? counts.refuse(*limit, fmt::format("caller node {} has created {} pools, its limit "
                                                          "(--max-pools-per-caller)",
                                                          node, used.pools))
                      : counts.refuse(*limit, fmt::format("the pools of caller node {} hold {} connections: {} more "
                                                          "would pass its limit of {} (--max-connections-per-caller)",
                                                          node, used.connections, more.connections,
                                                          limits.max_connections_per_caller));
    }
    if (refused) {
        log::write(spdlog::level::warn, {.caller = node}, "refusing a pool: {}", refused->text);
    }
    return refused;
}

void Service::restore_pools(const pool::CallerView& caller, Restore restore)
{
    // Only the first pools of an incarnation may be restored: later, an id could be one this incarnation
    // handed out and destroyed, and ids are never reused.
    if (pools_created_) {
        reply_error(caller, "restore_too_late");
        return;
    }
    const std::string_view restorer = caller.link->peer_node();
    const std::uint32_t in_use = connections_in_use();
    CallerQuotas::Usage restored; // the pools of the list so far, which count toward the restorer's quotas
    std::uint64_t next = std::max(next_pool_id_, restore.next_pool_id);
    std::unordered_map<std::string_view, std::uint64_t> restored_names;
    // A name of the list (a pool's or a group's) is the first one's; `id` names the entry in a refusal.
    const auto name_free = [&](std::string_view name, std::uint64_t id, const log::About& about) {
        if (name.empty() || restored_names.emplace(name, id).second) {
            return true;
        }
        log::write(spdlog::level::warn, about, "cannot restore: the name {} is taken by {}", name,
                   restored_names[name]);
        reply_pool_error(caller, "name_taken", id);
        return false;
    };
    // A pool (or a group's member: `entry` is then its group's id, which a refusal names) that may be made.
    const auto admissible_pool = [&](std::uint64_t id, pool::PoolConfig& config, std::uint64_t entry) {
        const std::string label = std::to_string(id);
        const log::About about{.pool = label, .target = config.target, .caller = restorer};
        if (is_own_node(config.target)) {
            log::write(spdlog::level::warn, about, "cannot restore the pool: its target is the C-node itself");
            reply_pool_error(caller, "invalid_config", entry);
            return false;
        }
        if (!target_allowed(config.target)) {
            reply_pool_error(caller, "invalid_config", entry);
            return false;
        }
        if (auto unusable = resolve_tls(config)) {
            log::write(spdlog::level::warn, about, "cannot restore the pool: its option tls: {}", *unusable);
            reply_pool_error(caller, "invalid_config", entry);
            return false;
        }
        restored.pools += 1;
        restored.connections += config.max_connections;
        if (const auto refused = budget_refusal(restorer, restored, in_use)) {
            reply_pool_error(caller, refused->kind, entry); // {error, {Limit, PoolId}}
            return false;
        }
        next = std::max(next, id + 1);
        return true;
    };
    for (auto& r : restore.pools) {
        const std::string label = std::to_string(r.id);
        if (!name_free(r.config.name, r.id, {.pool = label, .caller = restorer}) ||
            !admissible_pool(r.id, r.config, r.id)) {
            return;
        }
    }
    for (auto& g : restore.groups) {
        const std::string label = std::to_string(g.id);
        if (!name_free(g.config.name, g.id, {.pool = label, .caller = restorer})) {
            return;
        }
        for (auto& m : g.members) {
            if (!admissible_pool(m.id, m.config, g.id)) {
                return;
            }
        }
        next = std::max(next, g.id + 1);
    }
    // Everything checked: nothing below can fail, so the restore is all or nothing.
    for (auto& r : restore.pools) {
        auto& p = *add_pool(caller, r.id, std::move(r.config));
        log::write(spdlog::level::info, p.about(), "restoring pool {} ({} connections)", p.id(),
                   p.config().max_connections);
        p.start_in_background();
    }
    for (auto& g : restore.groups) {
        auto& group = add_group(caller, g.id, std::move(g.config));
        for (auto& m : g.members) {
            group.add(add_member(caller, group, std::move(m.config), m.id));
        }
        log::write(spdlog::level::info, {.pool = group.label(), .caller = restorer}, "restoring the group ({} targets)",
                   g.members.size());
        group.start_restored();
    }
    next_pool_id_ = next;
    pools_created_ = true;
    awaiting_restore_ = false;
    reply_ok_integer(caller, static_cast<std::int64_t>(restore.pools.size() + restore.groups.size()));
}

std::string Service::metrics_text() const
{
    // Pools being destroyed are left out: a new pool may have their name already, and one series must not
    // stand for two pools.
    std::vector<std::pair<std::uint64_t, const pool::Pool*>> live;
    for (const auto& [id, p] : pools_) {
        if (!p->draining()) {
            live.emplace_back(id, p.get());
        }
    }
    std::sort(live.begin(), live.end());
    std::vector<pool::PoolStats> stats;
    stats.reserve(live.size());
    for (const auto& [id, p] : live) {
        stats.push_back(p->snapshot());
    }
    MetricsTotals totals = process_totals();
    totals.callers_per_lane.assign(lanes_.size(), 0);
    totals.lane_traffic = closed_lane_traffic_;
    totals.lane_traffic.resize(lanes_.size());
    totals.output_lines_dropped = config_.output_lines_dropped ? config_.output_lines_dropped() : 0;
    totals.splice = splice_usage();
    for (const auto& [link, session] : sessions_) {
        // A closed link's traffic is in closed_lane_traffic_ already; its session goes a moment later.
        if (session->lane() < totals.callers_per_lane.size() && link->is_open()) {
            ++totals.callers_per_lane[session->lane()];
            totals.lane_traffic[session->lane()] += link->traffic();
        }
    }
    return render_metrics(stats, totals);
}

std::vector<ServiceInfo::CallerLink> Service::listed_callers() const
{
    std::vector<ServiceInfo::CallerLink> out;
    for (const auto& [link, session] : sessions_) {
        if (out.size() == kMaxListedCallers) {
            break;
        }
        out.push_back({link->peer_node(), session->lane()});
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
        return std::tie(a.node, a.lane) < std::tie(b.node, b.lane);
    });
    return out;
}

void Service::reply_info(const pool::CallerView& caller, std::size_t lane)
{
    api::reply_info(caller, ServiceInfo{.node = lanes_[lane].node_name(),
                                        .lane = lane,
                                        .lanes = lanes_.size(),
                                        .service = config_.service_name,
                                        .version = kVersion,
                                        .tls = transport::tls_mode_name(config_.tls.mode),
                                        .pools = pools_.size(),
                                        .reserved_connections = connections_in_use(),
                                        .caller_connections = sessions_.size(),
                                        .malformed_messages = malformed_messages_,
                                        .refused_duplicate_callers = refused_duplicate_callers_,
                                        .refused_callers = refused_callers_.count(),
                                        .refused_targets = refused_targets_,
                                        .orphaned_pools = owners_.orphaned_pools(),
                                        .orphaned_pools_destroyed = orphaned_pools_destroyed_,
                                        .queued_deadlines = scheduler_.queued(),
                                        .handshakes = handshake_counters_ ? handshake_counters_()
                                                                          : transport::HandshakeCounters{},
                                        .limits = config_.limits,
                                        .limit_refusals = context_.limit_refusals,
                                        .output_queue_bytes = caller_links_.output->queued(),
                                        .output_queue_peak_bytes = caller_links_.output->peak(),
                                        .splice = splice_usage(),
                                        .dropped_callers = {*caller_links_.drops, malformed_packets_},
                                        .dropped_targets = {*context_.link_limits.drops, 0},
                                        .memory_trims = trimmer_.trims(),
                                        .output_lines_dropped =
                                            config_.output_lines_dropped ? config_.output_lines_dropped() : 0,
                                        .callers = listed_callers(),
                                        .metrics_port = metrics_port_});
}

void Service::finish_barriers(const std::vector<pool::ReturnBarriers::Finished>& finished)
{
    for (const auto& f : finished) {
        if (auto* p = find_pool(f.owner.pool)) {
            p->on_barrier_done(f.owner.key, f.complete);
        }
    }
}

pool::Pool* Service::find_pool(std::uint64_t id)
{
    const auto it = pools_.find(id);
    return it == pools_.end() || it->second->failed() ? nullptr : it->second.get();
}

std::uint32_t Service::connections_in_use() const
{
    std::uint32_t total = 0;
    for (const auto& [id, p] : pools_) {
        total += p->config().max_connections;
    }
    return total;
}

} // namespace dpool::api
