#include "transport/handshake_messages.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <stdexcept>

#include <fmt/format.h>

#include "protocol/node_identity.hpp"

namespace dpool::transport::handshake {

namespace {

void put_be(std::string& out, std::uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; --i) {
        out.push_back(static_cast<char>(value >> (8 * i)));
    }
}

// Reads big-endian integers from a body, refusing to read past its end.
class Reader {
public:
    explicit Reader(std::string_view body) : body_(body) {}

    std::optional<std::uint64_t> be(std::size_t bytes)
    {
        if (body_.size() - at_ < bytes) {
            return std::nullopt;
        }
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < bytes; ++i) {
            value = (value << 8) | static_cast<unsigned char>(body_[at_ + i]);
        }
        at_ += bytes;
        return value;
    }
    std::optional<std::string_view> bytes(std::size_t count)
    {
        if (body_.size() - at_ < count) {
            return std::nullopt;
        }
        const auto out = body_.substr(at_, count);
        at_ += count;
        return out;
    }
    bool tag(char expected)
    {
        const auto t = be(1);
        return t && static_cast<char>(*t) == expected;
    }
    bool at_end() const { return at_ == body_.size(); }

private:
    std::string_view body_;
    std::size_t at_ = 0;
};

// A node name as it ends a name or challenge message: a 2-byte length, then exactly that many bytes.
std::optional<std::string> read_node_name(Reader& in)
{
    const auto length = in.be(2);
    if (!length || *length > kMaxNodeNameBytes) {
        return std::nullopt;
    }
    const auto name = in.bytes(static_cast<std::size_t>(*length));
    if (!name || !in.at_end() || !protocol::parse_node_name(*name)) {
        return std::nullopt;
    }
    return std::string(*name);
}

void put_name(std::string& out, const std::string& name)
{
    put_be(out, name.size(), 2);
    out += name;
}

Digest read_digest(std::string_view bytes)
{
    Digest d{};
    for (std::size_t i = 0; i < d.size(); ++i) {
        d[i] = static_cast<unsigned char>(bytes[i]);
    }
    return d;
}

} // namespace

std::uint64_t expand_flags(std::uint64_t flags)
{
    return (flags & kDflagMandatory25Digest) != 0 ? flags | kMandatoryFlags : flags;
}

bool has_mandatory_flags(std::uint64_t flags) { return (expand_flags(flags) & kMandatoryFlags) == kMandatoryFlags; }

std::string name_body(const NameMessage& m)
{
    std::string out("N");
    put_be(out, m.flags, 8);
    put_be(out, m.creation, 4);
    put_name(out, m.name);
    return out;
}

std::string status_body(std::string_view status) { return fmt::format("s{}", status); }

std::string challenge_body(const ChallengeMessage& m)
{
    std::string out("N");
    put_be(out, m.flags, 8);
    put_be(out, m.challenge, 4);
    put_be(out, m.creation, 4);
    put_name(out, m.name);
    return out;
}

std::string challenge_reply_body(const ChallengeReply& m)
{
    std::string out("r");
    put_be(out, m.challenge, 4);
    out.append(reinterpret_cast<const char*>(m.digest.data()), m.digest.size());
    return out;
}

std::string challenge_ack_body(const Digest& digest)
{
    std::string out("a");
    out.append(reinterpret_cast<const char*>(digest.data()), digest.size());
    return out;
}

std::optional<NameMessage> parse_name(std::string_view body)
{
    Reader in(body);
    NameMessage m;
    if (!in.tag('N')) {
        return std::nullopt;
    }
    const auto flags = in.be(8);
    const auto creation = in.be(4);
    if (!flags || !creation) {
        return std::nullopt;
    }
    auto name = read_node_name(in);
    if (!name) {
        return std::nullopt;
    }
    m.flags = *flags;
    m.creation = static_cast<std::uint32_t>(*creation);
    m.name = std::move(*name);
    return m;
}

std::optional<std::string> parse_status(std::string_view body)
{
    if (body.empty() || body[0] != 's') {
        return std::nullopt;
    }
    return std::string(body.substr(1));
}

std::optional<ChallengeMessage> parse_challenge(std::string_view body)
{
    Reader in(body);
    ChallengeMessage m;
    if (!in.tag('N')) {
        return std::nullopt;
    }
    const auto flags = in.be(8);
    const auto challenge = in.be(4);
    const auto creation = in.be(4);
    if (!flags || !challenge || !creation) {
        return std::nullopt;
    }
    auto name = read_node_name(in);
    if (!name) {
        return std::nullopt;
    }
    m.flags = *flags;
    m.challenge = static_cast<std::uint32_t>(*challenge);
    m.creation = static_cast<std::uint32_t>(*creation);
    m.name = std::move(*name);
    return m;
}

std::optional<ChallengeReply> parse_challenge_reply(std::string_view body)
{
    Reader in(body);
    if (!in.tag('r')) {
        return std::nullopt;
    }
    const auto challenge = in.be(4);
    const auto digest = in.bytes(16);
    if (!challenge || !digest || !in.at_end()) {
        return std::nullopt;
    }
    return ChallengeReply{static_cast<std::uint32_t>(*challenge), read_digest(*digest)};
}

std::optional<Digest> parse_challenge_ack(std::string_view body)
{
    Reader in(body);
    if (!in.tag('a')) {
        return std::nullopt;
    }
    const auto digest = in.bytes(16);
    if (!digest || !in.at_end()) {
        return std::nullopt;
    }
    return read_digest(*digest);
}

std::size_t body_length(std::span<const unsigned char> head)
{
    std::size_t length = 0;
    for (const unsigned char b : head) {
        length = (length << 8) | b;
    }
    return length;
}

bool acceptable_body_length(std::size_t length) { return length > 0 && length <= kMaxMessageBytes; }

std::string framed(std::string_view body, std::size_t length_bytes)
{
    std::string out;
    put_be(out, body.size(), static_cast<int>(length_bytes));
    out += body;
    return out;
}

Digest challenge_digest(std::string_view cookie, std::uint32_t challenge)
{
    const std::string input = fmt::format("{}{}", cookie, challenge);
    Digest d{};
    unsigned int size = 0;
    if (EVP_Digest(input.data(), input.size(), d.data(), &size, EVP_md5(), nullptr) != 1 || size != d.size()) {
        throw std::runtime_error("MD5 is not available from OpenSSL");
    }
    return d;
}

bool same_digest(const Digest& a, const Digest& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

std::uint32_t random_challenge()
{
    std::uint32_t value = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&value), sizeof value) != 1) {
        throw std::runtime_error("no random challenge: OpenSSL's random source failed");
    }
    return value;
}

} // namespace dpool::transport::handshake
