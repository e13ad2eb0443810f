#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "transport/dist_stream.hpp"
#include "util/asio.hpp"
#include "util/deadline_guard.hpp"

namespace dpool::transport {

// How a distribution connection is carried (README, "TLS"): plain TCP; TLS that takes any certificate
// (self-signed clusters); TLS whose peer's chain must lead to the configured CA and, on connections the C-node
// opens, name the target's host.
enum class TlsMode { none, unverified, verified };

std::string_view tls_mode_name(TlsMode mode);
std::optional<TlsMode> parse_tls_mode(std::string_view name);

// Where a TLS identity and its trust come from: PEM files, as OTP's ssl options certfile, keyfile and
// cacertfile. `password` unlocks an encrypted key; like the key, it never goes into a log or an error.
struct TlsSettings {
    TlsMode mode = TlsMode::none;
    std::string certfile;
    std::string keyfile;
    std::string cacertfile;
    std::string password;

    bool operator==(const TlsSettings&) const = default;
};

// Which end of the TLS handshake a context is for: the lanes accept callers (a certificate is required), pools
// connect to targets (a certificate is sent if there is one: a target may require it).
enum class TlsRole { accept, connect };

// A TLS context built from settings, ready for any number of connections; nullptr for mode none.
struct TlsContext {
    TlsMode mode = TlsMode::none;
    std::shared_ptr<ssl::context> context;
};

// Reads the files of `settings` (a few KiB, read once per C-node or per pool, never per connection) into a
// context for `role`. On failure: why, in words that name the file and never its contents.
std::variant<TlsContext, std::string> make_tls_context(const TlsSettings& settings, TlsRole role);

// The TLS handshake on a fresh connection, bounded by `deadline`. Connecting, `host` (the target's host) is
// what a verified certificate must name. nullopt when done, else why not, in words a user can act on.
asio::awaitable<std::optional<std::string>> tls_handshake(DistStream& stream, TlsMode mode, TlsRole role,
                                                          std::string_view host, DeadlineGuard& deadline);

} // namespace dpool::transport
