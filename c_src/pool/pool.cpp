#include "pool/pool.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "protocol/control.hpp"
#include "transport/connector.hpp"

namespace dpool::pool {

namespace {

// A request's deadline key: the connection index above, the reference number below.
constexpr unsigned kRefBits = 40;
constexpr std::uint64_t kRefMask = (std::uint64_t{1} << kRefBits) - 1;

std::uint64_t request_key(std::uint32_t conn, std::uint64_t ref) { return (std::uint64_t{conn} << kRefBits) | ref; }

} // namespace

PooledConnection::PooledConnection(Pool& owner, std::uint32_t idx, ConnectionNames::Name name)
    : pool(owner), index(idx), name_number(name.number), node_name(std::move(name.node_name))
{
}

PooledConnection::~PooledConnection()
{
    if (link) {
        link->detach();
        link->close("pool destroyed");
    }
}

PooledConnection::PendingRequest* PooledConnection::find_pending(std::uint64_t ref)
{
    for (auto& p : pending) {
        if (p.ref == ref) {
            return &p;
        }
    }
    return nullptr;
}

void PooledConnection::on_packet(transport::DistLink&, std::string_view packet)
{
    const auto control = protocol::parse_packet(packet);
    if (!control) {
        spdlog::debug("{}: unparsable packet of {} bytes", node_name, packet.size());
        return;
    }
    spdlog::trace("{}: control op {}", node_name, static_cast<int>(control->op));
    switch (control->op) {
    case protocol::ControlOp::send:
    case protocol::ControlOp::send_tt:
    case protocol::ControlOp::send_sender:
    case protocol::ControlOp::send_sender_tt:
        pool.answer_reply(*this, control->payload);
        break;
    case protocol::ControlOp::monitor_p_exit:
        pool.answer_down(*this, control->ref, control->reason);
        break;
    case protocol::ControlOp::monitor_p: {
        // A process on the target monitors our sender pid, which is no process: it learns so at once.
        auto w = link->begin_packet();
        w.version();
        protocol::write_monitor_exit(w, control->to, control->from, control->ref, "noproc");
        link->end_packet();
        break;
    }
    default:
        break; // messages to other names, links and exits have no meaning for a pooled connection
    }
}

void PooledConnection::on_drained(transport::DistLink&)
{
    while (!parked.empty()) {
        reply_atom(parked.front().caller.view(), "ok");
        ++pool.successful_operations_;
        parked.pop_front();
    }
}

void PooledConnection::on_closed(transport::DistLink&, std::string_view reason) { pool.on_link_closed(*this, reason); }

Pool::Pool(PoolContext& context, std::uint64_t id, PoolConfig config)
    : context_(context), id_(id), config_(std::move(config)), core_(config_.max_connections, context.lease_counter)
{
    connections_.reserve(config_.max_connections);
}

Pool::~Pool()
{
    destroy();
    for (const auto& c : connections_) {
        context_.names.release(config_.target, c->name_number);
    }
}

PooledConnection& Pool::add_connection()
{
    const auto slot = core_.add_slot();
    connections_.push_back(
        std::make_unique<PooledConnection>(*this, *slot, context_.names.acquire(config_.target)));
    return *connections_.back();
}

void Pool::start(Caller creator)
{
    if (config_.min_connections == 0) {
        const auto id = id_;
        reply(creator.view(), [id](protocol::TermWriter& w) {
            w.tuple(2);
            w.atom("ok");
            w.integer(static_cast<std::int64_t>(id));
        });
        return;
    }
    creator_ = std::move(creator);
    start_remaining_ = config_.min_connections;
    for (std::uint32_t i = 0; i < config_.min_connections; ++i) {
        connect(add_connection());
    }
}

void Pool::start_in_background()
{
    for (std::uint32_t i = 0; i < config_.min_connections; ++i) {
        connect(add_connection());
    }
}

void Pool::connect(PooledConnection& c)
{
    c.connecting = true;
    ++c.attempt;
    // A fresh creation per attempt: the target then treats a reconnected name as a new incarnation, and
    // stale pids of the old one cannot reach the new connection.
    std::uniform_int_distribution<std::uint32_t> creation(4, UINT32_MAX);
    c.identity.emplace(c.node_name, creation(context_.random), creation(context_.random));
    transport::HandshakeIdentity self;
    self.node_name = c.node_name;
    self.alive = c.node_name.substr(0, c.node_name.find('@'));
    self.host = context_.host;
    self.creation = c.identity->creation();
    asio::co_spawn(context_.executor,
                   transport::connect_node(context_.handshakes, config_.target, std::move(self), context_.cookie,
                                           std::chrono::milliseconds(config_.connect_timeout_ms)),
                   [weak = weak_from_this(), index = c.index, attempt = c.attempt](std::exception_ptr error,
                                                                                   transport::ConnectOutcome out) {
                       auto self = weak.lock();
                       if (!self || self->destroyed_) {
                           return; // the socket, if any, closes here
                       }
                       auto& conn = *self->connections_[index];
                       if (conn.attempt != attempt) {
                           return;
                       }
                       conn.connecting = false;
                       if (!error && out.socket) {
                           self->on_connected(conn, std::move(*out.socket));
                       } else {
                           self->on_connect_failed(conn, error ? "internal error" : out.error);
                       }
                   });
}

void Pool::on_connected(PooledConnection& c, tcp::socket socket)
{
    c.link = std::make_shared<transport::DistLink>(std::move(socket), config_.target, context_.link_limits);
    c.link->start(c);
    c.failures = 0;
    target_down_ = false;
    spdlog::debug("pool {}: {} connected to {}", id_, c.node_name, config_.target);
    if (auto g = core_.slot_ready(c.index)) {
        auto waiter = waiters_.extract(g->waiter);
        grant(*g, waiter.mapped().view());
    }
    start_progress(true);
}

void Pool::on_connect_failed(PooledConnection& c, const std::string& error)
{
    ++c.failures;
    target_down_ = true;
    spdlog::info("pool {}: {} cannot connect to {}: {}", id_, c.node_name, config_.target, error);
    if (creator_) {
        start_progress(false);
        return;
    }
    if (live_connections() == 0) {
        fail_waiters("connection_failed");
    }
    schedule_reconnect(c);
}

void Pool::start_progress(bool ok)
{
    if (!creator_) {
        return;
    }
    if (!ok) {
        start_failed_ = true;
        reply_error(creator_->view(), "connection_failed");
        creator_.reset();
        destroy();
        if (context_.drop_pool) {
            asio::post(context_.executor, [drop = context_.drop_pool, id = id_] { drop(id); });
        }
        return;
    }
    if (--start_remaining_ == 0) {
        const auto id = id_;
        reply(creator_->view(), [id](protocol::TermWriter& w) {
            w.tuple(2);
            w.atom("ok");
            w.integer(static_cast<std::int64_t>(id));
        });
        creator_.reset();
    }
}

void Pool::on_link_closed(PooledConnection& c, std::string_view reason)
{
    c.link.reset();
    fail_pending(c, "connection_failed");
    while (!c.parked.empty()) {
        reply_error(c.parked.front().caller.view(), "connection_failed");
        ++failed_operations_;
        c.parked.pop_front();
    }
    if (destroyed_) {
        return;
    }
    spdlog::warn("pool {}: {} lost its connection to {}: {}", id_, c.node_name, config_.target, reason);
    if (core_.state(c.index) == SlotState::idle) {
        core_.slot_lost(c.index);
        schedule_reconnect(c);
    }
    // A leased connection stays with its holder, whose operations now fail; it reconnects when returned.
}

std::chrono::milliseconds Pool::backoff(std::uint32_t failures)
{
    const std::int64_t doubled =
        std::int64_t{config_.backoff_min_ms} << std::min<std::uint32_t>(failures, 20);
    const std::chrono::milliseconds delay(std::min<std::int64_t>(doubled, config_.backoff_max_ms));
    // Jitter, so connections that failed together do not retry together.
    std::uniform_int_distribution<std::int64_t> jitter(delay.count() / 2, delay.count());
    return std::chrono::milliseconds(jitter(context_.random));
}

void Pool::schedule_reconnect(PooledConnection& c)
{
    context_.scheduler->schedule(
        Deadline{Clock::now() + backoff(c.failures), DeadlineKind::reconnect, id_, c.index});
}

void Pool::checkout(const CallerView& caller, std::optional<std::uint32_t> timeout_ms)
{
    const std::uint32_t timeout = timeout_ms.value_or(config_.acquire_timeout_ms);
    if (target_down_ && live_connections() == 0) {
        reply_error(caller, "connection_failed");
        ++failed_operations_;
        return;
    }
    const std::uint64_t waiter = ++context_.waiter_counter;
    const auto result = core_.acquire(waiter, timeout > 0);
    switch (result.outcome) {
    case PoolCore::Outcome::granted:
        grant(result.grant, caller);
        return;
    case PoolCore::Outcome::queued:
        waiters_.emplace(waiter, Caller(caller));
        context_.scheduler->schedule(
            Deadline{Clock::now() + std::chrono::milliseconds(timeout), DeadlineKind::waiter, id_, waiter});
        break;
    case PoolCore::Outcome::exhausted:
        reply_error(caller, "pool_exhausted");
        ++failed_operations_;
        break;
    }
    // No idle connection: open one more if below the maximum and fewer are opening than callers wait.
    const auto counts = core_.counts();
    const std::size_t opening = static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c->connecting; }));
    if (core_.slot_count() < config_.max_connections && opening < std::max<std::size_t>(counts.waiting, 1)) {
        connect(add_connection());
    }
}

