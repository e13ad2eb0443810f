%% Pool lifecycle on real nodes: idle connections closed, lifetimes with replacement, health checks (a frozen
%% target among them), validate_on_checkout, adaptive capacity, waiters that die, drained destroy, and the
%% acquire statistics. Every case checks the stats invariants as it goes.
-module(distribute_pool_eviction_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([idle_connections_above_minimum_close/1]).
-export([lifetime_replaces_before_closing/1]).
-export([lifetime_of_a_leased_connection_ends_at_return/1]).
-export([health_checks_find_a_frozen_target/1]).
-export([validate_on_checkout_checks_every_lease/1]).
-export([capacity_grows_and_shrinks/1]).
-export([dead_waiter_leaves_the_queue/1]).
-export([destroy_waits_for_leases/1]).
-export([destroy_drain_times_out/1]).
-export([acquire_stats_tell_the_truth/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stats/1, do_pool_node_names/1, do_hold_leases/3,
                          do_release/1, do_wait_idle/1, with_target_pool/3, do_signal/2, with_target/2,
                          do_target_os_pid/1]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 2}}].

-spec all() -> [atom()].
all() ->
    [idle_connections_above_minimum_close,
     lifetime_replaces_before_closing,
     lifetime_of_a_leased_connection_ends_at_return,
     health_checks_find_a_frozen_target,
     validate_on_checkout_checks_every_lease,
     capacity_grows_and_shrinks,
     dead_waiter_leaves_the_queue,
     destroy_waits_for_leases,
     destroy_drain_times_out,
     acquire_stats_tell_the_truth].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec idle_connections_above_minimum_close(list()) -> ok.
idle_connections_above_minimum_close(_Config) ->
    doc("With min 1 and max 4, four holders make the pool open four connections; once they are idle for "
        "max_idle_ms the three above the minimum are closed (reason idle) and the target sees them go."),
    Options = #{max_connections => 4, min_connections => 1, max_idle_ms => 200,
                resize_window_ms => 86400000, health_check_interval_ms => 0},
    with_target_pool("dpool_idle", Options, fun(T, Pool) ->
        #{total_connections := 1, capacity := 1} = checked_stats(Pool),
        Holders = do_hold_leases(Pool, 4, idle),
        #{total_connections := 4, in_use_connections := 4, capacity := 4} = checked_stats(Pool),
        do_release(Holders),
        do_wait_until(fun() -> maps:get(total_connections, checked_stats(Pool)) =:= 1 end, 5000),
        S = checked_stats(Pool),
        #{capacity := 1, available_connections := 1, connections_created := 4} = S,
        3 = closed(S, idle),
        do_wait_until(fun() -> length(pool_nodes_on(T)) =:= 1 end, 5000),
        %% The remaining connection works, and stays: it is the minimum.
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
        %% Something that must not happen: 400 ms is twice max_idle_ms, and a sleep is never shorter than asked
        %% (on a busy machine it is longer, which only gives the C-node more time to get it wrong).
        timer:sleep(400),
        #{total_connections := 1} = checked_stats(Pool)
    end).

-spec lifetime_replaces_before_closing(list()) -> ok.
lifetime_replaces_before_closing(_Config) ->
    doc("Connections older than max_lifetime_ms are replaced; the target sees each replacement come up "
        "before the connection it replaces goes down, so it always has at least max + 1 pooled connections "
        "when one closes."),
    with_target("dpool_lifetime", fun(T) ->
        ok = dpool_ct_helper:do_load_fixture(T, dpool_node_watch),
        ok = erpc:call(T, dpool_node_watch, start, []),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 2, max_lifetime_ms => 600,
                                              health_check_interval_ms => 0}),
        Before = lists:sort(do_pool_node_names(Pool)),
        do_wait_until(fun() -> closed(checked_stats(Pool), lifetime) >= 4 end, 10000),
        Events = erpc:call(T, dpool_node_watch, events, []),
        ct:pal("node events on the target: ~p", [Events]),
        Downs = [N || {down, N} <- Events],
        true = length(Downs) >= 4,
        ok = up_before_down(Events, #{}, 3),
        true = lists:sort(do_pool_node_names(Pool)) =/= Before,
        {ok, {ok, T}} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        S = checked_stats(Pool),
        0 = closed(S, target_down) + closed(S, health) + closed(S, idle) + closed(S, broken),
        ok = distribute_pool:destroy(Pool),
        erpc:call(T, dpool_node_watch, stop, [])
    end).

