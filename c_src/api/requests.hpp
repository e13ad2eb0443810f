#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "api/pool_options.hpp"
#include "pool/group_config.hpp"
#include "pool/operations.hpp"
#include "pool/pool_config.hpp"
#include "protocol/term_reader.hpp"
#include "protocol/term_writer.hpp"

namespace dpool::api {

// {'$gen_call', {From, Tag}, Request} or {'$gen_cast', Request} (docs/PROTOCOL.md).
struct Envelope {
    bool is_call = false;
    protocol::PidView from; // calls only
    std::string_view tag;   // calls only, encoded
    std::string_view request;
};

// `message` starts with the version byte. nullopt for anything that is not one of the two envelopes.
std::optional<Envelope> parse_envelope(std::string_view message);

inline constexpr std::uint32_t kDefaultDrainTimeoutMs = 5000;
struct NewPool {
    pool::PoolConfig config;
    std::string_view target_term; // the target as it came, for an answer that names it
};
// {checkout, PoolId, AcquireTimeoutMs | default[, quiet]}. Quiet: a lease granted at once is not answered; the
// first operation that names it by this checkout's tag answers {leased, Ids, Answer} instead (the library's
// with_connection, whose fun's first operation follows the checkout: docs/PROTOCOL.md, "Pipelined leases").
struct Checkout {
    std::uint64_t pool;
    std::optional<std::uint32_t> timeout_ms; // nullopt: the pool's default
    bool quiet = false;
};
// A lease, by its ids; or, given as the atom `checkout` and a tag in their place, the lease that the checkout
// sent with that tag got (the library's with_connection sends its first operation right behind the checkout,
// before the lease's ids have come back: docs/PROTOCOL.md, "Pipelined leases").
struct LeaseRef {
    std::uint64_t pool = 0;
    std::uint32_t conn = 0;
    std::uint64_t lease = 0;
    std::string_view checkout_tag{}; // encoded; empty: by ids
};
struct Checkin {
    LeaseRef lease;
    bool discard = false; // returned as broken: the connection is closed and a fresh one opened
};
// {lease_of, PoolId, Tag}: the ids of the lease that the checkout sent with Tag got, answered as the checkout
// was ({ok, {ConnId, LeaseId, ConnNode}}), or {error, lease_pending} while that checkout waits in line.
struct LeaseOf {
    std::uint64_t pool;
    std::string_view tag; // encoded
};
struct Cancel {
    std::uint64_t pool;
    std::string_view pid; // encoded
    std::string_view tag; // encoded
};
struct Send {
    LeaseRef lease;
    std::string_view destination; // encoded, checked against the target later
    std::string_view message;     // encoded, forwarded as is
};
// {send_many, PoolId, ConnId, LeaseId, [{Dest, Msg}]}: sends in order over one lease, answered as one send
// (the library's send_async/3 batches a process's messages this way).
struct SendMany {
    LeaseRef lease;
    std::vector<std::pair<std::string_view, std::string_view>> messages; // {Dest, Msg}, encoded
};
struct Request {
    LeaseRef lease;
    std::string_view destination;
    std::optional<std::uint32_t> timeout_ms; // nullopt: infinity
    std::string_view request;
};
// apply(M, F, A) on the target, over a lease: {call, PoolId, ConnId, LeaseId, M, F, A, TimeoutMs | infinity}.
// `mfa` is M, F and A as they came, back to back (M and F atoms, A a proper list).
struct Call {
    LeaseRef lease;
    std::string_view mfa;
    std::optional<std::uint32_t> timeout_ms; // nullopt: infinity
};
// One-shot operations: the C-node takes a lease, does the operation and returns the lease itself.
// {pooled_send, PoolId, Dest, Msg[, AcquireTimeoutMs | default]}
struct PooledSend {
    std::uint64_t pool;
    std::string_view destination;
    std::string_view message;
    std::optional<std::uint32_t> acquire_timeout_ms; // nullopt: the pool's default
};
// {pooled_request, PoolId, Dest, TimeoutMs | infinity, Request[, AcquireTimeoutMs | default]}
struct PooledRequest {
    std::uint64_t pool;
    std::string_view destination;
    std::optional<std::uint32_t> timeout_ms; // nullopt: infinity
    std::string_view request;
    std::optional<std::uint32_t> acquire_timeout_ms; // nullopt: the pool's default
};
// {pooled_call, PoolId, M, F, A, TimeoutMs | infinity[, AcquireTimeoutMs | default]}
struct PooledCall {
    std::uint64_t pool;
    std::string_view mfa;
    std::optional<std::uint32_t> timeout_ms;         // nullopt: infinity
    std::optional<std::uint32_t> acquire_timeout_ms; // nullopt: the pool's default
};
// {cast_batch, PoolId, Dest, [Msg]} or {cast_batch_keyed, PoolId, Dest, [{Hash, Msg}]}: the messages spread
// over the pool's live connections (keyed: Hash picks the connection).
struct CastBatch {
    std::uint64_t pool = 0;
    std::string_view destination;
    bool keyed = false;
    // Views into the request, or, for a list that came as a STRING_EXT, into a constant table.
    std::vector<pool::BatchMessage> messages;
};
struct Stats {
    std::uint64_t pool;
};
struct Destroy {
    std::uint64_t pool;
    std::uint32_t drain_timeout_ms = kDefaultDrainTimeoutMs; // how long leases still out are waited for
};
struct ListPools {};
// {whereis, Name}: the id and acquire timeout of the pool registered as Name.
struct Whereis {
    std::string_view name;
};
struct Info {};
// `lanes`: the C-node's node names, lane 0 (its own) first.
struct ListLanes {};
// `ping`: answered `pong` at once, from the event loop; a caller's round trip to the C-node and nothing else.
struct Ping {};
// {restore, [{PoolId, Target, Options} | {group, GroupId, [{MemberId, Target, Options}], PoolOptions,
// GroupOptions}], NextPoolId}: pools and groups of an earlier incarnation of the C-node, re-created under
// their old ids (members too).
struct RestoredPool {
    std::uint64_t id;
    pool::PoolConfig config;
};
struct RestoredGroup {
    std::uint64_t id;
    pool::GroupConfig config;
    std::vector<RestoredPool> members; // each member's options over the group's pool options
};
struct Restore {
    std::vector<RestoredPool> pools;
    std::vector<RestoredGroup> groups;
    std::uint64_t next_pool_id;
};
// {new_group, [{Target, Options}], PoolOptions, GroupOptions}: one member pool per target (its Options over
// PoolOptions), and the group's own options (docs/PROTOCOL.md, "Pool groups").
struct NewGroup {
    std::vector<NewPool> members;
    pool::GroupConfig config;
};
// {add_target, GroupId, Target, Options}: Options over the group's pool options (read by the service, which
// has them: read_pool_spec).
struct AddTarget {
    std::uint64_t group = 0;
    std::string_view target_term;
    std::string_view options;
};
// {remove_target, GroupId, Target} | {remove_target, GroupId, Target, DrainMs}
// | {remove_target, GroupId, Target, DrainMs, member_id}: answered {ok, MemberId} instead of ok, naming the
// member it took out (the library's registry records the group by it).
struct RemoveTarget {
    std::uint64_t group = 0;
    std::string_view target;      // its text
    std::string_view target_term; // as it came, for an answer that names it
    std::uint32_t drain_timeout_ms = kDefaultDrainTimeoutMs;
    bool answer_member_id = false;
};
// {keyed, Key, Request}: Request (naming a group) picks its member by Key's rendezvous weight; Key is the
// library's 63-bit digest of the caller's key. A request naming a plain pool ignores the key.
struct Keyed {
    std::uint64_t key = 0;
    std::string_view request; // encoded
};
// A request that cannot be served; `error` is the atom to answer {error, Error} with, or, with `config`, the
// {error, {invalid_config, Why}} of a `new`.
struct Rejected {
    std::string_view error;
    std::optional<ConfigError> config = std::nullopt;
};
// A restore refused because of one of its pools: answered {error, {Error, PoolId}}, so that the sender can
// leave that pool out and try again.
struct RejectedPool {
    std::string_view error;
    std::uint64_t pool;
};

using Decoded = std::variant<NewPool, Checkout, LeaseOf, Checkin, Cancel, Send, SendMany, Request, Call, PooledSend,
                             PooledRequest, PooledCall, CastBatch, Stats, Destroy, ListPools, Whereis, Info, ListLanes, Ping,
                             Restore, NewGroup, AddTarget, RemoveTarget, Keyed, Rejected, RejectedPool>;

// Decodes the request term of an envelope. Wrong shapes give Rejected with the error the caller should see:
// invalid_config for pool creation, invalid_pool for a pool id that cannot be one, invalid_connection for
// lease ids that cannot be ones, badarg for everything else. A restore whose shape is right but one of whose
// pools is not gives RejectedPool: invalid_config (target or options) or pool_id_taken (an id twice).
// A name and arity that the request table (below) does not list is badarg, whatever follows the name.
Decoded decode_request(std::string_view request);

// The table decode_request is driven by: one entry per request, its atom, its arities and its decoder. The same
// requests are listed in docs/PROTOCOL.md ("Calls" and "Casts"); a unit test holds the two to each other.
//
// A decoder reads the fields after the request's atom (`fields` is positioned there, or after the PoolId when
// the request names a pool first); `arity` is the request's (below), `pool` the PoolId read, 0 if none.
using RequestDecoder = Decoded (*)(protocol::TermReader& fields, std::uint32_t arity, std::uint64_t pool);
struct RequestSpec {
    std::string_view name;
    // The tuple's arity, the name counted ({stats, PoolId}: 2); 0 for a bare atom (`pools`).
    std::uint32_t min_arity;
    std::uint32_t max_arity;
    // The first field is a PoolId, read before the decoder runs: one that cannot be a pool id is answered
    // invalid_pool, whatever the fields after it.
    bool names_pool;
    RequestDecoder decode;
};
struct RequestTable {
    const RequestSpec* entries;
    std::size_t size;
    const RequestSpec* begin() const { return entries; }
    const RequestSpec* end() const { return entries + size; }
};
RequestTable request_table();
// The entry for `name` at `arity` (0: the bare atom), or nullptr: the request is badarg.
const RequestSpec* find_request(std::string_view name, std::uint32_t arity);

// A destination on `target`: a registered name, a pid on the target, or {Name, Target}.
std::optional<pool::Destination> parse_destination(std::string_view encoded, std::string_view target);
// A pool's target and options as `new` reads them; with `base` (a group's pool options), `options` over it, for
// a member of a group, which has no name of its own. The refusal's views point into the three.
std::variant<NewPool, Rejected> read_pool_spec(std::string_view target_term, std::string_view options,
                                               std::string_view base = {});
// The node a destination names (a pid's, or Node of {Name, Node}); nullopt for a registered name alone.
std::optional<std::string_view> destination_node(std::string_view encoded);

// Pool ids (and the next id) a restore may name: room is left above them for the ids that follow.
inline constexpr std::uint64_t kMaxRestoredPoolId = std::uint64_t{1} << 62;
// The key hashes of cast_batch_keyed: erlang:phash2(Key, 1 bsl 32).
inline constexpr std::uint64_t kMaxKeyHash = 0xFFFF'FFFFu;

} // namespace dpool::api