void Pool::grant(const Grant& g, const CallerView& caller)
{
    PooledConnection& c = *connections_[g.slot];
    // Assigned, not replaced: the slot's strings keep their capacity from lease to lease.
    c.holder.link = caller.link;
    c.holder.from.assign(caller.from);
    c.holder.tag.assign(caller.tag);
    const CallerView holder = c.holder.view();
    if (holder.link && holder.link->is_open()) {
        // Watch the holder: if it exits, or its node goes, the lease comes back without anyone asking.
        auto w = holder.link->begin_packet();
        w.version();
        protocol::write_monitor(w, context_.service->self_pid(), holder.from, *context_.service, g.lease);
        holder.link->end_packet();
    }
    const std::string_view node = c.node_name;
    reply(holder, [&](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.tuple(3);
        w.integer(g.slot);
        w.integer(static_cast<std::int64_t>(g.lease));
        w.binary(node);
    });
}

void Pool::checkin(std::uint32_t conn, std::uint64_t lease, bool discard)
{
    if (conn >= connections_.size() || !core_.lease_current(conn, lease)) {
        return;
    }
    PooledConnection& c = *connections_[conn];
    if (discard && c.link) {
        spdlog::info("pool {}: {} discarded by its lease holder, reopening it", id_, c.node_name);
        // Closed before the lease ends, so the slot comes back as one to reconnect, never as idle.
        c.link->close("discarded by its lease holder");
    }
    end_lease(c, lease, true);
}

