#pragma once

#include <cstdint>
#include <string_view>

namespace dpool::transport {

// Which step of opening a connection failed: what a caller is told ({connection_failed, {Kind, Text}}).
enum class ConnectError : std::uint8_t {
    unreachable,       // the host cannot be resolved, or its epmd or the node's port cannot be reached
    not_registered,    // the target host's epmd has no node of that name
    handshake_refused, // the target refused the distribution handshake (a wrong cookie, a name in use...)
    tls_failed,        // the TLS handshake failed (a certificate refused by either end, a plain target...)
    timeout,           // connect_timeout_ms passed first
};

constexpr std::string_view error_kind_name(ConnectError kind)
{
    switch (kind) {
    case ConnectError::unreachable:
        return "unreachable";
    case ConnectError::not_registered:
        return "not_registered";
    case ConnectError::handshake_refused:
        return "handshake_refused";
    case ConnectError::tls_failed:
        return "tls_failed";
    case ConnectError::timeout:
        return "timeout";
    }
    return "unreachable";
}

} // namespace dpool::transport
