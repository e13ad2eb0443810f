#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

namespace dpool::transport {

// Bounds the connections that have not finished their handshake, per lane and per source address. A
// connection that would pass a bound is let in, and the idlest connection it competes with is dropped to make
// room: the oldest of those that have not completed a handshake message yet, and only when none of those is
// left, the one of those that have whose last message is oldest. So a
// flood of silent or slow sockets costs a bounded number of descriptors, and a peer that actually speaks the
// handshake gets through however many wait. Runs on the I/O thread only.
class HandshakeGate {
public:
    struct Limits {
        std::size_t per_lane = 128;
        std::size_t per_address = 64;
    };
    struct Counters {
        std::uint64_t admitted = 0;
        std::uint64_t dropped_for_room = 0; // idlest ones dropped to let a newer one in
        std::size_t in_progress = 0;
    };
    // Closes a dropped connection's socket; never called after its ticket is gone.
    using Drop = std::function<void()>;

    // A connection's place in the gate, given up when the ticket goes (its handshake ended either way).
    class Ticket {
    public:
        Ticket() = default;
        Ticket(Ticket&&) noexcept = default;
        Ticket& operator=(Ticket&&) noexcept;
        ~Ticket();
        Ticket(const Ticket&) = delete;
        Ticket& operator=(const Ticket&) = delete;

        // The connection completed a handshake message: it is now the least idle.
        void progressed();

    private:
        friend class HandshakeGate;
        struct State;
        Ticket(std::weak_ptr<State> state, std::uint64_t id) : state_(std::move(state)), id_(id) {}
        void leave();

        std::weak_ptr<State> state_;
        std::uint64_t id_ = 0;
    };

    explicit HandshakeGate(Limits limits);

    // Lets a connection in on `lane` from `address`, dropping the idlest others over a bound.
    Ticket admit(std::size_t lane, const std::string& address, Drop drop);
    Counters counters() const;
    const Limits& limits() const;

private:
    std::shared_ptr<Ticket::State> state_;
};

// What the acceptors of a C-node have seen of handshakes, for `info`.
struct HandshakeCounters {
    std::uint64_t completed = 0;
    std::uint64_t failed = 0;    // refused or broken off by the peer (wrong cookie, not a distribution peer, ...)
    std::uint64_t timed_out = 0; // not complete within the handshake timeout, counted from the accept
    HandshakeGate::Counters gate;
};

} // namespace dpool::transport