void Pool::end_lease(PooledConnection& c, std::uint64_t lease, bool notify_holder)
{
    const CallerView holder = c.holder.view();
    if (notify_holder && holder.link && holder.link->is_open()) {
        auto w = holder.link->begin_packet();
        w.version();
        protocol::write_demonitor(w, context_.service->self_pid(), holder.from, *context_.service, lease);
        holder.link->end_packet();
    }
    c.holder.link.reset();
    const bool healthy = c.live();
    const auto released = core_.release(c.index, lease, healthy);
    if (!released.ended) {
        return;
    }
    if (!healthy && !c.connecting) {
        schedule_reconnect(c);
    }
    if (released.next) {
        auto waiter = waiters_.extract(released.next->waiter);
        grant(*released.next, waiter.mapped().view());
    }
}

void Pool::cancel(std::string_view pid, std::string_view tag)
{
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->second.from == pid && it->second.tag == tag) {
            core_.cancel(it->first);
            waiters_.erase(it);
            return;
        }
    }
    for (auto& c : connections_) {
        if (core_.state(c->index) == SlotState::leased && c->holder.from == pid && c->holder.tag == tag) {
            end_lease(*c, core_.lease_of(c->index), true);
            return;
        }
    }
}

bool Pool::validate_lease(const CallerView& caller, std::uint32_t conn, std::uint64_t lease)
{
    if (conn < connections_.size() && core_.lease_current(conn, lease)) {
        if (connections_[conn]->live()) {
            return true;
        }
        reply_error(caller, "connection_failed");
    } else {
        reply_error(caller, "invalid_connection");
    }
    ++failed_operations_;
    return false;
}

void Pool::send(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                std::string_view message)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    PooledConnection& c = *connections_[conn];
    auto w = c.link->begin_packet();
    w.version();
    if (to.is_name) {
        protocol::write_reg_send(w, c.identity->self_pid(), to.encoded);
    } else {
        protocol::write_send(w, to.encoded);
    }
    w.version();
    w.raw(message);
    c.link->end_packet();
    if (c.link->busy()) {
        // Answered when the output drains: the caller is held back as distribution holds a sender back.
        c.parked.push_back({Caller(caller)});
        return;
    }
    reply_atom(caller, "ok");
    ++successful_operations_;
}

