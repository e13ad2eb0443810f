%% Handles given to callers. Internal: callers treat them as opaque (distribute_pool:pool() and conn()).
%% They hold no process: every operation is a message to the C-node named in `server`, so a handle can be
%% passed to any process on any node that can reach that C-node.

%% A pool group's key digest (keyed/2): 0..DPOOL_MAX_KEY_DIGEST, the C-node's read_id bound (2^63-1).
-define(DPOOL_MAX_KEY_DIGEST, 9223372036854775807).

%% A pool: the C-node's address, the pool id it chose, and the acquire timeout the pool was created with,
%% which bounds the client's own wait for a checkout reply.
-record(dpool, {
    server :: {atom(), node()},
    id :: non_neg_integer(),
    acquire_timeout_ms :: non_neg_integer(),
    %% A pool group's handle made by distribute_pool:keyed/2: the digest of the key that picks the member of
    %% each checkout, one-shot operation and cast batch through it (docs/PROTOCOL.md, "Pool groups").
    key = undefined :: undefined | 0..?DPOOL_MAX_KEY_DIGEST
}).

%% A lease on one pooled connection: valid between checkout and checkin, inside with_connection. It is named
%% by the tag of the checkout that took it, because with_connection runs its fun before the checkout's answer
%% (the lease's ids) has come back: the C-node finds the lease by that tag (a pipelined lease, docs/PROTOCOL.md).
%% `lane' is the C-node address the checkout went over: what is sent there later arrives after it.
-record(dpool_conn, {
    pool :: #dpool{},
    checkout :: nonempty_improper_list(alias, reference()),
    lane :: {atom(), node()}
}).

%% Limits and defaults that the C-node has too (c_src/api/requests.hpp, c_src/options.hpp): docs/PROTOCOL.md
%% states them, and distribute_pool_proto_SUITE checks that the C-node agrees with each of these values.
%% max_connections: 1..DPOOL_MAX_CONNECTIONS.
-define(DPOOL_MAX_CONNECTIONS, 1000).
%% acquire_timeout_ms: 0..DPOOL_MAX_ACQUIRE_MS, default DPOOL_DEFAULT_ACQUIRE_MS.
-define(DPOOL_DEFAULT_ACQUIRE_MS, 5000).
-define(DPOOL_MAX_ACQUIRE_MS, 86400000).
%% connect_timeout_ms: 1..DPOOL_MAX_CONNECT_MS, default DPOOL_DEFAULT_CONNECT_MS.
-define(DPOOL_DEFAULT_CONNECT_MS, 5000).
-define(DPOOL_MAX_CONNECT_MS, 600000).
%% owner_grace_ms: 0..DPOOL_MAX_OWNER_GRACE_MS, default DPOOL_DEFAULT_OWNER_GRACE_MS (also the app env's).
-define(DPOOL_DEFAULT_OWNER_GRACE_MS, 30000).
-define(DPOOL_MAX_OWNER_GRACE_MS, 86400000).
%% The drain of a destroy: 0..DPOOL_MAX_DRAIN_MS, default DPOOL_DEFAULT_DRAIN_MS.
-define(DPOOL_DEFAULT_DRAIN_MS, 5000).
-define(DPOOL_MAX_DRAIN_MS, 600000).
%% The C-node's --lanes: 1..DPOOL_MAX_LANES; the application's default (env `lanes').
-define(DPOOL_MAX_LANES, 16).
-define(DPOOL_DEFAULT_LANES, 8).
%% The env `cnode_sndbuf' in bytes: 4 KiB..64 MiB (Linux keeps twice what is set, capped by net.core.wmem_max).
-define(DPOOL_MIN_SNDBUF, 4096).
-define(DPOOL_MAX_SNDBUF, 67108864).
%% Its default (docs/BENCHMARKS.md, "Send buffers of the callers' lanes").
-define(DPOOL_DEFAULT_SNDBUF, 524288).
%% cast_batch_keyed's hashes: erlang:phash2(Key, DPOOL_KEY_HASH_RANGE), 0..DPOOL_MAX_KEY_HASH.
-define(DPOOL_KEY_HASH_RANGE, 4294967296).
-define(DPOOL_MAX_KEY_HASH, 4294967295).
%% The most members (targets) of a pool group (pool::kMaxGroupMembers).
-define(DPOOL_MAX_GROUP_MEMBERS, 64).
%% The largest timeout of a request or call the C-node takes (a 32-bit count of milliseconds), which is also
%% the largest a receive takes.
-define(DPOOL_MAX_WAIT_MS, 4294967295).

%% How long the client waits for the C-node. Every bound is the C-node's own deadline (if any) plus a margin,
%% so that an answer is only given up on when the C-node stopped answering.
%% Requests the C-node answers at once: stats, discard, pools, whereis, lanes.
-define(DPOOL_PROMPT_WAIT_MS, 5000).
%% A checkout: its acquire timeout plus this.
-define(DPOOL_CHECKOUT_MARGIN_MS, 5000).
%% A request or call on the target: its timeout plus this.
-define(DPOOL_REQUEST_MARGIN_MS, 1000).
%% Requests whose ok is held while a connection is busy (send, send_many, cast batches).
-define(DPOOL_SEND_WAIT_MS, 60000).
%% A destroy: its drain plus this.
-define(DPOOL_DESTROY_MARGIN_MS, 10000).

%% What can be a pool's name: the C-node takes any other non-empty UTF-8 atom (docs/PROTOCOL.md).
-define(IS_POOL_NAME(N), (is_atom(N) andalso N =/= undefined andalso N =/= '')).

