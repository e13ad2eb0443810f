%% Handles given to callers. Internal: callers treat them as opaque (distribute_pool:pool() and conn()).
%% They hold no process: every operation is a message to the C-node named in `server`, so a handle can be
%% passed to any process on any node that can reach that C-node.

%% A pool: the C-node's address, the pool id it chose, and the acquire timeout the pool was created with,
%% which bounds the client's own wait for a checkout reply.
-record(dpool, {
    server :: {atom(), node()},
    id :: non_neg_integer(),
    acquire_timeout_ms :: non_neg_integer()
}).

%% A lease on one pooled connection: valid between checkout and checkin, inside with_connection.
-record(dpool_conn, {
    pool :: #dpool{},
    id :: non_neg_integer(),
    lease :: non_neg_integer(),
    node :: node()
}).

%% Default acquire timeout of a pool, as in docs/PROTOCOL.md.
-define(DPOOL_DEFAULT_ACQUIRE_MS, 5000).
%% Upper bounds from docs/PROTOCOL.md.
-define(DPOOL_MAX_ACQUIRE_MS, 86400000).
-define(DPOOL_DEFAULT_CONNECT_MS, 5000).
-define(DPOOL_MAX_DRAIN_MS, 600000).

%% What can be a pool's name: the C-node takes any other non-empty UTF-8 atom (docs/PROTOCOL.md).
-define(IS_POOL_NAME(N), (is_atom(N) andalso N =/= undefined andalso N =/= '')).

