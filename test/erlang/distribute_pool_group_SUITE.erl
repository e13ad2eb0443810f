%% Pool groups (issue 18): one handle over a pool per target, in the C-node, against real target nodes:
%% round robin and least_in_use spread, key affinity across a lost target, failover (a connection_failed
%% before anything was written goes to another member), targets added and removed under load, the group as
%% a pool handle (leases, names, stats, destroy, child_spec), and what is refused.
-module(distribute_pool_group_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([round_robin_spreads_evenly/1]).
-export([least_in_use_favours_the_idle_target/1]).
-export([keys_keep_their_target/1]).
-export([failover_hides_a_lost_target/1]).
-export([all_targets_down_gives_the_real_error/1]).
-export([add_and_remove_under_load/1]).
-export([remove_while_adding/1]).
-export([a_group_is_a_pool_handle/1]).
-export([names_stats_and_destroy/1]).
-export([child_spec_runs_a_group/1]).
-export([member_limit/1]).
-export([refused_groups/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_wait_value/3, with_nodes/2, do_start_sink/2,
                          do_start_fixture/2]).

-define(CALLS, 10000).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 5}}].

-spec all() -> [atom()].
all() ->
    [round_robin_spreads_evenly,
     least_in_use_favours_the_idle_target,
     keys_keep_their_target,
     failover_hides_a_lost_target,
     all_targets_down_gives_the_real_error,
     add_and_remove_under_load,
     remove_while_adding,
     a_group_is_a_pool_handle,
     names_stats_and_destroy,
     child_spec_runs_a_group,
     member_limit,
     refused_groups].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec round_robin_spreads_evenly(list()) -> ok.
round_robin_spreads_evenly(_Config) ->
    doc("10,000 one-shot calls from 10 processes over a round_robin group of 4 targets: each target runs "
        "2,500 of them within 2 % (counted at the targets: each call returns the node it ran on), and the "
        "group's stats count the same picks."),
    with_targets(4, "dpool_grr", fun(Targets) ->
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 4}),
        Counts = count_nodes(parallel_calls(Group, 10, ?CALLS div 10)),
        ct:pal("calls per target: ~p", [Counts]),
        [] = [{T, N} || T <- Targets, N <- [maps:get(T, Counts, 0)], abs(N - ?CALLS div 4) > ?CALLS div 4 div 50],
        ?CALLS = lists:sum(maps:values(Counts)),
        {ok, #{strategy := round_robin, members := Members, retries := 0}} = distribute_pool:stats(Group),
        [?CALLS div 4] = lists:usort([P || #{picked := P} <- Members]),
        ok = distribute_pool:destroy(Group)
    end).

-spec least_in_use_favours_the_idle_target(list()) -> ok.
least_in_use_favours_the_idle_target(_Config) ->
    doc("least_in_use: while one target's connections are all held by slow requests (and a caller waits in "
        "its line), every new call goes to the idle target; round robin would have sent half of them to the "
        "busy one."),
    with_targets(2, "dpool_glu", fun([Busy, Idle] = Targets) ->
        _ = do_start_sink(Busy, dpool_sink),
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 2, strategy => least_in_use}),
        Self = self(),
        %% A request to {Name, Node} goes to that node's member; a sink never answers, so each holds a lease.
        Holders = [spawn(fun() ->
                                 Result = distribute_pool:request(Group, {dpool_sink, Busy}, hello, 20000),
                                 Self ! {held, self(), Result}
                         end) || _ <- lists:seq(1, 3)],
        do_wait_until(fun() -> member_load(Group, Busy) >= 3 end, 10000),
        Nodes = [begin {ok, N} = distribute_pool:call(Group, erlang, node, []), N end || _ <- lists:seq(1, 200)],
        #{Idle := 200} = count_nodes(Nodes),
        [exit(H, kill) || H <- Holders],
        ok = distribute_pool:destroy(Group, #{drain_timeout_ms => 0})
    end).

-spec keys_keep_their_target(list()) -> ok.
keys_keep_their_target(_Config) ->
    doc("1,000 keys over 4 targets: each key's calls run on one target every time; once one target is "
        "stopped, the keys of the 3 others all stay where they were and only the lost target's keys move "
        "(about a quarter of them), to the targets that are up; a plain pool ignores a key."),
    with_targets(4, "dpool_gkey", fun(Targets, Peers) ->
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 2, backoff_min_ms => 50,
                                                          backoff_max_ms => 200}),
        Keys = lists:seq(1, 1000),
        Before = key_nodes(Group, Keys),
        Before = key_nodes(Group, Keys),
        [] = [T || T <- Targets, not lists:member(T, maps:values(Before))], % every target has keys
        [Lost | _] = Targets,
        ok = peer:stop(maps:get(Lost, Peers)),
        do_wait_until(fun() -> not member_up(Group, Lost) end, 15000),
        After = key_nodes(Group, Keys),
        Moved = [K || K <- Keys, maps:get(K, Before) =/= maps:get(K, After)],
        [] = [K || K <- Moved, maps:get(K, Before) =/= Lost],
        [] = [K || K <- Keys, maps:get(K, After) =:= Lost],
        ct:pal("keys moved: ~b of ~b", [length(Moved), length(Keys)]),
        true = length(Moved) > 150 andalso length(Moved) < 350,
        %% A key on a plain pool changes nothing.
        [Other | _] = Targets -- [Lost],
        {ok, Pool} = distribute_pool:new(Other, 1),
        {ok, Other} = distribute_pool:call(distribute_pool:keyed(Pool, some_key), erlang, node, []),
        ok = distribute_pool:destroy(Pool),
        ok = distribute_pool:destroy(Group)
    end).

