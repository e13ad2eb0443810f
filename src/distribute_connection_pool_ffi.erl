%% The adapter between the Gleam module distribute/connection_pool and the Erlang library distribute_pool.
%% It holds no logic of its own: it converts Gleam values to the library's arguments (strings to binaries
%% or atoms, config records to option maps) and the library's answers to Gleam values (atoms and maps to
%% the constructors of PoolError, PoolStats, BatchResult, OperationError...). Gleam represents a
%% constructor as a tagged tuple (or a bare atom without fields), Ok/Error as {ok, _}/{error, _}, Nil as nil.
-module(distribute_connection_pool_ffi).

-export([new/2]).
-export([new_with_reason/2]).
-export([with_connection/2]).
-export([stats/1]).
-export([detailed_stats/1]).
-export([destroy/2]).
-export([send_batch/3]).
-export([send_batch_parallel/3]).
-export([stress_test/3]).
-export([stress_test_reporting/4]).
-export([cast_batch/3]).
-export([cast_batch_by_key/4]).
-export([send/3]).
-export([send_async/3]).
-export([request/4]).
-export([call/5]).
-export([ping/1]).
-export([discard/1]).
-export([connection_id/1]).
-export([connection_node/1]).
-export([identity/1]).
-export([inspect/1]).

-type pool_error() :: pool_exhausted | connection_failed | invalid_config | invalid_pool.
-type gleam_result(T, E) :: {ok, T} | {error, E}.

%% The longest atom Erlang makes; a longer name cannot be registered on the target.
-define(MAX_ATOM_CHARS, 255).

%% PoolConfig, as Gleam represents it: a tuple tagged pool_config with the fields in declaration order.
-type pool_config() :: {pool_config, integer(), integer(), integer(), integer(), integer(), integer(),
                        integer(), integer(), integer(), integer(), boolean(), integer()}.

%% distribute_pool:new/2 starts the application (and its C-node) when it is not running.
-spec new(binary(), pool_config()) -> gleam_result(distribute_pool:pool(), pool_error()).
new(Target, Config) ->
    pool_result(distribute_pool:new(Target, options(Config))).

%% new/2, with the reason of a failure as text: {error, {PoolError, Text}}.
-spec new_with_reason(binary(), pool_config()) -> gleam_result(distribute_pool:pool(), {pool_error(), binary()}).
new_with_reason(Target, Config) ->
    case distribute_pool:new(Target, options(Config)) of
        {ok, Pool} ->
            {ok, Pool};
        {error, Reason} ->
            {error, {pool_error(Reason), unicode:characters_to_binary(distribute_pool:format_error(Reason))}}
    end.

-spec options(pool_config()) -> map().
options({pool_config, Max, Min, AcquireMs, ConnectMs, BackoffMin, BackoffMax, MaxIdle, MaxLifetime,
         HealthInterval, HealthTimeout, Validate, ResizeWindow}) ->
    #{max_connections => Max, min_connections => Min,
      acquire_timeout_ms => AcquireMs, connect_timeout_ms => ConnectMs,
      backoff_min_ms => BackoffMin, backoff_max_ms => BackoffMax,
      max_idle_ms => MaxIdle, max_lifetime_ms => MaxLifetime,
      health_check_interval_ms => HealthInterval,
      health_check_timeout_ms => HealthTimeout,
      validate_on_checkout => Validate, resize_window_ms => ResizeWindow}.

-spec with_connection(distribute_pool:pool(), fun((distribute_pool:conn()) -> A)) ->
    gleam_result(A, pool_error()).
with_connection(Pool, Fun) ->
    pool_result(distribute_pool:with_connection(Pool, Fun)).

-spec stats(distribute_pool:pool()) -> gleam_result(tuple(), pool_error()).
stats(Pool) ->
    case distribute_pool:stats(Pool) of
        {ok, Stats} -> {ok, pool_stats(Stats)};
        {error, Reason} -> {error, pool_error(Reason)}
    end.

