%% A returned lease is back for whoever asks next: a lease returned before a request was sent (in
%% happens-before order, across processes, lanes and caller nodes) counts as returned for that request. The
%% checkin is a cast over the holder's lane and the next request may travel over another lane, so without the
%% C-node's return barrier (docs/PROTOCOL.md, "Returns before a request") the request can overtake the
%% checkin. Real nodes, real epmd, 127.0.0.1.
-module(distribute_pool_return_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([batch_then_stats_sees_every_lease_back/1]).
-export([batch_then_fail_fast_checkouts_all_succeed/1]).
-export([stress_test_returns_with_its_leases_back/1]).
-export([return_then_message_to_another_lane/1]).
-export([return_then_message_to_another_node/1]).
-export([exited_holder_then_fail_fast/1]).
-export([fail_fast_still_exhausted_while_held/1]).
-export([exited_waiter_then_stats_over_its_lane/1]).
-export([ping_pong/5]).
-export([streamer/4]).
-export([start_streamer/3]).

-import(dpool_ct_helper, [doc/1, do_cnode/0, do_stats/1, do_wait_idle/1, do_hold_leases/3, do_release/1,
                          with_target/2, with_target_pool/3, with_nodes/2]).

-define(FAIL_FAST, #{acquire_timeout_ms => 0}).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 5}}].

-spec all() -> [atom()].
all() ->
    [batch_then_stats_sees_every_lease_back,
     batch_then_fail_fast_checkouts_all_succeed,
     stress_test_returns_with_its_leases_back,
     return_then_message_to_another_lane,
     return_then_message_to_another_node,
     exited_holder_then_fail_fast,
     fail_fast_still_exhausted_while_held,
     exited_waiter_then_stats_over_its_lane].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec batch_then_stats_sees_every_lease_back(list()) -> ok.
batch_then_stats_sees_every_lease_back(_Config) ->
    doc("Pool of 5 on an idle target: 200 times send_batch_parallel, then at once stats: in_use_connections "
        "is 0 every time (the batch's workers returned their leases over their own lanes before it returned)."),
    with_target_pool("dpool_ret_stats", 5, fun(_T, Pool) ->
        Fun = fun(_Conn, I) -> I end,
        InUse = [begin
                     {ok, #{successful := Ok, failed := []}} =
                         distribute_pool:send_batch_parallel(Pool, lists:seq(1, 10), Fun),
                     10 = length(Ok),
                     maps:get(in_use_connections, do_stats(Pool))
                 end || _ <- lists:seq(1, 200)],
        none_of(in_use_after_batch, [N || N <- InUse, N =/= 0], 200),
        #{return_barriers := Held} = do_stats(Pool),
        ct:log("stats held for a return barrier: ~b", [Held])
    end).

-spec batch_then_fail_fast_checkouts_all_succeed(list()) -> ok.
batch_then_fail_fast_checkouts_all_succeed(_Config) ->
    doc("Pool of 5 on an idle target: 100 times send_batch_parallel, then at once 5 processes (new ones, so "
        "on lanes round robin) each take a lease with acquire_timeout_ms => 0 and keep it until all 5 have "
        "answered: none gets pool_exhausted."),
    with_target_pool("dpool_ret_ff", 5, fun(_T, Pool) ->
        Fun = fun(_Conn, I) -> I end,
        Outcomes = lists:append(
                     [begin
                          {ok, #{failed := []}} = distribute_pool:send_batch_parallel(Pool, lists:seq(1, 10), Fun),
                          fail_fast_round(Pool, 5)
                      end || _ <- lists:seq(1, 100)]),
        500 = length(Outcomes),
        none_of(fail_fast_refused_after_batch, [O || O <- Outcomes, O =/= held], 500),
        do_wait_idle(Pool)
    end).

-spec stress_test_returns_with_its_leases_back(list()) -> ok.
stress_test_returns_with_its_leases_back(_Config) ->
    doc("stress_test returns the pool's stats after its run: 30 runs of 5 workers on a pool of 5, each run's "
        "stats show in_use_connections 0."),
    with_target_pool("dpool_ret_stress", 5, fun(_T, Pool) ->
        InUse = [begin
                     {ok, #{in_use_connections := N}} =
                         distribute_pool:stress_test(Pool, 4, 5, #{progress => false}),
                     N
                 end || _ <- lists:seq(1, 30)],
        none_of(in_use_after_stress_test, [N || N <- InUse, N =/= 0], 30)
    end).

-spec return_then_message_to_another_lane(list()) -> ok.
return_then_message_to_another_lane(_Config) ->
    doc("Pool of 1. Process A (lane a) takes and returns the lease, then messages process B (lane b =/= a), "
        "which takes it with acquire_timeout_ms => 0, returns it and messages A, which does the same: 500 "
        "rounds each way, never pool_exhausted. Meanwhile a third process on lane a streams 2 MiB cast "
        "batches, so that A's checkin often waits behind its bytes while B's checkout goes at once."),
    Server = do_cnode(),
    with_target("dpool_ret_lane", fun(T) ->
        Self = self(),
        {ok, Pool} = distribute_pool:new(T, 1),
        Rounds = 500,
        A = spawn_link(?MODULE, ping_pong, [Pool, Server, Self, a, Rounds]),
        LaneA = receive {lane, a, A, La} -> La after 10000 -> ct:fail(no_lane_a) end,
        B = spawn_link(?MODULE, ping_pong, [Pool, Server, Self, b, Rounds]),
        LaneB = receive {lane, b, B, Lb} -> Lb after 10000 -> ct:fail(no_lane_b) end,
        true = LaneA =/= LaneB,
        Streamer = start_streamer(Pool, Server, LaneA),
        A ! {peer, B},
        B ! {peer, A},
        A ! {go, 1},
        Failures = collect_ping_pong(A) ++ collect_ping_pong(B),
        stop_streamer(Streamer),
        none_of(fail_fast_refused_across_lanes, Failures, 2 * Rounds),
        do_wait_idle(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec return_then_message_to_another_node(list()) -> ok.
return_then_message_to_another_node(_Config) ->
    doc("Pool of 1. A process on a client node takes and returns the lease, then messages a process on this "
        "node, which takes it with acquire_timeout_ms => 0, returns it and messages the first one back: 300 "
        "rounds each way, never pool_exhausted (the checkin and the next checkout come from different caller "
        "nodes over different connections). A process on the client node's lane streams 2 MiB cast batches "
        "meanwhile, as in return_then_message_to_another_lane."),
    Server = do_cnode(),
    with_nodes([{target, "dpool_ret_node_t"}, {client, "dpool_ret_node_c"}], fun([{_, T}, {_, Client}]) ->
        Self = self(),
        {ok, Pool} = distribute_pool:new(T, 1),
        Rounds = 300,
        Here = spawn_link(?MODULE, ping_pong, [Pool, Server, Self, here, Rounds]),
        receive {lane, here, Here, _} -> ok after 10000 -> ct:fail(no_lane_here) end,
        There = erpc:call(Client, erlang, spawn, [?MODULE, ping_pong, [Pool, Server, Self, there, Rounds]]),
        LaneThere = receive {lane, there, There, L} -> L after 10000 -> ct:fail(no_lane_there) end,
        Streamer = erpc:call(Client, ?MODULE, start_streamer, [Pool, Server, LaneThere]),
        Here ! {peer, There},
        There ! {peer, Here},
        There ! {go, 1},
        Failures = collect_ping_pong(There) ++ collect_ping_pong(Here),
        stop_streamer(Streamer),
        none_of(fail_fast_refused_across_nodes, Failures, 2 * Rounds),
        do_wait_idle(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec exited_holder_then_fail_fast(list()) -> ok.
exited_holder_then_fail_fast(_Config) ->
    doc("Pool of 1. 200 times: a process on another lane takes the lease and is killed while it holds it; "
        "once its 'DOWN' is in, a checkout with acquire_timeout_ms => 0 gets the lease (an exited holder "
        "counts as having returned it)."),
    with_target("dpool_ret_exit", fun(T) ->
        Self = self(),
        {ok, Pool} = distribute_pool:new(T, 1),
        Outcomes = [begin
                        {Pid, Mref} = spawn_monitor(
                                        fun() ->
                                                distribute_pool:with_connection(
                                                  Pool, fun(C) ->
                                                                #{} = distribute_pool:connection_info(C),
                                                                Self ! {holding, self()},
                                                                receive never -> ok end
                                                        end)
                                        end),
                        receive {holding, Pid} -> ok after 10000 -> ct:fail(no_lease) end,
                        exit(Pid, kill),
                        receive {'DOWN', Mref, process, Pid, killed} -> ok end,
                        distribute_pool:with_connection(Pool, fun(_) -> held end, ?FAIL_FAST)
                    end || _ <- lists:seq(1, 200)],
        none_of(fail_fast_refused_after_holder_exit, [O || O <- Outcomes, O =/= {ok, held}], 200),
        do_wait_idle(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec fail_fast_still_exhausted_while_held(list()) -> ok.
fail_fast_still_exhausted_while_held(_Config) ->
    doc("The barrier changes nothing for leases that are really out: with all 3 leases held by live processes "
        "(on other lanes), fail-fast checkouts and one-shot calls give pool_exhausted, quickly, and stats "
        "show 3 in use; once they are released, fail-fast checkouts get leases again."),
    with_target_pool("dpool_ret_held", #{max_connections => 3, acquire_timeout_ms => 0}, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 3, ret_held),
        T0 = erlang:monotonic_time(millisecond),
        [{error, pool_exhausted} = distribute_pool:with_connection(Pool, fun(_) -> ok end, ?FAIL_FAST)
         || _ <- lists:seq(1, 20)],
        [{error, pool_exhausted} = distribute_pool:call(Pool, erlang, node, []) || _ <- lists:seq(1, 20)],
        Elapsed = erlang:monotonic_time(millisecond) - T0,
        ct:log("40 pool_exhausted answers in ~b ms", [Elapsed]),
        true = Elapsed < 5000,
        #{in_use_connections := 3, return_barriers := Held, return_barrier_misses := 0} = do_stats(Pool),
        true = Held >= 40,
        do_release(Holders),
        [{ok, ok} = distribute_pool:with_connection(Pool, fun(_) -> ok end, ?FAIL_FAST) || _ <- lists:seq(1, 20)]
    end).

-spec exited_waiter_then_stats_over_its_lane(list()) -> ok.
exited_waiter_then_stats_over_its_lane(_Config) ->
    doc("Pool of 1, its lease held. 200 times: a process puts a checkout in line (60 s acquire timeout) and is "
        "killed at once, well within the 5 ms after which the C-node would monitor it; stats asked at once over "
        "that process's lane (as send_batch_parallel does for its killed workers) already count nobody waiting: "
        "the stats' return barrier monitors the callers in line not watched yet. Released at the end, the "
        "lease goes back to the pool, not to a dead waiter."),
    with_target_pool("dpool_ret_waiter", 1, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 1, ret_waiter),
        Server = distribute_pool:default_cnode(),
        {ok, #{pool_id := PoolId}} = distribute_pool:stats(Pool),
        Self = self(),
        Seen = [begin
                    {Pid, Mref} = spawn_monitor(
                                    fun() ->
                                            {_, Lane} = distribute_pool_client:lane(Server),
                                            distribute_pool:with_connection(
                                              Pool, fun(_) -> Self ! {queued, self(), Lane}, ok end,
                                              #{acquire_timeout_ms => 60000})
                                    end),
                    Lane = receive {queued, Pid, L} -> L after 10000 -> ct:fail(no_checkout) end,
                    exit(Pid, kill),
                    receive {'DOWN', Mref, process, Pid, killed} -> ok end,
                    {ok, Stats} = distribute_pool_client:call_on_lane({element(1, Server), Lane},
                                                                      distribute_pool_proto:stats(PoolId), 5000),
                    maps:get(waiting, Stats)
                end || _ <- lists:seq(1, 200)],
        none_of(dead_waiter_counted, [W || W <- Seen, W =/= 0], 200),
        do_release(Holders),
        #{available_connections := 1, waiting := 0} = do_stats(Pool)
    end).

%% Helpers.

%% Fails the case with how many of Total went wrong (logged too: the figure to compare with and without the
%% barrier).
-spec none_of(atom(), list(), pos_integer()) -> ok.
none_of(What, Bad, Total) ->
    ct:log("~p: ~b of ~b", [What, length(Bad), Total]),
    case Bad of
        [] -> ok;
        _ -> ct:fail({What, length(Bad), of_, Total, lists:sublist(Bad, 5)})
    end.

%% N new processes each take a lease with acquire_timeout_ms => 0 and keep it until all have answered;
%% their outcomes: held | {error, Reason}.
-spec fail_fast_round(distribute_pool:pool(), pos_integer()) -> [held | {error, term()}].
fail_fast_round(Pool, N) ->
    Self = self(),
    Tag = make_ref(),
    Pids = [spawn_link(fun() ->
                               Result = distribute_pool:with_connection(
                                          Pool,
                                          fun(_) -> Self ! {Tag, self(), held},
                                                    receive {Tag, release} -> ok end
                                          end, ?FAIL_FAST),
                               case Result of
                                   {ok, ok} -> ok;
                                   Error -> Self ! {Tag, self(), Error}
                               end
                       end) || _ <- lists:seq(1, N)],
    Outcomes = [receive {Tag, Pid, O} -> O after 10000 -> ct:fail({no_answer, Pid}) end || Pid <- Pids],
    [Pid ! {Tag, release} || Pid <- Pids],
    Outcomes.

%% One side of the ping-pong: reports its lane, learns its peer, then on {go, Round} takes and returns the
%% lease (fail fast) and tells the peer {go, Round + 1}; reports its failures when its rounds are done. Runs
%% on this node or on a client node (this module is on its code path).
-spec ping_pong(distribute_pool:pool(), {atom(), node()}, pid(), atom(), non_neg_integer()) -> ok.
ping_pong(Pool, Server, Report, Name, Rounds) ->
    {_, Lane} = distribute_pool_client:lane(Server),
    Report ! {lane, Name, self(), Lane},
    Peer = receive {peer, P} -> P after 30000 -> exit(no_peer) end,
    Failures = ping_pong_loop(Pool, Peer, Rounds, []),
    Report ! {ping_pong_done, self(), Failures},
    ok.

-spec ping_pong_loop(distribute_pool:pool(), pid(), non_neg_integer(), list()) -> list().
ping_pong_loop(_Pool, _Peer, 0, Failures) ->
    lists:reverse(Failures);
ping_pong_loop(Pool, Peer, Left, Failures) ->
    receive
        {go, Round} ->
            Outcome = distribute_pool:with_connection(Pool, fun(_) -> ok end, ?FAIL_FAST),
            Peer ! {go, Round + 1},
            ping_pong_loop(Pool, Peer, Left - 1,
                           case Outcome of {ok, ok} -> Failures; _ -> [{Round, Outcome} | Failures] end)
    after 30000 ->
        lists:reverse([{stalled, Left} | Failures])
    end.

%% Starts, on this node, a process that uses lane Lane of Server and streams cast batches of one 2 MiB
%% binary to the pool (to a name nobody has on the target) until stopped: new processes get lanes round
%% robin, so candidates are started until one has that lane. Called on a client node over erpc too.
-spec start_streamer(distribute_pool:pool(), {atom(), node()}, node()) -> pid().
start_streamer(Pool, Server, Lane) ->
    start_streamer(Pool, Server, Lane, 32).

start_streamer(_Pool, _Server, Lane, 0) ->
    exit({no_streamer_on_lane, Lane});
start_streamer(Pool, Server, Lane, Tries) ->
    Self = self(),
    {Pid, Mref} = spawn_monitor(?MODULE, streamer, [Pool, Server, Lane, Self]),
    receive
        {streaming, Pid} ->
            erlang:demonitor(Mref, [flush]),
            Pid;
        {'DOWN', Mref, process, Pid, _OtherLane} ->
            start_streamer(Pool, Server, Lane, Tries - 1)
    after 10000 ->
        exit(Pid, kill),
        exit(streamer_stuck)
    end.

-spec streamer(distribute_pool:pool(), {atom(), node()}, node(), pid()) -> ok.
streamer(Pool, Server, Lane, Report) ->
    case distribute_pool_client:lane(Server) of
        {_, Lane} ->
            Report ! {streaming, self()},
            stream(Pool, binary:copy(<<7>>, 2 * 1024 * 1024));
        _ ->
            exit(other_lane)
    end.

stream(Pool, Bin) ->
    receive
        stop -> ok
    after 0 ->
        {ok, 1} = distribute_pool:cast_batch(Pool, dpool_nobody_here, [Bin]),
        stream(Pool, Bin)
    end.

-spec stop_streamer(pid()) -> ok.
stop_streamer(Pid) ->
    Mref = erlang:monitor(process, Pid),
    Pid ! stop,
    receive
        {'DOWN', Mref, process, Pid, _} -> ok
    after 30000 ->
        exit(Pid, kill),
        ct:fail(streamer_stuck)
    end.

-spec collect_ping_pong(pid()) -> list().
collect_ping_pong(Pid) ->
    receive
        {ping_pong_done, Pid, Failures} -> Failures
    after 120000 ->
        exit(Pid, kill),
        ct:fail({ping_pong_stuck, Pid})
    end.
