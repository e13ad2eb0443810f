#pragma once

// What the handshake fuzz targets share: a peer's handshake messages read from a byte stream as
// transport/handshake.cpp reads them from a socket (a 2-byte length, then a body of an acceptable length).

#include <array>
#include <optional>
#include <string_view>

#include "transport/handshake_messages.hpp"

namespace dpool::fuzz {

namespace hs = dpool::transport::handshake;

// The next message's body, taken from the front of `in`; nullopt where the coroutine stops reading: the
// stream ends, or a length is one no handshake message has.
inline std::optional<std::string_view> next_body(std::string_view& in)
{
    if (in.size() < 2) {
        return std::nullopt;
    }
    const std::array<unsigned char, 2> head{static_cast<unsigned char>(in[0]), static_cast<unsigned char>(in[1])};
    const std::size_t length = hs::body_length(head);
    if (!hs::acceptable_body_length(length) || in.size() < 2 + length) {
        return std::nullopt;
    }
    const std::string_view body = in.substr(2, length);
    in.remove_prefix(2 + length);
    return body;
}

// A node name as the parsers may return one: alive@host with one '@' and neither part empty, within an atom's
// length, and only visible ASCII (the name goes into logs, error texts and file names).
inline bool is_node_name(std::string_view name)
{
    const auto at = name.find('@');
    if (name.size() > hs::kMaxNodeNameBytes || at == std::string_view::npos || at == 0 || at + 1 == name.size() ||
        name.find('@', at + 1) != std::string_view::npos) {
        return false;
    }
    for (const char c : name) {
        if (c < 0x21 || c > 0x7E) {
            return false;
        }
    }
    return true;
}

} // namespace dpool::fuzz
