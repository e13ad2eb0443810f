%% @doc Pools of real Erlang distribution connections to a target node, kept by a C-node
%% (priv/dpool_cnode) and leased to callers.
%%
%% Every function returns errors instead of raising, whatever its arguments: a bad pool handle or an unknown
%% pool name gives `{error, invalid_pool}', a bad connection handle `{error, invalid_connection}', a bad
%% target or option `{error, {invalid_config, Why}}', a bad fun or timeout `{error, badarg}'. Only an
%% exception raised by the caller's own fun inside with_connection/2,3 leaves it, unchanged, after the lease
%% has been returned. Where a pool goes, its name (the `name' option of new/2) goes too.
%%
%% Errors that say why: `{error, {connection_failed, {Kind, Text}}}', where Kind is one of `unreachable',
%% `not_registered', `handshake_refused', `timeout', `connection_lost', `cnode_not_running',
%% `cnode_restarting', `tls_failed' (the TLS handshake with the target failed, for instance over its
%% certificate or its host name) and Text a binary that explains it; `{error, {invalid_config, Why}}' names the key
%% and value at fault (see format_error/1, which turns any error of this module into a sentence);
%% `{error, {limit_reached, {Limit, Text}}}' says which bound of the C-node refused the request (Limit, the
%% name of the option that sets it: `max_waiters', `max_pending_requests', `max_link_queue_bytes',
%% `max_output_queue_bytes', `max_pools_per_caller', `max_connections_per_caller', `max_total_connections')
%% and Text what was full (docs/PROTOCOL.md, "Limits"). Nothing of a refused request was done: it can be
%% sent again once the C-node holds less.
%%
%% Failure rules:
%% <ul>
%% <li>timeout: a checkout that waits longer than the acquire timeout gives `{error, pool_exhausted}'; a
%%   request that gets no reply within its timeout gives `{error, timeout}'.</li>
%% <li>crash: when the process holding a lease exits, the C-node returns the lease to the pool.</li>
%% <li>disconnect: when the caller's node loses its connection to the C-node, the C-node returns its leases;
%%   when the C-node cannot be reached, calls give `{error, {connection_failed, {cnode_not_running, _}}}'.</li>
%% <li>C-node restart: when the embedded C-node dies, the supervisor starts a new one under the same name
%%   and distribute_pool_registry re-creates every pool made through new/2 under its old id (and name), so
%%   handles keep working; until then operations give
%%   `{error, {connection_failed, {cnode_restarting, _}}}'. Pools made with an explicit `cnode' option (or
%%   on an external C-node) are not restored.</li>
%% </ul>
%% @end
-module(distribute_pool).

-include("distribute_pool_internal.hrl").

-export([new/2]).
-export([new_group/2]).
-export([keyed/2]).
-export([add_target/2]).
-export([remove_target/2]).
-export([remove_target/3]).
-export([child_spec/1]).
-export([start_link/1]).
-export([format_error/1]).
-export([with_connection/2]).
-export([with_connection/3]).
-export([send/3]).
-export([send_async/3]).
-export([request/3]).
-export([request/4]).
-export([call/4]).
-export([call/5]).
-export([ping/1]).
-export([discard/1]).
-export([stats/1]).
-export([destroy/1]).
-export([destroy/2]).
-export([connection_info/1]).
-export([default_cnode/0]).
-export([pools/0]).
-export([pools/1]).
-export([info/0]).
-export([info/1]).
-export([cast_batch/3]).
-export([cast_batch/4]).
-export([send_batch/3]).
-export([send_batch_parallel/3]).
-export([stress_test/3]).
-export([stress_test/4]).

-export_type([pool/0]).
-export_type([pool_ref/0]).
-export_type([connection_failure/0]).
-export_type([invalid_config/0]).
-export_type([limit_reached/0]).
-export_type([conn/0]).
-export_type([target/0]).
-export_type([options/0]).
-export_type([checkout_options/0]).
-export_type([destroy_options/0]).
-export_type([dest/0]).
-export_type([lease_error/0]).
-export_type([one_shot_error/0]).
-export_type([cast_batch_options/0]).
-export_type([stats/0]).
-export_type([cnode/0]).
-export_type([tls/0]).
-export_type([group_options/0]).
-export_type([group_stats/0]).

-opaque pool() :: #dpool{}.
%% A pool handle, or the name of a pool of the default C-node (the `name' option of new/2).
-type pool_ref() :: pool() | atom().
%% Why a connection could not be made or was lost (docs/PROTOCOL.md, "Errors").
-type connection_failure() :: {connection_failed,
                               {unreachable | not_registered | handshake_refused | timeout | connection_lost
                                | cnode_not_running | cnode_restarting | tls_failed, Text :: binary()}}.
-type invalid_config() :: distribute_pool_config:invalid_config().
%% A bound of the C-node refused the request (docs/PROTOCOL.md, "Limits"): which, and what was full.
-type limit_reached() :: {limit_reached,
                          {max_waiters | max_pending_requests | max_link_queue_bytes | max_output_queue_bytes
                           | max_pools_per_caller | max_connections_per_caller | max_total_connections,
                           Text :: binary()}}.
-opaque conn() :: #dpool_conn{}.
-type target() :: node() | binary() | string().
%% A map, or the same as a keyword list (`[{max_connections, 4}]', Elixir's `max_connections: 4').
-type options() :: options_map() | [{atom(), term()}].
-type options_map() :: #{
    max_connections := pos_integer(),
    name => atom(),
    min_connections => non_neg_integer(),
    acquire_timeout_ms => non_neg_integer(),
    connect_timeout_ms => pos_integer(),
    backoff_min_ms => pos_integer(),
    backoff_max_ms => pos_integer(),
    max_idle_ms => non_neg_integer(),
    max_lifetime_ms => non_neg_integer(),
    health_check_interval_ms => non_neg_integer(),
    health_check_timeout_ms => pos_integer(),
    validate_on_checkout => boolean(),
    resize_window_ms => pos_integer(),
    %% Who owns the pool: the node that makes it (destroyed owner_grace_ms after that node left), or none.
    owner => creator | none,
    owner_grace_ms => non_neg_integer(),
    max_waiters => pos_integer(),
    max_pending_requests => pos_integer(),
    %% The cookie of this pool's handshakes, for a target in another cookie domain; never logged.
    cookie => atom() | binary() | string(),
    %% TLS of this pool's connections (README, "TLS distribution"); by default the C-node's.
    tls => tls(),
    %% Library-only: the C-node to use instead of the application's default one.
    cnode => node() | {Service :: atom(), node()}
}.
%% The options of new_group/2: every option of new/2 (for each member, under a target's own), and the group's.
-type group_options() :: options_map() | #{strategy => round_robin | least_in_use} | [{atom(), term()}].
%% What stats/1 returns for a group (docs/PROTOCOL.md, "Pool groups"); a few of its keys.
-type group_stats() :: #{
    pool_id := non_neg_integer(),
    name := atom(),
    strategy := round_robin | least_in_use,
    retries := non_neg_integer(),
    skipped_down := non_neg_integer(),
    members := [#{target := node(), up := boolean(), picked := non_neg_integer(), pool_id := non_neg_integer(),
                  _ => _}],
    _ => _
}.
%% A pool's `tls' option: the mode, with the C-node's files, or a map whose keys not given are the C-node's.
%% Paths and the key's password as strings or binaries; the password is never logged nor echoed.
-type tls() :: none | unverified | verified
             | #{mode := none | unverified | verified, certfile => string() | binary(),
                 keyfile => string() | binary(), cacertfile => string() | binary(), password => string() | binary()}.
-type checkout_options() :: #{acquire_timeout_ms => non_neg_integer()} | [{acquire_timeout_ms, non_neg_integer()}].
-type destroy_options() :: #{drain_timeout_ms => non_neg_integer()} | [{drain_timeout_ms, non_neg_integer()}].
-type dest() :: atom() | pid() | {atom(), node()}.
-type lease_error() :: invalid_pool | invalid_connection | connection_failure() | badarg | timeout
                     | {down, term()} | limit_reached().
-type cnode() :: node() | {Service :: atom(), node()}.
%% Errors of the one-shot forms (an operation given a pool instead of a lease): those of a checkout, then
%% those of the operation. timeout also when the C-node did not answer within the client's bound.
-type one_shot_error() :: pool_exhausted | connection_failure() | invalid_pool | badarg | timeout | {down, term()}
                        | limit_reached().
-type cast_batch_options() :: #{key => fun((term()) -> term())} | [{key, fun((term()) -> term())}].
%% What stats/1 returns (docs/PROTOCOL.md, "Stats map"); a few of its keys.
-type stats() :: #{
    pool_id := non_neg_integer(),
    name := atom(),
    target := node(),
    last_failure := none | {atom(), binary()},
    total_connections := non_neg_integer(),
    available_connections := non_neg_integer(),
    in_use_connections := non_neg_integer(),
    connecting_connections := non_neg_integer(),
    waiting := non_neg_integer(),
    successful_operations := non_neg_integer(),
    failed_operations := non_neg_integer(),
    max_connections := pos_integer(),
    min_connections := non_neg_integer(),
    acquire_timeout_ms := non_neg_integer(),
    connections := [#{id := non_neg_integer(), node := node(), state := available | in_use | connecting}],
    _ => _
}.