void Pool::request(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                   std::optional<std::uint32_t> timeout_ms, std::string_view request)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    PooledConnection& c = *connections_[conn];
    const std::uint64_t ref = c.next_ref++;
    const auto& me = *c.identity;

    // As gen_server:call does: monitor the server, then send {'$gen_call', {From, Ref}, Request}.
    auto monitor = c.link->begin_packet();
    monitor.version();
    protocol::write_monitor(monitor, me.self_pid(), to.encoded, me, ref);
    c.link->end_packet();

    auto w = c.link->begin_packet();
    w.version();
    if (to.is_name) {
        protocol::write_reg_send(w, me.self_pid(), to.encoded);
    } else {
        protocol::write_send(w, to.encoded);
    }
    w.version();
    w.tuple(3);
    w.atom("$gen_call");
    w.tuple(2);
    w.raw(me.self_pid());
    me.write_ref(w, ref);
    w.raw(request);
    c.link->end_packet();

    auto free_entry = std::find_if(c.pending.begin(), c.pending.end(), [](const auto& p) { return p.ref == 0; });
    if (free_entry == c.pending.end()) {
        c.pending.emplace_back();
        free_entry = std::prev(c.pending.end());
    }
    free_entry->ref = ref;
    free_entry->caller.link = caller.link;
    free_entry->caller.from.assign(caller.from);
    free_entry->caller.tag.assign(caller.tag);
    free_entry->destination.assign(to.encoded);
    ++c.pending_count;
    if (timeout_ms) {
        context_.scheduler->schedule(Deadline{Clock::now() + std::chrono::milliseconds(*timeout_ms),
                                              DeadlineKind::request, id_, request_key(c.index, ref)});
    }
}

void Pool::answer_reply(PooledConnection& c, std::string_view message)
{
    protocol::TermReader r(message);
    if (!r.version() || r.tuple_header() != 2u) {
        return;
    }
    const auto ref = r.ref();
    if (!ref || !c.identity) {
        return;
    }
    const auto number = c.identity->ref_number(*ref);
    auto* p = number ? c.find_pending(*number) : nullptr;
    if (p == nullptr) {
        return; // a reply after its timeout
    }
    const std::string_view answer = r.rest();
    reply(p->caller.view(), [answer](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("ok");
        w.raw(answer);
    });
    ++successful_operations_;
    write_demonitor(c, p->destination, p->ref);
    finish_request(c, *p);
}

void Pool::answer_down(PooledConnection& c, std::string_view ref_term, std::string_view reason)
{
    protocol::TermReader r(ref_term);
    const auto ref = r.ref();
    if (!ref || !c.identity) {
        return;
    }
    const auto number = c.identity->ref_number(*ref);
    auto* p = number ? c.find_pending(*number) : nullptr;
    if (p == nullptr) {
        return;
    }
    reply(p->caller.view(), [reason](protocol::TermWriter& w) {
        w.tuple(2);
        w.atom("error");
        w.tuple(2);
        w.atom("down");
        w.raw(reason);
    });
    ++failed_operations_;
    finish_request(c, *p);
}

void Pool::finish_request(PooledConnection& c, PooledConnection::PendingRequest& p)
{
    p.ref = 0;
    p.caller.link.reset();
    --c.pending_count;
}

void Pool::write_demonitor(PooledConnection& c, std::string_view destination, std::uint64_t ref)
{
    if (!c.live()) {
        return;
    }
    auto w = c.link->begin_packet();
    w.version();
    protocol::write_demonitor(w, c.identity->self_pid(), destination, *c.identity, ref);
    c.link->end_packet();
}

void Pool::fail_pending(PooledConnection& c, std::string_view reason)
{
    for (auto& p : c.pending) {
        if (p.ref != 0) {
            reply_error(p.caller.view(), reason);
            ++failed_operations_;
            finish_request(c, p);
        }
    }
}

void Pool::fail_waiters(std::string_view reason)
{
    for (const auto waiter : core_.take_all_waiters()) {
        auto node = waiters_.extract(waiter);
        if (!node.empty()) {
            reply_error(node.mapped().view(), reason);
            ++failed_operations_;
        }
    }
    waiters_.clear();
}

