// The options of `new` (and of pools to restore): read, checked against their ranges, and explained when
// refused (docs/PROTOCOL.md, "Types" and "Errors").
#include "api/pool_options.hpp"

#include <algorithm>
#include <iterator>
#include <vector>

#include <fmt/format.h>

#include "protocol/node_identity.hpp"
#include "protocol/term_reader.hpp"

namespace dpool::api {

using protocol::TermReader;

namespace {

// An integer option: its key, where it goes, and its range. `zero_disables`: 0 is also accepted, meaning off.
struct IntegerOption {
    std::string_view key;
    std::uint32_t pool::PoolConfig::*field;
    std::uint32_t min;
    std::uint32_t max;
    bool zero_disables = false;
};

constexpr IntegerOption kIntegerOptions[] = {
    {"min_connections", &pool::PoolConfig::min_connections, 0, kMaxConnectionsPerPool},
    {"max_connections", &pool::PoolConfig::max_connections, 1, kMaxConnectionsPerPool},
    {"acquire_timeout_ms", &pool::PoolConfig::acquire_timeout_ms, 0, kMaxAcquireTimeoutMs},
    {"connect_timeout_ms", &pool::PoolConfig::connect_timeout_ms, 1, kMaxConnectTimeoutMs},
    {"backoff_min_ms", &pool::PoolConfig::backoff_min_ms, 1, kMaxBackoffMs},
    {"backoff_max_ms", &pool::PoolConfig::backoff_max_ms, 1, kMaxBackoffMs},
    {"max_idle_ms", &pool::PoolConfig::max_idle_ms, 10, kMaxLifecycleMs, true},
    {"max_lifetime_ms", &pool::PoolConfig::max_lifetime_ms, 100, kMaxLifecycleMs, true},
    {"health_check_interval_ms", &pool::PoolConfig::health_check_interval_ms, 10, kMaxLifecycleMs, true},
    {"health_check_timeout_ms", &pool::PoolConfig::health_check_timeout_ms, 1, kMaxConnectTimeoutMs},
    {"resize_window_ms", &pool::PoolConfig::resize_window_ms, 100, kMaxLifecycleMs},
    {"owner_grace_ms", &pool::PoolConfig::owner_grace_ms, 0, kMaxLifecycleMs},
    {"max_waiters", &pool::PoolConfig::max_waiters, 1, kMaxWaitersOption},
    {"max_pending_requests", &pool::PoolConfig::max_pending_requests, 1, kMaxPendingRequestsOption},
};

// An option that is one of two atoms: `on` sets the field, `off` clears it.
struct FlagOption {
    std::string_view key;
    bool pool::PoolConfig::*field;
    std::string_view on;
    std::string_view off;
    std::string_view allowed; // what a refusal says the key takes
};

constexpr FlagOption kFlagOptions[] = {
    {"validate_on_checkout", &pool::PoolConfig::validate_on_checkout, "true", "false", "true or false"},
    {"owner", &pool::PoolConfig::ownerless, "none", "creator", "creator (the node that makes the pool) or none"},
};

// Keys of neither kind. `cnode` is read by the library and never sent; it is here only so that a misspelling
// of it is answered with the right suggestion.
constexpr std::string_view kOtherKeys[] = {"name", "cookie", "tls", "cnode"};

// Edit distance (insertions, deletions, substitutions), for suggesting the known key a misspelt one meant.
std::size_t edit_distance(std::string_view a, std::string_view b)
{
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

// The known key closest to `key`, if it is close enough to be a slip (at most 3 edits, and fewer than half
// its length); empty otherwise.
std::string_view nearest_key(std::string_view key)
{
    std::string_view best;
    std::size_t best_distance = 4;
    const auto consider = [&](std::string_view known) {
        const std::size_t d = edit_distance(key, known);
        if (d > 0 && d < best_distance && 2 * d < known.size()) {
            best = known;
            best_distance = d;
        }
    };
    for (const auto& o : kIntegerOptions) {
        consider(o.key);
    }
    for (const auto& o : kFlagOptions) {
        consider(o.key);
    }
    for (const auto known : kOtherKeys) {
        consider(known);
    }
    return best;
}

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view text)
{
    std::size_t i = 0;
    while (i < text.size()) {
        const auto b = static_cast<std::uint8_t>(text[i]);
        std::size_t length = 0;
        std::uint32_t code = 0;
        if (b < 0x80) {
            ++i;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            length = 2;
            code = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            length = 3;
            code = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            length = 4;
            code = b & 0x07;
        } else {
            return false;
        }
        if (i + length > text.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto c = static_cast<std::uint8_t>(text[i + k]);
            if ((c & 0xC0) != 0x80) {
                return false;
            }
            code = (code << 6) | (c & 0x3F);
        }
        constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
        if (code < kSmallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
            return false;
        }
        i += length;
    }
    return true;
}

std::string integer_range(const IntegerOption& o)
{
    return o.zero_disables ? fmt::format("0 (off) or an integer in {}..{}", o.min, o.max)
                           : fmt::format("an integer in {}..{}", o.min, o.max);
}

// A key read from the options map: its text, and the key and value terms as they came.
struct SeenOption {
    std::string_view key;
    std::string_view key_term; // encoded
    std::string_view value;    // encoded
};

ConfigError bad_value(std::string_view key_term, std::string_view value, std::string allowed)
{
    ConfigError e;
    e.kind = ConfigError::Kind::bad_value;
    e.term = key_term;
    e.value = value;
    e.allowed = std::move(allowed);
    return e;
}

constexpr std::string_view kTlsAllowed =
    "none, unverified, verified, or #{mode := Mode, certfile, keyfile, cacertfile, password => binary()}";
// The most bytes of a path or password in the option `tls`.
constexpr std::size_t kMaxTlsFieldBytes = 4096;

// The option `tls`: a mode, or a map of a mode and files (binaries; the library turns strings into them).
// Keys not given stay empty: the C-node's are used. On failure, whether the value must be hidden (a map,
// which may hold a password).
Parsed<transport::TlsSettings, bool> read_tls_option(std::string_view bytes)
{
    TermReader r(bytes);
    if (const auto atom = r.atom()) {
        if (const auto mode = transport::parse_tls_mode(*atom)) {
            transport::TlsSettings settings;
            settings.mode = *mode;
            return settings;
        }
        return false;
    }
    TermReader m(bytes);
    const auto arity = m.map_header();
    if (!arity) {
        return false;
    }
    transport::TlsSettings settings;
    bool has_mode = false;
    bool ok = true;
    for (std::uint32_t k = 0; k < *arity && ok; ++k) {
        const auto key = m.atom();
        if (!key) {
            ok = false;
            break;
        }
        if (*key == "mode") {
            const auto atom = m.atom();
            const auto mode = atom ? transport::parse_tls_mode(*atom) : std::nullopt;
            ok = mode.has_value();
            settings.mode = mode.value_or(transport::TlsMode::none);
            has_mode = true;
            continue;
        }
        std::string* field = *key == "certfile"     ? &settings.certfile
                             : *key == "keyfile"    ? &settings.keyfile
                             : *key == "cacertfile" ? &settings.cacertfile
                             : *key == "password"   ? &settings.password
                                                    : nullptr;
        const auto text = field ? m.binary() : std::nullopt;
        ok = text && !text->empty() && text->size() <= kMaxTlsFieldBytes &&
             text->find('\0') == std::string_view::npos;
        if (ok) {
            *field = std::string(*text);
        }
    }
    if (!ok || !has_mode) {
        return true; // a misspelt key (passwd) may hold the password as well as `password`
    }
    return settings;
}

// Sets one option from the reader, or says why it cannot be set.
std::optional<ConfigError> read_option(TermReader& r, pool::PoolConfig& config, std::vector<SeenOption>& seen)
{
    const auto key_term = r.skip();
    const auto value_term = key_term ? r.skip() : std::nullopt;
    ConfigError e;
    if (!key_term || !value_term) {
        e.kind = ConfigError::Kind::bad_options; // cut short: the caller names the whole map
        return e;
    }
    e.term = *key_term;
    const std::string_view value_bytes = value_term.value_or(std::string_view{});
    TermReader key_reader(*key_term);
    const auto key = key_reader.atom();
    if (!key) {
        e.kind = ConfigError::Kind::unknown_option; // no atom can be a known key
        return e;
    }
    if (std::any_of(seen.begin(), seen.end(), [&](const SeenOption& o) { return o.key == *key; })) {
        e.kind = ConfigError::Kind::duplicate_option;
        return e;
    }
    seen.push_back(SeenOption{*key, e.term, value_bytes});
    TermReader value(value_bytes);
    if (const auto flag = std::find_if(std::begin(kFlagOptions), std::end(kFlagOptions),
                                       [&](const FlagOption& o) { return o.key == *key; });
        flag != std::end(kFlagOptions)) {
        const auto atom = value.atom();
        if (!atom || (*atom != flag->on && *atom != flag->off)) {
            return bad_value(e.term, value_bytes, std::string(flag->allowed));
        }
        config.*(flag->field) = *atom == flag->on;
        return std::nullopt;
    }
    if (*key == "cookie") {
        // An atom, as Erlang's cookies are, or a binary (Elixir and Gleam strings).
        auto cookie = value.atom();
        if (!cookie) {
            cookie = TermReader(value_bytes).binary();
        }
        if (!cookie || !acceptable_cookie(*cookie)) {
            auto refused = bad_value(e.term, value_bytes,
                                     fmt::format("an atom or binary of 1..{} printable ASCII characters, no spaces",
                                                 kMaxCookieBytes));
            refused.hide_value = true;
            return refused;
        }
        config.cookie = std::string(*cookie);
        return std::nullopt;
    }
    if (*key == "tls") {
        auto tls = read_tls_option(value_bytes);
        if (!tls) {
            auto refused = bad_value(e.term, value_bytes, std::string(kTlsAllowed));
            refused.hide_value = tls.error(); // a map: it may hold a password, under any key
            return refused;
        }
        config.tls = *std::move(tls);
        return std::nullopt;
    }
    if (*key == "name") {
        const auto name = value.atom();
        // Written back as a UTF-8 atom (stats, logs): bytes that are no UTF-8 could not be.
        if (!name || name->empty() || name->size() > kMaxPoolNameBytes || *name == "undefined" ||
            !valid_utf8(*name)) {
            return bad_value(e.term, value_bytes, "a non-empty UTF-8 atom other than undefined");
        }
        config.name = std::string(*name);
        return std::nullopt;
    }
    const auto option = std::find_if(std::begin(kIntegerOptions), std::end(kIntegerOptions),
                                     [&](const IntegerOption& o) { return o.key == *key; });
    if (option == std::end(kIntegerOptions)) {
        e.kind = ConfigError::Kind::unknown_option;
        e.did_you_mean = nearest_key(*key);
        return e;
    }
    const auto v = value.integer();
    const bool in_range = v && ((*v >= option->min && *v <= option->max) || (option->zero_disables && *v == 0));
    if (!in_range) {
        return bad_value(e.term, value_bytes, integer_range(*option));
    }
    config.*(option->field) = static_cast<std::uint32_t>(*v);
    return std::nullopt;
}

} // namespace

bool acceptable_cookie(std::string_view cookie)
{
    return !cookie.empty() && cookie.size() <= kMaxCookieBytes &&
           std::all_of(cookie.begin(), cookie.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

void write_config_error(protocol::TermWriter& w, const ConfigError& e)
{
    switch (e.kind) {
    case ConfigError::Kind::bad_target:
    case ConfigError::Kind::bad_options:
    case ConfigError::Kind::duplicate_option:
    case ConfigError::Kind::target_is_self:
    case ConfigError::Kind::target_not_allowed:
    case ConfigError::Kind::duplicate_target:
    case ConfigError::Kind::unknown_target:
    case ConfigError::Kind::last_target:
        w.tuple(2);
        w.atom(e.kind == ConfigError::Kind::bad_target           ? "bad_target"
               : e.kind == ConfigError::Kind::bad_options        ? "bad_options"
               : e.kind == ConfigError::Kind::target_is_self     ? "target_is_self"
               : e.kind == ConfigError::Kind::target_not_allowed ? "target_not_allowed"
               : e.kind == ConfigError::Kind::duplicate_target   ? "duplicate_target"
               : e.kind == ConfigError::Kind::unknown_target     ? "unknown_target"
               : e.kind == ConfigError::Kind::last_target        ? "last_target"
                                                                  : "duplicate_option");
        w.raw(e.term);
        return;
    case ConfigError::Kind::unknown_option:
        w.tuple(e.did_you_mean.empty() ? 2 : 3);
        w.atom("unknown_option");
        if (e.term.empty()) {
            w.atom(e.key_name);
        } else {
            w.raw(e.term);
        }
        if (!e.did_you_mean.empty()) {
            w.tuple(2);
            w.atom("did_you_mean");
            w.atom(e.did_you_mean);
        }
        return;
    case ConfigError::Kind::bad_value:
        w.tuple(4);
        w.atom("bad_value");
        if (e.term.empty()) {
            w.atom(e.key_name);
        } else {
            w.raw(e.term);
        }
        if (e.hide_value) {
            w.atom("hidden");
        } else {
            w.raw(e.value);
        }
        w.binary(e.allowed);
        return;
    case ConfigError::Kind::tls_unusable:
        w.tuple(2);
        w.atom("tls_unusable");
        w.binary(e.allowed);
        return;
    case ConfigError::Kind::missing_option:
        w.tuple(2);
        w.atom("missing_option");
        w.atom(e.key_name);
        return;
    }
}

namespace {

// Reads every entry of the options map `options` into `config`; `seen` gets the keys read.
std::optional<ConfigError> read_options(std::string_view options, pool::PoolConfig& config,
                                        std::vector<SeenOption>& seen)
{
    ConfigError whole;
    whole.kind = ConfigError::Kind::bad_options;
    whole.term = options;
    TermReader r(options);
    const auto pairs = r.map_header();
    if (!pairs) {
        return whole;
    }
    for (std::uint32_t i = 0; i < *pairs; ++i) {
        if (auto error = read_option(r, config, seen)) {
            return error->kind == ConfigError::Kind::bad_options ? whole : std::move(*error);
        }
    }
    if (!r.at_end()) {
        return whole;
    }
    return std::nullopt;
}

} // namespace

Parsed<pool::PoolConfig, ConfigError> parse_pool_options(std::string_view target, std::string_view options,
                                                         std::string_view base)
{
    if (!protocol::parse_node_name(target)) {
        ConfigError e;
        e.kind = ConfigError::Kind::bad_target;
        return e; // the caller knows the target's encoded term
    }
    pool::PoolConfig config;
    config.target = std::string(target);
    // A group's pool options first, then the member's own over them (each map holds a key once).
    std::vector<SeenOption> seen_base;
    if (!base.empty()) {
        if (auto error = read_options(base, config, seen_base)) {
            return std::move(*error);
        }
    }
    std::vector<SeenOption> seen;
    if (auto error = read_options(options, config, seen)) {
        return std::move(*error);
    }
    for (const auto& o : seen_base) {
        if (std::none_of(seen.begin(), seen.end(), [&](const SeenOption& own) { return own.key == o.key; })) {
            seen.push_back(o);
        }
    }
    const auto given = [&](std::string_view key) -> const SeenOption* {
        const auto it = std::find_if(seen.begin(), seen.end(), [&](const SeenOption& o) { return o.key == key; });
        return it == seen.end() ? nullptr : &*it;
    };
    const auto blame = [&](std::string_view key, std::string allowed) {
        const SeenOption& o = *given(key);
        return bad_value(o.key_term, o.value, std::move(allowed));
    };
    if (!given("max_connections")) {
        ConfigError e;
        e.kind = ConfigError::Kind::missing_option;
        e.key_name = "max_connections";
        return e;
    }
    if (!given("min_connections")) {
        config.min_connections = config.max_connections;
    }
    if (config.min_connections > config.max_connections) {
        return blame("min_connections", fmt::format("an integer in 0..max_connections ({})", config.max_connections));
    }
    if (config.backoff_min_ms > config.backoff_max_ms) {
        // Blame the one that was given (backoff_max_ms when both were).
        const bool max_given = given("backoff_max_ms") != nullptr;
        return max_given ? blame("backoff_max_ms", fmt::format("an integer in backoff_min_ms ({})..{}",
                                                                config.backoff_min_ms, kMaxBackoffMs))
                         : blame("backoff_min_ms", fmt::format("an integer in 1..backoff_max_ms ({})",
                                                                config.backoff_max_ms));
    }
    return config;
}

Parsed<pool::GroupConfig, ConfigError> parse_group_options(std::string_view options)
{
    TermReader r(options);
    const auto pairs = r.map_header();
    ConfigError whole;
    whole.kind = ConfigError::Kind::bad_options;
    whole.term = options;
    if (!pairs) {
        return whole;
    }
    pool::GroupConfig group;
    // name, owner and owner_grace_ms mean for a group what they mean for a pool: read as a pool's are.
    pool::PoolConfig scratch;
    std::vector<SeenOption> seen;
    for (std::uint32_t i = 0; i < *pairs; ++i) {
        TermReader peek = r;
        const auto key_term = peek.skip();
        const auto key = key_term ? TermReader(*key_term).atom() : std::nullopt;
        if (key == std::optional<std::string_view>("strategy")) {
            const auto value = peek.skip();
            if (std::any_of(seen.begin(), seen.end(), [](const SeenOption& o) { return o.key == "strategy"; })) {
                ConfigError e;
                e.kind = ConfigError::Kind::duplicate_option;
                e.term = *key_term;
                return e;
            }
            const auto atom = value ? TermReader(*value).atom() : std::nullopt;
            const auto strategy = atom ? pool::parse_strategy(*atom) : std::nullopt;
            if (!value) {
                return whole;
            }
            if (!strategy) {
                return bad_value(*key_term, *value, "round_robin or least_in_use");
            }
            group.strategy = *strategy;
            seen.push_back(SeenOption{*key, *key_term, *value});
            r = peek;
            continue;
        }
        if (key && *key != "name" && *key != "owner" && *key != "owner_grace_ms") {
            ConfigError e;
            e.kind = ConfigError::Kind::unknown_option;
            e.term = *key_term;
            return e;
        }
        if (auto error = read_option(r, scratch, seen)) {
            if (error->kind == ConfigError::Kind::bad_options) {
                error->term = options;
            }
            return std::move(*error);
        }
    }
    if (!r.at_end()) {
        return whole;
    }
    group.name = std::move(scratch.name);
    group.ownerless = scratch.ownerless;
    group.owner_grace_ms = scratch.owner_grace_ms;
    return group;
}

} // namespace dpool::api
