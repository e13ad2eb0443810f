%% Pools against real target nodes: creation and its configuration, leases and their queue, what brings a
%% lease back, stats, destroy.
-module(distribute_pool_pool_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([new_opens_max_connections/1]).
-export([new_with_all_options/1]).
-export([new_with_string_and_binary_targets/1]).
-export([new_to_missing_node_fails/1]).
-export([connections_answer_ticks/1]).
-export([bad_configs_are_invalid_config/1]).
-export([with_connection_returns_result/1]).
-export([waiters_are_served_in_order/1]).
-export([pipelined_lease_in_line/1]).
-export([quiet_checkout_told_by_first_operation/1]).
-export([quiet_lease_ended_before_first_operation/1]).
-export([acquire_timeout_zero_fails_fast/1]).
-export([acquire_timeout_bounds_the_wait/1]).
-export([lease_back_when_fun_raises/1]).
-export([lease_back_when_holder_killed/1]).
-export([holder_watched_from_5ms/1]).
-export([lease_back_when_client_disconnects/1]).
-export([lease_back_when_client_node_stops/1]).
-export([stats_keys_and_invariant/1]).
-export([stats_counters_move/1]).
-export([destroy_closes_connections/1]).
-export([target_down_gives_errors/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_uniq/1, do_cnode/0, do_stop_peer/1, do_stats/1,
                          do_pool_id/1, do_pool_nodes/2, do_pool_node_names/1, do_hidden_among/2,
                          do_hold_leases/3, do_release/1, do_wait_idle/1, do_assert_cnode_alive/1,
                          with_target/2, with_target_pool/3, with_nodes/2, do_wait_value/3]).

-define(STATS_KEYS, [total_connections, available_connections, in_use_connections, connecting_connections,
                     waiting, successful_operations, failed_operations, max_connections, min_connections,
                     target, pool_id, name, last_failure]).

%% The target of connections_answer_ticks ticks every 0.75 s and drops a peer silent for three.
-define(SHORT_TICKTIME_S, 3).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [new_opens_max_connections,
     new_with_all_options,
     new_with_string_and_binary_targets,
     new_to_missing_node_fails,
     connections_answer_ticks,
     bad_configs_are_invalid_config,
     with_connection_returns_result,
     waiters_are_served_in_order,
     pipelined_lease_in_line,
     quiet_checkout_told_by_first_operation,
     quiet_lease_ended_before_first_operation,
     acquire_timeout_zero_fails_fast,
     acquire_timeout_bounds_the_wait,
     lease_back_when_fun_raises,
     lease_back_when_holder_killed,
     holder_watched_from_5ms,
     lease_back_when_client_disconnects,
     lease_back_when_client_node_stops,
     stats_keys_and_invariant,
     stats_counters_move,
     destroy_closes_connections,
     target_down_gives_errors].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec connections_answer_ticks(list()) -> ok.
connections_answer_ticks(_Config) ->
    doc("The C-node answers ticks: on a target with net_ticktime 3, pooled connections with no traffic for "
        "three tick times stay up (same connection ids, so no silent reconnect) and still work."),
    %% Controlled over stdio: the test node's own link to it ticks at 60 s and may be dropped meanwhile.
    Ticking = {isolated, "dpool_ticks", atom_to_list(erlang:get_cookie()),
               ["-kernel", "net_ticktime", integer_to_list(?SHORT_TICKTIME_S)]},
    with_nodes([Ticking], fun([{Peer, T}]) ->
        {ok, Pool} = distribute_pool:new(T, 2),
        Names = do_pool_node_names(Pool),
        Connections = fun() ->
            lists:sort([{N, Id} || {N, #{connection_id := Id}} <- peer:call(Peer, erlang, nodes,
                                                                             [hidden, #{connection_id => true}]),
                                   lists:member(N, Names)])
        end,
        do_wait_until(fun() -> length(Connections()) =:= 2 end, 10000),
        Before = Connections(),
        %% Time itself is what is tested here: three tick times without a single operation on the pool (at
        %% least: a sleep is never shorter than asked, and a longer one only makes it harder on the C-node).
        timer:sleep(3 * ?SHORT_TICKTIME_S * 1000),
        Before = Connections(),
        #{connecting_connections := 0, total_connections := 2, available_connections := 2} = do_stats(Pool),
        {ok, {ok, T}} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        ok = distribute_pool:destroy(Pool)
    end).

-spec new_opens_max_connections(list()) -> ok.
new_opens_max_connections(_Config) ->
    doc("new(T, 4) opens 4 distribution connections, seen on the target as 4 distinct hidden nodes; "
        "the target runs none of our code."),
    with_target("dpool_new4", fun(T) ->
        non_existing = erpc:call(T, code, which, [distribute_pool]),
        {ok, Pool} = distribute_pool:new(T, 4),
        do_wait_until(fun() -> length(do_pool_nodes(T, Pool)) =:= 4 end, 15000),
        4 = length(lists:usort(do_pool_nodes(T, Pool))),
        #{max_connections := 4} = do_stats(Pool),
        do_wait_until(fun() -> maps:get(total_connections, do_stats(Pool)) =:= 4 end, 15000),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 4 end, 15000),
        %% Every connection a lease hands out is one of them.
        Seen = do_lease_nodes(Pool, 4),
        true = lists:all(fun(N) -> lists:member(N, do_pool_nodes(T, Pool)) end,
                         Seen),
        ok = distribute_pool:destroy(Pool)
    end).

-spec new_with_all_options(list()) -> ok.
new_with_all_options(_Config) ->
    doc("An options map with all four keys creates a pool that reports them."),
    Options = #{max_connections => 3, min_connections => 1,
                acquire_timeout_ms => 1500, connect_timeout_ms => 3000},
    with_target_pool("dpool_opts", Options, fun(T, Pool) ->
        #{max_connections := 3, min_connections := 1, total_connections := Total} = do_stats(Pool),
        true = Total >= 1 andalso Total =< 3,
        {ok, {ok, T}} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
    end).

-spec new_with_string_and_binary_targets(list()) -> ok.
new_with_string_and_binary_targets(_Config) ->
    doc("A target given as a string or a binary reaches the same node as the atom; stats report it as the "
        "node name (an atom)."),
    with_target("dpool_strtarget", fun(T) ->
        TBin = atom_to_binary(T, utf8),
        [begin
             {ok, Pool} = distribute_pool:new(Target, 1),
             {ok, {ok, T}} = distribute_pool:with_connection(
                               Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
             #{target := T} = do_stats(Pool),
             ok = distribute_pool:destroy(Pool)
         end || Target <- [T, atom_to_list(T), TBin]],
        ok
    end).

-spec new_to_missing_node_fails(list()) -> ok.
new_to_missing_node_fails(_Config) ->
    doc("new to a node that does not exist is connection_failed, within the connect timeout (plus margin)."),
    Missing = do_uniq("dpool_missing") ++ "@127.0.0.1",
    T0 = erlang:monotonic_time(millisecond),
    {error, {connection_failed, _}} = distribute_pool:new(list_to_binary(Missing),
                                                     #{max_connections => 2, connect_timeout_ms => 2000}),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    ct:log("connection_failed after ~b ms", [Elapsed]),
    true = Elapsed < 2000 + 5000,
    T1 = erlang:monotonic_time(millisecond),
    {error, {connection_failed, _}} = distribute_pool:new(Missing, 1),
    true = erlang:monotonic_time(millisecond) - T1 < 5000 + 5000,
    ok.

-spec bad_configs_are_invalid_config(list()) -> ok.
bad_configs_are_invalid_config(Config) ->
    doc("Bad sizes, ranges, keys, types and target names are invalid_config, and no pool is created."),
    with_target("dpool_badcfg", fun(T) ->
        Server = do_cnode(),
        {ok, PoolsBefore} = gen_server:call(Server, pools, 5000),
        BadOptions = [0, -1, 1001, 1000000000000, 1 bsl 70, 4.0, foo, "4", [4], {4},
                      #{}, #{max_connections => 0}, #{max_connections => -3}, #{max_connections => "4"},
                      #{max_connections => 4.0}, #{max_connections => 1001},
                      #{max_connections => 2, min_connections => 3},
                      #{max_connections => 2, min_connections => -1},
                      #{max_connections => 2, bogus => 1},
                      #{max_connections => 2, acquire_timeout_ms => -1},
                      #{max_connections => 2, acquire_timeout_ms => 86400001},
                      #{max_connections => 2, acquire_timeout_ms => infinity},
                      #{max_connections => 2, connect_timeout_ms => 0},
                      #{max_connections => 2, connect_timeout_ms => 600001},
                      #{max_connections => 2, connect_timeout_ms => "5000"},
                      #{max_connections => 2, cnode => 42},
                      #{"max_connections" => 2},
                      #{<<"max_connections">> => 2}],
        BadTargets = ["nohost", "", "a@b@c", 42, <<>>, <<"nohost">>, <<"a@b@c">>, nohost, 'a@b@c', "@127.0.0.1",
                      "alive@", <<"@">>, {T}, [T], [a | b], 4.2, self()],
        [case distribute_pool:new(T, O) of
             {error, {invalid_config, _}} -> ok;
             Other -> ct:fail({accepted_bad_options, O, Other})
         end || O <- BadOptions],
        [case distribute_pool:new(Target, 2) of
             {error, {invalid_config, _}} -> ok;
             Other -> ct:fail({accepted_bad_target, Target, Other})
         end || Target <- BadTargets],
        {ok, PoolsBefore} = gen_server:call(Server, pools, 5000),
        do_assert_cnode_alive(?config(cnode_os_pid, Config))
    end).

-spec with_connection_returns_result(list()) -> ok.
with_connection_returns_result(_Config) ->
    doc("with_connection returns {ok, Fun(Conn)}; the lease names its connection, node and pool."),
    with_target_pool("dpool_wc", 2, fun(T, Pool) ->
        {ok, 42} = distribute_pool:with_connection(Pool, fun(_) -> 42 end),
        {ok, #{id := Id, node := Node, pool := Pool}} =
            distribute_pool:with_connection(Pool, fun distribute_pool:connection_info/1),
        true = is_integer(Id) andalso is_atom(Node),
        {ok, {ok, T}} = distribute_pool:with_connection(
                          Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end,
                          #{acquire_timeout_ms => 1000})
    end).

-spec waiters_are_served_in_order(list()) -> ok.
waiters_are_served_in_order(_Config) ->
    doc("With every lease held, waiters queue; released leases go to them first come, first served."),
    with_target_pool("dpool_fifo", 2, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 2, holder),
        Self = self(),
        Waiters = [begin
                       Tag = {waiter, I},
                       Pid = spawn_link(fun() -> dpool_ct_helper:do_hold_lease(Pool, Self, Tag) end),
                       %% The next waiter is started only once this one is in the queue.
                       do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= I end, 10000),
                       {Pid, Tag}
                   end || I <- lists:seq(1, 6)],
        %% One lease at a time goes round: release one holder, the first waiter must get it, and so on.
        [H1, H2] = Holders,
        do_release([H1]),
        {_, {waiter, 1}} = do_next_holder(Waiters),
        do_release([H2]),
        {_, {waiter, 2}} = do_next_holder(Waiters),
        lists:foreach(fun(I) ->
                              do_release([lists:keyfind({waiter, I}, 2, Waiters)]),
                              Expected = {waiter, I + 2},
                              {_, Expected} = do_next_holder(Waiters)
                      end, lists:seq(1, 4)),
        do_release([lists:keyfind({waiter, I}, 2, Waiters) || I <- [5, 6]]),
        do_wait_idle(Pool)
    end).

-spec quiet_checkout_told_by_first_operation(list()) -> ok.
quiet_checkout_told_by_first_operation(_Config) ->
    doc("A quiet checkout (with_connection's) granted at once is not answered: the holder's first operation "
        "by the checkout's tag is answered {leased, Ids, Answer}, later ones as usual, and lease_of finds the "
        "lease; one that waits in line is answered when granted, one that may not wait gets its error."),
    with_target_pool("dpool_quiet", #{max_connections => 1, acquire_timeout_ms => 60000}, fun(T, Pool) ->
        Server = do_cnode(),
        PoolId = do_pool_id(Pool),
        {ok, Pending} = distribute_pool_client:send_call(Server, distribute_pool_proto:checkout_quiet(PoolId, default),
                                                         10000),
        Tag = distribute_pool_client:pending_tag(Pending),
        Lane = distribute_pool_client:pending_lane(Pending),
        OnLane = fun(Request) -> distribute_pool_client:call_on_lane(Lane, Request, 10000) end,
        %% Granted (the stats say so), and not answered: an answer would have come before the stats', on the lane.
        {ok, #{in_use_connections := 1}} = OnLane(distribute_pool_proto:stats(PoolId)),
        none = distribute_pool_client:poll_call(Pending),
        {leased, {ConnId, LeaseId, ConnNode}, {ok, T}} =
            OnLane(distribute_pool_proto:call(PoolId, checkout, Tag, erlang, node, [], 5000)),
        true = lists:member(ConnNode, do_pool_node_names(Pool)),
        {ok, T} = OnLane(distribute_pool_proto:call(PoolId, checkout, Tag, erlang, node, [], 5000)),
        {ok, {ConnId, LeaseId, ConnNode}} = OnLane(distribute_pool_proto:lease_of(PoolId, Tag)),
        ok = distribute_pool_client:forget_call(Pending),
        %% While it is out: one that may not wait gets its error, one that waits its grant.
        {error, pool_exhausted} = OnLane(distribute_pool_proto:checkout_quiet(PoolId, 0)),
        {ok, Waiting} = distribute_pool_client:send_call(Server, distribute_pool_proto:checkout_quiet(PoolId, default),
                                                         10000),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 1 end, 10000),
        distribute_pool_client:cast(Server, distribute_pool_proto:checkin(PoolId, ConnId, LeaseId)),
        {reply, {ok, {ConnId, LeaseId2, ConnNode}}} = distribute_pool_client:await_call(Waiting, 10000),
        true = LeaseId2 =/= LeaseId,
        distribute_pool_client:cast(Server, distribute_pool_proto:checkin(PoolId, ConnId, LeaseId2)),
        do_wait_idle(Pool)
    end).

-spec quiet_lease_ended_before_first_operation(list()) -> ok.
quiet_lease_ended_before_first_operation(_Config) ->
    doc("A lease whose holder has not learnt its ids yet (quiet checkout, no operation) and that ended meanwhile "
        "(a process the fun gave Conn to discarded it) gives the holder's operations invalid_connection at "
        "once, as any ended lease, and with_connection returns the fun's result, with or without such an "
        "operation; nothing waits out the acquire timeout."),
    with_target_pool("dpool_quiet_end", #{max_connections => 1, acquire_timeout_ms => 60000}, fun(T, Pool) ->
        DiscardedElsewhere = fun(C) ->
                                     {Pid, Mref} = spawn_monitor(fun() -> exit({done, distribute_pool:discard(C)}) end),
                                     receive {'DOWN', Mref, process, Pid, {done, ok}} -> ok end
                             end,
        Started = erlang:monotonic_time(millisecond),
        {ok, {error, invalid_connection}} =
            distribute_pool:with_connection(Pool, fun(C) ->
                                                          DiscardedElsewhere(C),
                                                          distribute_pool:call(C, erlang, node, [])
                                                  end),
        {ok, no_operation} = distribute_pool:with_connection(Pool, fun(C) ->
                                                                           DiscardedElsewhere(C),
                                                                           no_operation
                                                                   end),
        %% The acquire timeout is 60 s: waiting for an answer that never comes would take longer than this.
        true = erlang:monotonic_time(millisecond) - Started < 30000,
        %% The discarded connection comes back, and the pool serves as before.
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 1 end, 20000),
        {ok, {ok, T}} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
    end).

-spec pipelined_lease_in_line(list()) -> ok.
pipelined_lease_in_line(_Config) ->
    doc("with_connection runs its fun before the lease is granted: a first call made while the checkout waits "
        "in line is served on the lease once it comes, also one made by another process the fun hands the "
        "lease to; when the wait ends in pool_exhausted, the fun's first operation ends the fun and "
        "with_connection returns pool_exhausted."),
    with_target_pool("dpool_pipe", #{max_connections => 1, acquire_timeout_ms => 30000}, fun(T, Pool) ->
        Self = self(),
        Holders = do_hold_leases(Pool, 1, holder),
        InLine = fun(Use) ->
                         spawn_link(fun() ->
                             Self ! {done, self(),
                                     distribute_pool:with_connection(Pool, fun(C) -> Self ! {in_fun, self()},
                                                                                 Use(C) end)}
                         end)
                 end,
        Own = InLine(fun(C) -> {distribute_pool:call(C, erlang, node, []), distribute_pool:connection_info(C)} end),
        receive {in_fun, Own} -> ok after 10000 -> ct:fail(fun_did_not_run_before_the_lease) end,
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 1 end, 10000),
        do_release(Holders),
        {ok, {{ok, T}, #{node := ConnNode}}} = receive {done, Own, R1} -> R1 after 30000 -> ct:fail(no_answer) end,
        true = is_atom(ConnNode),
        do_wait_idle(Pool),
        %% Another process uses the lease while its checkout waits in line.
        Holders2 = do_hold_leases(Pool, 1, holder2),
        Handed = InLine(fun(C) ->
                                {Pid, Mref} = spawn_monitor(fun() ->
                                                                    exit({done, distribute_pool:call(C, erlang, node, [])})
                                                            end),
                                receive {'DOWN', Mref, process, Pid, {done, Result}} -> Result end
                        end),
        receive {in_fun, Handed} -> ok after 10000 -> ct:fail(fun_did_not_run_before_the_lease) end,
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 1 end, 10000),
        do_release(Holders2),
        {ok, {ok, T}} = receive {done, Handed, R2} -> R2 after 30000 -> ct:fail(no_answer) end,
        do_wait_idle(Pool),
        %% The wait ends in pool_exhausted: the fun saw it from each operation, and it is what comes back.
        Holders3 = do_hold_leases(Pool, 1, holder3),
        {error, pool_exhausted} =
            distribute_pool:with_connection(Pool, fun(C) ->
                                                          Self ! before_the_call,
                                                          Seen = distribute_pool:call(C, erlang, node, []),
                                                          Self ! {after_the_call, Seen},
                                                          result
                                                  end, #{acquire_timeout_ms => 300}),
        receive before_the_call -> ok after 0 -> ct:fail(fun_not_run) end,
        receive {after_the_call, _} = After -> ct:fail({call_returned, After}) after 0 -> ok end,
        #{waiting := 0, in_use_connections := 1} = do_stats(Pool),
        do_release(Holders3),
        do_wait_idle(Pool)
    end).

-spec acquire_timeout_zero_fails_fast(list()) -> ok.
acquire_timeout_zero_fails_fast(_Config) ->
    doc("With every lease held, acquire_timeout_ms 0 is pool_exhausted at once (not after the pool's 30 s "
        "default); the fun runs (the lease is pipelined) up to its first operation, which ends it, and nothing "
        "is left waiting."),
    with_target_pool("dpool_fast", #{max_connections => 1, acquire_timeout_ms => 30000}, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 1, holder),
        Self = self(),
        T0 = erlang:monotonic_time(millisecond),
        {error, pool_exhausted} =
            distribute_pool:with_connection(Pool, fun(C) ->
                                                          Self ! ran,
                                                          Self ! {returned, distribute_pool:call(C, erlang, node, [])}
                                                  end, #{acquire_timeout_ms => 0}),
        true = erlang:monotonic_time(millisecond) - T0 < 10000,
        receive ran -> ok after 0 -> ct:fail(fun_not_run) end,
        receive {returned, _} = R -> ct:fail(R) after 0 -> ok end,
        #{waiting := 0, in_use_connections := 1} = do_stats(Pool),
        do_release(Holders),
        do_wait_idle(Pool),
        {ok, ok} = distribute_pool:with_connection(Pool, fun(_) -> ok end, #{acquire_timeout_ms => 0})
    end).

-spec acquire_timeout_bounds_the_wait(list()) -> ok.
acquire_timeout_bounds_the_wait(_Config) ->
    doc("A checkout waits about its acquire timeout (given per call, or the pool's) before pool_exhausted."),
    with_target_pool("dpool_wait", #{max_connections => 1, acquire_timeout_ms => 400}, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 1, holder),
        T0 = erlang:monotonic_time(millisecond),
        {error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ran end,
                                                                  #{acquire_timeout_ms => 700}),
        E1 = erlang:monotonic_time(millisecond) - T0,
        T1 = erlang:monotonic_time(millisecond),
        {error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ran end),
        E2 = erlang:monotonic_time(millisecond) - T1,
        ct:log("waited ~b ms (700 asked), ~b ms (pool default 400)", [E1, E2]),
        true = E1 >= 700 andalso E1 < 700 + 10000,
        true = E2 >= 400 andalso E2 < 400 + 10000,
        #{waiting := 0} = do_stats(Pool),
        do_release(Holders)
    end).

-spec lease_back_when_fun_raises(list()) -> ok.
lease_back_when_fun_raises(_Config) ->
    doc("When the fun raises (error, exit, throw), the exception leaves with_connection unchanged and the "
        "lease is back: the one-connection pool serves the next caller."),
    with_target_pool("dpool_raise", 1, fun(_T, Pool) ->
        [begin
             try distribute_pool:with_connection(Pool, fun(_) -> erlang:raise(Class, {boom, Class}, []) end) of
                 R -> ct:fail({no_exception, R})
             catch
                 Class:{boom, Class} -> ok
             end,
             do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 0 end, 5000),
             {ok, next} = distribute_pool:with_connection(Pool, fun(_) -> next end, #{acquire_timeout_ms => 5000})
         end || Class <- [error, exit, throw]]
    end).

-spec lease_back_when_holder_killed(list()) -> ok.
lease_back_when_holder_killed(_Config) ->
    doc("When the process holding a lease is killed, the C-node returns the lease to the pool."),
    with_target_pool("dpool_kill", 2, fun(_T, Pool) ->
        Self = self(),
        Holder = spawn(fun() -> dpool_ct_helper:do_hold_lease(Pool, Self, killed) end),
        receive {held, killed, Holder, _} -> ok after 10000 -> ct:fail(no_lease) end,
        #{in_use_connections := 1} = do_stats(Pool),
        exit(Holder, kill),
        do_wait_until(fun() ->
                              #{in_use_connections := U, available_connections := A} = do_stats(Pool),
                              U =:= 0 andalso A =:= 2
                      end, 10000)
    end).

-spec holder_watched_from_5ms(list()) -> ok.
holder_watched_from_5ms(_Config) ->
    doc("The C-node monitors a lease holder from 5 ms after the grant: not before (no monitor for a short lease), "
        "but from then until the lease ends (process_info monitored_by, seen from the holder); a holder killed "
        "before it was monitored still gives its lease back; a one-shot call is the same."),
    with_target("dpool_watch", fun(T) ->
        %% The C-node monitors a caller as the node of the caller's lane.
        CNodes = distribute_pool_client:lane_nodes(do_cnode()),
        {ok, Pool} = distribute_pool:new(T, 1),
        ByCNode = fun() ->
                          {monitored_by, By} = process_info(self(), monitored_by),
                          [P || P <- By, is_pid(P), lists:member(node(P), CNodes)]
                  end,
        %% Not before 5 ms: a lease looked at 3 ms after its checkout was asked for has no monitor yet.
        do_unwatched_before_5ms(Pool, ByCNode, 200),
        %% From then until the lease ends: the monitor comes while the lease is held.
        {ok, [_]} = distribute_pool:with_connection(
                      Pool, fun(_) -> do_wait_value(ByCNode, fun(By) -> By =/= [] end, 5000) end),
        do_wait_until(fun() -> ByCNode() =:= [] end, 5000),
        %% A holder killed at once, before its monitor: the monitor set at 5 ms fires, the lease comes back.
        [begin
             Self = self(),
             Holder = spawn(fun() ->
                                    distribute_pool:with_connection(
                                      Pool, fun(C) ->
                                                    #{} = distribute_pool:connection_info(C),
                                                    Self ! {granted, self()},
                                                    receive never -> ok end
                                            end)
                            end),
             receive {granted, Holder} -> exit(Holder, kill) after 10000 -> ct:fail(no_grant) end,
             do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 1 end, 5000)
         end || _ <- lists:seq(1, 5)],
        %% A one-shot call that outlasts 10 ms is watched while it runs, and not afterwards. The second one runs
        %% until the case has seen its caller watched: a gen_server call from the target to a gate here, which
        %% answers when the case opens it.
        {ok, ok} = distribute_pool:call(Pool, timer, sleep, [200]),
        Self = self(),
        Gate = spawn_link(fun() ->
                                  receive
                                      {'$gen_call', From, hold} -> receive open -> gen_server:reply(From, ok) end
                                  end
                          end),
        Caller = spawn(fun() ->
                               Self ! {done, distribute_pool:call(Pool, gen_server, call, [Gate, hold, infinity])}
                       end),
        do_wait_until(fun() -> {monitored_by, By} = process_info(Caller, monitored_by),
                               lists:any(fun(P) -> is_pid(P) andalso lists:member(node(P), CNodes) end, By)
                      end, 5000),
        Gate ! open,
        receive {done, {ok, ok}} -> ok after 10000 -> ct:fail(no_call_result) end,
        do_wait_until(fun() -> ByCNode() =:= [] end, 5000),
        #{in_use_connections := 0, available_connections := 1} = do_stats(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec lease_back_when_client_disconnects(list()) -> ok.
lease_back_when_client_disconnects(_Config) ->
    doc("Leases held on a client node come back when that node's connections to the C-node (one per lane its "
        "processes use) go down."),
    with_nodes([{target, "dpool_cd_target"}, {client, "dpool_cd_client"}], fun([{_, T}, {_, Client}]) ->
        Server = do_cnode(),
        {ok, Pool} = distribute_pool:new(T, 3),
        do_remote_holders(Client, Pool, 2),
        #{in_use_connections := 2} = do_stats(Pool),
        [_ | _] = dpool_ct_helper:do_disconnect_cnode(Client, Server),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 0 end, 10000),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 3 end, 10000),
        ok = distribute_pool:destroy(Pool)
    end).

-spec lease_back_when_client_node_stops(list()) -> ok.
lease_back_when_client_node_stops(_Config) ->
    doc("Leases held on a client node come back when that node stops."),
    with_nodes([{target, "dpool_cs_target"}, {client, "dpool_cs_client"}], fun([{_, T}, {CPeer, Client}]) ->
        {ok, Pool} = distribute_pool:new(T, 2),
        do_remote_holders(Client, Pool, 2),
        #{in_use_connections := 2} = do_stats(Pool),
        {error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ok end,
                                                                  #{acquire_timeout_ms => 0}),
        do_stop_peer(CPeer),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 0 end, 10000),
        {ok, ok} = distribute_pool:with_connection(Pool, fun(_) -> ok end, #{acquire_timeout_ms => 0}),
        ok = distribute_pool:destroy(Pool)
    end).

-spec stats_keys_and_invariant(list()) -> ok.
stats_keys_and_invariant(_Config) ->
    doc("Stats have every documented key, and total = available + in_use + connecting in every sample "
        "taken while leases churn; in_use follows the leases held."),
    with_target_pool("dpool_stats", 3, fun(T, Pool) ->
        Stats0 = do_stats(Pool),
        [] = ?STATS_KEYS -- maps:keys(Stats0),
        T = maps:get(target, Stats0),
        undefined = maps:get(name, Stats0),
        none = maps:get(last_failure, Stats0),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 3 end, 15000),
        Holders = do_hold_leases(Pool, 2, held),
        #{in_use_connections := 2, available_connections := 1} = do_stats(Pool),
        do_release(Holders),
        do_wait_idle(Pool),
        %% Churn: 8 processes take and return leases while this process samples.
        Self = self(),
        Churners = [spawn_link(fun() -> do_churn(Pool, Self, 30) end) || _ <- lists:seq(1, 8)],
        Samples = do_sample(Pool, Churners, []),
        ct:log("~b samples", [length(Samples)]),
        true = length(Samples) > 0,
        [ok = do_check_invariant(S) || S <- Samples],
        true = lists:any(fun(#{in_use_connections := U}) -> U > 0 end, Samples)
    end).

-spec stats_counters_move(list()) -> ok.
stats_counters_move(_Config) ->
    doc("successful_operations counts sends and requests that worked; failed_operations counts those that "
        "did not, and failed checkouts."),
    with_target_pool("dpool_counters", 1, fun(T, Pool) ->
        #{successful_operations := S0, failed_operations := F0} = do_stats(Pool),
        {ok, {ok, T}} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        {ok, ok} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:send(C, no_such_name, x) end),
        #{successful_operations := S1, failed_operations := F0} = do_stats(Pool),
        true = S1 >= S0 + 2,
        {ok, {error, {down, noproc}}} =
            distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:request(C, no_such_name, x) end),
        #{failed_operations := F1} = do_stats(Pool),
        true = F1 >= F0 + 1,
        Holders = do_hold_leases(Pool, 1, held),
        {error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ok end,
                                                                  #{acquire_timeout_ms => 0}),
        #{failed_operations := F2} = do_stats(Pool),
        true = F2 >= F1 + 1,
        do_release(Holders)
    end).

-spec destroy_closes_connections(list()) -> ok.
destroy_closes_connections(_Config) ->
    doc("destroy closes the pool's connections (they leave the target's hidden nodes); afterwards the pool "
        "handle is invalid_pool everywhere, including a second destroy."),
    with_target("dpool_destroy", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, 3),
        PoolId = do_pool_id(Pool),
        do_wait_until(fun() -> length(do_pool_nodes(T, Pool)) =:= 3 end, 15000),
        Names = do_pool_node_names(Pool),
        ok = distribute_pool:destroy(Pool),
        do_wait_until(fun() -> do_hidden_among(T, Names) =:= [] end, 15000),
        {error, invalid_pool} = distribute_pool:stats(Pool),
        {error, invalid_pool} = distribute_pool:with_connection(Pool, fun(_) -> ok end),
        {error, invalid_pool} = distribute_pool:destroy(Pool),
        {ok, Pools} = gen_server:call(do_cnode(), pools, 5000),
        false = lists:member(PoolId, Pools)
    end).

-spec target_down_gives_errors(list()) -> ok.
target_down_gives_errors(Config) ->
    doc("When the target goes away, operations fail with errors instead of hanging or succeeding, and the "
        "C-node carries on."),
    with_target("dpool_tdown", fun(T, Peer) ->
        {ok, Pool} = distribute_pool:new(T, 2),
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
        do_stop_peer(Peer),
        do_wait_until(fun() ->
                              case distribute_pool:with_connection(
                                     Pool, fun(C) -> distribute_pool:call(C, erlang, node, [], 1000) end,
                                     #{acquire_timeout_ms => 500}) of
                                  {error, {connection_failed, _}} -> true;
                                  {error, pool_exhausted} -> true;
                                  {ok, {error, {connection_failed, _}}} -> true;
                                  {ok, {error, timeout}} -> false;
                                  {ok, {ok, T}} -> false
                              end
                      end, 30000),
        #{total_connections := Tot, available_connections := A, in_use_connections := U,
          connecting_connections := Cn} = do_stats(Pool),
        Tot = A + U + Cn,
        ok = distribute_pool:destroy(Pool)
    end),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

%% Helpers.

%% The connection nodes handed out by N simultaneous leases.
do_lease_nodes(Pool, N) ->
    Holders = do_hold_leases_info(Pool, N),
    Nodes = [Node || {_, _, #{node := Node}} <- Holders],
    do_release([{Pid, Tag} || {Pid, Tag, _} <- Holders]),
    N = length(lists:usort(Nodes)),
    Nodes.

do_hold_leases_info(Pool, N) ->
    Self = self(),
    Started = [begin
                   Tag = {info, I},
                   {spawn_link(fun() -> dpool_ct_helper:do_hold_lease(Pool, Self, Tag) end), Tag}
               end || I <- lists:seq(1, N)],
    [receive {held, Tag, _, Info} -> {Pid, Tag, Info} after 30000 -> ct:fail({no_lease, Tag}) end
     || {Pid, Tag} <- Started].

%% Leases of Pool, each looked at by ByCNode 3 ms after its checkout was asked for: a look done sooner than 5 ms
%% after that must find no monitor (the C-node sets it 5 ms after the grant, and grants after the ask). A look
%% done later proves nothing (a busy machine can take that long to hand the lease over): that lease is tried
%% again, up to Tries leases.
do_unwatched_before_5ms(Pool, ByCNode, Tries) ->
    Asked = erlang:monotonic_time(microsecond),
    {ok, {Seen, Us}} = distribute_pool:with_connection(
                         Pool, fun(_) ->
                                       do_spin_until(Asked + 3000),
                                       By = ByCNode(),
                                       {By, erlang:monotonic_time(microsecond) - Asked}
                               end),
    do_wait_until(fun() -> ByCNode() =:= [] end, 5000),
    case {Seen, Us < 5000} of
        {[], true} -> ok;
        {[_ | _], true} -> ct:fail({watched_sooner_than_5ms_after_the_ask, Us, Seen});
        {_, false} when Tries > 1 -> do_unwatched_before_5ms(Pool, ByCNode, Tries - 1);
        {_, false} -> ct:fail({no_lease_looked_at_within_5ms_of_its_ask, Us})
    end.

do_spin_until(Us) ->
    case erlang:monotonic_time(microsecond) >= Us of
        true -> ok;
        false -> do_spin_until(Us)
    end.

%% The next waiter to get a lease; only one may hold at a time here.
do_next_holder(Waiters) ->
    receive
        {held, Tag, _, _} -> lists:keyfind(Tag, 2, Waiters)
    after 15000 ->
        ct:fail(no_waiter_served)
    end.

%% Starts N lease holders on Client and waits until each holds its lease.
do_remote_holders(Client, Pool, N) ->
    Self = self(),
    [begin
         _ = erpc:call(Client, erlang, spawn, [dpool_ct_helper, do_hold_lease, [Pool, Self, {remote, I}]]),
         receive {held, {remote, I}, _, _} -> ok after 15000 -> ct:fail({no_remote_lease, I}) end
     end || I <- lists:seq(1, N)],
    ok.

do_churn(_Pool, Parent, 0) ->
    Parent ! {churned, self()};
do_churn(Pool, Parent, N) ->
    {ok, ok} = distribute_pool:with_connection(Pool, fun(_) -> receive after 1 -> ok end end,
                                               #{acquire_timeout_ms => 30000}),
    do_churn(Pool, Parent, N - 1).

do_sample(_Pool, [], Acc) ->
    Acc;
do_sample(Pool, Churners, Acc) ->
    S = do_stats(Pool),
    receive
        {churned, Pid} -> do_sample(Pool, lists:delete(Pid, Churners), [S | Acc])
    after 0 ->
        do_sample(Pool, Churners, [S | Acc])
    end.

do_check_invariant(#{total_connections := T, available_connections := A, in_use_connections := U,
                     connecting_connections := C} = S) ->
    case T =:= A + U + C of
        true -> ok;
        false -> ct:fail({invariant_broken, S})
    end.
