#include "api/requests.hpp"

#include <algorithm>
#include <array>
#include <iterator>
#include <limits>
#include <vector>
#include <unordered_set>

#include <fmt/format.h>

#include "protocol/node_identity.hpp"

namespace dpool::api {

namespace {

using protocol::TermReader;

// Reads a non-negative integer up to `max`.
std::optional<std::uint64_t> read_id(TermReader& r, std::uint64_t max = std::numeric_limits<std::int64_t>::max())
{
    const auto v = r.integer();
    if (!v || *v < 0 || static_cast<std::uint64_t>(*v) > max) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(*v);
}

// A timeout in milliseconds, or the atom `allowed_atom` (which leaves `ms` empty).
struct Timeout {
    bool valid = false;
    std::optional<std::uint32_t> ms;
};
Timeout read_timeout(TermReader& r, std::string_view allowed_atom)
{
    if (const auto a = r.atom()) {
        return Timeout{*a == allowed_atom, std::nullopt};
    }
    const auto v = read_id(r, std::numeric_limits<std::uint32_t>::max());
    if (!v) {
        return Timeout{};
    }
    return Timeout{true, static_cast<std::uint32_t>(*v)};
}

// A text given as an atom, a binary or a (byte) string.
std::optional<std::string_view> read_text(TermReader& r)
{
    if (const auto a = r.atom()) {
        return a;
    }
    if (const auto b = r.binary()) {
        return b;
    }
    const auto term = r.skip();
    if (term && term->size() >= 3 && static_cast<std::uint8_t>((*term)[0]) == protocol::tag::string) {
        return term->substr(3);
    }
    return std::nullopt;
}

std::optional<LeaseRef> read_lease(TermReader& r, std::uint64_t pool)
{
    if (TermReader by_tag = r; by_tag.atom() == std::optional<std::string_view>("checkout")) {
        const auto tag = by_tag.skip();
        if (!tag) {
            return std::nullopt;
        }
        r = by_tag;
        return LeaseRef{.pool = pool, .conn = 0, .lease = 0, .checkout_tag = *tag};
    }
    const auto conn = read_id(r, std::numeric_limits<std::uint32_t>::max());
    const auto lease = read_id(r);
    if (!conn || !lease) {
        return std::nullopt;
    }
    return LeaseRef{.pool = pool, .conn = static_cast<std::uint32_t>(*conn), .lease = *lease, .checkout_tag = {}};
}

// M, F and A of a call: two atoms and a proper list (nil, a STRING_EXT, or a LIST_EXT with a nil tail), as one
// view of the three encoded terms.
std::optional<std::string_view> read_mfa(TermReader& r)
{
    const std::string_view from = r.rest();
    if (!r.atom() || !r.atom()) {
        return std::nullopt;
    }
    if (!r.nil()) {
        TermReader list(r.rest());
        const auto tag = list.peek_tag();
        if (tag == protocol::tag::list) {
            const auto count = list.list_header();
            for (std::uint32_t i = 0; count && i < *count; ++i) {
                if (!list.skip()) {
                    return std::nullopt;
                }
            }
            if (!count || !list.nil()) {
                return std::nullopt; // an improper list
            }
        } else if (tag != protocol::tag::string) {
            return std::nullopt;
        }
        if (!r.skip()) {
            return std::nullopt;
        }
    }
    return from.substr(0, from.size() - r.rest().size());
}

// SMALL_INTEGER_EXT of 0..255, back to back: the elements of a list that came as a STRING_EXT, which are no
// terms of their own in the packet.
constexpr std::array<char, 512> kSmallIntegers = [] {
    std::array<char, 512> table{};
    for (std::size_t i = 0; i < 256; ++i) {
        table[2 * i] = static_cast<char>(protocol::tag::small_integer);
        table[2 * i + 1] = static_cast<char>(static_cast<std::uint8_t>(i));
    }
    return table;
}();

// The message list of a cast batch: proper, each element a message (keyed: {Hash, Msg}).
bool read_batch(TermReader& r, CastBatch& batch)
{
    if (r.nil()) {
        return true;
    }
    if (r.peek_tag() == protocol::tag::string) {
        if (batch.keyed) {
            return false; // small integers are no {Hash, Msg} pairs
        }
        const auto term = r.skip();
        if (!term || term->size() < 3) {
            return false;
        }
        const std::string_view bytes = term->substr(3);
        batch.messages.reserve(bytes.size());
        for (const char b : bytes) {
            const std::size_t at = 2 * static_cast<std::uint8_t>(b);
            batch.messages.push_back(pool::BatchMessage{0, std::string_view(kSmallIntegers.data() + at, 2)});
        }
        return true;
    }
    const auto count = r.list_header();
    if (!count) {
        return false;
    }
    // Every element takes at least one byte, so a forged count fails long before memory runs out.
    batch.messages.reserve(std::min<std::size_t>(*count, r.rest().size()));
    for (std::uint32_t i = 0; i < *count; ++i) {
        std::uint64_t hash = 0;
        if (batch.keyed) {
            const auto h = r.tuple_header() == 2u ? read_id(r, kMaxKeyHash) : std::nullopt;
            if (!h) {
                return false;
            }
            hash = *h;
        }
        const auto message = r.skip();
        if (!message) {
            return false;
        }
        batch.messages.push_back(pool::BatchMessage{static_cast<std::uint32_t>(hash), *message});
    }
    return r.nil(); // an improper tail is badarg
}

// --- the requests ------------------------------------------------------------------------------------------------
//
// One decoder per request, and one table (kRequests) naming each request's atom and arities with its decoder:
// decode_request dispatches on it, and what it does not list is badarg. A decoder reads the fields after the
// atom, and after the PoolId when the request names a pool first (RequestSpec::names_pool: that id is read
// before the decoder runs). Its own errors are badarg unless it says otherwise.

template <class T>
Decoded decode_atom(TermReader&, std::uint32_t, std::uint64_t)
{
    return T{};
}

// {new, Target, Options}
Decoded decode_new(TermReader& r, std::uint32_t, std::uint64_t)
{
    const auto target_term = r.skip();
    const auto options = target_term ? r.skip() : std::nullopt;
    if (!options) {
        return Rejected{"badarg"};
    }
    auto pool = read_pool_spec(*target_term, *options);
    if (auto* rejected = std::get_if<Rejected>(&pool)) {
        return std::move(*rejected);
    }
    return std::get<NewPool>(std::move(pool));
}

// One pool of a restore: {PoolId, Target, Options}, its tuple header read. `base`: a group's pool options,
// which a member's Options go over. Its id is checked against `seen` (ids of the whole restore).
std::variant<RestoredPool, Decoded> read_restored_pool(TermReader& r, std::unordered_set<std::uint64_t>& seen,
                                                       std::string_view base = {})
{
    const auto id = read_id(r, kMaxRestoredPoolId);
    if (!id) {
        return Decoded{Rejected{"badarg"}};
    }
    const auto target = read_text(r);
    const auto options = target ? r.skip() : std::nullopt;
    if (!options) {
        return Decoded{RejectedPool{"invalid_config", *id}};
    }
    auto config = parse_pool_options(*target, *options, base);
    if (!config || (!base.empty() && !config->name.empty())) { // a member has no name of its own
        return Decoded{RejectedPool{"invalid_config", *id}};
    }
    if (!seen.insert(*id).second) {
        return Decoded{RejectedPool{"pool_id_taken", *id}};
    }
    return RestoredPool{*id, std::move(*config)};
}

// One group of a restore: {group, GroupId, [{MemberId, Target, Options}], PoolOptions, GroupOptions}, after
// its tuple header. Its members are checked as new_group checks them; a fault of one is the group's
// invalid_config (pool_id_taken names the id given twice).
std::variant<RestoredGroup, Decoded> read_restored_group(TermReader& r, std::unordered_set<std::uint64_t>& seen)
{
    const auto id = r.atom() == "group" ? read_id(r, kMaxRestoredPoolId) : std::nullopt;
    const auto members = id ? r.skip() : std::nullopt;
    const auto pool_options = members ? r.skip() : std::nullopt;
    const auto options = pool_options ? r.skip() : std::nullopt;
    if (!options) {
        return Decoded{Rejected{"badarg"}};
    }
    const Decoded refused = RejectedPool{"invalid_config", *id};
    auto config = parse_group_options(*options);
    if (!config || TermReader(*pool_options).map_header() == std::nullopt) {
        return refused;
    }
    if (!seen.insert(*id).second) {
        return Decoded{RejectedPool{"pool_id_taken", *id}};
    }
    config->pool_options = std::string(*pool_options);
    RestoredGroup group{*id, std::move(*config), {}};
    TermReader list(*members);
    const auto count = list.list_header();
    if (!count || *count == 0 || *count > pool::kMaxGroupMembers) {
        return refused;
    }
    for (std::uint32_t i = 0; i < *count; ++i) {
        if (list.tuple_header() != 3u) {
            return refused;
        }
        auto member = read_restored_pool(list, seen, group.config.pool_options);
        if (auto* failed = std::get_if<Decoded>(&member)) {
            const auto* taken = std::get_if<RejectedPool>(failed);
            return taken && taken->error == "pool_id_taken" ? std::move(*failed) : refused;
        }
        auto& restored = std::get<RestoredPool>(member);
        if (std::any_of(group.members.begin(), group.members.end(), [&](const RestoredPool& m) {
                return protocol::same_node(m.config.target, restored.config.target);
            })) {
            return refused;
        }
        group.members.push_back(std::move(restored));
    }
    if (!list.nil()) {
        return refused; // an improper list
    }
    return group;
}

// {restore, Entries, NextPoolId}: each entry a pool or a group (docs/PROTOCOL.md, "Restore").
Decoded decode_restore(TermReader& r, std::uint32_t, std::uint64_t)
{
    Restore restore;
    std::unordered_set<std::uint64_t> seen;
    std::uint32_t count = 0;
    if (const auto n = r.list_header()) {
        count = *n;
    } else if (!r.nil()) {
        return Rejected{"badarg"};
    }
    for (std::uint32_t i = 0; i < count; ++i) {
        // Every element takes at least one byte, so a forged count fails here long before memory runs out.
        const auto arity = r.tuple_header();
        if (arity == 3u) {
            auto pool = read_restored_pool(r, seen);
            if (auto* failed = std::get_if<Decoded>(&pool)) {
                return std::move(*failed);
            }
            restore.pools.push_back(std::get<RestoredPool>(std::move(pool)));
        } else if (arity == 5u) {
            auto group = read_restored_group(r, seen);
            if (auto* failed = std::get_if<Decoded>(&group)) {
                return std::move(*failed);
            }
            restore.groups.push_back(std::get<RestoredGroup>(std::move(group)));
        } else {
            return Rejected{"badarg"};
        }
    }
    if (count > 0 && !r.nil()) {
        return Rejected{"badarg"}; // an improper list
    }
    const auto next = read_id(r, kMaxRestoredPoolId);
    if (!next) {
        return Rejected{"badarg"};
    }
    restore.next_pool_id = *next;
    return restore;
}

// {whereis, Name}
Decoded decode_whereis(TermReader& r, std::uint32_t, std::uint64_t)
{
    const auto name = r.atom();
    if (!name) {
        return Rejected{"badarg"};
    }
    return Whereis{*name};
}

// {stats, PoolId}
Decoded decode_stats(TermReader&, std::uint32_t, std::uint64_t pool)
{
    return Stats{pool};
}

// {destroy, PoolId} | {destroy, PoolId, DrainMs}
Decoded decode_destroy(TermReader& r, std::uint32_t arity, std::uint64_t pool)
{
    if (arity == 2) {
        return Destroy{pool};
    }
    const auto drain = read_id(r, kMaxDrainTimeoutMs);
    if (!drain) {
        return Rejected{"badarg"};
    }
    return Destroy{pool, static_cast<std::uint32_t>(*drain)};
}

// {checkout, PoolId, AcquireTimeoutMs | default}
Decoded decode_checkout(TermReader& r, std::uint32_t arity, std::uint64_t pool)
{
    const auto timeout = read_timeout(r, "default");
    const bool quiet = arity == 4;
    if (!timeout.valid || (quiet && r.atom() != "quiet")) {
        return Rejected{"badarg"};
    }
    return Checkout{pool, timeout.ms, quiet};
}

// {checkin, PoolId, ConnId, LeaseId} | {discard, PoolId, ConnId, LeaseId}
template <bool Discard>
Decoded decode_checkin(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto lease = read_lease(r, pool);
    if (!lease) {
        return Rejected{"invalid_connection"};
    }
    return Checkin{*lease, Discard};
}

// {lease_of, PoolId, Tag}
Decoded decode_lease_of(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto tag = r.skip();
    if (!tag) {
        return Rejected{"badarg"};
    }
    return LeaseOf{pool, *tag};
}

// {cancel, PoolId, Pid, Tag}
Decoded decode_cancel(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto pid = r.pid();
    const auto tag = r.skip();
    if (!pid || !tag) {
        return Rejected{"badarg"};
    }
    return Cancel{pool, pid->encoded, *tag};
}

// {send, PoolId, ConnId, LeaseId, Dest, Msg}
Decoded decode_send(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto lease = read_lease(r, pool);
    if (!lease) {
        return Rejected{"invalid_connection"};
    }
    const auto destination = r.skip();
    const auto message = r.skip();
    if (!destination || !message) {
        return Rejected{"badarg"};
    }
    return Send{*lease, *destination, *message};
}

// {send_many, PoolId, ConnId, LeaseId, [{Dest, Msg}]}
Decoded decode_send_many(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto lease = read_lease(r, pool);
    if (!lease) {
        return Rejected{"invalid_connection"};
    }
    SendMany many{*lease, {}};
    if (r.nil()) {
        return many;
    }
    const auto count = r.list_header();
    if (!count) {
        return Rejected{"badarg"};
    }
    // Every element takes at least one byte, so a forged count fails long before memory runs out.
    many.messages.reserve(std::min<std::size_t>(*count, r.rest().size()));
    for (std::uint32_t i = 0; i < *count; ++i) {
        const auto pair = r.tuple_header() == 2u;
        const auto destination = pair ? r.skip() : std::nullopt;
        const auto message = destination ? r.skip() : std::nullopt;
        if (!message) {
            return Rejected{"badarg"};
        }
        many.messages.emplace_back(*destination, *message);
    }
    if (!r.nil()) {
        return Rejected{"badarg"}; // an improper list
    }
    return many;
}

// {request, PoolId, ConnId, LeaseId, Dest, TimeoutMs | infinity, Request}
Decoded decode_lease_request(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto lease = read_lease(r, pool);
    if (!lease) {
        return Rejected{"invalid_connection"};
    }
    const auto destination = r.skip();
    const auto timeout = read_timeout(r, "infinity");
    const auto request = r.skip();
    if (!destination || !timeout.valid || !request) {
        return Rejected{"badarg"};
    }
    return Request{*lease, *destination, timeout.ms, *request};
}

// {call, PoolId, ConnId, LeaseId, M, F, A, TimeoutMs | infinity}
Decoded decode_call(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    const auto lease = read_lease(r, pool);
    if (!lease) {
        return Rejected{"invalid_connection"};
    }
    const auto mfa = read_mfa(r);
    const auto timeout = mfa ? read_timeout(r, "infinity") : Timeout{};
    if (!timeout.valid) {
        return Rejected{"badarg"};
    }
    return Call{*lease, *mfa, timeout.ms};
}

// The AcquireTimeoutMs | default that ends a one-shot operation of `arity` fields, if it is the longer form.
Timeout read_acquire_timeout(TermReader& r, std::uint32_t arity, std::uint32_t long_arity)
{
    return arity == long_arity ? read_timeout(r, "default") : Timeout{true, std::nullopt};
}

// {pooled_call, PoolId, M, F, A, TimeoutMs | infinity[, AcquireTimeoutMs | default]}
Decoded decode_pooled_call(TermReader& r, std::uint32_t arity, std::uint64_t pool)
{
    const auto mfa = read_mfa(r);
    const auto timeout = mfa ? read_timeout(r, "infinity") : Timeout{};
    const auto acquire = read_acquire_timeout(r, arity, 7);
    if (!timeout.valid || !acquire.valid) {
        return Rejected{"badarg"};
    }
    return PooledCall{pool, *mfa, timeout.ms, acquire.ms};
}

// {pooled_send, PoolId, Dest, Msg[, AcquireTimeoutMs | default]}
Decoded decode_pooled_send(TermReader& r, std::uint32_t arity, std::uint64_t pool)
{
    const auto destination = r.skip();
    const auto message = r.skip();
    const auto acquire = read_acquire_timeout(r, arity, 5);
    if (!destination || !message || !acquire.valid) {
        return Rejected{"badarg"};
    }
    return PooledSend{pool, *destination, *message, acquire.ms};
}

// {pooled_request, PoolId, Dest, TimeoutMs | infinity, Request[, AcquireTimeoutMs | default]}
Decoded decode_pooled_request(TermReader& r, std::uint32_t arity, std::uint64_t pool)
{
    const auto destination = r.skip();
    const auto timeout = read_timeout(r, "infinity");
    const auto request = r.skip();
    const auto acquire = read_acquire_timeout(r, arity, 6);
    if (!destination || !timeout.valid || !request || !acquire.valid) {
        return Rejected{"badarg"};
    }
    return PooledRequest{pool, *destination, timeout.ms, *request, acquire.ms};
}

// {cast_batch, PoolId, Dest, [Msg]} | {cast_batch_keyed, PoolId, Dest, [{Hash, Msg}]}
template <bool Keyed>
Decoded decode_cast_batch(TermReader& r, std::uint32_t, std::uint64_t pool)
{
    CastBatch batch;
    batch.pool = pool;
    batch.keyed = Keyed;
    const auto destination = r.skip();
    if (!destination || !read_batch(r, batch)) {
        return Rejected{"badarg"};
    }
    batch.destination = *destination;
    return batch;
}

// {new_group, [{Target, Options}], PoolOptions, GroupOptions}
Decoded decode_new_group(TermReader& r, std::uint32_t, std::uint64_t)
{
    const auto targets = r.skip();
    const auto pool_options = targets ? r.skip() : std::nullopt;
    const auto options = pool_options ? r.skip() : std::nullopt;
    if (!options) {
        return Rejected{"badarg"};
    }
    if (TermReader(*pool_options).map_header() == std::nullopt) {
        ConfigError why;
        why.kind = ConfigError::Kind::bad_options;
        why.term = *pool_options;
        return Rejected{"invalid_config", std::move(why)};
    }
    auto config = parse_group_options(*options);
    if (!config) {
        return Rejected{"invalid_config", config.error()};
    }
    const auto refused_list = [&] {
        ConfigError why;
        why.kind = ConfigError::Kind::bad_value;
        why.key_name = "targets";
        why.value = *targets;
        why.allowed = fmt::format("a list of 1..{} {{Target, Options}}, one per target", pool::kMaxGroupMembers);
        return Rejected{"invalid_config", std::move(why)};
    };
    config->pool_options = std::string(*pool_options);
    NewGroup group{{}, std::move(*config)};
    TermReader list(*targets);
    const auto count = list.list_header();
    if (!count || *count == 0 || *count > pool::kMaxGroupMembers) {
        return refused_list();
    }
    for (std::uint32_t i = 0; i < *count; ++i) {
        const auto pair = list.tuple_header() == 2u;
        const auto target_term = pair ? list.skip() : std::nullopt;
        const auto member_options = target_term ? list.skip() : std::nullopt;
        if (!member_options) {
            return refused_list();
        }
        auto member = read_pool_spec(*target_term, *member_options, *pool_options);
        if (auto* rejected = std::get_if<Rejected>(&member)) {
            return std::move(*rejected);
        }
        auto& pool = std::get<NewPool>(member);
        if (std::any_of(group.members.begin(), group.members.end(), [&](const NewPool& m) {
                return protocol::same_node(m.config.target, pool.config.target);
            })) {
            ConfigError why;
            why.kind = ConfigError::Kind::duplicate_target;
            why.term = pool.target_term;
            return Rejected{"invalid_config", std::move(why)};
        }
        group.members.push_back(std::move(pool));
    }
    if (!list.nil()) {
        return refused_list(); // an improper list
    }
    return group;
}

// {add_target, GroupId, Target, Options}: read against the group's pool options by the service.
Decoded decode_add_target(TermReader& r, std::uint32_t, std::uint64_t group)
{
    const auto target_term = r.skip();
    const auto options = target_term ? r.skip() : std::nullopt;
    if (!options) {
        return Rejected{"badarg"};
    }
    return AddTarget{group, *target_term, *options};
}

// {remove_target, GroupId, Target} | {remove_target, GroupId, Target, DrainMs}
// | {remove_target, GroupId, Target, DrainMs, member_id}
Decoded decode_remove_target(TermReader& r, std::uint32_t arity, std::uint64_t group)
{
    const auto target_term = r.skip();
    if (!target_term) {
        return Rejected{"badarg"};
    }
    TermReader target_reader(*target_term);
    const auto target = read_text(target_reader);
    const auto drain = arity >= 4 ? read_id(r, kMaxDrainTimeoutMs) : std::optional<std::uint64_t>(kDefaultDrainTimeoutMs);
    if (!target || !drain) {
        return Rejected{"badarg"};
    }
    const bool answer_member_id = arity == 5;
    if (answer_member_id && r.atom() != "member_id") {
        return Rejected{"badarg"};
    }
    return RemoveTarget{group, *target, *target_term, static_cast<std::uint32_t>(*drain), answer_member_id};
}

// {keyed, Key, Request}
Decoded decode_keyed(TermReader& r, std::uint32_t, std::uint64_t)
{
    const auto key = read_id(r);
    const auto request = key ? r.skip() : std::nullopt;
    if (!request) {
        return Rejected{"badarg"};
    }
    return Keyed{*key, *request};
}

// Every request there is (docs/PROTOCOL.md, "Calls" and "Casts"). Looked up by a linear scan, arity first:
// the lease operations, which carry the traffic, come first.
constexpr RequestSpec kRequests[] = {
    {"checkout", 3, 4, true, decode_checkout},
    {"checkin", 4, 4, true, decode_checkin<false>},
    {"send", 6, 6, true, decode_send},
    {"send_many", 5, 5, true, decode_send_many},
    {"request", 7, 7, true, decode_lease_request},
    {"call", 8, 8, true, decode_call},
    {"pooled_send", 4, 5, true, decode_pooled_send},
    {"pooled_request", 5, 6, true, decode_pooled_request},
    {"pooled_call", 6, 7, true, decode_pooled_call},
    {"cast_batch", 4, 4, true, decode_cast_batch<false>},
    {"cast_batch_keyed", 4, 4, true, decode_cast_batch<true>},
    {"discard", 4, 4, true, decode_checkin<true>},
    {"cancel", 4, 4, true, decode_cancel},
    {"lease_of", 3, 3, true, decode_lease_of},
    {"stats", 2, 2, true, decode_stats},
    {"destroy", 2, 3, true, decode_destroy},
    {"new", 3, 3, false, decode_new},
    {"whereis", 2, 2, false, decode_whereis},
    {"restore", 3, 3, false, decode_restore},
    {"pools", 0, 0, false, decode_atom<ListPools>},
    {"info", 0, 0, false, decode_atom<Info>},
    {"lanes", 0, 0, false, decode_atom<ListLanes>},
    {"ping", 0, 0, false, decode_atom<Ping>},
    {"keyed", 3, 3, false, decode_keyed},
    {"new_group", 4, 4, false, decode_new_group},
    {"add_target", 4, 4, true, decode_add_target},
    {"remove_target", 3, 5, true, decode_remove_target},
};

// Each name and arity has at most one entry, which is a bare atom (arities 0..0) or tuples (from arity 1, from 2
// when it names a pool).
template <std::size_t N>
constexpr bool well_formed(const RequestSpec (&table)[N])
{
    for (std::size_t i = 0; i < N; ++i) {
        const RequestSpec& a = table[i];
        if (a.min_arity > a.max_arity || (a.min_arity == 0 && a.max_arity != 0) || (a.names_pool && a.min_arity < 2)) {
            return false;
        }
        for (std::size_t j = i + 1; j < N; ++j) {
            const RequestSpec& b = table[j];
            if (a.name == b.name && a.min_arity <= b.max_arity && b.min_arity <= a.max_arity) {
                return false;
            }
        }
    }
    return true;
}
static_assert(well_formed(kRequests));

} // namespace

std::optional<Envelope> parse_envelope(std::string_view message)
{
    TermReader r(message);
    if (!r.version()) {
        return std::nullopt;
    }
    const auto arity = r.tuple_header();
    const auto label = r.atom();
    if (!arity || !label) {
        return std::nullopt;
    }
    Envelope env;
    if (*label == "$gen_call" && *arity == 3) {
        if (r.tuple_header() != 2u) {
            return std::nullopt;
        }
        const auto from = r.pid();
        const auto tag = r.skip();
        if (!from || !tag) {
            return std::nullopt;
        }
        env.is_call = true;
        env.from = *from;
        env.tag = *tag;
    } else if (*label == "$gen_cast" && *arity == 2) {
        env.is_call = false;
    } else {
        return std::nullopt;
    }
    const auto request = r.skip();
    if (!request || !r.at_end()) {
        return std::nullopt;
    }
    env.request = *request;
    return env;
}

RequestTable request_table()
{
    return RequestTable{kRequests, std::size(kRequests)};
}

const RequestSpec* find_request(std::string_view name, std::uint32_t arity)
{
    for (const RequestSpec& spec : kRequests) {
        if (arity >= spec.min_arity && arity <= spec.max_arity && spec.name == name) {
            return &spec;
        }
    }
    return nullptr;
}

Decoded decode_request(std::string_view request)
{
    TermReader r(request);
    // A bare atom is a request of arity 0; a tuple's arity counts its name.
    std::uint32_t arity = 0;
    auto name = r.atom();
    if (!name) {
        const auto n = r.tuple_header();
        name = n && *n > 0 ? r.atom() : std::nullopt;
        if (!name) {
            return Rejected{"badarg"};
        }
        arity = *n;
    }
    const RequestSpec* spec = find_request(*name, arity);
    if (!spec) {
        return Rejected{"badarg"}; // an unknown operation or arity, whatever follows it
    }
    std::uint64_t pool = 0;
    if (spec->names_pool) {
        const auto id = read_id(r);
        if (!id) {
            return Rejected{"invalid_pool"};
        }
        pool = *id;
    }
    return spec->decode(r, arity, pool);
}

std::optional<pool::Destination> parse_destination(std::string_view encoded, std::string_view target)
{
    TermReader r(encoded);
    if (const auto name = r.atom()) {
        return pool::Destination{true, encoded};
    }
    if (const auto pid = r.pid()) {
        if (pid->node != target) {
            return std::nullopt; // the target would drop the connection over a pid that is not its own
        }
        return pool::Destination{false, encoded};
    }
    if (r.tuple_header() == 2u) {
        TermReader name_reader(r.rest());
        const auto name = r.atom();
        const auto node = r.atom();
        if (name && node && *node == target) {
            const auto name_term = name_reader.skip();
            return pool::Destination{true, *name_term};
        }
    }
    return std::nullopt;
}

std::optional<std::string_view> destination_node(std::string_view encoded)
{
    TermReader r(encoded);
    if (const auto pid = r.pid()) {
        return pid->node;
    }
    TermReader pair(encoded);
    if (pair.tuple_header() == 2u && pair.atom()) {
        return pair.atom();
    }
    return std::nullopt;
}

std::variant<NewPool, Rejected> read_pool_spec(std::string_view target_term, std::string_view options,
                                               std::string_view base)
{
    TermReader target_reader(target_term);
    const auto target = read_text(target_reader);
    auto config = parse_pool_options(target ? *target : std::string_view{}, options, base);
    if (!config) {
        ConfigError why = config.error();
        if (why.kind == ConfigError::Kind::bad_target) {
            why.term = target_term;
        }
        return Rejected{"invalid_config", std::move(why)};
    }
    if (!base.empty() && !config->name.empty()) {
        // A member has no name of its own: its group has.
        ConfigError why;
        why.kind = ConfigError::Kind::unknown_option;
        why.key_name = "name";
        return Rejected{"invalid_config", std::move(why)};
    }
    return NewPool{std::move(*config), target_term};
}

} // namespace dpool::api