-spec lifetime_of_a_leased_connection_ends_at_return(list()) -> ok.
lifetime_of_a_leased_connection_ends_at_return(_Config) ->
    doc("A lease is never cut short by max_lifetime_ms, but a connection that expired while leased is "
        "replaced when it comes back: the next lease gets another connection."),
    Options = #{max_connections => 1, max_lifetime_ms => 300, health_check_interval_ms => 0},
    with_target_pool("dpool_lifetime_lease", Options, fun(_T, Pool) ->
        {ok, First} = distribute_pool:with_connection(
                        Pool,
                        fun(C) ->
                                #{node := N} = distribute_pool:connection_info(C),
                                %% Past max_lifetime_ms (the C-node compares the connection's expiry with its
                                %% clock when the lease comes back): a sleep is never shorter than asked.
                                timer:sleep(700),
                                pong = distribute_pool:ping(C),
                                N
                        end),
        {ok, Second} = distribute_pool:with_connection(
                         Pool, fun(C) -> maps:get(node, distribute_pool:connection_info(C)) end),
        true = First =/= Second,
        true = closed(checked_stats(Pool), lifetime) >= 1
    end).

-spec health_checks_find_a_frozen_target(list()) -> ok.
health_checks_find_a_frozen_target(_Config) ->
    doc("Fault 2: the target frozen with SIGSTOP. Health checks notice within interval + timeout (+ margin), "
        "the checked connections are closed (reason health), operations end cleanly within their bounds; "
        "after SIGCONT the pool heals to full size."),
    Options = #{max_connections => 2, health_check_interval_ms => 200,
                health_check_timeout_ms => 300, connect_timeout_ms => 500,
                backoff_min_ms => 50, backoff_max_ms => 200,
                acquire_timeout_ms => 1000},
    with_target_pool("dpool_frozen", Options, fun(T, Pool) ->
        OsPid = do_target_os_pid(T),
        Started = erlang:monotonic_time(millisecond),
        do_signal(OsPid, "STOP"),
        try
            do_wait_until(fun() -> closed(checked_stats(Pool), health) >= 2 end, 200 + 300 + 3000),
            Detected = erlang:monotonic_time(millisecond) - Started,
            ct:pal("both connections closed by health checks ~b ms after SIGSTOP", [Detected]),
            {Ms, Result} = timer:tc(fun() ->
                                            distribute_pool:with_connection(
                                              Pool, fun(C) -> distribute_pool:call(C, erlang, node, [], 300) end)
                                    end),
            ct:pal("an operation while frozen: ~p after ~b ms", [Result, Ms div 1000]),
            case Result of
                {error, {connection_failed, _}} -> ok;
                {error, pool_exhausted} -> ok;
                {ok, {error, timeout}} -> ok;
                {ok, {error, {connection_failed, _}}} -> ok
            end,
            true = Ms < 3000000,
            _ = checked_stats(Pool)
        after
            do_signal(OsPid, "CONT")
        end,
        do_wait_until(fun() -> maps:get(available_connections, checked_stats(Pool)) =:= 2 end, 10000),
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
        true = maps:get(reconnect_attempts, checked_stats(Pool)) >= 2
    end).

