%% telemetry events (README, "telemetry"): with the telemetry library loaded, the library emits its documented
%% events; without it, nothing changes. The library is not reachable here (no hex): the suite loads a
%% stand-in that implements telemetry's documented API (test/erlang/fake/telemetry.erl).
-module(distribute_pool_telemetry_SUITE).

-include_lib("common_test/include/ct.hrl").

-import(dpool_ct_helper, [doc/1, do_uniq/1, do_wait_until/2, do_stats/1, do_stop_peer/1,
                          do_start_named_target/2]).

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([events_with_telemetry_loaded/1,
         nothing_without_telemetry/1]).

-define(EVENTS, [[distribute_pool, checkout, start], [distribute_pool, checkout, stop],
                 [distribute_pool, pool, exhausted], [distribute_pool, operation, stop],
                 [distribute_pool, pool, created], [distribute_pool, pool, destroyed],
                 [distribute_pool, connection, up], [distribute_pool, connection, down]]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [events_with_telemetry_loaded,
     nothing_without_telemetry].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    unload_telemetry(),
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec events_with_telemetry_loaded(list()) -> ok.
events_with_telemetry_loaded(_Config) ->
    doc("With telemetry loaded: pool created and destroyed; a connection up per pooled connection (from the "
        "embedded C-node, with the pool's id and target); checkout start and stop with the wait as duration; "
        "operation stop with its operation, duration and result; pool exhausted; a connection down, with its "
        "reason, when the target goes away."),
    load_telemetry(),
    Self = self(),
    ok = telemetry:attach_many(dpool_test, ?EVENTS,
                               fun(Event, Measurements, Meta, _) -> Self ! {event, Event, Measurements, Meta} end,
                               none),
    Alive = do_uniq("dpool_tel_t"),
    {Peer, T} = do_start_named_target(Alive, false),
    try
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 2, min_connections => 2,
                                              acquire_timeout_ms => 300}),
        [{_, #{count := 1}, #{pool := Pool, pool_id := _, target := T}}] =
            events([distribute_pool, pool, created]),
        #{pool_id := Id} = do_stats(Pool),
        Ups = wait_events([distribute_pool, connection, up], 2, 10000),
        TBin = atom_to_binary(T),
        2 = length([C || {_, #{count := 1}, #{pool_id := PId, target := TB, connection := C}} <- Ups,
                         PId =:= Id, TB =:= TBin]),
        {ok, {ok, T}} = distribute_pool:with_connection(Pool,
                                                        fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        [{_, #{monotonic_time := _}, #{pool := Pool}}] = events([distribute_pool, checkout, start]),
        [{_, #{duration := Wait}, #{pool := Pool, result := ok}}] = events([distribute_pool, checkout, stop]),
        true = is_integer(Wait) andalso Wait >= 0,
        [{_, #{duration := D}, #{operation := call, result := ok, pool := Pool}}] =
            events([distribute_pool, operation, stop]),
        true = D > 0,
        {error, {down, _}} = distribute_pool:request(Pool, dpool_tel_nobody, hello, 1000),
        [{_, _, #{operation := request, result := error, error := {down, _}}}] =
            events([distribute_pool, operation, stop]),
        %% Both connections held: a checkout that may not wait is refused, and said so.
        Hold = fun() ->
                       distribute_pool:with_connection(Pool, fun(C) ->
                                                                 #{} = distribute_pool:connection_info(C),
                                                                 Self ! held,
                                                                 receive release -> ok end
                                                         end)
               end,
        Holders = [spawn_link(Hold) || _ <- [1, 2]],
        [receive held -> ok after 10000 -> ct:fail(not_held) end || _ <- Holders],
        {error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ok end,
                                                                  #{acquire_timeout_ms => 0}),
        [{_, #{count := 1}, #{pool := Pool, pool_id := Id}}] = events([distribute_pool, pool, exhausted]),
        %% A one-shot operation waits in the same line: its pool_exhausted is the same event.
        {error, pool_exhausted} = distribute_pool:call(Pool, erlang, node, []),
        [{_, _, #{operation := call, result := error, error := pool_exhausted}}] =
            events([distribute_pool, operation, stop]),
        [{_, #{count := 1}, #{pool := Pool}}] = events([distribute_pool, pool, exhausted]),
        [H ! release || H <- Holders],
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 0 end, 10000),
        _ = flush(),
        %% The target goes: each connection is reported down, with why.
        ok = do_stop_peer(Peer),
        Downs = wait_events([distribute_pool, connection, down], 2, 10000),
        [<<"target_down", _/binary>> | _] = [R || {_, _, #{pool_id := PId, reason := R}} <- Downs, PId =:= Id],
        ok = distribute_pool:destroy(Pool),
        [{_, #{count := 1}, #{pool := Pool}}] = events([distribute_pool, pool, destroyed]),
        ok
    after
        _ = telemetry:detach(dpool_test),
        do_stop_peer(Peer)
    end.

-spec nothing_without_telemetry(list()) -> ok.
nothing_without_telemetry(_Config) ->
    doc("Without telemetry loaded, the same operations work and nothing is emitted."),
    unload_telemetry(),
    false = distribute_pool_telemetry:enabled(),
    Alive = do_uniq("dpool_tel_plain"),
    {Peer, T} = do_start_named_target(Alive, false),
    try
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1}),
        {ok, {ok, T}} = distribute_pool:with_connection(Pool,
                                                        fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        {ok, T} = distribute_pool:call(Pool, erlang, node, []),
        ok = distribute_pool:destroy(Pool),
        %% Nothing loaded it on the way.
        false = code:is_loaded(telemetry)
    after
        do_stop_peer(Peer)
    end.

%% Helpers.

-spec load_telemetry() -> ok.
load_telemetry() ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Fake = filename:join([filename:dirname(Source), "fake", "telemetry.erl"]),
    {ok, telemetry, Beam} = compile:file(Fake, [binary, report]),
    {module, telemetry} = code:load_binary(telemetry, Fake, Beam),
    true = distribute_pool_telemetry:enabled(),
    ok.

-spec unload_telemetry() -> ok.
unload_telemetry() ->
    _ = code:purge(telemetry),
    _ = code:delete(telemetry),
    _ = code:purge(telemetry),
    ok.

%% The events named Event received so far (taken out of the mailbox), oldest first.
-spec events([atom()]) -> [{[atom()], map(), map()}].
events(Event) ->
    receive
        {event, Event, Measurements, Meta} -> [{Event, Measurements, Meta} | events(Event)]
    after 0 -> []
    end.

%% Waits until Count events named Event have come (or fails after TimeoutMs): the first Count, oldest first.
-spec wait_events([atom()], pos_integer(), non_neg_integer()) -> [{[atom()], map(), map()}].
wait_events(Event, Count, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    wait_events(Event, Count, Deadline, []).

-spec wait_events([atom()], non_neg_integer(), integer(), [{[atom()], map(), map()}]) ->
    [{[atom()], map(), map()}].
wait_events(_Event, 0, _Deadline, Acc) ->
    lists:reverse(Acc);
wait_events(Event, Count, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {event, Event, Measurements, Meta} ->
            wait_events(Event, Count - 1, Deadline, [{Event, Measurements, Meta} | Acc])
    after Left ->
        ct:fail({events_missing, Event, Count, lists:reverse(Acc)})
    end.

-spec flush() -> [term()].
flush() ->
    receive
        {event, _, _, _} = E -> [E | flush()]
    after 0 -> []
    end.