void Pool::on_deadline(const Deadline& d)
{
    if (destroyed_) {
        return;
    }
    switch (d.kind) {
    case DeadlineKind::waiter:
        if (core_.cancel(d.key)) {
            auto node = waiters_.extract(d.key);
            if (!node.empty()) {
                reply_error(node.mapped().view(), "pool_exhausted");
                ++failed_operations_;
            }
        }
        break;
    case DeadlineKind::request: {
        const auto conn = static_cast<std::uint32_t>(d.key >> kRefBits);
        if (conn >= connections_.size()) {
            break;
        }
        auto& c = *connections_[conn];
        if (auto* p = c.find_pending(d.key & kRefMask)) {
            reply_error(p->caller.view(), "timeout");
            ++failed_operations_;
            write_demonitor(c, p->destination, p->ref);
            finish_request(c, *p);
        }
        break;
    }
    case DeadlineKind::reconnect: {
        if (d.key >= connections_.size()) {
            break;
        }
        auto& c = *connections_[d.key];
        if (!c.connecting && !c.link && core_.state(c.index) == SlotState::connecting) {
            connect(c);
        }
        break;
    }
    default:
        break;
    }
}

void Pool::on_holder_down(std::uint64_t lease)
{
    for (auto& c : connections_) {
        if (core_.lease_current(c->index, lease)) {
            end_lease(*c, lease, false);
            return;
        }
    }
}

void Pool::on_client_gone(const transport::DistLink* client)
{
    for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (it->second.link.get() == client) {
            core_.cancel(it->first);
            it = waiters_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto& c : connections_) {
        if (core_.state(c->index) == SlotState::leased && c->holder.link.get() == client) {
            end_lease(*c, core_.lease_of(c->index), false);
        }
        for (auto& p : c->pending) {
            if (p.ref != 0 && p.caller.link.get() == client) {
                p.caller.link.reset(); // its answer has nowhere to go
            }
        }
        std::erase_if(c->parked, [client](const auto& a) { return a.caller.link.get() == client; });
    }
}

void Pool::destroy()
{
    if (destroyed_) {
        return;
    }
    destroyed_ = true;
    fail_waiters("invalid_pool");
    for (auto& c : connections_) {
        fail_pending(*c, "invalid_pool");
        while (!c->parked.empty()) {
            reply_error(c->parked.front().caller.view(), "invalid_pool");
            ++failed_operations_;
            c->parked.pop_front();
        }
        if (core_.state(c->index) == SlotState::leased) {
            end_lease(*c, core_.lease_of(c->index), true);
        }
        if (c->link) {
            c->link->detach();
            c->link->close("pool destroyed");
            c->link.reset();
        }
    }
}

std::size_t Pool::live_connections() const
{
    return static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(), [](const auto& c) { return c->live(); }));
}

void Pool::write_stats(protocol::TermWriter& w) const
{
    const auto counts = core_.counts();
    w.map(13);
    w.atom("pool_id");
    w.integer(static_cast<std::int64_t>(id_));
    w.atom("target");
    w.binary(config_.target);
    w.atom("total_connections");
    w.integer(core_.slot_count());
    w.atom("available_connections");
    w.integer(counts.idle);
    w.atom("in_use_connections");
    w.integer(counts.leased);
    w.atom("connecting_connections");
    w.integer(counts.connecting);
    w.atom("waiting");
    w.integer(static_cast<std::int64_t>(counts.waiting));
    w.atom("successful_operations");
    w.integer(static_cast<std::int64_t>(successful_operations_));
    w.atom("failed_operations");
    w.integer(static_cast<std::int64_t>(failed_operations_));
    w.atom("max_connections");
    w.integer(config_.max_connections);
    w.atom("min_connections");
    w.integer(config_.min_connections);
    w.atom("acquire_timeout_ms");
    w.integer(config_.acquire_timeout_ms);
    w.atom("connections");
    if (!connections_.empty()) {
        w.list(connections_.size());
        for (const auto& c : connections_) {
            w.map(3);
            w.atom("id");
            w.integer(c->index);
            w.atom("node");
            w.binary(c->node_name);
            w.atom("state");
            switch (core_.state(c->index)) {
            case SlotState::idle:
                w.atom("available");
                break;
            case SlotState::leased:
                w.atom("in_use");
                break;
            case SlotState::connecting:
                w.atom("connecting");
                break;
            }
        }
    }
    w.nil();
}

} // namespace dpool::pool
