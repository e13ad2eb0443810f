#include "api/access_list.hpp"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include "protocol/node_identity.hpp"

namespace dpool::api {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool pattern_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
           c == '.' || c == '*';
}

// One decimal number of at most `max`, all of `text`.
std::optional<std::uint32_t> decimal(std::string_view text, std::uint32_t max)
{
    if (text.empty() || text.size() > 3) {
        return std::nullopt;
    }
    std::uint32_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value > max) {
        return std::nullopt;
    }
    return value;
}

std::optional<std::uint32_t> ipv4(std::string_view text)
{
    std::uint32_t address = 0;
    for (int octet = 0; octet < 4; ++octet) {
        const auto dot = octet < 3 ? text.find('.') : text.size();
        if (dot == std::string_view::npos) {
            return std::nullopt;
        }
        const auto value = decimal(text.substr(0, dot), 255);
        if (!value) {
            return std::nullopt;
        }
        address = (address << 8) | *value;
        text.remove_prefix(std::min(text.size(), dot + 1));
    }
    return address;
}

} // namespace

bool glob_match(std::string_view pattern, std::string_view text, bool ignore_case)
{
    const auto same = [ignore_case](char p, char t) { return ignore_case ? lower(p) == lower(t) : p == t; };
    std::size_t p = 0;
    std::size_t t = 0;
    // Where the last '*' was, and the text position it is taken to run to: on a mismatch the star takes one
    // more character. Earlier stars never need to take more (any match they could give, the last one gives).
    std::size_t star = std::string_view::npos;
    std::size_t star_text = 0;
    while (t < text.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            star_text = t;
        } else if (p < pattern.size() && same(pattern[p], text[t])) {
            ++p;
            ++t;
        } else if (star != std::string_view::npos) {
            p = star + 1;
            t = ++star_text;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') {
        ++p;
    }
    return p == pattern.size();
}

std::optional<NodePattern> NodePattern::parse(std::string_view text)
{
    if (text.empty() || text.size() > kMaxPatternBytes) {
        return std::nullopt;
    }
    const auto at = text.find('@');
    if (at != std::string_view::npos && text.find('@', at + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    const auto alive = at == std::string_view::npos ? std::string_view("*") : text.substr(0, at);
    const auto host = at == std::string_view::npos ? text : text.substr(at + 1);
    if (alive.empty() || host.empty() || !std::all_of(alive.begin(), alive.end(), pattern_char) ||
        !std::all_of(host.begin(), host.end(), pattern_char)) {
        return std::nullopt;
    }
    NodePattern out;
    out.text_ = std::string(text);
    out.alive_ = std::string(alive);
    out.host_ = std::string(host);
    return out;
}

bool NodePattern::matches(std::string_view node) const
{
    const auto name = protocol::parse_node_name(node);
    return name && glob_match(alive_, name->alive, false) && glob_match(host_, name->host, true);
}

std::optional<AddressRange> AddressRange::parse(std::string_view text)
{
    const auto slash = text.find('/');
    const auto address = ipv4(text.substr(0, slash));
    if (!address) {
        return std::nullopt;
    }
    std::uint32_t prefix = 32;
    if (slash != std::string_view::npos) {
        const auto given = decimal(text.substr(slash + 1), 32);
        if (!given) {
            return std::nullopt;
        }
        prefix = *given;
    }
    AddressRange out;
    out.mask_ = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
    if ((*address & ~out.mask_) != 0) {
        return std::nullopt;
    }
    out.network_ = *address;
    return out;
}

bool AddressRange::contains(const asio::ip::address& address) const
{
    std::uint32_t v4 = 0;
    if (address.is_v4()) {
        v4 = address.to_v4().to_uint();
    } else if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        v4 = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_uint();
    } else {
        return false;
    }
    return (v4 & mask_) == network_;
}

std::optional<std::string> CallerAccess::refusal(std::string_view node, const asio::ip::address& from) const
{
    if (!nodes.empty() &&
        std::none_of(nodes.begin(), nodes.end(), [&](const NodePattern& p) { return p.matches(node); })) {
        return std::string("its name matches no allowed caller pattern (--allow-caller)");
    }
    if (!addresses.empty() &&
        std::none_of(addresses.begin(), addresses.end(), [&](const AddressRange& r) { return r.contains(from); })) {
        return fmt::format("its address {} is in no allowed range (--allow-caller-address)", from.to_string());
    }
    return std::nullopt;
}

bool TargetAccess::allows(std::string_view target) const
{
    return nodes.empty() ||
           std::any_of(nodes.begin(), nodes.end(), [&](const NodePattern& p) { return p.matches(target); });
}

} // namespace dpool::api
