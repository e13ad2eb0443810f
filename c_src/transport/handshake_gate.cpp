#include "transport/handshake_gate.hpp"

#include <utility>

namespace dpool::transport {

// Entries in the order they are dropped: first those that have not completed a message yet (oldest first),
// then those that have (idlest first, from talking onwards); each also found by its ticket's id. A peer that
// spoke is never dropped for a newcomer while a silent one is left: a flood that keeps arriving (or a listen
// backlog still draining) cannot push a real peer out in the middle of its handshake.
struct HandshakeGate::Ticket::State {
    struct Entry {
        std::uint64_t id;
        std::size_t lane;
        std::string address;
        Drop drop;
    };
    using Entries = std::list<Entry>;

    explicit State(Limits l) : limits(l) {}

    Entries::iterator add(Entry entry) { return entries.insert(talking, std::move(entry)); }

    // `at` completed a message: it goes last, as the least idle of those that spoke.
    void progressed(Entries::iterator at)
    {
        if (at == talking) {
            ++talking;
        }
        entries.splice(entries.end(), entries, at);
        if (talking == entries.end()) {
            talking = at;
        }
    }

    void erase(Entries::iterator at)
    {
        if (at == talking) {
            ++talking;
        }
        if (--per_lane[at->lane] == 0) {
            per_lane.erase(at->lane);
        }
        if (--per_address[at->address] == 0) {
            per_address.erase(at->address);
        }
        by_id.erase(at->id);
        entries.erase(at);
    }

    // Drops the idlest entry that `matches`, never `keep` (the newcomer); false when there is none.
    template <class Matches>
    bool drop_idlest(std::uint64_t keep, Matches matches)
    {
        for (auto it = entries.begin(); it != entries.end(); ++it) {
            if (it->id != keep && matches(*it)) {
                Drop drop = std::move(it->drop);
                erase(it);
                ++counters.dropped_for_room;
                drop(); // after erase: whatever it does, the entry is gone
                return true;
            }
        }
        return false;
    }

    Limits limits;
    Entries entries;
    Entries::iterator talking = entries.end(); // the first entry that spoke (end: none has)
    std::unordered_map<std::uint64_t, Entries::iterator> by_id;
    std::unordered_map<std::size_t, std::size_t> per_lane;
    std::unordered_map<std::string, std::size_t> per_address;
    std::uint64_t next_id = 1;
    Counters counters;
};

HandshakeGate::Ticket& HandshakeGate::Ticket::operator=(Ticket&& other) noexcept
{
    if (this != &other) {
        leave();
        state_ = std::move(other.state_);
        id_ = std::exchange(other.id_, 0);
    }
    return *this;
}

HandshakeGate::Ticket::~Ticket() { leave(); }

void HandshakeGate::Ticket::leave()
{
    if (auto state = state_.lock()) {
        if (const auto found = state->by_id.find(id_); found != state->by_id.end()) {
            state->erase(found->second);
        }
    }
    state_.reset();
}

void HandshakeGate::Ticket::progressed()
{
    if (auto state = state_.lock()) {
        if (const auto found = state->by_id.find(id_); found != state->by_id.end()) {
            state->progressed(found->second);
        }
    }
}

HandshakeGate::HandshakeGate(Limits limits) : state_(std::make_shared<Ticket::State>(limits)) {}

HandshakeGate::Ticket HandshakeGate::admit(std::size_t lane, const std::string& address, Drop drop)
{
    auto& s = *state_;
    const std::uint64_t id = s.next_id++;
    s.by_id.emplace(id, s.add({id, lane, address, std::move(drop)}));
    ++s.per_lane[lane];
    ++s.per_address[address];
    ++s.counters.admitted;
    while (s.per_lane[lane] > s.limits.per_lane &&
           s.drop_idlest(id, [lane](const auto& e) { return e.lane == lane; })) {
    }
    while (s.per_address[address] > s.limits.per_address &&
           s.drop_idlest(id, [&address](const auto& e) { return e.address == address; })) {
    }
    return Ticket(state_, id);
}

HandshakeGate::Counters HandshakeGate::counters() const
{
    Counters c = state_->counters;
    c.in_progress = state_->entries.size();
    return c;
}

const HandshakeGate::Limits& HandshakeGate::limits() const { return state_->limits; }

} // namespace dpool::transport
