#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/asio.hpp"

namespace dpool::api {

// Bounds of the allow-lists (their options are repeated on the command line, not read from the network, but a
// long list would still be scanned for every handshake and every `new`).
inline constexpr std::size_t kMaxAccessEntries = 256;
inline constexpr std::size_t kMaxPatternBytes = 511; // 255 for each side of '@', and the '@'

// Whether `text` matches `pattern`, where `*` stands for any run of characters (none included) and every
// other character for itself; `ignore_case`: ASCII letters compare without case. Linear in the product of
// the lengths at worst (no backtracking beyond the last `*`): no regular expression on untrusted names.
bool glob_match(std::string_view pattern, std::string_view text, bool ignore_case);

// A pattern of node names: `alive@host`, either side with `*` globs (`app_*@10.0.0.*`, `*@host`); without
// '@' it names hosts only (`db.example.com` is `*@db.example.com`). The alive part compares exactly, the
// host part without case, as node names do (protocol::same_host).
class NodePattern {
public:
    // nullopt: empty, longer than kMaxPatternBytes, two '@', or a character no node name has (letters,
    // digits, '_', '-', '.' and '*' only).
    static std::optional<NodePattern> parse(std::string_view text);
    bool matches(std::string_view node) const;
    const std::string& text() const { return text_; }

private:
    std::string text_;
    std::string alive_; // "*" for a host-only pattern
    std::string host_;
};

// An IPv4 address (`10.0.0.7`) or CIDR range (`10.0.0.0/8`).
class AddressRange {
public:
    // nullopt: not four decimal octets, a prefix length beyond 32, or host bits set under the prefix
    // (`10.0.0.1/8` is a slip for `10.0.0.0/8` or for the single address; refused rather than guessed).
    static std::optional<AddressRange> parse(std::string_view text);
    // An IPv4 address, or an IPv4-mapped IPv6 one (::ffff:a.b.c.d); any other IPv6 address is in no range.
    bool contains(const asio::ip::address& address) const;

private:
    std::uint32_t network_ = 0;
    std::uint32_t mask_ = 0;
};

// Who may use the C-node as a caller. An empty list does not restrict: with neither list, any node that has
// the cookie; with both, a caller must match a name pattern and come from an address in a range.
struct CallerAccess {
    std::vector<NodePattern> nodes;
    std::vector<AddressRange> addresses;

    bool restricted() const { return !nodes.empty() || !addresses.empty(); }
    // Why `node`, connecting from `from`, is not allowed; nullopt when it is.
    std::optional<std::string> refusal(std::string_view node, const asio::ip::address& from) const;
};

// Where pools may connect: to a target that matches one of the patterns; empty: anywhere.
struct TargetAccess {
    std::vector<NodePattern> nodes;

    bool allows(std::string_view target) const;
};

} // namespace dpool::api
