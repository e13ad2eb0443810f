#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace dpool::transport::handshake {

// The messages of the distribution handshake (OTP's "Distribution Protocol", version 6, OTP 23 and later),
// built and read without I/O so that every byte a peer sends before it is authenticated goes through these
// parsers alone (and they can be fuzzed). Each message travels as a 2-byte big-endian length and a body; the
// functions here take and give bodies.

// Capabilities (DFLAG_*).
inline constexpr std::uint64_t kDflagPublished = 0x1;
inline constexpr std::uint64_t kDflagExtendedReferences = 0x4;
inline constexpr std::uint64_t kDflagDistMonitor = 0x8;
inline constexpr std::uint64_t kDflagFunTags = 0x10;
inline constexpr std::uint64_t kDflagDistMonitorName = 0x20;
inline constexpr std::uint64_t kDflagNewFunTags = 0x80;
inline constexpr std::uint64_t kDflagExtendedPidsPorts = 0x100;
inline constexpr std::uint64_t kDflagExportPtrTag = 0x200;
inline constexpr std::uint64_t kDflagBitBinaries = 0x400;
inline constexpr std::uint64_t kDflagNewFloats = 0x800;
inline constexpr std::uint64_t kDflagSmallAtomTags = 0x4000;
inline constexpr std::uint64_t kDflagUtf8Atoms = 0x10000;
inline constexpr std::uint64_t kDflagMapTag = 0x20000;
inline constexpr std::uint64_t kDflagBigCreation = 0x40000;
inline constexpr std::uint64_t kDflagHandshake23 = 0x1000000;
inline constexpr std::uint64_t kDflagUnlinkId = 0x2000000;
inline constexpr std::uint64_t kDflagMandatory25Digest = 0x4000000;
inline constexpr std::uint64_t kDflagV4Nc = std::uint64_t{0x4} << 32;

// What OTP 25 requires of every peer (a peer may say so with the one bit kDflagMandatory25Digest).
inline constexpr std::uint64_t kMandatoryFlags = kDflagExtendedReferences | kDflagFunTags | kDflagExtendedPidsPorts |
                                                 kDflagUtf8Atoms | kDflagNewFunTags | kDflagBigCreation |
                                                 kDflagNewFloats | kDflagMapTag | kDflagExportPtrTag |
                                                 kDflagBitBinaries;

// The capabilities the C-node announces: what erl_interface 5.3 announces for a C-node (its terms are ei's),
// plus DFLAG_DIST_MONITOR_NAME. ERTS sends MONITOR_P_EXIT only to peers that announce both monitor flags:
// without it the C-node would never learn that a lease holder died, nor that a request's server does not
// exist; the C-node implements both monitor forms. Outbound connections add the atom cache
// (handshake.cpp).
inline constexpr std::uint64_t kOwnFlags = kMandatoryFlags | kDflagMandatory25Digest | kDflagDistMonitor |
                                           kDflagSmallAtomTags | kDflagHandshake23 | kDflagV4Nc | kDflagUnlinkId |
                                           kDflagDistMonitorName;

// A peer's flags with the short form of the mandatory set expanded; whether they cover what OTP 25 requires.
std::uint64_t expand_flags(std::uint64_t flags);
bool has_mandatory_flags(std::uint64_t flags);

// Node names in the handshake: at most this many bytes (an atom's limit).
inline constexpr std::size_t kMaxNodeNameBytes = 255;
// The largest body a peer may send before it is authenticated: a challenge with the longest name.
inline constexpr std::size_t kMaxMessageBytes = 1 + 8 + 4 + 4 + 2 + kMaxNodeNameBytes;

using Digest = std::array<unsigned char, 16>;

// send_name ('N'): the connecting side's flags, creation and node name.
struct NameMessage {
    std::uint64_t flags = 0;
    std::uint32_t creation = 0;
    std::string name;
};
// send_challenge ('N'): the accepting side's flags, its challenge, creation and node name.
struct ChallengeMessage {
    std::uint64_t flags = 0;
    std::uint32_t challenge = 0;
    std::uint32_t creation = 0;
    std::string name;
};
// send_challenge_reply ('r'): the connecting side's own challenge and its answer to the acceptor's.
struct ChallengeReply {
    std::uint32_t challenge = 0;
    Digest digest{};
};

std::string name_body(const NameMessage& m);
std::string status_body(std::string_view status); // "ok", "not_allowed", ...
std::string challenge_body(const ChallengeMessage& m);
std::string challenge_reply_body(const ChallengeReply& m);
std::string challenge_ack_body(const Digest& digest);

// nullopt when the body is not that message: wrong tag, wrong size, a name that is no node name (alive@host,
// kMaxNodeNameBytes at most). The flags are given as sent (expand_flags to compare them).
std::optional<NameMessage> parse_name(std::string_view body);
std::optional<std::string> parse_status(std::string_view body);
std::optional<ChallengeMessage> parse_challenge(std::string_view body);
std::optional<ChallengeReply> parse_challenge_reply(std::string_view body);
std::optional<Digest> parse_challenge_ack(std::string_view body);

// Handshake messages have a 2-byte length in front over plain TCP, a 4-byte one over TLS (inet_tls_dist
// runs its handshake with {packet, 4}, as its data).
inline constexpr std::size_t kPlainLengthBytes = 2;
inline constexpr std::size_t kTlsLengthBytes = 4;
// The big-endian length of a message, read from its first 2 (or 4) bytes.
std::size_t body_length(std::span<const unsigned char> head);
// Whether a peer may send a body of this length before it is authenticated (1..kMaxMessageBytes); a longer
// one is no distribution handshake and is not read.
bool acceptable_body_length(std::size_t length);
// A body with its length in front, in `length_bytes` bytes.
std::string framed(std::string_view body, std::size_t length_bytes = kPlainLengthBytes);

// MD5(cookie ++ decimal text of challenge): the answer to a challenge, which proves the cookie without
// sending it.
Digest challenge_digest(std::string_view cookie, std::uint32_t challenge);
// Compares in constant time, so the time taken tells a peer nothing about how close its guess was.
bool same_digest(const Digest& a, const Digest& b);
// A challenge from the system's random source (ei takes the time of day and process ids instead).
std::uint32_t random_challenge();

} // namespace dpool::transport::handshake