%% A pool handle or a pool's name: what send/3, request/3,4 and call/4,5 take for a one-shot operation
%% (anything else is taken for a lease, and is invalid_connection unless it is one).
-define(IS_POOL_REF(H), (is_record(H, dpool) orelse ?IS_POOL_NAME(H))).
%% request/3 and call/4: gen_server:call/2's timeout. (The bounds of the client's waits for the C-node are
%% those of distribute_pool_internal.hrl.)
-define(DEFAULT_REQUEST_MS, 5000).
%% send_async/3's window: how far a sender may get ahead before it waits for the C-node (docs/PROTOCOL.md).
-define(ASYNC_WINDOW_MSGS, 64).
-define(ASYNC_WINDOW_BYTES, 65536).
%% The calling process's send_async/3 pipes, one per pool connection it sends on (so their number is bounded
%% by the connections): #{{PoolId, ConnId} => {CheckoutTag, LeaseId, Pipe, Count, Bytes}}.
-define(ASYNC_KEY, distribute_pool_async).
%% A lease holder's record of its checkout (with_connection): {pending, Pending, Started, Deadline, Quiet} until
%% the lease is known, then {ok, ConnId, LeaseId, ConnNode}, or {error, Reason} when there is none, or `ended'
%% (a lease granted to a quiet checkout that ended before the holder learnt its ids: its operations give
%% invalid_connection, as those on any lease that ended). Quiet: the checkout was sent quiet and may not be
%% answered at all (a lease granted at once: docs/PROTOCOL.md, "Pipelined leases"); false once an answer is known
%% to come.
%% Kept under the checkout's tag as {Pool, Record} (lease_state/1, put_lease_state/2): a Conn changed into
%% another pool's (a forged handle) is not the holder's. Not keyed by the whole handle, which every operation
%% would hash to read the record.
-define(LEASE_KEY(Conn), {distribute_pool_lease, Conn#dpool_conn.checkout}).
-type lease_state() :: {pending, distribute_pool_client:pending(), integer(), distribute_pool_client:deadline(),
                        boolean()}
                     | {ok, non_neg_integer(), non_neg_integer(), node()} | ended | {error, term()}.
%% What the holder's operations on a lease that could not be taken raise, for with_connection to catch.
-define(LEASE_FAILED, '$distribute_pool_lease_failed').
%% Another process's ids of the last lease it used: {CheckoutTag, ConnId, LeaseId, ConnNode} (one entry).
-define(BOUND_KEY, distribute_pool_bound_lease).
%% A process other than the holder asks for a lease's ids while its checkout waits in line: first after this
%% many ms, doubling up to LEASE_POLL_MAX_MS, until the pool's acquire timeout (plus the margin) has passed.
-define(LEASE_POLL_MS, 1).
-define(LEASE_POLL_MAX_MS, 50).
%% How long the checkout's answer is still waited for once the first operation, sent after it over the same
%% lane, found no C-node there (see orphaned_checkout/2).
-define(ORPHANED_CHECKOUT_MS, 200).

%% @doc Creates a pool of connections to Target and returns once its `min_connections' (by default all
%% of them) are up. MaxOrOptions is the maximum number of connections, or the options: a map or a keyword
%% list (the README's "Options" table lists every key with its default and range). With `name => Name' the
%% pool is registered under Name in its C-node (unique there), and Name can be used wherever a pool goes.
%% Starts the application, and with it the embedded C-node, when it is not running yet.
%%
%% Errors say why: `{error, {invalid_config, Why}}' names the key and value at fault (an unknown key with
%% the known key it resembles, a value with the range it must be in; distribute_pool_config:invalid_config());
%% `{error, {connection_failed, {Kind, Text}}}' tells apart a target name that the target host's epmd does
%% not know (`not_registered'), a host that cannot be reached or refuses (`unreachable'), a target that
%% refused the handshake, for instance over a wrong cookie (`handshake_refused'), `timeout', and a C-node
%% that is not running (`cnode_not_running'); `{error, {already_started, Pool}}' when the name is taken.
-spec new(target(), pos_integer() | options()) ->
    {ok, pool()} | {error, invalid_config() | connection_failure() | limit_reached() | {already_started, pool()}}.
new(Target, MaxOrOptions) ->
    case distribute_pool_config:prepare(Target, MaxOrOptions) of
        {ok, Prepared} ->
            case do_new(Prepared) of
                %% The C-node names the target as it went on the wire (a string as a binary).
                {error, {invalid_config, {Why, _}}} when Why =:= bad_target; Why =:= target_is_self;
                                                         Why =:= target_not_allowed ->
                    {error, {invalid_config, {Why, Target}}};
                Result -> Result
            end;
        {error, _} = Error ->
            Error
    end.

-spec do_new(distribute_pool_config:prepared()) -> {ok, pool()} | {error, term()}.
do_new(#{cnode := CNode, target := Target, options := Options,
         acquire_timeout_ms := AcquireMs, wait := Wait}) ->
    case resolve_cnode(CNode) of
        {ok, Server} ->
            Reply = case CNode =:= default andalso distribute_pool_env:embedded() of
                        %% Through the registry, which records the pool for a restart of the C-node.
                        true -> distribute_pool_registry:new(Target, Options, Wait);
                        false -> distribute_pool_client:call(Server, distribute_pool_proto:new(Target, Options),
                                                             Wait)
                    end,
            created(Reply, CNode, Server, maps:get(name, Options, undefined), AcquireMs, Wait, #{target => Target});
        {error, _} = Error ->
            Error
    end.

%% The handle of a pool (or group) the C-node made, from its answer to `new' (or `new_group').
-spec created(term(), default | distribute_pool_client:server(), distribute_pool_client:server(), term(),
              non_neg_integer(), non_neg_integer(), map()) ->
    {ok, pool()} | {error, term()}.
created(Reply, CNode, Server, Name, AcquireMs, Wait, Meta) ->
    Handle = fun(Id, Ms) ->
                     Pool = #dpool{server = Server, id = Id, acquire_timeout_ms = Ms},
                     _ = [distribute_pool_names:remember(Name, Pool) || CNode =:= default, ?IS_POOL_NAME(Name)],
                     Pool
             end,
    case distribute_pool_proto:new_reply(Reply) of
        {ok, PoolId} ->
            Pool = Handle(PoolId, AcquireMs),
            distribute_pool_telemetry:execute([distribute_pool, pool, created], #{count => 1},
                                              maps:merge((distribute_pool_telemetry:pool_meta(Pool))#{name => Name},
                                                         Meta)),
            {ok, Pool};
        {already_started, Id, Ms} ->
            {error, {already_started, Handle(Id, Ms)}};
        {error, timeout} ->
            Text = io_lib:format("the C-node did not answer within ~b ms", [Wait]),
            {error, {connection_failed, {timeout, unicode:characters_to_binary(Text)}}};
        {error, _} = Error ->
            Error
    end.

%% @doc Creates a pool group: one handle over one pool per target, each made with Options (a target's own
%% options, given as `{Target, TargetOptions}', go over them), usable wherever a pool is (README, "Pool
%% groups"). Each operation through it goes to one member, picked by the option `strategy':
%% `round_robin' (default; members in turn) or `least_in_use' (the fewest leases out plus callers in line),
%% among the members that are up (a connection up, or none failed since the last came up); or, through a
%% handle from keyed/2, by its key. A checkout or one-shot operation that fails with `connection_failed' before
%% anything of it reached its target is served once more by another member that is up (never once the target
%% may have acted on it). Options are those of new/2 (`max_connections' is required, for each member) plus
%% `strategy'; `name', `owner' and `owner_grace_ms' are the group's (its members have no name of their own,
%% and go with the group). Returns once each member has a connection up or failed its first attempt:
%% `{ok, Group}' when one is up (the others join and keep reconnecting), else the first target's
%% `{error, {connection_failed, _}}'. Errors as new/2, and `{invalid_config, Why}' for the list of targets
%% (`{bad_value, targets, Targets, Allowed}': not a list of 1..64, `{duplicate_target, Target}'), a bad
%% `strategy', or an option of the group given for one target. A group of the embedded C-node is `owner =>
%% none' unless given, and is restored after a restart of that C-node, as its pools are.
-spec new_group([distribute_pool_group:target_spec()], pos_integer() | group_options()) ->
    {ok, pool()} | {error, invalid_config() | connection_failure() | limit_reached() | {already_started, pool()}}.
new_group(Targets, Options) ->
    case distribute_pool_group:prepare(Targets, Options) of
        {ok, #{cnode := CNode, members := Members, pool_options := PoolOptions, group_options := GroupOptions,
               name := Name, targets := Given, acquire_timeout_ms := AcquireMs, wait := Wait}} ->
            case resolve_cnode(CNode) of
                {ok, Server} ->
                    Reply = case CNode =:= default andalso distribute_pool_env:embedded() of
                                %% Through the registry, which records the group for a restart of the C-node.
                                true ->
                                    distribute_pool_registry:new_group(Members, PoolOptions, GroupOptions, Wait);
                                false ->
                                    distribute_pool_client:call(
                                      Server, distribute_pool_proto:new_group(Members, PoolOptions, GroupOptions),
                                      Wait)
                            end,
                    case created(Reply, CNode, Server, Name, AcquireMs, Wait, #{targets => Targets}) of
                        %% The C-node names a target as it went on the wire (a string as a binary).
                        {error, {invalid_config, {Why, Wire}}} when Why =:= bad_target; Why =:= target_is_self;
                                                                   Why =:= target_not_allowed;
                                                                   Why =:= duplicate_target ->
                            {error, {invalid_config, {Why, proplists:get_value(Wire, Given, Wire)}}};
                        Result ->
                            Result
                    end;
                {error, _} = Error ->
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc A handle of the group Group whose checkouts, one-shot operations and cast batches go to the member
%% Key maps to: by rendezvous (highest random weight) hashing of the key's digest (erlang:phash2/2 of Key,
%% the same on every node) with each target's name over the members that are up, so a key keeps its target
%% while that target is up, and only the keys of a target that went down move (back when it is up again).
%% Key is any term. Given a plain pool the key changes nothing. A name is looked up once, here:
%% `{error, invalid_pool}' when it names nothing.
-spec keyed(pool_ref(), term()) -> pool() | {error, invalid_pool | connection_failure()}.
keyed(PoolRef, Key) ->
    with_pool(PoolRef, fun(Pool) -> distribute_pool_group:keyed(Pool, Key) end).

%% @doc Adds Target (or `{Target, TargetOptions}', over the group's options of new_group/2) to a running group:
%% `ok' once its first connection is up, and the group picks it from then on; `{error, {connection_failed,
%% _}}' when it could not connect (nothing is added), `{error, {invalid_config, {duplicate_target, T}}}' for a
%% target the group has, `{error, {limit_reached, {max_group_members, Text}}}' beyond 64 members.
-spec add_target(pool_ref(), distribute_pool_group:target_spec()) ->
    ok | {error, invalid_pool | invalid_config() | connection_failure() | limit_reached() | timeout}.
add_target(GroupRef, Target) ->
    with_pool_once(GroupRef, fun(Group) -> distribute_pool_group:add_target(Group, Target) end).

%% @doc remove_target/3 with a drain of 5000 ms.
-spec remove_target(pool_ref(), target()) ->
    ok | {error, invalid_pool | invalid_config() | connection_failure() | timeout | badarg}.
remove_target(GroupRef, Target) ->
    remove_target(GroupRef, Target, #{}).

%% @doc Removes Target from a running group: the group stops picking it at once, its callers still in line go
%% to other members, and its leases in use finish (up to `drain_timeout_ms', as destroy/2); `ok' once it has
%% drained and closed. `{error, {invalid_config, {unknown_target, T}}}' for a target the group does not have,
%% `{error, {invalid_config, {last_target, T}}}' for its only one (destroy the group instead).
-spec remove_target(pool_ref(), target(), destroy_options()) ->
    ok | {error, invalid_pool | invalid_config() | connection_failure() | timeout | badarg}.
remove_target(GroupRef, Target, Options) ->
    with_pool_once(GroupRef, fun(Group) ->
                                     case drain_timeout(Options) of
                                         error -> {error, badarg};
                                         {ok, Drain} -> distribute_pool_group:remove_target(Group, Target, Drain)
                                     end
                             end).

%% @doc A child specification that runs a named pool under the caller's supervisor: the pool is created
%% when the child starts (new/2 with the same options, `target' among them) and destroyed when it stops, so
%% the target sees its hidden nodes go; a supervisor restart creates it again. Options is a map or a keyword
%% list with `name' and `target' and any option of new/2, plus `drain_timeout_ms' for the destroy at stop
%% (default 5000). In Erlang: `distribute_pool:child_spec(#{name => orders, target => 'orders@host',
%% max_connections => 8})'; in Elixir: `{:distribute_pool, name: :orders, target: :"orders@host",
%% max_connections: 8}' (Supervisor calls child_spec/1 with the keyword list). The child's id is
%% `{distribute_pool, Name}'. With `targets' (a list of new_group/2's targets) in place of `target', the child
%% runs a named pool group (new_group/2) the same way. Raises `error:{invalid_config, Why}' when `name' or
%% `target' is missing, as child_spec/1 functions do with arguments they cannot use.
-spec child_spec(options()) -> supervisor:child_spec().
child_spec(Options) ->
    case distribute_pool_owner:child_spec(Options) of
        {ok, Spec} -> Spec;
        {error, Why} -> erlang:error(Why, [Options])
    end.

%% @doc Starts a process that owns a named pool (see child_spec/1): it creates the pool and destroys it
%% when it stops. `{error, Reason}' with the error of new/2 when the pool cannot be created.
-spec start_link(options()) -> {ok, pid()} | {error, term()}.
start_link(Options) ->
    distribute_pool_owner:start_link(Options).

%% @doc Any error reason of this module (the `Reason' of `{error, Reason}') as a sentence, for logs and
%% for people: the text of a connection failure, what an invalid option should have been, what an atom
%% means.
-spec format_error(term()) -> string().
format_error({connection_failed, {_Kind, Text}} = Reason) when is_binary(Text) ->
    case unicode:characters_to_list(Text) of
        Chars when is_list(Chars) -> Chars;
        _NotUtf8 -> lists:flatten(io_lib:format("~0tp", [Reason]))
    end;
format_error({limit_reached, {Limit, Text}}) when is_atom(Limit), is_binary(Text) ->
    case unicode:characters_to_list(Text) of
        Chars when is_list(Chars) -> "limit " ++ atom_to_list(Limit) ++ " reached: " ++ Chars;
        _NotUtf8 -> lists:flatten(io_lib:format("~0tp", [{limit_reached, {Limit, Text}}]))
    end;
format_error({invalid_config, Why}) ->
    "invalid configuration: " ++ format_config_error(Why);
format_error({already_started, _Pool}) ->
    "a pool of that name exists already (the error holds its handle)";
format_error(pool_exhausted) ->
    "no connection of the pool became free within the acquire timeout";
format_error(invalid_pool) ->
    "no such pool: unknown, or destroyed";
format_error(invalid_connection) ->
    "the lease has ended: the connection was used after its with_connection fun returned, or discarded";
format_error(timeout) ->
    "no answer within the timeout";
format_error(badarg) ->
    "a bad argument: a fun, timeout, destination or option of the wrong type";
format_error({down, Reason}) ->
    lists:flatten(io_lib:format("the process asked does not exist or died: ~0tp", [Reason]));
format_error({badrpc, Reason}) ->
    lists:flatten(io_lib:format("the remote call failed: ~0tp", [Reason]));
format_error(Other) ->
    lists:flatten(io_lib:format("~0tp", [Other])).

-spec format_config_error(term()) -> string().
format_config_error(Why) ->
    lists:flatten(
      case Why of
          {unknown_option, Key, {did_you_mean, Known}} ->
              io_lib:format("unknown option ~0tp (did you mean ~0tp?)", [Key, Known]);
          {unknown_option, Key} ->
              io_lib:format("unknown option ~0tp", [Key]);
          {duplicate_option, Key} ->
              io_lib:format("option ~0tp given twice", [Key]);
          {bad_value, Key, Value, Allowed} ->
              io_lib:format("~0tp => ~0tp: must be ~ts", [Key, Value, Allowed]);
          {missing_option, Key} ->
              io_lib:format("option ~0tp is required", [Key]);
          {bad_target, Target} ->
              io_lib:format("target ~0tp is no node name (name@host)", [Target]);
          {target_is_self, Target} ->
              io_lib:format("target ~0tp is the C-node itself (its name, a lane's or a pooled connection's)",
                            [Target]);
          {target_not_allowed, Target} ->
              io_lib:format("target ~0tp is outside the C-node's target allow-list (allowed_targets, "
                            "--allow-target)", [Target]);
          {tls_unusable, Text} when is_binary(Text) ->
              case unicode:characters_to_list(Text) of
                  Chars when is_list(Chars) -> ["the pool's tls option cannot be used: ", Chars];
                  _NotUtf8 -> io_lib:format("~0tp", [Why])
              end;
          {bad_options, Options} ->
              io_lib:format("options ~0tp are neither a map, a keyword list nor a maximum", [Options]);
          Other ->
              io_lib:format("~0tp", [Other])
      end).

%% The default C-node, with the application started first when it is not running.
-spec resolve_cnode(default | distribute_pool_client:server()) ->
    {ok, distribute_pool_client:server()} | {error, connection_failure()}.
resolve_cnode(default) ->
    case is_alive() andalso application:ensure_all_started(distribute_pool) of
        false ->
            distribute_pool_client:not_running("this node is not distributed: start it with -name or -sname, or call net_kernel:start/2");
        {ok, _} ->
            case default_cnode() of
                {Service, Node} when is_atom(Service), is_atom(Node) ->
                    {ok, {Service, Node}};
                {error, Why} ->
                    distribute_pool_client:not_running(io_lib:format("the distribute_pool application has no C-node: ~0tp", [Why]))
            end;
        {error, Reason} ->
            distribute_pool_client:not_running(io_lib:format("the distribute_pool application cannot start: ~0tp", [Reason]))
    end;
resolve_cnode(Server) ->
    {ok, Server}.

%% Runs Fun with the pool behind a handle or a name; {error, invalid_pool} for anything that is neither. For
%% operations that did nothing when answered invalid_pool: a stale handle of a name is looked up again
%% (distribute_pool_names).
-spec with_pool(term(), fun((pool()) -> Result)) -> Result | {error, term()}.
with_pool(PoolOrName, Fun) ->
    distribute_pool_names:with_pool(PoolOrName, checked(Fun)).

%% The same for operations that may have acted before an invalid_pool (one-shot operations, cast batches,
%% destroy): never run twice.
-spec with_pool_once(term(), fun((pool()) -> Result)) -> Result | {error, term()}.
with_pool_once(PoolOrName, Fun) ->
    distribute_pool_names:with_pool_once(PoolOrName, checked(Fun)).

-spec checked(fun((pool()) -> Result)) -> fun((pool()) -> Result | {error, invalid_pool}).
checked(Fun) ->
    fun(Pool) ->
            case valid_pool(Pool) of
                true -> Fun(Pool);
                false -> {error, invalid_pool}
            end
    end.

%% @doc Leases a connection, runs Fun with it in the calling process, and returns the lease afterwards,
%% whatever Fun does (an exception it raises leaves unchanged, after the lease went back). Waits for a free
%% connection up to the pool's acquire timeout (first come, first served), then gives
%% `{error, pool_exhausted}'; `{error, {connection_failed, _}}' at once when no connection is up and the
%% last attempt to open one failed (its cause).
%%
%% The lease is pipelined: the checkout is sent and Fun runs at once, without waiting for its answer; Fun's
%% first operation on Conn follows the checkout to the C-node and is served on the lease the checkout gets,
%% so with_connection + one call costs no round trip of its own for the lease. The checkout is quiet: a lease
%% granted at once is not answered, and the answer to that first operation tells its ids. What Fun sees when no
%% connection could be leased: it runs up to its first operation on Conn (connection_info/1 included),
%% which waits as a checkout does and then does not return: it ends Fun with an exception that
%% with_connection catches, and with_connection returns the checkout's error (`{error, pool_exhausted}',
%% `{error, {connection_failed, _}}', `{error, invalid_pool}', ...). (A Fun that catches that exception
%% itself gets it again from every later operation on Conn, and its result is dropped.) A Fun that makes no
%% operation on Conn waits for the checkout's answer when it returns, and with_connection returns the error
%% then. Another process given Conn asks the C-node for the lease first (while the checkout waits in line,
%% again every few ms up to the acquire timeout) and gets errors as return values; a process on another node
%% can use Conn once the checkout has reached the C-node (before, its operations give invalid_connection).
-spec with_connection(pool_ref(), fun((conn()) -> Result)) ->
    {ok, Result} | {error, pool_exhausted | connection_failure() | invalid_pool | badarg | limit_reached()}.
with_connection(Pool, Fun) ->
    with_connection(Pool, Fun, #{}).

%% @doc with_connection/2 with its own acquire timeout: `#{acquire_timeout_ms => Ms}' (0 = fail at once
%% when no connection is free).
-spec with_connection(pool_ref(), fun((conn()) -> Result), checkout_options()) ->
    {ok, Result} | {error, pool_exhausted | connection_failure() | invalid_pool | badarg | limit_reached()}.
with_connection(PoolRef, Fun, Options) ->
    with_pool(PoolRef, fun(_Pool) when not is_function(Fun, 1) ->
                               {error, badarg};
                          (Pool) ->
                               case checkout_timeout(Pool, Options) of
                                   {ok, WireTimeout, Wait} -> do_with_connection(Pool, Fun, WireTimeout, Wait);
                                   error -> {error, badarg}
                               end
                       end).

-spec checkout_timeout(pool(), term()) -> {ok, default | non_neg_integer(), non_neg_integer()} | error.
checkout_timeout(#dpool{acquire_timeout_ms = Default}, Options) ->
    case distribute_pool_config:to_map(Options) of
        {ok, Map} when map_size(Map) =:= 0 ->
            {ok, default, Default + ?DPOOL_CHECKOUT_MARGIN_MS};
        {ok, #{acquire_timeout_ms := Ms} = Map} when map_size(Map) =:= 1, is_integer(Ms), Ms >= 0,
                                                     Ms =< ?DPOOL_MAX_ACQUIRE_MS ->
            {ok, Ms, Ms + ?DPOOL_CHECKOUT_MARGIN_MS};
        _ ->
            error
    end.

-spec do_with_connection(pool(), fun((conn()) -> Result), default | non_neg_integer(), non_neg_integer()) ->
    {ok, Result} | {error, term()}.
do_with_connection(#dpool{server = {_, CNode} = Server, id = PoolId} = Pool, Fun, WireTimeout, Wait) ->
    Started = distribute_pool_telemetry:checkout_start(Pool),
    %% Quiet: a lease granted at once is told by the answer to the fun's first operation, which saves the
    %% C-node an answer and the caller a message to read. A service on this node (a test's fake) gets the plain
    %% checkout.
    Quiet = CNode =/= node(),
    Request = case Quiet of
                  true -> distribute_pool_proto:checkout_quiet(PoolId, WireTimeout);
                  false -> distribute_pool_proto:checkout(PoolId, WireTimeout)
              end,
    Checkout = distribute_pool_group:routed(Pool, Request),
    case distribute_pool_client:send_call(Server, Checkout, Wait) of
        {ok, Pending} ->
            Tag = distribute_pool_client:pending_tag(Pending),
            Conn = #dpool_conn{pool = Pool, checkout = Tag, lane = distribute_pool_client:pending_lane(Pending)},
            put_lease_state(Conn, {pending, Pending, Started, distribute_pool_client:deadline(Wait), Quiet}),
            try Fun(Conn) of
                Result ->
                    case settle(Conn) of
                        {ok, _, _, _} -> {ok, Result};
                        ended -> {ok, Result};
                        {error, _} = Error -> Error
                    end
            catch
                throw:{?LEASE_FAILED, Tag, Reason} -> {error, Reason}
            after
                end_lease(Conn)
            end;
        {error, _} = Unreachable ->
            distribute_pool_telemetry:checkout_stop(Pool, Started, Unreachable),
            Unreachable
    end.

%% The answer of the holder's checkout: read once (waiting for it if it has not come), then kept.
-spec settle(conn()) -> {ok, non_neg_integer(), non_neg_integer(), node()} | ended | {error, term()}.
settle(Conn) ->
    settle(Conn, infinity, {error, pool_exhausted}).

%% As settle/1, waiting at most Cap ms (besides the checkout's own deadline); what the checkout gives when no
%% answer came in time is NoAnswer.
-spec settle(conn(), timeout(), {error, term()}) ->
    {ok, non_neg_integer(), non_neg_integer(), node()} | ended | {error, term()}.
settle(#dpool_conn{pool = #dpool{server = Server, id = PoolId}, checkout = Tag, lane = Lane} = Conn, Cap,
       NoAnswer) ->
    case lease_state(Conn) of
        {pending, Pending, _Started, _Deadline, true} ->
            %% A quiet checkout that no operation has been answered for: its answer, if it has come, or else
            %% the C-node is asked, behind the checkout on its lane.
            case distribute_pool_client:poll_call(Pending) of
                {reply, Reply} ->
                    known(Conn, distribute_pool_proto:checkout_reply(Reply));
                none ->
                    Asked = distribute_pool_client:call_on_lane(Lane, distribute_pool_proto:lease_of(PoolId, Tag),
                                                                ?DPOOL_PROMPT_WAIT_MS),
                    case distribute_pool_proto:checkout_reply(Asked) of
                        {ok, _, _, _} = Lease ->
                            told(Conn, Lease);
                        {error, Slow} when Slow =:= lease_pending; Slow =:= timeout ->
                            %% In line (it is answered when granted), or a C-node too slow to say.
                            answer_comes(Conn),
                            settle(Conn, Cap, NoAnswer);
                        {error, {connection_failed, _}} = Failed ->
                            %% No C-node: an answer is not waited for long.
                            answer_comes(Conn),
                            settle(Conn, min(Cap, ?ORPHANED_CHECKOUT_MS), Failed);
                        {error, _} ->
                            %% No such lease now: the checkout failed, and its answer came before this one over
                            %% the same lane, or its lease was granted quietly and has ended since.
                            case distribute_pool_client:poll_call(Pending) of
                                {reply, Reply} ->
                                    known(Conn, distribute_pool_proto:checkout_reply(Reply));
                                none ->
                                    ok = distribute_pool_client:forget_call(Pending),
                                    known(Conn, ended)
                            end
                    end
            end;
        {pending, Pending, _Started, Deadline, false} ->
            %% infinity, an atom, is above every number: min/2 keeps the other bound.
            Left = min(Cap, distribute_pool_client:remaining(Deadline)),
            Lease = case distribute_pool_client:await_call(Pending, Left) of
                        {reply, Reply} ->
                            distribute_pool_proto:checkout_reply(Reply);
                        {timeout, Tag} ->
                            %% The C-node should have answered pool_exhausted by now (or, see
                            %% orphaned_checkout/2, never got the checkout). Withdraw the checkout so that a lease
                            %% granted after all goes back to the pool instead of to a caller that stopped
                            %% waiting: over the checkout's lane, after it.
                            distribute_pool_client:cast_on_lane(Lane, distribute_pool_proto:cancel(PoolId, self(),
                                                                                                    Tag)),
                            NoAnswer;
                        {error, {connection_failed, _}} = Failed ->
                            distribute_pool_client:lane_failed(Server, distribute_pool_client:pending_lane(Pending)),
                            Failed
                    end,
            known(Conn, Lease);
        undefined ->
            {error, invalid_connection};
        Known ->
            Known
    end.

%% The holder's first operation, sent over the checkout's lane after it, found no C-node there: the checkout
%% is lost too. Either both went over the connection that failed, and the nodedown of the checkout's watch
%% (which the operation shared and put back) ends its wait at once, or the checkout did and the operation, sent
%% once that connection was gone, opened a new one (to a C-node started again meanwhile): the checkout's wait
%% then finds the node connected and takes that nodedown for a stale one, and nothing would ever answer the
%% checkout. So its answer is waited for only briefly, and then the checkout fails as the operation did
%% (withdrawn, in case it did arrive).
-spec orphaned_checkout(conn(), {error, term()}) ->
    {ok, non_neg_integer(), non_neg_integer(), node()} | ended | {error, term()}.
orphaned_checkout(Conn, Unreachable) ->
    answer_comes(Conn),
    settle(Conn, ?ORPHANED_CHECKOUT_MS, Unreachable).

%% The holder's checkout, sent quiet, is answered (it waits in line, or failed) or is known lost: its answer is
%% awaited from now on.
-spec answer_comes(conn()) -> ok.
answer_comes(Conn) ->
    case lease_state(Conn) of
        {pending, Pending, Started, Deadline, true} ->
            put_lease_state(Conn, {pending, Pending, Started, Deadline, false}),
            ok;
        _ ->
            ok
    end.

%% The holder's quiet checkout got Lease, told by the answer to an operation or to lease_of: no answer of the
%% checkout's own comes (one that came meanwhile is dropped with the call).
-spec told(conn(), {ok, non_neg_integer(), non_neg_integer(), node()}) ->
    {ok, non_neg_integer(), non_neg_integer(), node()}.
told(Conn, Lease) ->
    {pending, Pending, _, _, _} = lease_state(Conn),
    ok = distribute_pool_client:forget_call(Pending),
    known(Conn, Lease).

%% What the holder's checkout got, now known (its call ended).
-spec known(conn(), Lease) -> Lease
          when Lease :: {ok, non_neg_integer(), non_neg_integer(), node()} | ended | {error, term()}.
known(#dpool_conn{pool = Pool} = Conn, Lease) ->
    {pending, _, Started, _, _} = lease_state(Conn),
    distribute_pool_telemetry:checkout_stop(Pool, Started, Lease),
    put_lease_state(Conn, Lease),
    Lease.

%% The holder's record of Conn's checkout, or undefined (in any other process, and for a forged Conn).
-spec lease_state(conn()) -> lease_state() | undefined.
lease_state(#dpool_conn{pool = Pool} = Conn) ->
    case get(?LEASE_KEY(Conn)) of
        {Pool, State} -> State;
        _ -> undefined
    end.

-spec put_lease_state(conn(), lease_state()) -> ok.
put_lease_state(#dpool_conn{pool = Pool} = Conn, State) ->
    _ = put(?LEASE_KEY(Conn), {Pool, State}),
    ok.

%% The end of with_connection: the checkout's answer read, and a lease it got returned (after what the holder
%% sent with send_async/3 is queued).
-spec end_lease(conn()) -> ok.
end_lease(#dpool_conn{pool = #dpool{id = PoolId}, checkout = Tag, lane = Lane} = Conn) ->
    Lease = settle(Conn),
    erase(?LEASE_KEY(Conn)),
    case Lease of
        {ok, ConnId, LeaseId, _} ->
            ok = end_async(PoolId, ConnId, Tag),
            %% Over the lane of the checkout and of the holder's operations, after them.
            distribute_pool_client:cast_on_lane(Lane, distribute_pool_proto:checkin(PoolId, ConnId, LeaseId));
        ended ->
            ok;
        {error, _} ->
            ok
    end.

%% Runs an operation on Conn's lease: Op(ConnId, LeaseId) gives its request and the wait for its answer, once the
%% lease's ids are known here. The holder's operations before the checkout's answer was read go by the
%% checkout's tag instead (Op(checkout, Tag)), right behind the checkout on its lane, and wait longer by what is
%% left of the checkout's wait, since the C-node serves them once the lease is granted: lease_pending means the
%% checkout still waits in line, so the holder waits for its answer and tries again with the ids. Another
%% process asks the C-node for the ids.
-spec leased(conn(), fun((non_neg_integer() | checkout, non_neg_integer() | distribute_pool_proto:tag()) ->
                                {distribute_pool_proto:request(), timeout()})) -> term().
leased(#dpool_conn{pool = #dpool{server = Server}, checkout = Tag} = Conn, Op) ->
    case lease_state(Conn) of
        {ok, ConnId, LeaseId, _} ->
            ask(Server, Op(ConnId, LeaseId));
        {error, Reason} ->
            throw({?LEASE_FAILED, Tag, Reason});
        ended ->
            {error, invalid_connection};
        {pending, Pending, _, Deadline, _} ->
            {Request, Wait} = Op(checkout, Tag),
            case distribute_pool_client:call_behind(Server, Pending, Request,
                                                    plus(Wait, distribute_pool_client:remaining(Deadline))) of
                {leased, Ids, Answer} = Told ->
                    %% The quiet checkout's lease, told with this first operation's answer.
                    case distribute_pool_proto:checkout_reply({ok, Ids}) of
                        {ok, _, _, _} = Lease ->
                            _ = told(Conn, Lease),
                            Answer;
                        {error, _} = Bad ->
                            throw({?LEASE_FAILED, Tag, {bad_reply, Told, Bad}})
                    end;
                {error, Why} when Why =:= lease_pending; Why =:= invalid_connection ->
                    %% Still in line (its answer comes, quiet or not), or no lease the C-node knows by the tag:
                    %% the checkout failed already, or (quiet) its lease ended, which settle/3 tells apart.
                    ok = case Why of
                             lease_pending -> answer_comes(Conn);
                             invalid_connection -> ok
                         end,
                    case holder_lease(Conn) of
                        {ok, ConnId, LeaseId, _} when Why =:= lease_pending -> ask(Server, Op(ConnId, LeaseId));
                        {ok, _, _, _} -> {error, invalid_connection};
                        {error, invalid_connection} = Ended -> Ended
                    end;
                {error, {connection_failed, {cnode_not_running, _}}} = Unreachable ->
                    _ = orphaned_checkout(Conn, Unreachable),
                    Unreachable;
                Reply ->
                    %% Served on the lease: the checkout's answer came before this one.
                    _ = settle(Conn),
                    Reply
            end;
        undefined ->
            case lease_ids(Conn) of
                {ok, ConnId, LeaseId, _} -> ask(Server, Op(ConnId, LeaseId));
                {error, _} = Error -> Error
            end
    end.

-spec ask(distribute_pool_client:server(), {distribute_pool_proto:request(), timeout()}) -> term().
ask(Server, {Request, Wait}) ->
    distribute_pool_client:call(Server, Request, Wait).

%% The ids of Conn's lease: the holder waits for its checkout's answer (and when there is no lease, its
%% operation ends Fun), another process asks the C-node.
-spec lease_ids(conn()) -> {ok, non_neg_integer(), non_neg_integer(), node()} | {error, term()}.
lease_ids(#dpool_conn{checkout = Tag} = Conn) ->
    case lease_state(Conn) of
        undefined ->
            case get(?BOUND_KEY) of
                {Tag, ConnId, LeaseId, Node} -> {ok, ConnId, LeaseId, Node};
                _ -> ask_lease(Conn)
            end;
        _ ->
            holder_lease(Conn)
    end.

%% The holder's lease, waited for; with none, the operation that asked ends Fun (with_connection catches it).
%% One that ended already is invalid_connection, as any lease that ended.
-spec holder_lease(conn()) -> {ok, non_neg_integer(), non_neg_integer(), node()} | {error, invalid_connection}.
holder_lease(#dpool_conn{checkout = Tag} = Conn) ->
    case settle(Conn) of
        {ok, _, _, _} = Lease -> Lease;
        ended -> {error, invalid_connection};
        {error, Reason} -> throw({?LEASE_FAILED, Tag, Reason})
    end.

%% A process other than the holder asks the C-node for the lease's ids over its own lane, which no big
%% message of the holder's holds up; an answer that no such lease exists may only mean that the checkout has
%% not reached the C-node yet (it went over the holder's lane), so it is asked again over that lane, behind
%% the checkout, for the final answer. While the checkout waits in line it asks again, every few ms, up to the
%% acquire timeout.
-spec ask_lease(conn()) -> {ok, non_neg_integer(), non_neg_integer(), node()} | {error, term()}.
ask_lease(#dpool_conn{pool = #dpool{server = Server, acquire_timeout_ms = AcquireMs}} = Conn) ->
    Deadline = distribute_pool_client:deadline(AcquireMs + ?DPOOL_CHECKOUT_MARGIN_MS),
    case ask_lease(Conn, distribute_pool_client:lane(Server), Deadline, ?LEASE_POLL_MS) of
        {error, invalid_connection} -> ask_lease(Conn, Conn#dpool_conn.lane, Deadline, ?LEASE_POLL_MS);
        Answer -> Answer
    end.

-spec ask_lease(conn(), distribute_pool_client:server(), integer(), pos_integer()) ->
    {ok, non_neg_integer(), non_neg_integer(), node()} | {error, term()}.
ask_lease(#dpool_conn{pool = #dpool{id = PoolId}, checkout = Tag} = Conn, Lane, Deadline, Backoff) ->
    Reply = distribute_pool_client:call_on_lane(Lane, distribute_pool_proto:lease_of(PoolId, Tag),
                                                ?DPOOL_PROMPT_WAIT_MS),
    case distribute_pool_proto:checkout_reply(Reply) of
        {ok, ConnId, LeaseId, Node} = Ids ->
            put(?BOUND_KEY, {Tag, ConnId, LeaseId, Node}),
            Ids;
        {error, lease_pending} ->
            case distribute_pool_client:remaining(Deadline) of
                0 ->
                    {error, pool_exhausted};
                Left ->
                    timer:sleep(min(Backoff, Left)),
                    ask_lease(Conn, Lane, Deadline, min(2 * Backoff, ?LEASE_POLL_MAX_MS))
            end;
        {error, _} = Error ->
            Error
    end.

%% @doc Sends Msg to Dest (a registered name, a pid or `{Name, Node}' on the target) over the leased
%% connection; `ok' once it is queued on that connection, like `!' (delivery is not confirmed). Given a pool
%% (or its name), one-shot: the C-node leases a connection (waiting up to the pool's acquire timeout, in line
%% with checkouts), queues Msg on it and returns the lease at once; one message from the caller.
-spec send(pool_ref() | conn(), dest(), term()) -> ok | {error, lease_error() | one_shot_error()}.
send(Handle, Dest, Msg) ->
    distribute_pool_telemetry:operation(send, Handle, fun() -> do_send(Handle, Dest, Msg) end).

-spec do_send(pool_ref() | conn(), dest(), term()) -> ok | {error, lease_error() | one_shot_error()}.
do_send(Handle, Dest, Msg) when ?IS_POOL_REF(Handle) ->
    with_pool_once(Handle, fun(#dpool{id = PoolId, acquire_timeout_ms = AcquireMs} = Pool) ->
                              one_shot(Pool, distribute_pool_proto:pooled_send(PoolId, Dest, Msg),
                                       AcquireMs + ?DPOOL_CHECKOUT_MARGIN_MS + ?DPOOL_SEND_WAIT_MS)
                      end);
do_send(Conn, Dest, Msg) ->
    case valid_conn(Conn) andalso flush_async(Conn) of
        ok ->
            #dpool_conn{pool = #dpool{id = PoolId}} = Conn,
            leased(Conn, fun(ConnId, LeaseId) ->
                                 {distribute_pool_proto:send(PoolId, ConnId, LeaseId, Dest, Msg), ?DPOOL_SEND_WAIT_MS}
                         end);
        {error, _} = Error ->
            Error;
        false ->
            {error, invalid_connection}
    end.

%% @doc Sends Msg to Dest over the leased connection without waiting for the C-node, as `!' does: `ok' once it is
%% handed to the calling process's pipe for this lease (distribute_pool_pipe, started at the first call), which
%% passes what piles up to the C-node in one request, so many messages share one distribution message. The
%% C-node queues them on the connection in the order the process sent them; a send/3, request/3,4, call/4,5
%% or ping/1 of the same process on the lease waits until its earlier send_async/3 messages are queued, so it
%% comes after them. Back-pressure and errors come through a window: the 64th message, or the one that brings
%% the bytes (erlang:external_size/1) to 64 KiB, since the last wait waits until everything before it is
%% queued and the connection is not busy, and returns the first error since the last wait
%% (`{error, invalid_connection | {connection_failed, _} | invalid_pool | timeout}'). So a sender is never more than
%% one window ahead of the connection's busy limit, and a lease that ended shows within one window. What the
%% C-node cannot queue is dropped and counted in stats (dropped_sends), also a pid or {Name, Node} of another
%% node than the target. The window and the pipe are kept in the calling process's dictionary (one entry
%% per pool connection it sends on); the pipe ends with the process, or when with_connection returns in the
%% holder.
-spec send_async(conn(), dest(), term()) -> ok | {error, lease_error()}.
send_async(Conn, Dest, Msg) ->
    case valid_conn(Conn) of
        false ->
            {error, invalid_connection};
        true ->
            case valid_dest(Dest) of
                false -> {error, badarg};
                true -> do_send_async(Conn, Dest, Msg)
            end
    end.

-spec do_send_async(conn(), dest(), term()) -> ok | {error, lease_error()}.
do_send_async(#dpool_conn{pool = #dpool{server = Server, id = PoolId}, checkout = Tag} = Conn, Dest, Msg) ->
    case lease_ids(Conn) of
        {ok, ConnId, LeaseId, _} ->
            Key = {PoolId, ConnId},
            {Pipe, Count, Bytes} = case async_pipe(Key) of
                                       {Tag, LeaseId, P, C, B} ->
                                           {P, C, B};
                                       Other ->
                                           %% A pipe of an earlier lease on this connection has nothing left
                                           %% to do.
                                           _ = [distribute_pool_pipe:stop(Old) || {_, _, Old, _, _} <- [Other]],
                                           {distribute_pool_pipe:start(Server, PoolId, ConnId, LeaseId), 0, 0}
                                   end,
            ok = distribute_pool_pipe:send(Pipe, Dest, Msg),
            Size = erlang:external_size(Msg),
            case Count + 1 >= ?ASYNC_WINDOW_MSGS orelse Bytes + Size >= ?ASYNC_WINDOW_BYTES of
                true ->
                    put_async_pipe(Key, {Tag, LeaseId, Pipe, 0, 0}),
                    async_sync(Key, Pipe);
                false ->
                    put_async_pipe(Key, {Tag, LeaseId, Pipe, Count + 1, Bytes + Size}),
                    ok
            end;
        {error, _} = Error ->
            Error
    end.

%% The calling process's pipe for a pool connection ({PoolId, ConnId}), or none.
-spec async_pipe({non_neg_integer(), non_neg_integer()}) -> tuple() | none.
async_pipe(Key) ->
    maps:get(Key, get_async_pipes(), none).

-spec put_async_pipe({non_neg_integer(), non_neg_integer()}, tuple()) -> ok.
put_async_pipe(Key, Pipe) ->
    put(?ASYNC_KEY, (get_async_pipes())#{Key => Pipe}),
    ok.

-spec erase_async_pipe({non_neg_integer(), non_neg_integer()}) -> ok.
erase_async_pipe(Key) ->
    case maps:remove(Key, get_async_pipes()) of
        Empty when map_size(Empty) =:= 0 -> erase(?ASYNC_KEY);
        Pipes -> put(?ASYNC_KEY, Pipes)
    end,
    ok.

-spec get_async_pipes() -> #{{non_neg_integer(), non_neg_integer()} => tuple()}.
get_async_pipes() ->
    case get(?ASYNC_KEY) of
        undefined -> #{};
        Pipes -> Pipes
    end.

%% Waits until the calling process's send_async/3 messages on Conn's lease are queued; ok when it has sent
%% none (a lease whose ids are not known here yet has none: send_async/3 learns them first).
-spec flush_async(conn()) -> ok | {error, term()}.
flush_async(#dpool_conn{checkout = Tag}) ->
    case [{Key, LeaseId, Pipe} || {Key, {PipeTag, LeaseId, Pipe, _, _}} <- maps:to_list(get_async_pipes()),
                                  PipeTag =:= Tag] of
        [{Key, LeaseId, Pipe}] ->
            put_async_pipe(Key, {Tag, LeaseId, Pipe, 0, 0}),
            async_sync(Key, Pipe);
        [] ->
            ok
    end.

-spec async_sync({non_neg_integer(), non_neg_integer()}, pid()) -> ok | {error, term()}.
async_sync(Key, Pipe) ->
    case distribute_pool_pipe:sync(Pipe) of
        ok ->
            ok;
        {error, Reason} = Error when Reason =:= invalid_connection; Reason =:= invalid_pool ->
            %% The lease is over for good: so is its pipe (a later send_async/3 on it starts another, whose
            %% messages are dropped and counted as these were).
            ok = distribute_pool_pipe:stop(Pipe),
            erase_async_pipe(Key),
            Error;
        {error, _} = Error ->
            case is_process_alive(Pipe) of
                true -> ok;
                false -> erase_async_pipe(Key) % the next send_async/3 starts a new pipe
            end,
            Error
    end.

%% The end of a lease in its holder: what the holder sent with send_async/3 is queued before the lease goes
%% back, and its pipe ends.
-spec end_async(non_neg_integer(), non_neg_integer(), distribute_pool_proto:tag()) -> ok.
end_async(PoolId, ConnId, Tag) ->
    Key = {PoolId, ConnId},
    case async_pipe(Key) of
        {Tag, _, Pipe, _, _} ->
            _ = distribute_pool_pipe:sync(Pipe),
            ok = distribute_pool_pipe:stop(Pipe),
            erase_async_pipe(Key);
        _ ->
            ok
    end.

%% @doc request/4 with a timeout of 5000 ms.
-spec request(pool_ref() | conn(), dest(), term()) -> {ok, term()} | {error, lease_error() | one_shot_error()}.
request(Handle, Dest, Request) ->
    request(Handle, Dest, Request, ?DEFAULT_REQUEST_MS).

%% @doc A `gen_server' call to Dest on the target, made over the leased connection: `{ok, Reply}', or
%% `{error, timeout}' when no reply came within Timeout ms (request/3: 5000 ms, as gen_server:call/2;
%% `infinity' waits as long as the connection lives), `{error, {down, Reason}}' when the server does not
%% exist or died. Given a pool (or its name), one-shot: the C-node leases a connection, makes the call on
%% it and returns the lease when the answer (or the timeout, counted from when the request is sent) comes.
-spec request(pool_ref() | conn(), dest(), term(), timeout()) ->
    {ok, term()} | {error, lease_error() | one_shot_error()}.
request(Handle, Dest, Request, Timeout) ->
    distribute_pool_telemetry:operation(request, Handle, fun() -> do_request(Handle, Dest, Request, Timeout) end).

-spec do_request(pool_ref() | conn(), dest(), term(), timeout()) ->
    {ok, term()} | {error, lease_error() | one_shot_error()}.
do_request(Handle, Dest, Request, Timeout) when ?IS_POOL_REF(Handle) ->
    with_pool_once(Handle, fun(Pool) ->
                              case valid_request_timeout(Timeout) of
                                  false ->
                                      {error, badarg};
                                  true ->
                                      one_shot(Pool,
                                               distribute_pool_proto:pooled_request(Pool#dpool.id, Dest, Timeout,
                                                                                    Request),
                                               one_shot_wait(Pool, Timeout))
                              end
                      end);
do_request(Conn, Dest, Request, Timeout) ->
    case {valid_conn(Conn), valid_request_timeout(Timeout)} of
        {false, _} ->
            {error, invalid_connection};
        {true, false} ->
            {error, badarg};
        {true, true} ->
            #dpool_conn{pool = #dpool{id = PoolId}} = Conn,
            %% After the caller's own send_async/3 messages, as a message after them would be.
            case flush_async(Conn) of
                ok ->
                    leased(Conn, fun(ConnId, LeaseId) ->
                                         {distribute_pool_proto:request(PoolId, ConnId, LeaseId, Dest, Timeout,
                                                                        Request),
                                          request_wait(Timeout)}
                                 end);
                {error, _} = Error ->
                    Error
            end
    end.

-spec valid_request_timeout(term()) -> boolean().
valid_request_timeout(infinity) -> true;
valid_request_timeout(T) ->
    %% The C-node takes up to DPOOL_MAX_WAIT_MS, and so does a receive; the client's wait adds its margin.
    is_integer(T) andalso T >= 0 andalso T =< ?DPOOL_MAX_WAIT_MS - ?DPOOL_REQUEST_MARGIN_MS.

-spec request_wait(timeout()) -> timeout().
request_wait(infinity) -> infinity;
request_wait(Timeout) -> Timeout + ?DPOOL_REQUEST_MARGIN_MS.

%% A one-shot request or call: the wait for a lease, then the request's own timeout (from when it is sent).
-spec one_shot_wait(pool(), timeout()) -> timeout().
one_shot_wait(_Pool, infinity) -> infinity;
one_shot_wait(#dpool{acquire_timeout_ms = AcquireMs}, Timeout) ->
    AcquireMs + ?DPOOL_CHECKOUT_MARGIN_MS + request_wait(Timeout).

%% A one-shot operation: one call to the C-node. When the client stops waiting (the C-node should have
%% answered by then), it withdraws the operation, so that a lease taken for it goes back to the pool.
-spec one_shot(pool(), distribute_pool_proto:request(), distribute_pool_client:wait()) -> term().
one_shot(#dpool{server = Server, id = PoolId} = Pool, Request, Wait) ->
    case distribute_pool_client:call_tagged(Server, distribute_pool_group:routed(Pool, Request), Wait) of
        {reply, Reply} ->
            Reply;
        {timeout, Tag} ->
            distribute_pool_client:cast(Server, distribute_pool_proto:cancel(PoolId, self(), Tag)),
            {error, timeout};
        {error, {connection_failed, _}} = Error ->
            Error
    end.

%% @doc call/5 with a timeout of 5000 ms.
-spec call(pool_ref() | conn(), module(), atom(), [term()]) ->
    {ok, term()} | {error, {badrpc, term()} | lease_error() | one_shot_error()}.
call(Handle, M, F, A) ->
    call(Handle, M, F, A, ?DEFAULT_REQUEST_MS).

%% @doc apply(M, F, A) on the target, over the leased connection; given a pool (or its name), over a
%% connection the C-node leases for this call alone (see request/4). The C-node spawns erpc:execute_call/4 on
%% the target, as erpc:call does (rex's `{call, ...}' on a target that cannot spawn for it); the result is
%% rex's: `{ok, Value}' for a value or a throw, `{error, {badrpc, {'EXIT', Reason}}}' for an exit or an
%% error. Timeout defaults to 5000 ms (call/4), where erpc:call/4 waits forever; `{error, timeout}' when the
%% answer does not come in time (the call may still run on the target).
-spec call(pool_ref() | conn(), module(), atom(), [term()], timeout()) ->
    {ok, term()} | {error, {badrpc, term()} | lease_error() | one_shot_error()}.
call(Handle, M, F, A, Timeout) ->
    distribute_pool_telemetry:operation(call, Handle, fun() -> do_call_checked(Handle, M, F, A, Timeout) end).

-spec do_call_checked(pool_ref() | conn(), term(), term(), term(), term()) -> term().
do_call_checked(Handle, M, F, A, Timeout) when ?IS_POOL_REF(Handle) ->
    with_pool_once(Handle, fun(Pool) -> checked_call(Pool, M, F, A, Timeout) end);
do_call_checked(Conn, M, F, A, Timeout) ->
    case valid_conn(Conn) of
        false -> {error, invalid_connection};
        true -> checked_call(Conn, M, F, A, Timeout)
    end.

-spec checked_call(pool() | conn(), term(), term(), term(), term()) -> term().
checked_call(Handle, M, F, A, Timeout) ->
    case is_atom(M) andalso is_atom(F) andalso is_proper_list(A) andalso valid_request_timeout(Timeout) of
        true -> distribute_pool_proto:call_reply(do_call(Handle, M, F, A, Timeout));
        false -> {error, badarg}
    end.

-spec do_call(pool() | conn(), module(), atom(), [term()], timeout()) -> term().
do_call(#dpool{id = PoolId} = Pool, M, F, A, Timeout) ->
    one_shot(Pool, distribute_pool_proto:pooled_call(PoolId, M, F, A, Timeout), one_shot_wait(Pool, Timeout));
do_call(#dpool_conn{pool = #dpool{id = PoolId}} = Conn, M, F, A, Timeout) ->
    leased(Conn, fun(ConnId, LeaseId) ->
                         {distribute_pool_proto:call(PoolId, ConnId, LeaseId, M, F, A, Timeout), request_wait(Timeout)}
                 end).

-spec plus(timeout(), non_neg_integer()) -> timeout().
plus(infinity, _) -> infinity;
plus(Ms, More) -> Ms + More.

%% @doc `pong' when the target's net_kernel answers over the leased connection (a round trip through the
%% target's scheduler, as net_adm:ping/1 makes), `pang' when it does not (the connection or the target is
%% down, or no answer within 5 s); `{error, invalid_connection}' when the lease has ended.
-spec ping(conn()) -> pong | pang | {error, invalid_connection}.
ping(Conn) ->
    distribute_pool_telemetry:operation(ping, Conn, fun() -> do_ping(Conn) end).

-spec do_ping(conn()) -> pong | pang | {error, invalid_connection}.
do_ping(Conn) ->
    case valid_conn(Conn) of
        true ->
            case do_request(Conn, net_kernel, {is_auth, node()}, ?DEFAULT_REQUEST_MS) of
                {ok, yes} -> pong;
                {error, invalid_connection} = Error -> Error;
                _ -> pang
            end;
        false ->
            {error, invalid_connection}
    end.

%% @doc Returns the leased connection as broken: the C-node closes it and opens a fresh one in its place.
%% The lease ends at once (later operations on Conn give `{error, invalid_connection}'); with_connection
%% still returns Fun's result. `{error, invalid_connection}' when the lease had already ended (nothing is
%% closed then).
-spec discard(conn()) -> ok | {error, invalid_connection | invalid_pool | connection_failure() | timeout}.
discard(Conn) ->
    case valid_conn(Conn) of
        true ->
            #dpool_conn{pool = #dpool{id = PoolId}} = Conn,
            leased(Conn, fun(ConnId, LeaseId) ->
                                 {distribute_pool_proto:discard(PoolId, ConnId, LeaseId), ?DPOOL_PROMPT_WAIT_MS}
                         end);
        false ->
            {error, invalid_connection}
    end.

%% @doc The pool's statistics now (docs/PROTOCOL.md, "Stats map", defines each key); a group's are its
%% totals, its counters and each member's stats (docs/PROTOCOL.md, "Pool groups").
-spec stats(pool_ref()) -> {ok, stats() | group_stats()} | {error, invalid_pool | connection_failure() | timeout}.
stats(PoolRef) ->
    with_pool(PoolRef, fun(#dpool{server = Server, id = PoolId}) ->
                               distribute_pool_client:call(Server, distribute_pool_proto:stats(PoolId),
                                                           ?DPOOL_PROMPT_WAIT_MS)
                       end).

%% @doc Destroys the pool: new checkouts get `{error, invalid_pool}' at once, callers waiting for a lease
%% get `{error, invalid_pool}', leases still out are waited for up to 5 s (destroy/2: `drain_timeout_ms') and
%% may be used until they are returned; then every connection is closed and `ok' comes back. The pool id is
%% never reused, so the handle stays invalid; its name is free again as soon as the destroy starts. A pool
%% of the embedded C-node is destroyed through the registry, which then no longer restores it.
-spec destroy(pool_ref()) -> ok | {error, invalid_pool | connection_failure() | timeout}.
destroy(Pool) ->
    destroy(Pool, #{}).

%% @doc Prints the default C-node's pools and caller nodes as aligned tables (README, "Admin view").
-spec info() -> ok | {error, term()}.
info() ->
    case default_cnode() of
        {error, _} = Error -> Error;
        Server -> distribute_pool_admin:print(Server)
    end.

%% @doc info/0 for the C-node CNode (a node name: the application's service name; or `{Service, Node}'), or,
%% given `{connections, Pool}', the connections of that pool.
-spec info(cnode() | {connections, pool_ref()}) -> ok | {error, term()}.
info({connections, Pool}) ->
    distribute_pool_admin:print_connections(Pool);
info(Node) when is_atom(Node) ->
    distribute_pool_admin:print({distribute_pool_env:value(service), Node});
info({Service, Node} = Server) when is_atom(Service), is_atom(Node) ->
    distribute_pool_admin:print(Server);
info(_) ->
    {error, badarg}.

%% @doc The pools of the default C-node (see default_cnode/0), each with a handle and its stats, in id
%% order. A pool destroyed while the list is made is left out.
-spec pools() -> {ok, [{pool(), stats()}]} | {error, connection_failure() | timeout | badarg}.
pools() ->
    case default_cnode() of
        {error, Why} -> distribute_pool_client:not_running(io_lib:format("no default C-node: ~0tp", [Why]));
        {Service, Node} -> pools({Service, Node})
    end.

%% @doc The same for the C-node CNode (a node name: the application's service name; or `{Service, Node}').
-spec pools(cnode()) -> {ok, [{pool(), stats()}]} | {error, connection_failure() | timeout | badarg}.
pools(Node) when is_atom(Node) ->
    pools({distribute_pool_env:value(service), Node});
pools({Service, Node} = Server) when is_atom(Service), is_atom(Node) ->
    case distribute_pool_proto:pools_reply(distribute_pool_client:call(Server, distribute_pool_proto:pools(),
                                                                        ?DPOOL_PROMPT_WAIT_MS)) of
        {ok, Ids} -> pool_stats(Server, lists:sort(Ids), []);
        {error, _} = Error -> Error
    end;
pools(_) ->
    {error, badarg}.

-spec pool_stats(distribute_pool_client:server(), [term()], [{pool(), stats()}]) ->
    {ok, [{pool(), stats()}]} | {error, connection_failure() | timeout}.
pool_stats(_Server, [], Acc) ->
    {ok, lists:reverse(Acc)};
pool_stats(Server, [Id | Ids], Acc) when is_integer(Id), Id >= 0 ->
    Reply = distribute_pool_client:call(Server, distribute_pool_proto:stats(Id), ?DPOOL_PROMPT_WAIT_MS),
    case distribute_pool_proto:stats_reply(Reply) of
        {ok, Stats, Ms} ->
            Pool = #dpool{server = Server, id = Id, acquire_timeout_ms = Ms},
            pool_stats(Server, Ids, [{Pool, Stats} | Acc]);
        {error, Reason} when Reason =:= timeout; element(1, Reason) =:= connection_failed ->
            {error, Reason};
        _DestroyedMeanwhile ->
            pool_stats(Server, Ids, Acc)
    end;
pool_stats(Server, [_ | Ids], Acc) ->
    pool_stats(Server, Ids, Acc).

%% @doc destroy/1 with a drain timeout of its own: `#{drain_timeout_ms => 0..600000}'.
-spec destroy(pool_ref(), destroy_options()) ->
    ok | {error, invalid_pool | connection_failure() | timeout | badarg}.
destroy(PoolRef, Options) ->
    with_pool_once(PoolRef, fun(Pool) ->
                               case drain_timeout(Options) of
                                   error -> {error, badarg};
                                   {ok, Drain} -> do_destroy(Pool, Drain)
                               end
                       end).

-spec do_destroy(pool(), non_neg_integer()) -> ok | {error, term()}.
do_destroy(#dpool{server = Server, id = PoolId} = Pool, Drain) ->
    Wait = Drain + ?DPOOL_DESTROY_MARGIN_MS,
    Direct = fun() -> distribute_pool_client:call(Server, distribute_pool_proto:destroy(PoolId, Drain), Wait) end,
    Reply = case whereis(distribute_pool_registry) of
                undefined ->
                    Direct();
                _ ->
                    case distribute_pool_registry:destroy(Server, PoolId, Drain, Wait) of
                        direct -> Direct();
                        Registered -> Registered
                    end
            end,
    ok = distribute_pool_names:forget(Pool),
    Reply =:= ok andalso
        distribute_pool_telemetry:execute([distribute_pool, pool, destroyed], #{count => 1},
                                          distribute_pool_telemetry:pool_meta(Pool)),
    Reply.

-spec drain_timeout(term()) -> {ok, non_neg_integer()} | error.
drain_timeout(Options) ->
    case distribute_pool_config:to_map(Options) of
        {ok, Map} when map_size(Map) =:= 0 -> {ok, ?DPOOL_DEFAULT_DRAIN_MS};
        {ok, #{drain_timeout_ms := Ms} = Map} when map_size(Map) =:= 1, is_integer(Ms), Ms >= 0,
                                                   Ms =< ?DPOOL_MAX_DRAIN_MS -> {ok, Ms};
        _ -> error
    end.

%% @doc The leased connection's id (stable for its life, as stats list it), its node name on the target
%% (the sender's node its processes see) and its pool.
-spec connection_info(conn()) ->
    #{id := non_neg_integer(), node := node(), pool := pool()} | {error, invalid_connection}.
connection_info(Conn) ->
    case valid_conn(Conn) of
        true ->
            case lease_ids(Conn) of
                {ok, ConnId, _LeaseId, Node} -> #{id => ConnId, node => Node, pool => Conn#dpool_conn.pool};
                {error, _} -> {error, invalid_connection}
            end;
        false ->
            {error, invalid_connection}
    end.

%% @doc Casts every message of Messages to Dest on the target in one request to the C-node, which spreads
%% them over the pool's live connections (round robin; leased ones too, as each message is one packet) and
%% answers `{ok, length(Messages)}' once all are queued and no connection it used is over its busy limit.
%% The messages may arrive in any order; see cast_batch/4 for an order.
-spec cast_batch(pool_ref(), dest(), [term()]) ->
    {ok, non_neg_integer()} | {error, invalid_pool | connection_failure() | badarg | timeout | limit_reached()}.
cast_batch(Pool, Dest, Messages) ->
    cast_batch(Pool, Dest, Messages, #{}).

%% @doc cast_batch/3 with `#{key => Fun}': messages whose Fun(Msg) are equal go over one connection and
%% arrive in list order (while the pool's set of live connections stays the same, also across batches). Fun
%% runs in the caller; an exception it raises leaves cast_batch unchanged.
-spec cast_batch(pool_ref(), dest(), [term()], cast_batch_options()) ->
    {ok, non_neg_integer()} | {error, invalid_pool | connection_failure() | badarg | timeout | limit_reached()}.
cast_batch(PoolRef, Dest, Messages, Options) ->
    with_pool_once(PoolRef, fun(Pool) ->
                               case {valid_dest(Dest) andalso is_proper_list(Messages),
                                     distribute_pool_config:to_map(Options)} of
                                   {false, _} ->
                                       {error, badarg};
                                   {true, {ok, Empty}} when map_size(Empty) =:= 0 ->
                                       do_cast_batch(Pool, distribute_pool_proto:cast_batch(Pool#dpool.id, Dest,
                                                                                            Messages));
                                   {true, {ok, #{key := KeyFun} = Map}} when map_size(Map) =:= 1,
                                                                            is_function(KeyFun, 1) ->
                                       Keyed = [{erlang:phash2(KeyFun(Msg), ?DPOOL_KEY_HASH_RANGE), Msg}
                                                || Msg <- Messages],
                                       do_cast_batch(Pool, distribute_pool_proto:cast_batch_keyed(Pool#dpool.id,
                                                                                                  Dest, Keyed));
                                   {true, _} ->
                                       {error, badarg}
                               end
                       end).

-spec do_cast_batch(pool(), distribute_pool_proto:request()) ->
    {ok, non_neg_integer()} | {error, invalid_pool | connection_failure() | badarg | timeout | limit_reached()}.
do_cast_batch(#dpool{server = Server} = Pool, Request) ->
    distribute_pool_client:call(Server, distribute_pool_group:routed(Pool, Request), ?DPOOL_SEND_WAIT_MS).

-spec valid_dest(term()) -> boolean().
valid_dest(Name) when is_atom(Name) -> true;
valid_dest(Pid) when is_pid(Pid) -> true;
valid_dest({Name, Node}) when is_atom(Name), is_atom(Node) -> true;
valid_dest(_) -> false.

%% @doc Runs SendFun(Conn, Msg) for every message, in order, over one leased connection, and returns the
%% results in order; errors as with_connection/2 (an exception raised by SendFun leaves, unchanged, after
%% the lease went back).
-spec send_batch(pool_ref(), [Msg], fun((conn(), Msg) -> Result)) ->
    {ok, [Result]} | {error, pool_exhausted | connection_failure() | invalid_pool | badarg | limit_reached()}.
send_batch(Pool, Messages, SendFun) ->
    distribute_pool_batch:send_batch(Pool, Messages, SendFun).

%% @doc Runs SendFun(Conn, Msg) for every message on up to the pool's max_connections worker processes at
%% once, each with its own lease: `{ok, #{successful => Results, failed => [{Index, Why}]}}', successful
%% results in input order, indices from 0. `{error, Reason}' when nothing could run. No process or lease of
%% it outlives the call, even when the caller dies.
-spec send_batch_parallel(pool_ref(), [Msg], fun((conn(), Msg) -> term())) ->
    {ok, distribute_pool_batch:batch_result()}
    | {error, pool_exhausted | connection_failure() | invalid_pool | badarg | timeout | limit_reached()}.
send_batch_parallel(Pool, Messages, SendFun) ->
    distribute_pool_batch:send_batch_parallel(Pool, Messages, SendFun).

%% @doc Runs Workers processes doing OpsPerWorker leases each, with a ping round trip on each, and returns
%% stats/1 afterwards. Progress is reported through `logger' (see stress_test/4).
-spec stress_test(pool_ref(), non_neg_integer(), pos_integer()) ->
    {ok, map()} | {error, invalid_config() | invalid_pool | connection_failure() | timeout}.
stress_test(Pool, OpsPerWorker, Workers) ->
    distribute_pool_batch:stress_test(Pool, OpsPerWorker, Workers).

%% @doc stress_test/3 with options (a map or a keyword list): `progress => false' turns the progress
%% reports off, `progress_interval_ms' sets their period (default 1000), `on_progress => fun(Report)' gets
%% each report (a map) instead of `logger'.
-spec stress_test(pool_ref(), non_neg_integer(), pos_integer(), distribute_pool_batch:stress_options()) ->
    {ok, map()} | {error, invalid_config() | invalid_pool | connection_failure() | timeout}.
stress_test(Pool, OpsPerWorker, Workers, Options) ->
    distribute_pool_batch:stress_test(Pool, OpsPerWorker, Workers, Options).

%% @doc The address of the C-node that new/2 uses when no `cnode' option is given.
-spec default_cnode() -> {Service :: atom(), CNode :: node()} | {error, not_started | cnode_not_running}.
default_cnode() ->
    case whereis(distribute_pool_sup) of
        undefined ->
            {error, not_started};
        _ ->
            Service = distribute_pool_env:value(service),
            case distribute_pool_env:value(cnode) of
                embedded -> distribute_pool_cnode:address();
                Node when is_atom(Node), is_atom(Service) -> {Service, Node};
                _ -> {error, cnode_not_running}
            end
    end.

-spec valid_pool(term()) -> boolean().
valid_pool(#dpool{server = {Service, Node}, id = Id, acquire_timeout_ms = Ms, key = Key}) ->
    is_atom(Service) andalso is_atom(Node) andalso is_integer(Id) andalso Id >= 0
        andalso is_integer(Ms) andalso Ms >= 0 andalso Ms =< ?DPOOL_MAX_ACQUIRE_MS
        andalso (Key =:= undefined orelse (is_integer(Key) andalso Key >= 0 andalso Key =< ?DPOOL_MAX_KEY_DIGEST));
valid_pool(_) ->
    false.

-spec valid_conn(term()) -> boolean().
valid_conn(#dpool_conn{pool = Pool, checkout = [alias | Alias], lane = {Service, Node}}) ->
    valid_pool(Pool) andalso is_reference(Alias) andalso is_atom(Service) andalso is_atom(Node);
valid_conn(_) ->
    false.

-spec is_proper_list(term()) -> boolean().
is_proper_list([]) -> true;
is_proper_list([_ | T]) -> is_proper_list(T);
is_proper_list(_) -> false.
