#include "pool/pooled_connection.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "protocol/control.hpp"
#include "protocol/term_reader.hpp"

namespace dpool::pool {

PendingRequest& PendingRequests::add(std::uint64_t ref, Purpose purpose, bool spawned, Clock::time_point now)
{
    auto entry = std::find_if(entries_.begin(), entries_.end(), [](const auto& p) { return p.ref == 0; });
    PendingRequest& p = entry != entries_.end() ? *entry : entries_.emplace_back();
    p.ref = ref;
    p.purpose = purpose;
    p.spawned = spawned;
    p.caller.link.reset();
    p.destination.clear();
    p.one_shot_lease = 0;
    p.written = now;
    for_callers_ += purpose == Purpose::caller ? 1 : 0;
    return p;
}

PendingRequest* PendingRequests::find(std::uint64_t ref)
{
    if (ref == 0) {
        return nullptr; // the mark of a free entry, never a request's
    }
    const auto it = std::find_if(entries_.begin(), entries_.end(), [ref](const auto& p) { return p.ref == ref; });
    return it == entries_.end() ? nullptr : &*it;
}

void PendingRequests::finish(PendingRequest& p)
{
    if (p.ref != 0 && p.purpose == Purpose::caller) {
        --for_callers_;
    }
    p.ref = 0;
    p.caller.link.reset();
}

std::size_t PendingRequests::size() const
{
    return static_cast<std::size_t>(
        std::count_if(entries_.begin(), entries_.end(), [](const auto& p) { return p.ref != 0; }));
}

namespace {

// Atom cache entries of a pooled connection's own packets: its node name (in every sender pid) in entry 0, a
// destination name in one of the others, picked by its hash (two names on one entry take turns).
constexpr std::uint16_t kOwnNodeEntry = 0;
std::uint16_t name_entry(std::string_view name)
{
    return static_cast<std::uint16_t>(1 + std::hash<std::string_view>{}(name) % (protocol::kAtomCacheSize - 1));
}

// The text of an encoded atom (the destination names of sends are atoms, checked by parse_destination).
std::string_view atom_text(std::string_view encoded)
{
    protocol::TermReader r(encoded);
    return r.atom().value_or(std::string_view{});
}

} // namespace

std::string_view MessageHeads::head(const protocol::NodeIdentity& me, const Destination& to,
                                    protocol::AtomCacheOut* atoms)
{
    if (!head_.empty() && to_name_ == to.is_name && destination_ == to.encoded &&
        (atoms == nullptr || atoms_changes_ == atoms->changes())) {
        return head_;
    }
    scratch_.clear();
    bool defines = false; // the head sends atom text along: good for this packet only
    const std::string_view self_pid = me.self_pid();
    if (atoms != nullptr && to.is_name) {
        // A distribution header naming our node (in the sender pid) and the destination by cache entry: sent as
        // text the first time, as references after that.
        const std::string_view node = me.node_name();
        const std::string_view name = atom_text(to.encoded);
        const protocol::AtomRef refs[2] = {{kOwnNodeEntry, node, atoms->define(kOwnNodeEntry, node)},
                                           {name_entry(name), name, atoms->define(name_entry(name), name)}};
        defines = refs[0].is_new || refs[1].is_new;
        protocol::write_dist_header(scratch_, refs);
        protocol::TermWriter w(scratch_, false);
        // REG_SEND {6, FromPid, '', ToName}; the pid's fields after its node atom are its last 12 bytes.
        w.tuple(4);
        w.integer(static_cast<int>(protocol::ControlOp::reg_send));
        const char pid_with_ref[3] = {static_cast<char>(protocol::tag::new_pid),
                                      static_cast<char>(protocol::kAtomCacheRef), 0};
        scratch_.append(pid_with_ref, sizeof pid_with_ref);
        scratch_.append(self_pid.substr(self_pid.size() - 12));
        w.atom("");
        const char name_ref[2] = {static_cast<char>(protocol::kAtomCacheRef), 1};
        scratch_.append(name_ref, sizeof name_ref);
    } else {
        if (atoms != nullptr) {
            protocol::write_dist_header(scratch_, {});
        } else {
            scratch_.push_back(protocol::kPassThrough);
        }
        protocol::TermWriter w(scratch_, atoms == nullptr);
        w.version();
        if (to.is_name) {
            protocol::write_reg_send(w, self_pid, to.encoded);
        } else {
            protocol::write_send(w, to.encoded);
        }
        w.version();
    }
    if (defines) {
        head_.clear();
        return scratch_.view();
    }
    head_.assign(scratch_.view());
    destination_.assign(to.encoded);
    to_name_ = to.is_name;
    atoms_changes_ = atoms != nullptr ? atoms->changes() : 0;
    return head_;
}

PooledConnection::PooledConnection(ConnectionEvents& events, std::uint32_t index, ConnectionNames::Name name)
    : events_(events), index_(index), name_number_(name.number), node_name_(std::move(name.node_name))
{
}

PooledConnection::~PooledConnection()
{
    for (auto* l : {&link_, &retiring_}) {
        if (*l) {
            (*l)->detach();
            (*l)->close("pool destroyed");
        }
    }
}

void PooledConnection::on_packet(transport::DistLink&, std::string_view packet)
{
    const auto control = protocol::parse_packet(packet);
    if (!control) {
        spdlog::debug("{}: unparsable packet of {} bytes", node_name_, packet.size());
        return;
    }
    spdlog::trace("{}: control op {}", node_name_, static_cast<int>(control->op));
    switch (control->op) {
    case protocol::ControlOp::send:
    case protocol::ControlOp::send_tt:
    case protocol::ControlOp::send_sender:
    case protocol::ControlOp::send_sender_tt:
        events_.on_reply(*this, control->payload);
        break;
    case protocol::ControlOp::monitor_p_exit:
        events_.on_down(*this, control->ref, control->reason);
        break;
    case protocol::ControlOp::spawn_reply:
    case protocol::ControlOp::spawn_reply_tt:
        events_.on_spawn_reply(*this, control->ref, control->reason);
        break;
    case protocol::ControlOp::monitor_p: {
        // A process on the target monitors our sender pid, which is no process: it learns so at once.
        auto w = link_->begin_packet();
        w.version();
        protocol::write_monitor_exit(w, control->to, control->from, control->ref, "noproc");
        link_->end_packet();
        break;
    }
    default:
        break; // messages to other names, links and exits have no meaning for a pooled connection
    }
}

void PooledConnection::on_drained(transport::DistLink&)
{
    events_.on_drained(*this);
}

void PooledConnection::on_closed(transport::DistLink& l, std::string_view reason)
{
    events_.on_link_closed(*this, l, reason);
}

transport::HandshakeIdentity PooledConnection::begin_attempt(std::string_view host, std::uint32_t creation,
                                                             std::uint32_t ref_salt)
{
    identity_.emplace(node_name_, creation, ref_salt);
    heads_.forget(); // they name the sender pid of the previous identity
    transport::HandshakeIdentity self;
    self.node_name = node_name_;
    self.alive = node_name_.substr(0, node_name_.find('@'));
    self.host = host;
    self.creation = creation;
    return self;
}

void PooledConnection::attach(transport::DistStream stream, const std::string& target, const transport::LinkLimits& limits,
                              bool atom_cache)
{
    link_ = std::make_shared<transport::DistLink>(std::move(stream), target, limits, atom_cache);
    link_->start(*this);
    group_leader_.clear();
}

bool PooledConnection::close_link(std::string_view reason)
{
    if (!link_) {
        return false;
    }
    const auto link = std::move(link_);
    closed_traffic_ += link->traffic();
    link->detach();
    link->close(reason);
    return true;
}

void PooledConnection::retire_link(ConnectionNames::Name successor)
{
    retiring_ = std::move(link_);
    retiring_->detach();
    retiring_name_number_ = name_number_;
    retiring_node_name_ = std::move(node_name_);
    name_number_ = successor.number;
    node_name_ = std::move(successor.node_name);
}

std::optional<std::uint32_t> PooledConnection::close_retired(std::string_view reason)
{
    if (!retiring_) {
        return std::nullopt;
    }
    closed_traffic_ += retiring_->traffic();
    retiring_->close(reason);
    retiring_.reset();
    return retiring_name_number_;
}

void PooledConnection::write_message(const Destination& to, std::string_view message,
                                     const std::shared_ptr<const void>& owner,
                                     std::unique_ptr<transport::SplicedTail> tail)
{
    auto* atoms = link_->uses_atom_cache() ? &link_->atoms_sent() : nullptr;
    link_->write_packet(heads_.head(*identity_, to, atoms), message, owner, std::move(tail));
}

void PooledConnection::write_demonitor(std::string_view destination, std::uint64_t ref)
{
    if (!live()) {
        return;
    }
    auto w = link_->begin_packet();
    w.version();
    protocol::write_demonitor(w, identity_->self_pid(), destination, *identity_, ref);
    link_->end_packet();
}

PendingRequest* PooledConnection::find_pending(const protocol::RefView& ref)
{
    const auto number = identity_ ? identity_->ref_number(ref) : std::nullopt;
    return number ? pending_.find(*number) : nullptr;
}

PendingRequest* PooledConnection::find_pending(std::string_view ref_term)
{
    protocol::TermReader r(ref_term);
    const auto ref = r.ref();
    return ref ? find_pending(*ref) : nullptr;
}

} // namespace dpool::pool
