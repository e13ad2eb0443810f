#include "transport/handshake.hpp"

#include <array>
#include <span>

#include <fmt/format.h>

#include "protocol/dist_header.hpp"
#include "transport/handshake_messages.hpp"

namespace dpool::transport {

namespace hs = handshake;

namespace {

// What reading one handshake message gave: its body, or why there is none.
struct Received {
    std::optional<std::string> body;
    bool closed = false;    // the peer closed the connection (or it was reset) before a whole message
    bool oversized = false; // its length is more than any handshake message needs: no distribution peer
    error_code error;       // why it was closed
};

std::size_t length_bytes(const DistStream& stream)
{
    return stream.encrypted() ? hs::kTlsLengthBytes : hs::kPlainLengthBytes;
}

asio::awaitable<Received> read_message(DistStream& stream, LinkRecording* recording)
{
    Received out;
    std::array<unsigned char, hs::kTlsLengthBytes> buffer{};
    const std::span<unsigned char> head(buffer.data(), length_bytes(stream));
    error_code ec;
    co_await asio::async_read(stream, asio::buffer(head.data(), head.size()),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        out.closed = true;
        out.error = ec;
        co_return out;
    }
    const std::size_t length = hs::body_length(head);
    if (!hs::acceptable_body_length(length)) {
        out.oversized = true;
        co_return out;
    }
    std::string body(length, '\0');
    co_await asio::async_read(stream, asio::buffer(body), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
        out.closed = true;
        co_return out;
    }
    if (recording != nullptr) {
        recording->record(body);
    }
    out.body = std::move(body);
    co_return out;
}

// One message body, or two, each framed for the stream.
asio::awaitable<bool> write_messages(DistStream& stream, std::string body, std::string next_body = {})
{
    std::string bytes = hs::framed(body, length_bytes(stream));
    if (!next_body.empty()) {
        bytes += hs::framed(next_body, length_bytes(stream));
    }
    error_code ec;
    co_await asio::async_write(stream, asio::buffer(bytes), asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
}

HandshakeOutcome failure(const DeadlineGuard& deadline, std::string error)
{
    HandshakeOutcome out;
    out.timed_out = deadline.expired();
    out.error = out.timed_out ? "timed out" : std::move(error);
    return out;
}

// The peer's words as they may go into an error text: printable ASCII only, at most 64 of them.
std::string printable(std::string_view bytes)
{
    std::string out;
    for (const char c : bytes.substr(0, 64)) {
        out.push_back(c >= 0x20 && c < 0x7F ? c : '?');
    }
    return out;
}

// Why a target's status is not a go-ahead, in the words of OTP's distribution protocol.
std::string refusal_of(std::string_view status)
{
    if (status == "not_allowed") {
        return "it does not allow connections from this node (net_kernel:allow/1)";
    }
    if (status == "alive") {
        return "it already has a connection from a node of this name";
    }
    if (status == "nok") {
        return "it is connecting to this node at the same time";
    }
    return fmt::format("it answered status '{}'", printable(status));
}

constexpr std::string_view kNoDistribution = "it closed the connection without answering (is it running TLS "
                                             "distribution, -proto_dist inet_tls, or is this not a distribution "
                                             "port?)";

} // namespace

asio::awaitable<HandshakeOutcome> accept_handshake(DistStream& stream, const HandshakeIdentity& self,
                                                   const std::string& cookie, DeadlineGuard& deadline,
                                                   const AdmitPeer& admit, const std::function<void()>& on_progress,
                                                   LinkRecording* recording)
{
    deadline.guard(stream.socket());
    if (deadline.expired()) {
        co_return failure(deadline, "");
    }
    const auto name_message = co_await read_message(stream, recording);
    if (!name_message.body) {
        co_return failure(deadline, name_message.oversized ? "its first message is no distribution handshake"
                                                           : "it closed the connection before naming itself");
    }
    on_progress();
    const auto peer = hs::parse_name(*name_message.body);
    if (!peer) {
        co_return failure(deadline, "its name message is malformed (or from a release before OTP 23)");
    }
    if (!hs::has_mandatory_flags(peer->flags)) {
        co_return failure(deadline, fmt::format("{} lacks capabilities OTP 25 requires", peer->name));
    }
    if (auto refused = admit(peer->name)) {
        co_await write_messages(stream, hs::status_body("not_allowed"));
        auto out = failure(deadline, fmt::format("{}: {}", peer->name, refused->why));
        out.reported = refused->reported;
        co_return out;
    }
    const std::uint32_t our_challenge = hs::random_challenge();
    const hs::ChallengeMessage challenge{hs::kOwnFlags, our_challenge, self.creation, self.node_name};
    if (!co_await write_messages(stream, hs::status_body("ok"), hs::challenge_body(challenge))) {
        co_return failure(deadline, fmt::format("{} went away during the handshake", peer->name));
    }
    const auto reply_message = co_await read_message(stream, recording);
    if (!reply_message.body) {
        co_return failure(deadline, fmt::format("{} went away before answering our challenge", peer->name));
    }
    on_progress();
    const auto reply = hs::parse_challenge_reply(*reply_message.body);
    if (!reply) {
        co_return failure(deadline, fmt::format("{} sent a malformed challenge reply", peer->name));
    }
    if (!hs::same_digest(reply->digest, hs::challenge_digest(cookie, our_challenge))) {
        co_return failure(deadline, fmt::format("{} does not have our cookie", peer->name));
    }
    if (!co_await write_messages(stream, hs::challenge_ack_body(hs::challenge_digest(cookie, reply->challenge)))) {
        co_return failure(deadline, fmt::format("{} went away at the end of the handshake", peer->name));
    }
    HandshakeOutcome out;
    out.ok = true;
    out.peer_node = peer->name;
    out.peer_flags = hs::expand_flags(peer->flags);
    co_return out;
}

asio::awaitable<HandshakeOutcome> connect_handshake(DistStream& stream, const HandshakeIdentity& self,
                                                    const std::string& cookie, DeadlineGuard& deadline,
                                                    LinkRecording* recording)
{
    deadline.guard(stream.socket());
    if (deadline.expired()) {
        co_return failure(deadline, "");
    }
    const hs::NameMessage name{hs::kOwnFlags | protocol::kDflagDistHdrAtomCache, self.creation, self.node_name};
    if (!co_await write_messages(stream, hs::name_body(name))) {
        co_return failure(deadline, std::string(kNoDistribution));
    }
    const auto status_message = co_await read_message(stream, recording);
    if (stream.encrypted() && status_message.error.category() == asio::error::get_ssl_category()) {
        auto out = failure(deadline, fmt::format("it ended the TLS session: {}", status_message.error.message()));
        out.tls_refused = !out.timed_out;
        co_return out;
    }
    const auto status = status_message.body ? hs::parse_status(*status_message.body) : std::nullopt;
    if (!status) {
        co_return failure(deadline, std::string(kNoDistribution));
    }
    if (*status != "ok" && *status != "ok_simultaneous") {
        co_return failure(deadline, refusal_of(*status));
    }
    const auto challenge_message = co_await read_message(stream, recording);
    if (!challenge_message.body) {
        co_return failure(deadline, "it closed the connection after its status, before its challenge");
    }
    const auto challenge = hs::parse_challenge(*challenge_message.body);
    if (!challenge) {
        co_return failure(deadline, "its challenge is malformed (a release before OTP 23?)");
    }
    if (!hs::has_mandatory_flags(challenge->flags)) {
        co_return failure(deadline, "it lacks capabilities OTP 25 requires");
    }
    const std::uint32_t our_challenge = hs::random_challenge();
    const hs::ChallengeReply reply{our_challenge, hs::challenge_digest(cookie, challenge->challenge)};
    if (!co_await write_messages(stream, hs::challenge_reply_body(reply))) {
        co_return failure(deadline, "it did not accept our answer to its challenge: the cookie is not the target's");
    }
    const auto ack_message = co_await read_message(stream, recording);
    if (!ack_message.body) {
        co_return failure(deadline, "it did not accept our answer to its challenge: the cookie is not the target's");
    }
    const auto ack = hs::parse_challenge_ack(*ack_message.body);
    if (!ack || !hs::same_digest(*ack, hs::challenge_digest(cookie, our_challenge))) {
        co_return failure(deadline, "it accepted our answer, but its own answer to our challenge is wrong");
    }
    HandshakeOutcome out;
    out.ok = true;
    out.peer_node = challenge->name;
    out.peer_flags = hs::expand_flags(challenge->flags);
    co_return out;
}

} // namespace dpool::transport
