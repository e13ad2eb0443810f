#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "pool/group_config.hpp"
#include "pool/pool_config.hpp"
#include "protocol/term_writer.hpp"

namespace dpool::api {

// Limits of the options (docs/PROTOCOL.md).
inline constexpr std::uint32_t kMaxConnectionsPerPool = 1000;
inline constexpr std::uint32_t kMaxAcquireTimeoutMs = 86'400'000;
inline constexpr std::uint32_t kMaxConnectTimeoutMs = 600'000;
inline constexpr std::uint32_t kMaxBackoffMs = 600'000;
inline constexpr std::uint32_t kMaxLifecycleMs = 86'400'000;
inline constexpr std::uint32_t kMaxDrainTimeoutMs = 600'000;
// max_waiters and max_pending_requests: 1..this.
inline constexpr std::uint32_t kMaxWaitersOption = 1'000'000;
inline constexpr std::uint32_t kMaxPendingRequestsOption = 1'000'000;
// A pool's name: an atom of at most this many bytes (Erlang's limit is 255 characters).
inline constexpr std::size_t kMaxPoolNameBytes = 255;
// A pool's own cookie (option `cookie`): printable ASCII without spaces, 1..this many bytes (as the C-node's).
inline constexpr std::size_t kMaxCookieBytes = 255;
// Whether `cookie` is one the option `cookie` takes.
bool acceptable_cookie(std::string_view cookie);

// Why the target or the options of `new` (or of a pool to restore) were refused: the Why of
// {error, {invalid_config, Why}} (docs/PROTOCOL.md, "Errors"). Views point into the request being handled.
struct ConfigError {
    enum class Kind : std::uint8_t {
        bad_target,       // {bad_target, Target}: not Alive@Host
        bad_options,      // {bad_options, Options}: not a map
        unknown_option,   // {unknown_option, Key} or {unknown_option, Key, {did_you_mean, Known}}
        duplicate_option, // {duplicate_option, Key}
        bad_value,        // {bad_value, Key, Value, Allowed}: wrong type or out of range; Allowed says what fits
        missing_option,   // {missing_option, Key}
        target_is_self,   // {target_is_self, Target}: the C-node itself, one of its lanes or pooled connections
        target_not_allowed, // {target_not_allowed, Target}: outside the C-node's target allow-list (--allow-target)
        tls_unusable,     // {tls_unusable, Text}: the option tls names files that give no TLS context (Text: why)
        duplicate_target, // {duplicate_target, Target}: a group has a member for that target already
        unknown_target,   // {unknown_target, Target}: a group has no member for that target
        last_target,      // {last_target, Target}: the group's only member, which cannot be removed
    };
    Kind kind = Kind::bad_options;
    std::string_view term;         // the target, options or key, encoded as it came
    std::string_view key_name;     // missing_option, bad_value without `term`: the key's name (not in the request)
    std::string_view value;        // bad_value: the value, encoded as it came
    std::string_view did_you_mean; // unknown_option: the known key closest to it, or empty
    std::string allowed;           // bad_value: what the key takes, in words; tls_unusable: why
    bool hide_value = false;       // bad_value of a secret (cookie): written as the atom `hidden`
};
void write_config_error(protocol::TermWriter& w, const ConfigError& error);

// A parsed value, or why it could not be parsed: optional's interface plus error().
template <class T, class E>
class Parsed {
public:
    Parsed(T value) : value_(std::move(value)) {}
    Parsed(E error) : error_(std::move(error)) {}
    bool has_value() const { return value_.has_value(); }
    explicit operator bool() const { return has_value(); }
    T& operator*() { return *value_; }
    const T& operator*() const { return *value_; }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    const E& error() const { return error_; }

private:
    std::optional<T> value_;
    E error_{};
};

// The target and options map of `new`, or why they are refused (unknown key, wrong type, out of range...).
// With `base` (a group's pool options map), `options` go over it: a member of that group.
Parsed<pool::PoolConfig, ConfigError> parse_pool_options(std::string_view target, std::string_view options,
                                                         std::string_view base = {});

// A group's own options map (`new_group`): strategy, name, owner, owner_grace_ms; or why it is refused.
Parsed<pool::GroupConfig, ConfigError> parse_group_options(std::string_view options);

} // namespace dpool::api
