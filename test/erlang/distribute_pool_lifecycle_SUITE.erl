%% Pool lifecycle on real nodes: connections returned as broken are closed and replaced.
-module(distribute_pool_lifecycle_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([discard_closes_and_reopens/1]).
-export([discard_outside_a_lease/1]).
-export([backoff_options_are_validated/1]).
-export([reconnects_after_target_killed/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stats/1, do_pool_node_names/1, with_target_pool/3,
                          with_nodes/2, do_wait_value/3]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 2}}].

-spec all() -> [atom()].
all() ->
    [discard_closes_and_reopens,
     discard_outside_a_lease,
     backoff_options_are_validated,
     reconnects_after_target_killed].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec discard_closes_and_reopens(list()) -> ok.
discard_closes_and_reopens(_Config) ->
    doc("discard/1 inside with_connection ends the lease at once, the C-node closes that connection (the "
        "target sees it go) and opens a fresh one in its place; the pool is back to full size."),
    with_target_pool("dpool_discard", 1, fun(T, Pool) ->
        Connections = fun() -> target_connections(T, do_pool_node_names(Pool)) end,
        do_wait_until(fun() -> length(Connections()) =:= 1 end, 5000),
        [{_, Before}] = Connections(),
        {ok, ok} = distribute_pool:with_connection(
                     Pool,
                     fun(C) ->
                             pong = distribute_pool:ping(C),
                             ok = distribute_pool:discard(C),
                             %% The lease ended with the discard.
                             {error, invalid_connection} = distribute_pool:send(C, anyone, hello),
                             ok
                     end),
        %% The old connection leaves the target and a new one (another connection id) takes its place.
        do_wait_until(fun() ->
                              case Connections() of
                                  [{_, After}] -> After =/= Before;
                                  _ -> false
                              end
                      end, 10000),
        do_wait_until(fun() ->
                              #{total_connections := Total, available_connections := Available} = do_stats(Pool),
                              Total =:= 1 andalso Available =:= 1
                      end, 10000),
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1)
    end).

-spec discard_outside_a_lease(list()) -> ok.
discard_outside_a_lease(_Config) ->
    doc("discard/1 of a lease that already ended, or of something that is no lease, is invalid_connection "
        "and changes nothing: the connection stays, the pool keeps its size."),
    with_target_pool("dpool_discard_stale", 1, fun(T, Pool) ->
        {ok, Conn} = distribute_pool:with_connection(Pool, fun(C) -> C end),
        %% The target lists the connection a moment after the C-node has it up.
        do_wait_until(fun() -> length(target_connections(T, do_pool_node_names(Pool))) =:= 1 end, 5000),
        [{_, Before}] = target_connections(T, do_pool_node_names(Pool)),
        %% Answered once the C-node handled it: nothing to wait for.
        {error, invalid_connection} = distribute_pool:discard(Conn),
        {error, invalid_connection} = distribute_pool:discard(not_a_lease),
        [{_, Before}] = target_connections(T, do_pool_node_names(Pool)),
        #{connections_closed := #{broken := 0}} = do_stats(Pool),
        #{total_connections := 1, available_connections := 1} = do_stats(Pool)
    end).

-spec backoff_options_are_validated(list()) -> ok.
backoff_options_are_validated(_Config) ->
    doc("backoff_min_ms and backoff_max_ms must be 1..600000 with min =< max; anything else is "
        "invalid_config."),
    T = 'nobody_needed@127.0.0.1',
    [{error, {invalid_config, _}} = distribute_pool:new(T, maps:merge(#{max_connections => 1}, Bad))
     || Bad <- [#{backoff_min_ms => 0}, #{backoff_max_ms => 0}, #{backoff_max_ms => 600001},
                #{backoff_min_ms => 300, backoff_max_ms => 200}, #{backoff_min_ms => 6000},
                #{backoff_min_ms => -1}, #{backoff_max_ms => fast}]],
    ok.

-spec reconnects_after_target_killed(list()) -> ok.
reconnects_after_target_killed(_Config) ->
    doc("When the target is killed with kill -9, leases fail with connection_failed instead of waiting; once "
        "a node of the same name is back, the pool is at full size again within backoff_max_ms (500 ms) plus "
        "1.5 s, and works. reconnect_attempts shows the capped backoff at work."),
    Name = peer:random_name("dpool_reborn"),
    {T, Pool} = with_nodes([{killable_target, Name}], fun([{_, T}]) ->
        {ok, P} = distribute_pool:new(T, #{max_connections => 2, backoff_min_ms => 50,
                                           backoff_max_ms => 500, acquire_timeout_ms => 2000}),
        {ok, pong} = distribute_pool:with_connection(P, fun distribute_pool:ping/1),
        OsPid = erpc:call(T, os, getpid, []),
        _ = os:cmd("kill -9 " ++ OsPid),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(P)) =:= 0 end, 5000),
        {T, P}
    end),
    %% No connection is alive and the last attempts failed: no waiting out the acquire timeout.
    do_wait_until(fun() ->
                          case distribute_pool:with_connection(Pool, fun(_) -> ok end) of
                              {error, {connection_failed, _}} -> true;
                              _ -> false
                          end
                  end, 5000),
    %% Down until the delays have reached their cap (50 ms doubling, with jitter), so that the default cap of
    %% 5 s would miss the deadline below: 14 more attempts per connection. With the 500 ms cap, each waits
    %% 250..500 ms from the 5th on, so they take about 3..6 s (plus the attempts themselves; the bound leaves
    %% room for a busy machine); the default cap would need 23 s at least. At least half the least they can
    %% take: a backoff that does not back off would be done in milliseconds.
    Attempts = 2 * 14,
    #{reconnect_attempts := Before} = do_stats(Pool),
    T0 = erlang:monotonic_time(millisecond),
    do_wait_value(fun() -> maps:get(reconnect_attempts, do_stats(Pool)) - Before end,
                  fun(N) -> N >= Attempts end, 15000),
    Took = erlang:monotonic_time(millisecond) - T0,
    ct:pal("~b reconnect attempts while down took ~b ms; stats ~p", [Attempts, Took, do_stats(Pool)]),
    true = Took >= 1500,
    with_nodes([{killable_target, Name}], fun([{_, Again}]) ->
        T = Again,
        do_wait_until(fun() ->
                              #{total_connections := Total, available_connections := Available} = do_stats(Pool),
                              Total =:= 2 andalso Available =:= 2
                      end, 500 + 1500),
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
        ok = distribute_pool:destroy(Pool)
    end).

%% Helpers.

%% The target's connections to the pool's nodes, as {Node, ConnectionId}.
-spec target_connections(node(), [node()]) -> [{node(), term()}].
target_connections(T, Names) ->
    lists:sort([{N, Id} || {N, #{connection_id := Id}} <- erpc:call(T, erlang, nodes,
                                                                       [hidden, #{connection_id => true}]),
                           lists:member(N, Names)]).
