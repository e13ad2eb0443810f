// Operations on a leased connection (send, request, call) and the target's answers to them.
#include "pool/pool.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace dpool::pool {

void Pool::send(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                std::string_view message, std::unique_ptr<transport::SplicedTail> tail)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    PooledConnection& c = *connections_[conn_index(conn)];
    if (const auto refused = output_refusal(c, message.size() + (tail ? tail->size() : 0))) {
        answer_refused(caller, *refused);
        return;
    }
    if (tail) {
        // The part in the packet's prefix (at most one read) is copied; the rest leaves from the pipes.
        c.write_message(to, message, nullptr, std::move(tail));
    } else {
        c.write_message(to, message, payload_owner(caller, message));
    }
    if (c.link()->busy()) {
        // Answered when the output drains: the caller is held back as distribution holds a sender back.
        c.slot.parked.push_back({Caller(caller), nullptr});
        return;
    }
    answers().ok(caller);
    ++counters_.successful_operations;
}

void Pool::send_many(const CallerView& caller, std::uint32_t conn, std::uint64_t lease,
                     const std::vector<std::pair<std::optional<Destination>, std::string_view>>& messages)
{
    if (const auto error = lease_error(conn, lease)) {
        // The sender learns it from this answer; the messages count as dropped, as casts that found no lease.
        counters_.dropped_sends += messages.size();
        counters_.failed_operations += std::max<std::size_t>(messages.size(), 1);
        answers().error(caller, *error);
        return;
    }
    PooledConnection& c = *connections_[conn_index(conn)];
    std::size_t bytes = 0;
    for (const auto& [to, message] : messages) {
        bytes += to ? message.size() : 0;
    }
    // All or nothing, as a cast batch: none of the list is queued, and every message counts as dropped.
    if (const auto refused = bytes == 0 ? std::nullopt : output_refusal(c, bytes)) {
        counters_.dropped_sends += messages.size();
        counters_.failed_operations += messages.size();
        answers().error(caller, *refused);
        return;
    }
    for (const auto& [to, message] : messages) {
        if (!to) {
            ++counters_.dropped_sends;
            ++counters_.failed_operations;
            continue;
        }
        c.write_message(*to, message, payload_owner(caller, message));
        ++counters_.successful_operations;
    }
    if (!c.link()->is_open()) {
        answers().error(caller, closed_under_writes(c)); // its queue is lost
        return;
    }
    if (c.link()->busy()) {
        c.slot.parked.push_back({Caller(caller), nullptr, true});
        return;
    }
    answers().ok(caller);
}

void Pool::request(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, const Destination& to,
                   std::optional<std::uint32_t> timeout_ms, std::string_view request)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    start_raw_request(*connections_[conn_index(conn)], caller, to, timeout_ms, request, 0);
}

void Pool::call(const CallerView& caller, std::uint32_t conn, std::uint64_t lease, std::string_view mfa,
                std::optional<std::uint32_t> timeout_ms)
{
    if (!validate_lease(caller, conn, lease)) {
        return;
    }
    start_call(*connections_[conn_index(conn)], caller, mfa, timeout_ms, 0);
}

void Pool::schedule_request_deadline(const PooledConnection& c, const PendingRequest& p, std::uint32_t timeout_ms)
{
    context_.scheduler->schedule(Deadline{p.written + std::chrono::milliseconds(timeout_ms), DeadlineKind::request,
                                          id_, connection_key(c.index(), p.ref)});
}

template <class WriteRequest>
void Pool::start_request(PooledConnection& c, const CallerView& caller, const Destination& to,
                         std::optional<std::uint32_t> timeout_ms, WriteRequest&& write_request,
                         std::uint64_t one_shot_lease)
{
    const std::uint64_t ref = c.write_gen_call(to, write_request);
    // request_rtt starts once the request is queued, and the caller waits for it: written at once.
    auto& entry = c.pending().add(ref, Purpose::caller, false, Clock::now());
    c.link()->write_now();
    entry.caller.assign(caller);
    entry.destination.assign(to.encoded);
    entry.one_shot_lease = one_shot_lease;
    if (timeout_ms) {
        schedule_request_deadline(c, entry, *timeout_ms);
    }
}