-spec detailed_stats(distribute_pool:pool()) -> gleam_result(tuple(), pool_error()).
detailed_stats(Pool) ->
    case distribute_pool:stats(Pool) of
        {ok, #{pool_id := Id, target := Target, max_connections := Max, min_connections := Min,
               total_connections := Total, available_connections := Available,
               in_use_connections := InUse, connecting_connections := Connecting, waiting := Waiting,
               successful_operations := Ok, failed_operations := Failed, connections := Connections,
               state := State, capacity := Capacity, connections_created := Created,
               connections_closed := #{idle := Idle, lifetime := Lifetime, broken := Broken, health := Health,
                                       destroy := Destroy, target_down := TargetDown},
               reconnect_attempts := Reconnects, health_checks := Checks, acquire_count := Acquires,
               acquire_timeouts := AcquireTimeouts, hits := Hits, misses := Misses,
               acquire_wait_avg_us := WaitAvg, acquire_wait_max_us := WaitMax,
               acquire_wait_p99_us := WaitP99, dropped_sends := Dropped}} ->
            {ok, {detailed_stats, Id, to_binary(Target), Max, Min, Total, Available, InUse, Connecting,
                  Waiting, Ok, Failed, [connection_stats(C) || C <- Connections], State =:= draining,
                  Capacity, Created,
                  {closed_connections, Idle, Lifetime, Broken, Health, Destroy, TargetDown},
                  Reconnects, Checks, Acquires, AcquireTimeouts, Hits, Misses, WaitAvg, WaitMax, WaitP99,
                  Dropped}};
        {ok, _} ->
            {error, connection_failed};
        {error, Reason} ->
            {error, pool_error(Reason)}
    end.