-spec failover_hides_a_lost_target(list()) -> ok.
failover_hides_a_lost_target(_Config) ->
    doc("A target is killed (kill -9) while callers wait in its member's line (its one connection leased, 5 "
        "keyed calls sent, some of them queued in its line): when its reconnect fails they run on the key's next "
        "member (retries), within their timeout; once it is known down it is skipped (skipped_down). No error "
        "reaches a caller, then 1,000 calls from 10 processes run on the others."),
    with_targets(4, "dpool_gfo", fun(Targets) ->
        %% Reconnects seconds apart (a busy CI still sees the retries).
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 1, backoff_min_ms => 4000,
                                                          backoff_max_ms => 8000}),
        [Lost | Alive] = Targets,
        [Key | _] = [K || {K, N} <- lists:sort(maps:to_list(key_nodes(Group, lists:seq(1, 200)))), N =:= Lost],
        Keyed = distribute_pool:keyed(Group, Key),
        Self = self(),
        %% The lease is held once an operation on it is answered (with_connection runs its fun before the
        %% checkout is served: calls sent meanwhile could take the connection first).
        Holder = spawn(fun() ->
                               distribute_pool:with_connection(Keyed, fun(C) ->
                                                                              pong = distribute_pool:ping(C),
                                                                              Self ! {holding, self()},
                                                                              receive release -> ok end
                                                                      end)
                       end),
        receive {holding, Holder} -> ok after 10000 -> ct:fail(no_lease) end,
        Waiters = [spawn_monitor(fun() -> exit({result, distribute_pool:call(Keyed, erlang, node, [], 30000)}) end)
                   || _ <- lists:seq(1, 5)],
        do_wait_until(fun() -> member_field(Group, Lost, waiting) > 0 end, 10000),
        %% kill -9, and its end waited for: peer:stop/1 can return while the node still accepts connections
        %% and answers calls. The lease goes back once the C-node has seen its connection lost.
        LostOsPid = dpool_ct_helper:do_target_os_pid(Lost),
        ok = dpool_ct_helper:do_signal(LostOsPid, "KILL"),
        do_wait_until(fun() -> not dpool_ct_helper:do_os_alive(list_to_integer(LostOsPid)) end, 10000),
        do_wait_until(fun() -> maps:get(target_down, member_field(Group, Lost, connections_closed)) > 0 end,
                      15000),
        Holder ! release,
        Results = [receive {'DOWN', Ref, process, Pid, {result, R}} -> R after 60000 -> ct:fail({waiter_stuck, Pid}) end
                   || {Pid, Ref} <- Waiters],
        [] = [R || R <- Results, not lists:member(R, [{ok, N} || N <- Alive])],
        {ok, #{retries := Retries}} = distribute_pool:stats(Group),
        ct:pal("retries: ~b", [Retries]),
        true = Retries > 0,
        do_wait_until(fun() -> not member_up(Group, Lost) end, 15000),
        Second = parallel_calls(Group, 10, 100),
        [] = [R || R <- Second, not lists:member(R, Alive)],
        {ok, #{retries := Retries, skipped_down := Skipped}} = distribute_pool:stats(Group),
        true = Skipped > 0,
        ok = distribute_pool:destroy(Group)
    end).

-spec all_targets_down_gives_the_real_error(list()) -> ok.
all_targets_down_gives_the_real_error(_Config) ->
    doc("With every member down the group still picks one, and the caller gets that member's own error: "
        "connection_failed with its cause; a group none of whose targets can be reached is never made."),
    with_targets(2, "dpool_gdown", fun(Targets, Peers) ->
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 1, backoff_min_ms => 50,
                                                          backoff_max_ms => 100}),
        [ok = peer:stop(P) || P <- maps:values(Peers)],
        do_wait_until(fun() -> not lists:any(fun(T) -> member_up(Group, T) end, Targets) end, 15000),
        {error, {connection_failed, {Kind, Text}}} = distribute_pool:call(Group, erlang, node, []),
        true = is_atom(Kind) andalso is_binary(Text),
        {error, {connection_failed, _}} = distribute_pool:with_connection(Group, fun(_) -> ok end),
        ok = distribute_pool:destroy(Group)
    end),
    {error, {connection_failed, {not_registered, _}}} =
        distribute_pool:new_group(['dpool_nobody_1@127.0.0.1', 'dpool_nobody_2@127.0.0.1'], 1),
    ok.