void Pool::start_raw_request(PooledConnection& c, const CallerView& caller, const Destination& to,
                             std::optional<std::uint32_t> timeout_ms, std::string_view request,
                             std::uint64_t one_shot_lease)
{
    if (!admit_request(c, caller, request.size(), one_shot_lease)) {
        return;
    }
    start_request(c, caller, to, timeout_ms, [request](protocol::TermWriter& w) { w.raw(request); }, one_shot_lease);
}

void Pool::start_call(PooledConnection& c, const CallerView& caller, std::string_view mfa,
                      std::optional<std::uint32_t> timeout_ms, std::uint64_t one_shot_lease)
{
    if (!admit_request(c, caller, mfa.size(), one_shot_lease)) {
        return;
    }
    if (c.group_leader().empty()) {
        // rex's {call, M, F, A, user}: what rpc:call sends; rex runs it in a process of its own.
        start_request(c, caller, Destination{true, protocol::kRex}, timeout_ms,
                      [mfa](protocol::TermWriter& w) {
                          w.tuple(5);
                          w.atom("call");
                          w.raw(mfa);
                          w.atom("user");
                      },
                      one_shot_lease);
        return;
    }
    // What erpc:call does: one SPAWN_REQUEST of erpc:execute_call(Ref, M, F, A), monitored, whose exit reason
    // {Ref, return | throw | exit | error, ...} is the answer. No process of the target's is in the way.
    const std::uint64_t ref = c.spawn_execute_call(c.group_leader(), [&](protocol::TermWriter& w) { w.raw(mfa); });
    auto& entry = c.pending().add(ref, Purpose::caller, true, Clock::now());
    c.link()->write_now();
    entry.caller.assign(caller);
    entry.one_shot_lease = one_shot_lease;
    if (timeout_ms) {
        schedule_request_deadline(c, entry, *timeout_ms);
    }
}

void Pool::learn_group_leader(PooledConnection& c)
{
    // erlang:whereis(user), spawned with our own process as group leader (it does no I/O).
    const std::uint64_t ref = c.spawn_execute_call(c.identity()->self_pid(), [](protocol::TermWriter& w) {
        w.atom("erlang");
        w.atom("whereis");
        w.list(1);
        w.atom("user");
        w.nil();
    });
    const auto& entry = c.pending().add(ref, Purpose::group_leader, true, Clock::now());
    schedule_request_deadline(c, entry, config_.connect_timeout_ms);
}

void Pool::on_reply(PooledConnection& c, std::string_view message)
{
    const auto read = Clock::now();
    protocol::TermReader r(message);
    if (!r.version() || r.tuple_header() != 2u) {
        return;
    }
    const auto ref = r.ref();
    auto* p = ref ? c.find_pending(*ref) : nullptr;
    if (p == nullptr || p->spawned) {
        return; // a reply after its timeout (a spawned call answers by its exit, never by a message)
    }
    const std::string_view answer = r.rest();
    c.write_demonitor(p->destination, p->ref);
    if (p->purpose == Purpose::health) {
        protocol::TermReader a(answer);
        const auto yes = a.atom();
        finish_request(c, *p);
        on_health_result(c, yes && *yes == "yes");
        return;
    }
    answers().answered(p->caller.view(), answer);
    complete_request(c, *p, true, read);
}

void Pool::on_down(PooledConnection& c, std::string_view ref_term, std::string_view reason)
{
    const auto read = Clock::now();
    auto* p = c.find_pending(ref_term);
    if (p == nullptr) {
        return;
    }
    if (p->spawned) {
        answer_call_exit(c, *p, reason, read);
        return;
    }
    if (p->purpose == Purpose::health) {
        finish_request(c, *p);
        on_health_result(c, false);
        return;
    }
    answers().destination_down(p->caller.view(), reason);
    complete_request(c, *p, false, read);
}

void Pool::on_spawn_reply(PooledConnection& c, std::string_view ref_term, std::string_view result)
{
    auto* p = c.find_pending(ref_term);
    if (p == nullptr || !p->spawned) {
        return;
    }
    protocol::TermReader res(result);
    if (!res.atom()) {
        return; // spawned: the answer is its exit
    }
    // The target could not spawn it (system_limit, ...): as rex answers a spawn it cannot make.
    if (p->purpose == Purpose::caller) {
        answers().call_not_spawned(p->caller.view(), result);
        ++counters_.failed_operations;
    }
    end_request(c, *p);
}