%% A drain timeout out of range is badarg here, InvalidConfig in Gleam.
-spec destroy(distribute_pool:pool(), integer()) -> gleam_result(nil, pool_error()).
destroy(Pool, DrainMs) ->
    case distribute_pool:destroy(Pool, #{drain_timeout_ms => DrainMs}) of
        ok -> {ok, nil};
        {error, Reason} -> {error, pool_error(Reason)}
    end.

-spec send_batch(distribute_pool:pool(), [M], fun((distribute_pool:conn(), M) -> R)) ->
    gleam_result([R], pool_error()).
send_batch(Pool, Messages, SendFun) ->
    pool_result(distribute_pool:send_batch(Pool, Messages, SendFun)).

-spec send_batch_parallel(distribute_pool:pool(), [M], fun((distribute_pool:conn(), M) -> R)) ->
    gleam_result({batch_result, [R], [{non_neg_integer(), pool_error()}]}, pool_error()).
send_batch_parallel(Pool, Messages, SendFun) ->
    case distribute_pool:send_batch_parallel(Pool, Messages, SendFun) of
        {ok, #{successful := Successful, failed := Failed}} ->
            {ok, {batch_result, Successful, [{Index, pool_error(Why)} || {Index, Why} <- Failed]}};
        {error, Reason} ->
            {error, pool_error(Reason)}
    end.

-spec stress_test(distribute_pool:pool(), integer(), integer()) -> gleam_result(tuple(), pool_error()).
stress_test(Pool, OpsPerWorker, Workers) ->
    stress_result(distribute_pool:stress_test(Pool, OpsPerWorker, Workers)).

%% stress_test/3 whose progress lines go to Report (a Gleam fn(String) -> Nil).
-spec stress_test_reporting(distribute_pool:pool(), integer(), integer(), fun((binary()) -> nil)) ->
    gleam_result(tuple(), pool_error()).
stress_test_reporting(Pool, OpsPerWorker, Workers, Report) ->
    OnProgress = fun(Progress) ->
                         Report(unicode:characters_to_binary(distribute_pool_batch:format_progress(Progress)))
                 end,
    stress_result(distribute_pool:stress_test(Pool, OpsPerWorker, Workers, #{on_progress => OnProgress})).

-spec stress_result({ok, map()} | {error, term()}) -> gleam_result(tuple(), pool_error()).
stress_result({ok, Stats}) -> {ok, pool_stats(Stats)};
stress_result({error, Reason}) -> {error, pool_error(Reason)}.

-spec cast_batch(distribute_pool:pool(), binary(), [term()]) -> gleam_result(non_neg_integer(), term()).
cast_batch(Pool, Name, Messages) ->
    case registered_name(Name) of
        {ok, Atom} -> operation_result(distribute_pool:cast_batch(Pool, Atom, Messages));
        error -> {error, bad_destination}
    end.

-spec cast_batch_by_key(distribute_pool:pool(), binary(), [M], fun((M) -> term())) ->
    gleam_result(non_neg_integer(), term()).
cast_batch_by_key(Pool, Name, Messages, Key) ->
    case registered_name(Name) of
        {ok, Atom} -> operation_result(distribute_pool:cast_batch(Pool, Atom, Messages, #{key => Key}));
        error -> {error, bad_destination}
    end.

-spec send(distribute_pool:conn(), binary(), term()) -> gleam_result(nil, term()).
send(Conn, Name, Message) ->
    send_with(fun distribute_pool:send/3, Conn, Name, Message).

-spec send_async(distribute_pool:conn(), binary(), term()) -> gleam_result(nil, term()).
send_async(Conn, Name, Message) ->
    send_with(fun distribute_pool:send_async/3, Conn, Name, Message).

-spec send_with(fun((distribute_pool:conn(), atom(), term()) -> ok | {error, term()}), distribute_pool:conn(),
                binary(), term()) -> gleam_result(nil, term()).
send_with(Send, Conn, Name, Message) ->
    case registered_name(Name) of
        {ok, Atom} ->
            case Send(Conn, Atom, Message) of
                ok -> {ok, nil};
                {error, Reason} -> {error, operation_error(Reason)}
            end;
        error ->
            {error, bad_destination}
    end.

-spec request(distribute_pool:conn(), binary(), term(), integer()) -> gleam_result(term(), term()).
request(Conn, Name, Request, TimeoutMs) ->
    case registered_name(Name) of
        {ok, Atom} -> operation_result(distribute_pool:request(Conn, Atom, Request, TimeoutMs));
        error -> {error, bad_destination}
    end.

-spec call(distribute_pool:conn(), binary(), binary(), [term()], integer()) -> gleam_result(term(), term()).
call(Conn, Module, Function, Args, TimeoutMs) ->
    case {registered_name(Module), registered_name(Function)} of
        {{ok, M}, {ok, F}} -> operation_result(distribute_pool:call(Conn, M, F, Args, TimeoutMs));
        _ -> {error, {bad_rpc, {bad_name, Module, Function}}}
    end.

-spec ping(distribute_pool:conn()) -> boolean().
ping(Conn) ->
    distribute_pool:ping(Conn) =:= pong.

-spec discard(distribute_pool:conn()) -> gleam_result(nil, term()).
discard(Conn) ->
    case distribute_pool:discard(Conn) of
        ok -> {ok, nil};
        {error, Reason} -> {error, operation_error(Reason)}
    end.

-spec connection_id(distribute_pool:conn()) -> integer().
connection_id(Conn) ->
    case distribute_pool:connection_info(Conn) of
        #{id := Id} -> Id;
        {error, _} -> -1
    end.

-spec connection_node(distribute_pool:conn()) -> binary().
connection_node(Conn) ->
    case distribute_pool:connection_info(Conn) of
        #{node := Node} -> to_binary(Node);
        {error, _} -> <<>>
    end.

-spec identity(T) -> T.
identity(Term) ->
    Term.

-spec inspect(term()) -> binary().
inspect(Term) ->
    unicode:characters_to_binary(io_lib:format("~tp", [Term])).

%% Conversions.

-spec pool_result({ok, T} | {error, term()}) -> gleam_result(T, pool_error()).
pool_result({ok, Value}) -> {ok, Value};
pool_result({error, Reason}) -> {error, pool_error(Reason)}.

%% The four errors of the Gleam type; every other failure is one of the connection (a C-node that does
%% not answer, a send function that raised, a worker that died). new_with_reason/2 keeps the reason's text.
-spec pool_error(term()) -> pool_error().
pool_error(pool_exhausted) -> pool_exhausted;
pool_error({invalid_config, _}) -> invalid_config;
pool_error({already_started, _}) -> invalid_config;
pool_error(invalid_pool) -> invalid_pool;
pool_error(badarg) -> invalid_config;
pool_error(_) -> connection_failed.

-spec operation_result({ok, T} | {error, term()}) -> gleam_result(T, term()).
operation_result({ok, Value}) -> {ok, Value};
operation_result({error, Reason}) -> {error, operation_error(Reason)}.

-spec operation_error(term()) -> term().
operation_error(timeout) -> operation_timeout;
operation_error({down, Reason}) -> {destination_down, Reason};
operation_error({badrpc, Reason}) -> {bad_rpc, Reason};
operation_error(invalid_connection) -> lease_ended;
operation_error(badarg) -> bad_destination;
operation_error(Reason) -> {operation_pool_error, pool_error(Reason)}.

-spec pool_stats(map()) -> tuple().
pool_stats(#{total_connections := Total, available_connections := Available, in_use_connections := InUse,
             failed_operations := Failed, successful_operations := Ok}) ->
    {pool_stats, Total, Available, InUse, Failed, Ok}.

-spec connection_stats(map()) -> tuple().
connection_stats(#{id := Id, node := Node, state := State}) ->
    {connection_stats, Id, to_binary(Node), connection_state(State)}.

-spec connection_state(atom()) -> available | in_use | connecting.
connection_state(available) -> available;
connection_state(in_use) -> in_use;
connection_state(_) -> connecting.

-spec to_binary(atom() | binary()) -> binary().
to_binary(Value) when is_atom(Value) -> atom_to_binary(Value, utf8);
to_binary(Value) when is_binary(Value) -> Value.

%% A name for an atom: at most 255 characters (what Erlang allows), never empty.
-spec registered_name(binary()) -> {ok, atom()} | error.
registered_name(Name) when is_binary(Name), Name =/= <<>> ->
    case string:length(Name) =< ?MAX_ATOM_CHARS of
        true -> {ok, binary_to_atom(Name, utf8)};
        false -> error
    end;
registered_name(_) ->
    error.