-spec validate_on_checkout_checks_every_lease(list()) -> ok.
validate_on_checkout_checks_every_lease(_Config) ->
    doc("validate_on_checkout makes one round trip per lease of an idle connection (none without it); a "
        "connection that fails it is never leased."),
    with_target("dpool_validate", fun(T) ->
        {ok, Checked} = distribute_pool:new(T, #{max_connections => 1, validate_on_checkout => true,
                                                 health_check_interval_ms => 0, health_check_timeout_ms => 300,
                                                 connect_timeout_ms => 500, acquire_timeout_ms => 1500}),
        {ok, Plain} = distribute_pool:new(T, #{max_connections => 1, health_check_interval_ms => 0}),
        [{ok, pong} = distribute_pool:with_connection(P, fun distribute_pool:ping/1)
         || _ <- lists:seq(1, 5), P <- [Checked, Plain]],
        #{health_checks := 5, hits := 5} = checked_stats(Checked),
        #{health_checks := 0} = checked_stats(Plain),
        OsPid = do_target_os_pid(T),
        do_signal(OsPid, "STOP"),
        try
            Result = distribute_pool:with_connection(Checked, fun(_) -> leased end),
            ct:pal("checkout of a frozen target's connection: ~p", [Result]),
            case Result of
                {error, pool_exhausted} -> ok;
                {error, {connection_failed, _}} -> ok
            end,
            1 = closed(checked_stats(Checked), health)
        after
            do_signal(OsPid, "CONT")
        end,
        do_wait_until(fun() -> maps:get(available_connections, checked_stats(Checked)) =:= 1 end, 10000),
        {ok, pong} = distribute_pool:with_connection(Checked, fun distribute_pool:ping/1),
        ok = distribute_pool:destroy(Checked),
        ok = distribute_pool:destroy(Plain)
    end).

-spec capacity_grows_and_shrinks(list()) -> ok.
capacity_grows_and_shrinks(_Config) ->
    doc("Adaptive capacity between min 1 and max 4: busy workers that wait make it grow to 4; once the pool "
        "sits idle it shrinks back to 1, one connection per window, and stats show capacity all along."),
    Options = #{max_connections => 4, min_connections => 1, max_idle_ms => 0,
                resize_window_ms => 200, health_check_interval_ms => 0},
    with_target_pool("dpool_adaptive", Options, fun(_T, Pool) ->
        #{capacity := 1} = checked_stats(Pool),
        Self = self(),
        Workers = [spawn_link(fun() -> busy_worker(Pool, Self) end) || _ <- lists:seq(1, 6)],
        do_wait_until(fun() -> maps:get(capacity, checked_stats(Pool)) =:= 4 end, 5000),
        [W ! stop || W <- Workers],
        [receive {stopped, W} -> ok after 10000 -> ct:fail(worker_stuck) end || W <- Workers],
        do_wait_idle(Pool),
        do_wait_until(fun() ->
                              #{capacity := C, total_connections := N} = checked_stats(Pool),
                              C =:= 1 andalso N =:= 1
                      end, 5000),
        S = checked_stats(Pool),
        3 = closed(S, idle),
        4 = maps:get(connections_created, S)
    end).

-spec dead_waiter_leaves_the_queue(list()) -> ok.
dead_waiter_leaves_the_queue(_Config) ->
    doc("A caller killed while it waits for a lease leaves the queue at once (waiting drops to 0 without "
        "waiting out its acquire timeout), and the lease then goes back to the pool, not to the dead."),
    with_target_pool("dpool_dead_waiter", 1, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 1, dead_waiter),
        Waiter = spawn(fun() ->
                               distribute_pool:with_connection(Pool, fun(_) -> ok end,
                                                               #{acquire_timeout_ms => 60000})
                       end),
        do_wait_until(fun() -> maps:get(waiting, checked_stats(Pool)) =:= 1 end, 5000),
        Killed = erlang:monotonic_time(millisecond),
        exit(Waiter, kill),
        %% Well before the 60 s acquire timeout, with room for a busy machine.
        do_wait_until(fun() -> maps:get(waiting, checked_stats(Pool)) =:= 0 end, 10000),
        ct:pal("waiting back to 0 within ~b ms of the kill", [erlang:monotonic_time(millisecond) - Killed]),
        do_release(Holders),
        do_wait_until(fun() -> maps:get(available_connections, checked_stats(Pool)) =:= 1 end, 10000),
        #{acquire_timeouts := 0} = checked_stats(Pool)
    end).

