#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/rpc.hpp"

// The operations a pool does for its callers, as plain values: what the api layer decodes requests into.
namespace dpool::pool {

using protocol::Destination;

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

// The view of a kept job, if there is one.
inline std::optional<OneShotView> view_of(const std::optional<OneShot>& job)
{
    return job ? std::optional<OneShotView>(job->view()) : std::nullopt;
}

// What a pool group may do with a checkout or one-shot job that one of its members cannot serve before anything
// of it was written to the target (docs/PROTOCOL.md, "Pool groups"): hand it to another member. The default, a
// pool's own callers, is nothing: the pool answers them itself.
struct Failover {
    bool portable = false;   // it may go to any member: no pid or {Name, Node} of one target in it
    bool retry_left = false; // a connection_failed may still send it to another member (once)
    std::optional<std::uint64_t> key; // the key digest that picked its member (rendezvous), if any
};

// One message of a cast batch: its encoded term and, for a keyed batch, the hash of its key.
struct BatchMessage {
    std::uint32_t hash = 0;
    std::string_view term;
};

} // namespace dpool::pool