void Pool::answer_call_exit(PooledConnection& c, PendingRequest& p, std::string_view reason, Clock::time_point read)
{
    auto exit = protocol::decode_call_exit(reason);
    if (exit.kind != protocol::CallExit::Kind::other &&
        c.identity()->ref_number(exit.ref) != std::optional<std::uint64_t>(p.ref)) {
        exit = protocol::CallExit::from_outside(reason);
    }
    if (p.purpose == Purpose::group_leader) {
        protocol::TermReader value(exit.value);
        if (exit.kind == protocol::CallExit::Kind::returned && value.pid() && value.at_end()) {
            c.set_group_leader(exit.value);
        }
        finish_request(c, p);
        return;
    }
    answers().call_ended(p.caller.view(), exit);
    complete_request(c, p, true, read);
}

void Pool::complete_request(PooledConnection& c, PendingRequest& p, bool succeeded, Clock::time_point read)
{
    request_rtt_.record(read - p.written);
    ++(succeeded ? counters_.successful_operations : counters_.failed_operations);
    end_request(c, p);
}

void Pool::end_request(PooledConnection& c, PendingRequest& p)
{
    const auto lease = p.one_shot_lease;
    finish_request(c, p);
    end_one_shot(c, lease);
}

void Pool::finish_request(PooledConnection& c, PendingRequest& p)
{
    c.pending().finish(p);
}

void Pool::expire_request(std::uint64_t key)
{
    const auto conn = key_connection(key);
    if (conn >= connections_.size()) {
        return;
    }
    auto& c = *connections_[conn];
    auto* p = c.pending().find(key_number(key));
    if (p == nullptr) {
        return;
    }
    if (!p->spawned) {
        c.write_demonitor(p->destination, p->ref);
    }
    if (p->purpose == Purpose::group_leader) {
        finish_request(c, *p); // calls keep going to rex on this connection
        return;
    }
    if (p->purpose == Purpose::health) {
        finish_request(c, *p);
        on_health_result(c, false);
        return;
    }
    answers().error(p->caller.view(), "timeout");
    ++counters_.failed_operations;
    end_request(c, *p);
}

void Pool::fail_pending(PooledConnection& c, const Failure& reason)
{
    c.pending().for_each([&](PendingRequest& p) {
        if (p.purpose == Purpose::caller) {
            answers().error(p.caller.view(), reason);
            ++counters_.failed_operations;
        }
        finish_request(c, p);
    });
}

void Pool::release_parked(PooledConnection& c)
{
    auto& parked = c.slot.parked;
    while (!parked.empty()) {
        auto& a = parked.front();
        if (!a.batch) {
            answers().ok(a.caller.view());
            counters_.successful_operations += a.counted ? 0 : 1;
        } else if (!a.batch->answered && --a.batch->links_left == 0) {
            a.batch->answered = true;
            answers().batch_queued(a.batch->caller.view(), a.batch->count);
            counters_.successful_operations += static_cast<std::uint64_t>(a.batch->count);
        }
        parked.pop_front();
    }
}

void Pool::fail_parked(PooledConnection& c, const Failure& reason)
{
    auto& parked = c.slot.parked;
    while (!parked.empty()) {
        auto& a = parked.front();
        if (!a.batch) {
            answers().error(a.caller.view(), reason);
            counters_.failed_operations += a.counted ? 0 : 1;
        } else if (!a.batch->answered) {
            // Part of the batch may have gone out on other connections: the caller learns it did not all go.
            a.batch->answered = true;
            answers().error(a.batch->caller.view(), reason);
            ++counters_.failed_operations;
        }
        parked.pop_front();
    }
}

Failure Pool::closed_under_writes(const PooledConnection& c) const
{
    return Failure("connection_failed", "connection_lost",
                   fmt::format("the connection {} to {} closed while the messages were queued", c.node_name(),
                               config_.target));
}

} // namespace dpool::pool