-spec destroy_waits_for_leases(list()) -> ok.
destroy_waits_for_leases(_Config) ->
    doc("Fault 5: destroy while a lease is out. New leases are refused at once (invalid_pool), the lease "
        "still works until it is returned, then everything is closed and destroy returns ok."),
    with_target("dpool_drain", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, 2),
        Holder = lease_holder(Pool),
        Self = self(),
        Destroyer = spawn_link(fun() -> Self ! {destroyed, distribute_pool:destroy(Pool, #{drain_timeout_ms => 20000})} end),
        do_wait_until(fun() -> maps:get(state, do_stats(Pool)) =:= draining end, 5000),
        #{in_use_connections := 1, available_connections := 0} = checked_stats(Pool),
        {error, invalid_pool} = distribute_pool:with_connection(Pool, fun(_) -> ok end),
        {ok, T} = holder_call(Holder),
        receive {destroyed, Early} -> ct:fail({destroy_did_not_wait, Early}) after 0 -> ok end,
        Released = erlang:monotonic_time(millisecond),
        Holder ! release,
        receive {destroyed, ok} -> ok after 5000 -> ct:fail({destroy_not_done, Destroyer}) end,
        ct:pal("destroy returned ~b ms after the last lease came back",
               [erlang:monotonic_time(millisecond) - Released]),
        {error, invalid_pool} = distribute_pool:stats(Pool),
        do_wait_until(fun() -> pool_nodes_on(T) =:= [] end, 5000)
    end).

-spec destroy_drain_times_out(list()) -> ok.
destroy_drain_times_out(_Config) ->
    doc("Fault 5: a lease that is never returned holds destroy up for drain_timeout_ms, no longer; then the "
        "pool is closed and the late holder's operations give invalid_pool."),
    with_target("dpool_drain_timeout", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, 1),
        Holder = lease_holder(Pool),
        {Us, ok} = timer:tc(fun() -> distribute_pool:destroy(Pool, #{drain_timeout_ms => 300}) end),
        ct:pal("destroy with a lease out and a drain of 300 ms took ~b ms", [Us div 1000]),
        true = Us >= 250000 andalso Us < 3000000,
        {error, invalid_pool} = holder_call(Holder),
        Holder ! release,
        do_wait_until(fun() -> pool_nodes_on(T) =:= [] end, 5000)
    end).

-spec acquire_stats_tell_the_truth(list()) -> ok.
acquire_stats_tell_the_truth(_Config) ->
    doc("acquire_count = hits + misses; hits are leases served at once, a fail-fast checkout is a miss and an "
        "acquire timeout, a caller that waited is a miss whose wait shows in the wait average, max and p99."),
    with_target_pool("dpool_acquire_stats", 1, fun(_T, Pool) ->
        #{acquire_count := 0, hits := 0, misses := 0, acquire_wait_max_us := 0} = checked_stats(Pool),
        [{ok, ok} = distribute_pool:with_connection(Pool, fun(_) -> ok end) || _ <- lists:seq(1, 3)],
        do_wait_idle(Pool),
        #{acquire_count := 3, hits := 3, misses := 0} = checked_stats(Pool),
        Holders = do_hold_leases(Pool, 1, acquire_stats),
        {error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ok end,
                                                                  #{acquire_timeout_ms => 0}),
        Self = self(),
        _ = spawn_link(fun() ->
                               Self ! {waited, distribute_pool:with_connection(Pool, fun(_) -> ok end)}
                       end),
        do_wait_until(fun() -> maps:get(waiting, checked_stats(Pool)) =:= 1 end, 5000),
        %% The waiter waits at least this long (it was waiting before the stats above, and the lease comes back
        %% after the sleep, which is never shorter than asked). The bounds below ask for 150 ms of the 200: the
        %% sleep is counted by this node's clock and the wait by the C-node's, and the first may run slightly
        %% fast (Erlang's time correction; a wait of 149.7 ms was seen after a sleep of 150).
        timer:sleep(200),
        do_release(Holders),
        receive {waited, {ok, ok}} -> ok after 5000 -> ct:fail(waiter_not_served) end,
        do_wait_idle(Pool),
        S = checked_stats(Pool),
        ct:pal("acquire stats: ~p", [maps:with([acquire_count, hits, misses, acquire_timeouts,
                                                acquire_wait_avg_us, acquire_wait_max_us,
                                                acquire_wait_p99_us], S)]),
        #{acquire_count := 6, hits := 4, misses := 2, acquire_timeouts := 1} = S,
        #{acquire_wait_max_us := Max, acquire_wait_p99_us := P99, acquire_wait_avg_us := Avg} = S,
        true = Max >= 150000,
        true = P99 >= 150000 andalso P99 =< Max,
        true = Avg >= 150000 div 5 andalso Avg < Max
    end).

%% Helpers.

%% Stats, checked against the invariants that must hold at every moment.
-spec checked_stats(distribute_pool:pool()) -> map().
checked_stats(Pool) ->
    S = do_stats(Pool),
    #{total_connections := Total, available_connections := Idle, in_use_connections := InUse,
      connecting_connections := Connecting, waiting := Waiting, capacity := Capacity,
      max_connections := Max, min_connections := Min, acquire_count := Acquires, hits := Hits,
      misses := Misses, connections := Conns, connections_closed := Closed} = S,
    Counts = [V || {_, V} <- maps:to_list(S), is_integer(V)] ++ maps:values(Closed),
    Ok = Total =:= Idle + InUse + Connecting
        andalso lists:all(fun(V) -> V >= 0 end, Counts)
        andalso Total =< Max andalso InUse =< Max andalso Waiting >= 0
        andalso Capacity >= Min andalso Capacity =< Max
        andalso Acquires =:= Hits + Misses
        andalso length(Conns) =:= Total,
    case Ok of
        true -> S;
        false -> ct:fail({stats_invariant_broken, S})
    end.

-spec closed(map(), atom()) -> non_neg_integer().
closed(#{connections_closed := Closed}, Reason) ->
    maps:get(Reason, Closed).

%% The pooled connections the target sees (hidden nodes: this suite's targets have no other).
-spec pool_nodes_on(node()) -> [node()].
pool_nodes_on(T) ->
    erpc:call(T, erlang, nodes, [hidden]).

%% Walks the target's node events in order: whenever a connection goes down, at least Least were up.
-spec up_before_down([dpool_node_watch:event()], #{node() => true}, pos_integer()) -> ok.
up_before_down([], _Up, _Least) ->
    ok;
up_before_down([{up, N} | Rest], Up, Least) ->
    up_before_down(Rest, Up#{N => true}, Least);
up_before_down([{down, N} | Rest], Up, Least) ->
    case map_size(Up) >= Least of
        true -> up_before_down(Rest, maps:remove(N, Up), Least);
        false -> ct:fail({closed_before_replacement_was_up, N, maps:keys(Up)})
    end.

-spec busy_worker(distribute_pool:pool(), pid()) -> ok.
busy_worker(Pool, Parent) ->
    receive
        stop ->
            Parent ! {stopped, self()},
            ok
    after 0 ->
        %% Each lease held about 20 ms: only the pace of the load (the case waits for its conditions).
        _ = distribute_pool:with_connection(Pool, fun(C) -> timer:sleep(20), distribute_pool:ping(C) end,
                                            #{acquire_timeout_ms => 10000}),
        busy_worker(Pool, Parent)
    end.

%% A process that holds a lease, makes a call over it when asked, and returns it when told.
-spec lease_holder(distribute_pool:pool()) -> pid().
lease_holder(Pool) ->
    Self = self(),
    %% with_connection runs its fun before the C-node has served the checkout: the lease is held once
    %% connection_info/1 (which waits for it) answers.
    Pid = spawn_link(fun() ->
                             distribute_pool:with_connection(Pool, fun(C) ->
                                                                           #{} = distribute_pool:connection_info(C),
                                                                           Self ! {holding, self()},
                                                                           holder_loop(C, Self)
                                                                   end)
                     end),
    receive {holding, Pid} -> Pid after 10000 -> ct:fail(no_lease) end.

-spec holder_loop(distribute_pool:conn(), pid()) -> ok.
holder_loop(C, Parent) ->
    receive
        call ->
            Parent ! {called, self(), distribute_pool:call(C, erlang, node, [])},
            holder_loop(C, Parent);
        release ->
            ok
    end.

-spec holder_call(pid()) -> term().
holder_call(Holder) ->
    Holder ! call,
    receive {called, Holder, Result} -> Result after 10000 -> ct:fail(holder_call_stuck) end.