-spec add_and_remove_under_load(list()) -> ok.
add_and_remove_under_load(_Config) ->
    doc("10 callers loop one-shot calls while a target is added and another removed: no caller sees an "
        "error, the added target gets calls once add_target returned, and no call started after "
        "remove_target returned runs on the removed one (its calls in flight finished first)."),
    with_targets(4, "dpool_gaddrm", fun([Removed, Kept, Kept2, Added]) ->
        {ok, Group} = distribute_pool:new_group([Removed, Kept, Kept2], #{max_connections => 2}),
        Phase = atomics:new(1, []),
        Table = ets:new(calls, [public, duplicate_bag]),
        Stop = atomics:new(1, []),
        Workers = [spawn_monitor(fun() -> call_loop(Group, Phase, Stop, Table) end) || _ <- lists:seq(1, 10)],
        do_wait_until(fun() -> ets:info(Table, size) > 200 end, 30000),
        ok = distribute_pool:add_target(Group, {Added, #{max_connections => 1}}),
        atomics:put(Phase, 1, 1),
        do_wait_until(fun() -> ets:match(Table, {1, Added}) =/= [] end, 30000),
        ok = distribute_pool:remove_target(Group, Removed),
        atomics:put(Phase, 1, 2),
        do_wait_until(fun() -> length(ets:match(Table, {2, '$1'})) > 500 end, 30000),
        atomics:put(Stop, 1, 1),
        [receive {'DOWN', Ref, process, Pid, normal} -> ok after 30000 -> ct:fail({worker_stuck, Pid}) end
         || {Pid, Ref} <- Workers],
        [] = ets:match(Table, {'_', {error, '$1'}}),
        [] = ets:match(Table, {2, Removed}),
        true = ets:match(Table, {2, Added}) =/= [],
        {ok, #{members := Members}} = distribute_pool:stats(Group),
        [Kept, Kept2, Added] = [T || #{target := T} <- Members],
        ok = distribute_pool:destroy(Group)
    end).

-spec remove_while_adding(list()) -> ok.
remove_while_adding(_Config) ->
    doc("A target is removed while its add_target still waits for its first connection (the target is frozen, "
        "its connect_timeout_ms 30 s): the adder gets one answer (invalid_pool) long before that timeout, the "
        "remover ok; the same target added again (thawed) takes the freed slot and its adder alone gets ok; the "
        "first adder gets nothing more and the group serves calls on all three."),
    with_targets(3, "dpool_gaddrm2", fun([A, B, Slow] = Targets) ->
        {ok, Group} = distribute_pool:new_group([A, B], #{max_connections => 1}),
        OsPid = dpool_ct_helper:do_target_os_pid(Slow),
        dpool_ct_helper:do_signal(OsPid, "STOP"),
        Self = self(),
        try
            {Adder, AdderRef} =
                spawn_monitor(fun() ->
                                      Self ! {added, self(), distribute_pool:add_target(
                                                               Group, {Slow, #{max_connections => 1,
                                                                               connect_timeout_ms => 30000}})},
                                      %% Alive a while: a second answer would reach this mailbox.
                                      receive
                                          Late -> Self ! {late, Late}
                                      after 3000 -> ok
                                      end
                              end),
            do_wait_until(fun() -> lists:any(fun(#{target := T}) -> T =:= Slow end,
                                             members_of(distribute_pool:stats(Group))) end, 10000),
            ok = distribute_pool:remove_target(Group, Slow),
            {error, invalid_pool} = receive {added, Adder, R} -> R after 10000 -> ct:fail(no_answer_to_the_adder) end,
            dpool_ct_helper:do_signal(OsPid, "CONT"),
            ok = distribute_pool:add_target(Group, {Slow, #{max_connections => 1}}),
            receive {'DOWN', AdderRef, process, Adder, normal} -> ok after 10000 -> ct:fail(adder_stuck) end,
            receive {late, Late} -> ct:fail({second_answer, Late}) after 0 -> ok end,
            Results = parallel_calls(Group, 3, 30),
            [] = [R || R <- Results, not lists:member(R, Targets)],
            3 = maps:size(count_nodes(Results)),
            ok = distribute_pool:destroy(Group)
        after
            dpool_ct_helper:do_signal(OsPid, "CONT")
        end
    end).

-spec a_group_is_a_pool_handle(list()) -> ok.
a_group_is_a_pool_handle(_Config) ->
    doc("A group goes where a pool goes: with_connection leases one member's connection (pipelined: the "
        "fun's first call follows the checkout by its tag; later ones by the lease's ids, whose ConnId "
        "names the member) and its operations go to that member only; send_async, send, request, "
        "cast_batch, send_batch and send_batch_parallel work through it; a keyed with_connection goes to "
        "the key's target."),
    with_targets(3, "dpool_ghandle", fun(Targets) ->
        [_ = do_start_fixture(T, dpool_gfx) || T <- Targets],
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 2}),
        Leased = [distribute_pool:with_connection(Group, fun(C) ->
                                                                  {ok, N} = distribute_pool:call(C, erlang, node, []),
                                                                  {ok, N} = distribute_pool:call(C, erlang, node, []),
                                                                  #{id := Id} = distribute_pool:connection_info(C),
                                                                  ok = distribute_pool:send_async(C, dpool_gfx, {a, N}),
                                                                  {ok, Sender} = distribute_pool:request(C, dpool_gfx, whoami),
                                                                  {N, Id, Sender}
                                                          end) || _ <- lists:seq(1, 6)],
        Nodes = [N || {ok, {N, _, _}} <- Leased],
        6 = length(Nodes),
        true = lists:sort(Targets) =:= lists:usort(Nodes), % round robin: every target leased
        [receive {fixture, dpool_gfx, {a, N}} -> ok after 10000 -> ct:fail({lost_async, N}) end || N <- Nodes],
        %% ConnIds of different members differ.
        true = 3 =< length(lists:usort([Id || {ok, {_, Id, _}} <- Leased])),
        ok = distribute_pool:send(Group, dpool_gfx, one),
        receive {fixture, dpool_gfx, one} -> ok after 10000 -> ct:fail(lost_send) end,
        {ok, 30} = distribute_pool:cast_batch(Group, dpool_gfx, lists:seq(1, 30)),
        [receive {fixture, dpool_gfx, I} -> ok after 10000 -> ct:fail({lost_cast, I}) end || I <- lists:seq(1, 30)],
        {ok, [ok, ok, ok]} = distribute_pool:send_batch(Group, [x, y, z],
                                                        fun(C, M) -> distribute_pool:send(C, dpool_gfx, M) end),
        {ok, #{successful := Pars, failed := []}} =
            distribute_pool:send_batch_parallel(Group, lists:seq(1, 20),
                                                fun(C, _) -> {ok, N} = distribute_pool:call(C, erlang, node, []), N end),
        20 = length(Pars),
        Keyed = distribute_pool:keyed(Group, "user-42"),
        {ok, KeyNode} = distribute_pool:call(Keyed, erlang, node, []),
        {ok, KeyNode} = distribute_pool:with_connection(Keyed, fun(C) ->
                                                                       {ok, N} = distribute_pool:call(C, erlang, node, []),
                                                                       N
                                                               end),
        {ok, 3} = distribute_pool:cast_batch(Keyed, dpool_gfx, [k1, k2, k3]),
        [receive {fixture, dpool_gfx, M} -> ok after 10000 -> ct:fail({lost_keyed_cast, M}) end || M <- [k1, k2, k3]],
        %% A pid (or {Name, Node}) destination goes to its own node's member.
        [T2 | _] = Targets,
        {ok, Who} = distribute_pool:request(Group, {dpool_gfx, T2}, whoami),
        T2Names = [N || #{target := T, connections := Cs} <- members_of(distribute_pool:stats(Group)), T =:= T2,
                        #{node := N} <- Cs],
        true = lists:member(Who, T2Names),
        ok = distribute_pool:destroy(Group)
    end).

-spec names_stats_and_destroy(list()) -> ok.
names_stats_and_destroy(_Config) ->
    doc("A named group is used by its name; pools/0 lists the group and not its members; its stats are the "
        "totals of its members plus each member's stats (target, up, picked); destroy takes its members "
        "with it, and its name is free again."),
    with_targets(2, "dpool_gnames", fun(Targets) ->
        {ok, #{pools := PoolsBefore}} = info(),
        {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 2, name => dpool_group_named}),
        {error, {already_started, Group}} = distribute_pool:new_group(Targets, #{max_connections => 2,
                                                                                 name => dpool_group_named}),
        {ok, N} = distribute_pool:call(dpool_group_named, erlang, node, []),
        true = lists:member(N, Targets),
        {ok, All} = distribute_pool:pools(),
        [{_, #{members := [_, _]}}] = [P || {_, #{pool_id := Id}} = P <- All, Id =:= pool_id(Group)],
        MemberIds = [Id || #{pool_id := Id} <- members_of(distribute_pool:stats(Group))],
        [] = [Id || {_, #{pool_id := Id}} <- All, lists:member(Id, MemberIds)],
        {ok, #{total_connections := 4, max_connections := 4, targets := 2, up_targets := 2, members := Ms,
               name := dpool_group_named, state := active}} = distribute_pool:stats(dpool_group_named),
        [#{up := true, picked := _, target := _, available_connections := _}, _] = Ms,
        {ok, #{pools := During}} = info(),
        2 = During - PoolsBefore, % the two members (the group is no pool of its own)
        ok = distribute_pool:destroy(dpool_group_named),
        {error, invalid_pool} = distribute_pool:call(Group, erlang, node, []),
        do_wait_until(fun() -> {ok, #{pools := P}} = info(), P =:= PoolsBefore end, 10000),
        {ok, Again} = distribute_pool:new_group(Targets, #{max_connections => 1, name => dpool_group_named}),
        ok = distribute_pool:destroy(Again)
    end).

-spec child_spec_runs_a_group(list()) -> ok.
child_spec_runs_a_group(_Config) ->
    doc("child_spec/1 with `targets' runs a named group under the caller's supervisor: made when the child "
        "starts, destroyed when it stops."),
    with_targets(2, "dpool_gchild", fun(Targets) ->
        Spec = distribute_pool:child_spec(#{name => dpool_group_child, targets => Targets, max_connections => 1,
                                            strategy => least_in_use}),
        {ok, Sup} = supervisor:start_link(dpool_ct_sup, {#{strategy => one_for_one, intensity => 5, period => 10},
                                                         [Spec]}),
        {ok, #{strategy := least_in_use}} = distribute_pool:stats(dpool_group_child),
        ok = supervisor:terminate_child(Sup, {distribute_pool, dpool_group_child}),
        {error, invalid_pool} = distribute_pool:stats(dpool_group_child),
        unlink(Sup),
        exit(Sup, shutdown)
    end).

-spec member_limit(list()) -> ok.
member_limit(_Config) ->
    doc("A group holds at most 64 members: one more is refused with limit_reached (max_group_members), "
        "counted in the group's stats and the C-node's info."),
    with_targets(1, "dpool_glimit", fun([Real]) ->
        %% Members that open nothing until asked (min_connections 0) need no node behind them.
        Fakes = [list_to_atom("dpool_nobody_" ++ integer_to_list(I) ++ "@127.0.0.1") || I <- lists:seq(1, 63)],
        {ok, Group} = distribute_pool:new_group([Real | Fakes], #{max_connections => 1, min_connections => 0}),
        {ok, #{limit_refusals := #{max_group_members := Before}}} = info(),
        {error, {limit_reached, {max_group_members, Text}}} =
            distribute_pool:add_target(Group, 'dpool_nobody_64@127.0.0.1'),
        true = is_binary(Text),
        {ok, #{targets := 64, limit_refusals := #{max_group_members := 1}}} = distribute_pool:stats(Group),
        {ok, #{limit_refusals := #{max_group_members := After}}} = info(),
        1 = After - Before,
        ok = distribute_pool:remove_target(Group, hd(Fakes)),
        %% Its own min_connections over the group's 0: a connection is attempted, and fails.
        {error, {connection_failed, {not_registered, _}}} =
            distribute_pool:add_target(Group, {'dpool_nobody_64@127.0.0.1', #{min_connections => 1}}),
        {ok, #{targets := 63}} = distribute_pool:stats(Group),
        ok = distribute_pool:destroy(Group)
    end).

-spec refused_groups(list()) -> ok.
refused_groups(_Config) ->
    doc("What new_group, add_target, remove_target and keyed refuse, with the invalid_config forms of new/2 "
        "(the library's checks and the C-node's agree), and requests the C-node refuses when sent to it "
        "directly; a remove_target asking for the member's id is answered with the id of the one it took out."),
    with_targets(2, "dpool_gbad", fun([T1, T2] = Targets) ->
        Bad = fun(Ts, Opts) -> {error, {invalid_config, Why}} = distribute_pool:new_group(Ts, Opts), Why end,
        {bad_value, targets, [], _} = Bad([], 1),
        {bad_value, targets, not_a_list, _} = Bad(not_a_list, 1),
        {bad_value, targets, _, _} = Bad([T1 | T2], 1),
        {bad_value, targets, _, _} = Bad(lists:duplicate(65, T1), 1),
        {duplicate_target, T1} = Bad([T1, T2, T1], 1),
        {bad_value, strategy, random, <<"round_robin or least_in_use">>} = Bad(Targets, #{max_connections => 1,
                                                                                          strategy => random}),
        {bad_value, name, x, _} = Bad([{T1, #{name => x}}, T2], 1),
        {bad_value, strategy, round_robin, _} = Bad([{T1, #{strategy => round_robin}}, T2], 1),
        {unknown_option, max_conections, {did_you_mean, max_connections}} =
            Bad([{T1, #{max_conections => 1}}, T2], 1),
        {bad_target, "nohost"} = Bad([T1, "nohost"], 1),
        {missing_option, max_connections} = Bad(Targets, #{}),
        {bad_options, 7} = Bad([{T1, 7}], 1),
        %% Per target over the group's: a target's own min_connections above the group's max.
        {bad_value, min_connections, 3, _} = Bad([{T1, #{min_connections => 3}}, T2], #{max_connections => 2}),
        {ok, Group} = distribute_pool:new_group([{T1, #{max_connections => 2}}], #{max_connections => 1}),
        {error, {invalid_config, {duplicate_target, T1}}} = distribute_pool:add_target(Group, T1),
        {error, {invalid_config, {unknown_target, T2}}} = distribute_pool:remove_target(Group, T2),
        {error, {invalid_config, {last_target, T1}}} = distribute_pool:remove_target(Group, T1),
        {error, badarg} = distribute_pool:remove_target(Group, T1, #{drain_timeout_ms => -1}),
        {error, {invalid_config, {bad_value, max_connections, 0, _}}} =
            distribute_pool:add_target(Group, {T2, #{max_connections => 0}}),
        {error, invalid_pool} = distribute_pool:keyed(no_such_group_name, k),
        {error, invalid_pool} = distribute_pool:add_target(no_such_group_name, T2),
        %% Straight to the C-node: what the library never sends.
        CNode = dpool_ct_helper:do_cnode(),
        %% The removal the registry sends names the member it took out.
        ok = distribute_pool:add_target(Group, T2),
        {ok, #{pool_id := GroupId, members := Members}} = distribute_pool:stats(Group),
        [Id2] = [Id || #{target := T, pool_id := Id} <- Members, T =:= T2],
        {error, badarg} = gen_server:call(CNode, {remove_target, GroupId, T2, 0, nope}),
        {ok, Id2} = gen_server:call(CNode, {remove_target, GroupId, T2, 0, member_id}),
        {error, {invalid_config, {unknown_target, _}}} = gen_server:call(CNode, {remove_target, GroupId, T2, 0,
                                                                                 member_id}),
        {error, {invalid_config, {duplicate_target, _}}} =
            gen_server:call(CNode, {new_group, [{T1, #{}}, {T1, #{}}], #{max_connections => 1}, #{}}),
        {error, {invalid_config, {bad_options, nope}}} = gen_server:call(CNode, {new_group, [{T1, #{}}], nope, #{}}),
        {error, {invalid_config, {unknown_option, name}}} =
            gen_server:call(CNode, {new_group, [{T1, #{name => m}}], #{max_connections => 1}, #{}}),
        {error, {invalid_config, {unknown_option, colour}}} =
            gen_server:call(CNode, {new_group, [{T1, #{}}], #{max_connections => 1}, #{colour => red}}),
        {error, badarg} = gen_server:call(CNode, {keyed, -1, {checkout, 1, default}}),
        {error, badarg} = gen_server:call(CNode, {keyed, 1, {keyed, 2, {checkout, 1, default}}}),
        {error, invalid_pool} = gen_server:call(CNode, {keyed, 1, {checkout, 1, default}}),
        {error, invalid_pool} = gen_server:call(CNode, {add_target, 1, T2, #{}}),
        {error, invalid_connection} = gen_server:call(CNode, {call, pool_id(Group), 63 bsl 10, 1, erlang, node, [],
                                                              1000}),
        ok = distribute_pool:destroy(Group)
    end).

%% Helpers.

%% Runs Fun with N fresh targets (a list of nodes; given a fun of 2, also a map of node => peer, for a case
%% that stops some of them itself).
with_targets(N, Prefix, Fun) ->
    with_nodes([{killable_target, dpool_ct_helper:do_uniq(Prefix ++ integer_to_list(I))} || I <- lists:seq(1, N)],
               fun(Started) ->
                       Nodes = [Node || {_Peer, Node} <- Started],
                       case erlang:fun_info(Fun, arity) of
                           {arity, 1} -> Fun(Nodes);
                           {arity, 2} -> Fun(Nodes, maps:from_list([{Node, Peer} || {Peer, Node} <- Started]))
                       end
               end).

%% Runs Calls one-shot calls of erlang:node/0 in each of Workers processes; every result (a node, or an
%% error term) in one list.
parallel_calls(Group, Workers, Calls) ->
    Self = self(),
    Pids = [spawn_link(fun() ->
                               Self ! {results, self(),
                                       [case distribute_pool:call(Group, erlang, node, [], 20000) of
                                            {ok, N} -> N;
                                            Error -> Error
                                        end || _ <- lists:seq(1, Calls)]}
                       end) || _ <- lists:seq(1, Workers)],
    lists:append([receive {results, P, R} -> R after 120000 -> ct:fail({no_results, P}) end || P <- Pids]).

count_nodes(Results) ->
    lists:foldl(fun(N, Acc) -> maps:update_with(N, fun(C) -> C + 1 end, 1, Acc) end, #{}, Results).

%% Key => the node its call ran on.
key_nodes(Group, Keys) ->
    maps:from_list([{K, begin {ok, N} = distribute_pool:call(distribute_pool:keyed(Group, K), erlang, node, []), N end}
                    || K <- Keys]).

members_of({ok, #{members := Members}}) -> Members.

member(Group, Target) ->
    [M] = [M || #{target := T} = M <- members_of(distribute_pool:stats(Group)), T =:= Target],
    M.

member_up(Group, Target) -> maps:get(up, member(Group, Target)).

member_field(Group, Target, Field) -> maps:get(Field, member(Group, Target)).

member_load(Group, Target) ->
    #{in_use_connections := InUse, waiting := Waiting} = member(Group, Target),
    InUse + Waiting.

pool_id(Pool) ->
    {ok, #{pool_id := Id}} = distribute_pool:stats(Pool),
    Id.

info() ->
    gen_server:call(dpool_ct_helper:do_cnode(), info).

%% A caller of add_and_remove_under_load: calls until Stop is set, each result under the phase it began in.
call_loop(Group, Phase, Stop, Table) ->
    case atomics:get(Stop, 1) of
        1 ->
            ok;
        0 ->
            P = atomics:get(Phase, 1),
            Result = case distribute_pool:call(Group, erlang, node, [], 20000) of
                         {ok, N} -> N;
                         Error -> Error
                     end,
            true = ets:insert(Table, {P, Result}),
            call_loop(Group, Phase, Stop, Table)
    end.
