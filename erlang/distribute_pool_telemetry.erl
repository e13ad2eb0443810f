%% telemetry events (README, "telemetry"), emitted only when the `telemetry' library is loaded: Elixir and
%% Phoenix projects have it; without it these functions do nothing but run what they are given. The library is
%% called through apply/3, so that distribute_pool neither depends on it nor fails xref without it.
%%
%% Events (measurements; metadata), `duration' in native time units as telemetry:span/3 gives it; `pool' is
%% the pool's handle (or the name it was called by) and `pool_id' its id where the handle is known:
%%   [distribute_pool, checkout, start]       #{monotonic_time, system_time}; #{pool, pool_id}
%%   [distribute_pool, checkout, stop]        #{duration} (the wait for a lease); #{pool, pool_id, result, error}
%%   [distribute_pool, pool, exhausted]       #{count => 1}; #{pool, pool_id}
%%   [distribute_pool, operation, stop]       #{duration}; #{pool, pool_id, operation, result, error}
%%   [distribute_pool, pool, created]         #{count => 1}; #{pool, pool_id, target, name}
%%   [distribute_pool, pool, destroyed]       #{count => 1}; #{pool, pool_id}
%%   [distribute_pool, connection, up]        #{count => 1}; #{pool_id, pool, target, connection}
%%   [distribute_pool, connection, down]      #{count => 1}; #{pool_id, pool, target, connection, reason}
%% `result' is ok or error (then `error' is the reason); the connection events come from the embedded
%% C-node, through its output.
-module(distribute_pool_telemetry).

-export([enabled/0]).
-export([execute/3]).
-export([checkout_start/1]).
-export([checkout_stop/3]).
-export([operation/3]).
-export([pool_meta/1]).

-include("distribute_pool_internal.hrl").

-define(TELEMETRY, telemetry).

%% Whether the telemetry library is loaded.
-spec enabled() -> boolean().
enabled() ->
    erlang:function_exported(?TELEMETRY, execute, 3).

%% telemetry:execute/3 when the library is loaded; a handler that fails is telemetry's business (it detaches
%% it), never the caller's.
-spec execute([atom(), ...], map(), map()) -> ok.
execute(Event, Measurements, Metadata) ->
    case enabled() of
        true ->
            try apply(?TELEMETRY, execute, [Event, Measurements, Metadata]) of
                _ -> ok
            catch
                _:_ -> ok
            end;
        false ->
            ok
    end.

%% The start of a checkout: its start time, for checkout_stop/3.
-spec checkout_start(term()) -> integer().
checkout_start(Pool) ->
    Now = erlang:monotonic_time(),
    %% Its measurements and metadata are made only when there is telemetry to give them to: every
    %% with_connection passes here.
    enabled() andalso execute([distribute_pool, checkout, start],
                              #{monotonic_time => Now, system_time => erlang:system_time()}, pool_meta(Pool)),
    Now.

%% The end of a checkout that started at Started and gave Lease (ok tuple or error).
-spec checkout_stop(term(), integer(), term()) -> ok.
checkout_stop(Pool, Started, Lease) ->
    case enabled() of
        true ->
            Duration = erlang:monotonic_time() - Started,
            execute([distribute_pool, checkout, stop], #{duration => Duration},
                    maps:merge(pool_meta(Pool), result(Lease))),
            exhausted(Pool, Lease);
        false ->
            ok
    end.

%% A pool_exhausted answer (of a checkout, or of a one-shot operation, which waits in the same line) is also
%% the event pool exhausted.
-spec exhausted(term(), term()) -> ok.
exhausted(Pool, {error, pool_exhausted}) ->
    execute([distribute_pool, pool, exhausted], #{count => 1}, pool_meta(Pool));
exhausted(_Pool, _Result) ->
    ok.

%% Runs an operation (send, request, call, ping) on a pool or a lease and reports its duration and result.
-spec operation(atom(), term(), fun(() -> Result)) -> Result.
operation(Operation, Handle, Fun) ->
    case enabled() of
        false ->
            Fun();
        true ->
            Started = erlang:monotonic_time(),
            Result = Fun(),
            Pool = pool_of(Handle),
            execute([distribute_pool, operation, stop], #{duration => erlang:monotonic_time() - Started},
                    maps:merge((pool_meta(Pool))#{operation => Operation}, result(Result))),
            exhausted(Pool, Result),
            Result
    end.

%% A lease's pool, or the pool (or its name) itself.
-spec pool_of(term()) -> term().
pool_of(#dpool_conn{pool = Pool}) -> Pool;
pool_of(Handle) -> Handle.

%% A pool's metadata: the handle (or name) it was given by, and its id when the handle says it.
-spec pool_meta(term()) -> #{pool := term(), pool_id => non_neg_integer()}.
pool_meta(#dpool{id = Id} = Pool) -> #{pool => Pool, pool_id => Id};
pool_meta(Pool) -> #{pool => Pool}.

-spec result(term()) -> #{result := ok | error, error => term()}.
result({error, Reason}) -> #{result => error, error => Reason};
result(pang) -> #{result => error, error => pang};
result(_) -> #{result => ok}.
