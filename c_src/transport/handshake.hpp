#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "transport/dist_stream.hpp"
#include "transport/packet_recorder.hpp"
#include "util/asio.hpp"
#include "util/deadline_guard.hpp"

namespace dpool::transport {

// Who we are in a handshake.
struct HandshakeIdentity {
    std::string alive;
    std::string host;
    std::string node_name; // alive@host
    std::uint32_t creation = 0;
};

struct HandshakeOutcome {
    bool ok = false;
    std::string peer_node; // the peer's node name
    std::string error;     // on failure, in words
    bool timed_out = false; // the error is the deadline's
    // The capabilities the peer announced (DFLAG_*, the mandatory set expanded).
    std::uint64_t peer_flags = 0;
    // Refused by AdmitPeer, which reported it itself: the acceptor does not log it again.
    bool reported = false;
    // Over TLS: the peer ended the TLS session with an alert after the TLS handshake (in TLS 1.3 a server
    // that refuses the client's certificate says so only then); the error says which alert.
    bool tls_refused = false;
};

// Capabilities of a peer that change what the C-node sends it.
inline constexpr std::uint64_t kDflagSpawn = std::uint64_t{1} << 32; // SPAWN_REQUEST (OTP 23+)

// Why a peer that named itself may not go on: in words (the outcome's error), and whether whoever refused it
// logged it already.
struct PeerRefusal {
    std::string why;
    bool reported = false;
};
// Says whether a peer that named itself may go on: nullopt to admit it. A refused peer is answered with status
// not_allowed.
using AdmitPeer = std::function<std::optional<PeerRefusal>(std::string_view peer_node)>;

// The distribution handshake (version 6, OTP 23 and later; handshake_messages.hpp), as Asio coroutines on
// the I/O thread: no thread is held while a peer is silent, so peers that never finish cost a socket each and
// no one waits behind them. `deadline` bounds the whole handshake: when it passes, the socket is cancelled and
// the outcome says timed_out. A failed handshake leaves the socket open; its owner closes it. `recording`
// (a test aid, --record-packets; nullptr: none) gets every message body the peer sends.
//
// The accepting side (callers reaching a lane). `on_progress` is told of each message the peer completes, so
// that the idlest unauthenticated connections can be dropped first (HandshakeGate).
asio::awaitable<HandshakeOutcome> accept_handshake(DistStream& stream, const HandshakeIdentity& self,
                                                   const std::string& cookie, DeadlineGuard& deadline,
                                                   const AdmitPeer& admit, const std::function<void()>& on_progress,
                                                   LinkRecording* recording = nullptr);
// The connecting side (pooled connections), which also announces DFLAG_DIST_HDR_ATOM_CACHE so that packets to
// the target can name atoms by cache reference. A failure says which step failed and why, in the words a
// user needs to fix it (a refused cookie, a name in use, a port that speaks no distribution, ...).
asio::awaitable<HandshakeOutcome> connect_handshake(DistStream& stream, const HandshakeIdentity& self,
                                                    const std::string& cookie, DeadlineGuard& deadline,
                                                    LinkRecording* recording = nullptr);

} // namespace dpool::transport
