%% Pool lifecycle on real nodes: connections returned as broken are closed and replaced.
-module(distribute_pool_lifecycle_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([discard_closes_and_reopens/1]).
-export([discard_outside_a_lease/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_start_target/1, do_stop_peer/1, do_stats/1,
                          do_pool_node_names/1]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 2}}].

-spec all() -> [atom()].
all() ->
    [discard_closes_and_reopens,
     discard_outside_a_lease].

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
    {Peer, T} = do_start_target("dpool_discard"),
    try
        {ok, Pool} = distribute_pool:new(T, 1),
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
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
        ok = distribute_pool:destroy(Pool)
    after
        do_stop_peer(Peer)
    end.

-spec discard_outside_a_lease(list()) -> ok.
discard_outside_a_lease(_Config) ->
    doc("discard/1 of a lease that already ended, or of something that is no lease, changes nothing."),
    {Peer, T} = do_start_target("dpool_discard_stale"),
    try
        {ok, Pool} = distribute_pool:new(T, 1),
        {ok, Conn} = distribute_pool:with_connection(Pool, fun(C) -> C end),
        [{_, Before}] = target_connections(T, do_pool_node_names(Pool)),
        ok = distribute_pool:discard(Conn),
        {error, invalid_connection} = distribute_pool:discard(not_a_lease),
        timer:sleep(300),
        [{_, Before}] = target_connections(T, do_pool_node_names(Pool)),
        #{total_connections := 1, available_connections := 1} = do_stats(Pool),
        ok = distribute_pool:destroy(Pool)
    after
        do_stop_peer(Peer)
    end.

%% Helpers.

%% The target's connections to the pool's nodes, as {Node, ConnectionId}.
-spec target_connections(node(), [binary()]) -> [{node(), term()}].
target_connections(T, Names) ->
    lists:sort([{N, Id} || {N, #{connection_id := Id}} <- erpc:call(T, erlang, nodes,
                                                                       [hidden, #{connection_id => true}]),
                           lists:member(atom_to_binary(N, utf8), Names)]).
