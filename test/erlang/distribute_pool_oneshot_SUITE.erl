%% One-shot operations (call/send/request given a pool: the C-node takes and returns the lease) and
%% cast_batch (one request carrying many messages, spread over the pool's connections), against real
%% targets; with rough measurements against erpc and a direct `!` loop.
-module(distribute_pool_oneshot_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([one_shot_call_request_send/1]).
-export([one_shot_errors/1]).
-export([one_shot_waits_in_line/1]).
-export([killed_waiter_leaves_no_lease/1]).
-export([killed_caller_mid_request_returns_the_lease/1]).
-export([cast_batch_exactly_once_over_many_connections/1]).
-export([cast_batch_key_keeps_order/1]).
-export([cast_batch_badarg/1]).
-export([call_results_as_rex_gives_them/1]).
-export([request_rtt_average_is_the_mean/1]).
-export([big_payloads_forwarded_intact/1]).
-export([measure/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stats/1, do_load_fixture/2, do_hold_leases/3,
                          do_release/1, do_wait_idle/1, do_pool_node_names/1, with_target/2,
                          with_target_pool/3, do_start_fixture/2, do_start_sink/2]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [one_shot_call_request_send,
     one_shot_errors,
     one_shot_waits_in_line,
     killed_waiter_leaves_no_lease,
     killed_caller_mid_request_returns_the_lease,
     cast_batch_exactly_once_over_many_connections,
     cast_batch_key_keeps_order,
     cast_batch_badarg,
     call_results_as_rex_gives_them,
     request_rtt_average_is_the_mean,
     big_payloads_forwarded_intact,
     measure].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec one_shot_call_request_send(list()) -> ok.
one_shot_call_request_send(_Config) ->
    doc("Given a pool, call, request and send each take a lease inside the C-node (acquire_count grows by "
        "one per operation), run over a pooled connection (the target sees a pool node as the sender), give "
        "the results and errors of the lease forms, and leave no lease out."),
    with_target("dpool_os_ops", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        {ok, Pool} = distribute_pool:new(T, 2),
        #{acquire_count := Before} = do_stats(Pool),
        {ok, T} = distribute_pool:call(Pool, erlang, node, []),
        {ok, [3, 2, 1]} = distribute_pool:call(Pool, lists, reverse, [[1, 2, 3]], 5000),
        {error, {badrpc, {'EXIT', {oops, _}}}} = distribute_pool:call(Pool, erlang, error, [oops]),
        {ok, Sender} = distribute_pool:request(Pool, dpool_fx, whoami),
        true = lists:member(Sender, do_pool_node_names(Pool)),
        {ok, {echo_me, 1}} = distribute_pool:request(Pool, dpool_fx, {echo, {echo_me, 1}}, 5000),
        {error, {down, noproc}} = distribute_pool:request(Pool, no_such_name, hello),
        {error, timeout} = distribute_pool:request(Pool, dpool_fx, never, 200),
        {error, timeout} = distribute_pool:call(Pool, timer, sleep, [5000], 200),
        ok = distribute_pool:send(Pool, dpool_fx, {one_shot, 1}),
        ok = distribute_pool:send(Pool, {dpool_fx, T}, {one_shot, 2}),
        receive {fixture, dpool_fx, {one_shot, 1}} -> ok after 10000 -> ct:fail(send_by_name_lost) end,
        receive {fixture, dpool_fx, {one_shot, 2}} -> ok after 10000 -> ct:fail(send_by_name_at_node_lost) end,
        do_wait_idle(Pool),
        #{acquire_count := After, in_use_connections := 0, available_connections := 2} = do_stats(Pool),
        10 = After - Before,
        ok = distribute_pool:destroy(Pool)
    end).

-spec one_shot_errors(list()) -> ok.
one_shot_errors(_Config) ->
    doc("One-shot errors: pool_exhausted at once when every connection is leased and the acquire timeout is "
        "0, badarg for bad destinations and arguments, invalid_pool for a destroyed pool, invalid_connection "
        "for a handle that is neither a pool nor a lease."),
    with_target("dpool_os_err", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 2, acquire_timeout_ms => 0}),
        Holders = do_hold_leases(Pool, 2, exhaust),
        Start = erlang:monotonic_time(millisecond),
        {error, pool_exhausted} = distribute_pool:call(Pool, erlang, node, []),
        {error, pool_exhausted} = distribute_pool:send(Pool, some_name, hello),
        {error, pool_exhausted} = distribute_pool:request(Pool, net_kernel, {is_auth, node()}),
        true = erlang:monotonic_time(millisecond) - Start < 2000,
        #{in_use_connections := 2, waiting := 0} = do_stats(Pool),
        do_release(Holders),
        do_wait_idle(Pool),
        %% A pid on another node than the target, and shapes that are no destination.
        {error, badarg} = distribute_pool:send(Pool, self(), hello),
        {error, badarg} = distribute_pool:send(Pool, "name", hello),
        {error, badarg} = distribute_pool:send(Pool, {name, 'other@127.0.0.1'}, hello),
        {error, badarg} = distribute_pool:request(Pool, {1, 2}, hello),
        {error, badarg} = distribute_pool:request(Pool, rex, hello, -1),
        {error, badarg} = distribute_pool:call(Pool, "erlang", node, []),
        {error, badarg} = distribute_pool:call(Pool, erlang, node, [a | b]),
        %% Nothing leaked by the refused operations.
        #{in_use_connections := 0, available_connections := 2} = do_stats(Pool),
        ok = distribute_pool:destroy(Pool),
        {error, invalid_pool} = distribute_pool:call(Pool, erlang, node, []),
        {error, invalid_pool} = distribute_pool:send(Pool, some_name, hello),
        {error, invalid_pool} = distribute_pool:request(Pool, rex, hello),
        {error, invalid_connection} = distribute_pool:call({not_a_handle}, erlang, node, []),
        {error, invalid_connection} = distribute_pool:send("not a handle", some_name, hello),
        %% An atom is a pool's name: this one is unknown.
        {error, invalid_pool} = distribute_pool:call(dpool_no_such_name, erlang, node, []),
        {error, invalid_pool} = distribute_pool:send(dpool_no_such_name, some_name, hello)
    end),
    ok.

-spec one_shot_waits_in_line(list()) -> ok.
one_shot_waits_in_line(_Config) ->
    doc("A one-shot call on a pool whose connections are all leased waits like a checkout, first come first "
        "served: a checkout queued before it gets the returned lease first, then the call runs."),
    with_target_pool("dpool_os_line", #{max_connections => 1, acquire_timeout_ms => 30000}, fun(T, Pool) ->
        [Holder] = do_hold_leases(Pool, 1, first),
        Self = self(),
        %% A checkout, queued first.
        Second = spawn_link(fun() -> dpool_ct_helper:do_hold_lease(Pool, Self, second) end),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 1 end, 10000),
        Caller = spawn_link(fun() -> Self ! {called, distribute_pool:call(Pool, erlang, node, [])} end),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 2 end, 10000),
        do_release([Holder]),
        receive {held, second, Second, _} -> ok after 10000 -> ct:fail(queued_checkout_not_served) end,
        receive {called, Early} -> ct:fail({one_shot_overtook_the_line, Early}) after 0 -> ok end,
        #{waiting := 1} = do_stats(Pool),
        do_release([{Second, second}]),
        receive {called, {ok, T}} -> ok after 10000 -> ct:fail(one_shot_not_served) end,
        unlink(Caller),
        do_wait_idle(Pool)
    end).

-spec killed_waiter_leaves_no_lease(list()) -> ok.
killed_waiter_leaves_no_lease(_Config) ->
    doc("A process killed while its one-shot call waits for a lease leaves the line at once; the lease "
        "returned later goes back to the pool, not to the dead caller."),
    with_target_pool("dpool_os_killw", #{max_connections => 1, acquire_timeout_ms => 60000}, fun(T, Pool) ->
        [Holder] = do_hold_leases(Pool, 1, held),
        Waiter = spawn(fun() -> distribute_pool:call(Pool, erlang, node, []) end),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 1 end, 10000),
        exit(Waiter, kill),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 0 end, 10000),
        do_release([Holder]),
        do_wait_idle(Pool),
        #{available_connections := 1, in_use_connections := 0} = do_stats(Pool),
        {ok, T} = distribute_pool:call(Pool, erlang, node, [])
    end).

-spec killed_caller_mid_request_returns_the_lease(list()) -> ok.
killed_caller_mid_request_returns_the_lease(_Config) ->
    doc("A process killed while its one-shot request runs (no timeout: infinity) gives its lease back at "
        "once; the pool's only connection serves the next call."),
    with_target("dpool_os_killr", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, acquire_timeout_ms => 60000}),
        Caller = spawn(fun() -> distribute_pool:request(Pool, dpool_fx, never, infinity) end),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 1 end, 10000),
        exit(Caller, kill),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 0 end, 10000),
        #{available_connections := 1} = do_stats(Pool),
        {ok, T} = distribute_pool:call(Pool, erlang, node, [], 5000),
        ok = distribute_pool:destroy(Pool)
    end).

-spec cast_batch_exactly_once_over_many_connections(list()) -> ok.
cast_batch_exactly_once_over_many_connections(_Config) ->
    doc("cast_batch delivers every message exactly once (by name, by pid, a list of bytes, an empty list) "
        "and the target receives the batch over more than one of the pool's connections."),
    with_target("dpool_cb_once", fun(T) ->
        Sink = do_start_sink(T, dpool_cb_sink),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 4, health_check_interval_ms => 0}),
        Names = do_pool_node_names(Pool),
        4 = length(Names),
        BytesBefore = do_received_bytes(T, Names),
        Payload = binary:copy(<<"x">>, 100),
        N = 4000,
        Messages = [{msg, I, Payload} || I <- lists:seq(1, N)],
        {ok, N} = distribute_pool:cast_batch(Pool, dpool_cb_sink, Messages),
        do_wait_until(fun() -> do_queue_len(T, Sink) >= N end, 20000),
        BytesAfter = do_received_bytes(T, Names),
        Grown = [Node || {Node, B} <- maps:to_list(BytesAfter), B - maps:get(Node, BytesBefore, 0) > 50000],
        ct:pal("bytes received by the target per pooled connection: ~p",
               [[{Node, B - maps:get(Node, BytesBefore, 0)} || {Node, B} <- maps:to_list(BytesAfter)]]),
        true = length(Grown) >= 2,
        Received = do_take_messages(T, Sink),
        N = length(Received),
        true = lists:sort(Received) =:= Messages,
        %% By pid, a list that travels as a string of bytes, and nothing at all.
        Sink2 = do_start_sink(T, dpool_cb_sink2),
        {ok, 3} = distribute_pool:cast_batch(Pool, Sink2, [1, 2, 255]),
        {ok, 0} = distribute_pool:cast_batch(Pool, Sink2, []),
        do_wait_until(fun() -> do_queue_len(T, Sink2) >= 3 end, 10000),
        [1, 2, 255] = lists:sort(do_take_messages(T, Sink2)),
        do_wait_idle(Pool),
        #{in_use_connections := 0, available_connections := 4} = do_stats(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec cast_batch_key_keeps_order(list()) -> ok.
cast_batch_key_keeps_order(_Config) ->
    doc("With a key function, 10 keys x 1000 messages interleaved in one batch arrive with each key's "
        "sequence complete and strictly increasing, while the batch uses more than one connection; a second "
        "batch for the same keys follows the first in order."),
    with_target("dpool_cb_key", fun(T) ->
        Sink = do_start_sink(T, dpool_cb_keys),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 4, health_check_interval_ms => 0}),
        Names = do_pool_node_names(Pool),
        BytesBefore = do_received_bytes(T, Names),
        Keys = lists:seq(1, 10),
        Batch = fun(From, To) -> [{key, K, Seq} || Seq <- lists:seq(From, To), K <- Keys] end,
        KeyOf = fun({key, K, _}) -> K end,
        {ok, 10000} = distribute_pool:cast_batch(Pool, dpool_cb_keys, Batch(1, 1000), #{key => KeyOf}),
        {ok, 5000} = distribute_pool:cast_batch(Pool, dpool_cb_keys, Batch(1001, 1500), #{key => KeyOf}),
        do_wait_until(fun() -> do_queue_len(T, Sink) >= 15000 end, 30000),
        Received = do_take_messages(T, Sink),
        15000 = length(Received),
        Expected = lists:seq(1, 1500),
        [Expected = [Seq || {key, K1, Seq} <- Received, K1 =:= K] || K <- Keys],
        BytesAfter = do_received_bytes(T, Names),
        Used = [Node || {Node, B} <- maps:to_list(BytesAfter), B - maps:get(Node, BytesBefore, 0) > 1000],
        ct:pal("connections that carried keyed messages: ~p of ~p", [length(Used), length(Names)]),
        true = length(Used) >= 2,
        ok = distribute_pool:destroy(Pool)
    end).

-spec cast_batch_badarg(list()) -> ok.
cast_batch_badarg(_Config) ->
    doc("cast_batch refuses an improper list, a destination that is not one, a pid on another node and bad "
        "options with badarg, and a destroyed pool with invalid_pool; nothing is delivered."),
    with_target("dpool_cb_bad", fun(T) ->
        Sink = do_start_sink(T, dpool_cb_bad),
        {ok, Pool} = distribute_pool:new(T, 2),
        {error, badarg} = distribute_pool:cast_batch(Pool, dpool_cb_bad, [a, b | c]),
        {error, badarg} = distribute_pool:cast_batch(Pool, dpool_cb_bad, not_a_list),
        {error, badarg} = distribute_pool:cast_batch(Pool, "dpool_cb_bad", [a]),
        {error, badarg} = distribute_pool:cast_batch(Pool, {dpool_cb_bad, 'elsewhere@127.0.0.1'}, [a]),
        {error, badarg} = distribute_pool:cast_batch(Pool, self(), [a]),
        {error, badarg} = distribute_pool:cast_batch(Pool, dpool_cb_bad, [a], #{key => not_a_fun}),
        {error, badarg} = distribute_pool:cast_batch(Pool, dpool_cb_bad, [a], #{order => strict}),
        {error, badarg} = distribute_pool:cast_batch(Pool, dpool_cb_bad, [a], not_a_map),
        %% The C-node checks the same on its own, for callers that talk to it directly.
        Server = dpool_ct_helper:do_cnode(),
        PoolId = dpool_ct_helper:do_pool_id(Pool),
        {error, badarg} = gen_server:call(Server, {cast_batch, PoolId, dpool_cb_bad, [a | b]}),
        {error, badarg} = gen_server:call(Server, {cast_batch_keyed, PoolId, dpool_cb_bad, [a]}),
        {error, badarg} = gen_server:call(Server, {cast_batch_keyed, PoolId, dpool_cb_bad, [{-1, a}]}),
        {error, badarg} = gen_server:call(Server, {cast_batch, PoolId, self(), [a]}),
        {ok, 1} = distribute_pool:cast_batch(Pool, {dpool_cb_bad, T}, [only_this]),
        do_wait_until(fun() -> do_queue_len(T, Sink) >= 1 end, 10000),
        [only_this] = do_take_messages(T, Sink),
        ok = distribute_pool:destroy(Pool),
        {error, invalid_pool} = distribute_pool:cast_batch(Pool, dpool_cb_bad, [a]),
        {error, invalid_pool} = gen_server:call(Server, {cast_batch, PoolId, dpool_cb_bad, [a]})
    end),
    ok.

-spec call_results_as_rex_gives_them(list()) -> ok.
call_results_as_rex_gives_them(_Config) ->
    doc("call (on a pool and on a lease) spawns erpc:execute_call/4 on the target, with the target's user as "
        "group leader, and answers exactly what rex's {call, M, F, A, user} answers: values, throws, exits, "
        "errors with their stacks, undefined functions, bad arguments, output; rex itself is not used; the "
        "C-node times each call (request_rtt in stats)."),
    with_target_pool("dpool_os_call", 2, fun(T, Pool) ->
        Rex = fun(M, F, A) ->
                      case gen_server:call({rex, T}, {call, M, F, A, user}, 10000) of
                          {badrpc, R} -> {error, {badrpc, R}};
                          V -> {ok, V}
                      end
              end,
        User = erpc:call(T, erlang, whereis, [user]),
        true = is_pid(User),
        Cases = [{erlang, node, []}, {lists, reverse, [[1, 2, 3]]}, {erlang, length, ["abc"]},
                 {erlang, byte_size, [binary:copy(<<7>>, 100000)]}, {erlang, throw, [thrown]},
                 {erlang, throw, [{badrpc, thrown}]}, {erlang, exit, [bye]}, {erlang, exit, [kill]},
                 {erlang, error, [oops]}, {erlang, error, [oops, [a, b]]}, {dpool_no_such_module, f, [1]},
                 {erlang, no_such_function, []}, {erlang, atom_to_list, [42]}, {lists, seq, [1, a]},
                 {io, format, ["output of a pooled call~n"]}, {erlang, group_leader, []}],
        %% Connections learn the target's user when they come up; until then calls go to rex.
        do_wait_until(fun() -> {ok, User} =:= distribute_pool:call(Pool, erlang, group_leader, []) end, 10000),
        RexPid = erpc:call(T, erlang, whereis, [rex]),
        {reductions, RexBefore} = erpc:call(T, erlang, process_info, [RexPid, reductions]),
        Pooled = [distribute_pool:call(Pool, M, F, A) || {M, F, A} <- Cases],
        {reductions, RexAfter} = erpc:call(T, erlang, process_info, [RexPid, reductions]),
        {ok, Leased} = distribute_pool:with_connection(
                         Pool, fun(C) -> [distribute_pool:call(C, M, F, A) || {M, F, A} <- Cases] end),
        Expected = [Rex(M, F, A) || {M, F, A} <- Cases],
        [{ok, T}, {ok, [3, 2, 1]}, {ok, 3}, {ok, 100000}, {ok, thrown}, {error, {badrpc, thrown}},
         {error, {badrpc, {'EXIT', bye}}}, {error, {badrpc, {'EXIT', kill}}},
         {error, {badrpc, {'EXIT', {oops, [_ | _]}}}} | _] = Expected,
        {ok, User} = lists:last(Expected),
        [{Case, Rexs} = {Case, Got} || {Case, Rexs, Got} <- lists:zip3(Cases, Expected, Pooled)],
        [{Case, Rexs} = {Case, Got} || {Case, Rexs, Got} <- lists:zip3(Cases, Expected, Leased)],
        %% rex ran none of the pooled calls (a handful of reductions at most, for the sampling itself).
        true = RexAfter - RexBefore < 50,
        #{request_rtt_p50_us := P50, request_rtt_p99_us := P99} = do_stats(Pool),
        true = P50 > 0 andalso P99 >= P50
    end).

-spec request_rtt_average_is_the_mean(list()) -> ok.
request_rtt_average_is_the_mean(_Config) ->
    doc("stats' request_rtt_avg_us is the mean of the requests' round trips, where the p50 is the middle one: "
        "after three quick calls and one of 400 ms the mean is at least 400 ms / 4 and at most the calls' own "
        "mean as the caller timed them (+ 1 ms; the C-node's share of each is inside the caller's), the p50 far "
        "below."),
    with_target_pool("dpool_rtt_avg", 1, fun(_T, Pool) ->
        #{request_rtt_avg_us := 0, request_rtt_p50_us := 0} = do_stats(Pool),
        Calls = [{erlang, node, []}, {erlang, node, []}, {timer, sleep, [400]}, {erlang, node, []}],
        Micros = [begin
                      Start = erlang:monotonic_time(microsecond),
                      {ok, _} = distribute_pool:call(Pool, M, F, A),
                      erlang:monotonic_time(microsecond) - Start
                  end || {M, F, A} <- Calls],
        #{request_rtt_avg_us := Avg, request_rtt_p50_us := P50} = Stats = do_stats(Pool),
        ct:pal("request_rtt_avg_us ~b, p50 ~b; the caller's times (us) ~w", [Avg, P50, Micros]),
        true = Avg >= 400000 div length(Calls) orelse ct:fail({mean_below_its_long_call, Stats}),
        %% The two clocks (the C-node's steady_clock, the BEAM's monotonic time) may differ slightly: 1 ms slack.
        true = Avg =< lists:sum(Micros) div length(Calls) + 1000
            orelse ct:fail({mean_above_the_callers, Stats, Micros}),
        true = P50 < 400000 div length(Calls) orelse ct:fail({p50_not_the_middle, Stats})
    end).

-spec big_payloads_forwarded_intact(list()) -> ok.
big_payloads_forwarded_intact(_Config) ->
    doc("Payloads of 64 KiB and more are forwarded by the C-node without a copy, referring to the bytes of the "
        "packet they came in: 8 one-shot sends of distinct 200 KiB binaries wait for the pool's one lease "
        "while more packets (stats, small sends) arrive on the same caller links after them, then all arrive "
        "intact; so do the 100 KiB messages of a cast batch and a 1 MiB send on a lease."),
    with_target("dpool_big_fwd", fun(T) ->
        Sink = do_start_sink(T, dpool_big_sink),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, acquire_timeout_ms => 60000}),
        [Holder] = do_hold_leases(Pool, 1, held),
        Self = self(),
        Bigs = [{big, I, rand:bytes(200 * 1024)} || I <- lists:seq(1, 8)],
        Senders = [spawn_link(fun() -> Self ! {sent, I, distribute_pool:send(Pool, dpool_big_sink, Big)} end)
                   || {big, I, _} = Big <- Bigs],
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 8 end, 10000),
        %% More packets behind the waiting ones, from processes on the same lanes.
        Smalls = [{small, I} || I <- lists:seq(1, 8)],
        [spawn_link(fun() -> _ = do_stats(Pool), Self ! {sent, Small, distribute_pool:send(Pool, dpool_big_sink, Small)} end)
         || Small <- Smalls],
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 16 end, 10000),
        do_release([Holder]),
        [receive {sent, Tag, ok} -> ok after 20000 -> ct:fail({not_sent, Tag}) end
         || Tag <- lists:seq(1, 8) ++ Smalls],
        do_wait_until(fun() -> do_queue_len(T, Sink) >= 16 end, 20000),
        Received = do_take_messages(T, Sink),
        true = lists:sort(Bigs ++ Smalls) =:= lists:sort(Received),
        [unlink(P) || P <- Senders],
        %% A cast batch of big messages, each a view into the one request packet.
        Sink2 = do_start_sink(T, dpool_big_sink2),
        Batch = [{part, I, rand:bytes(100 * 1024)} || I <- lists:seq(1, 20)],
        {ok, 20} = distribute_pool:cast_batch(Pool, dpool_big_sink2, Batch),
        do_wait_until(fun() -> do_queue_len(T, Sink2) >= 20 end, 20000),
        true = lists:sort(Batch) =:= lists:sort(do_take_messages(T, Sink2)),
        %% A send on a lease, then a small one on the same lease right after it.
        Sink3 = do_start_sink(T, dpool_big_sink3),
        Huge = rand:bytes(1024 * 1024),
        {ok, ok} = distribute_pool:with_connection(Pool, fun(Conn) ->
                                                              ok = distribute_pool:send(Conn, dpool_big_sink3, Huge),
                                                              distribute_pool:send(Conn, dpool_big_sink3, after_huge)
                                                      end),
        do_wait_until(fun() -> do_queue_len(T, Sink3) >= 2 end, 20000),
        [Huge, after_huge] = do_take_messages(T, Sink3),
        do_wait_idle(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec measure(list()) -> ok.
measure(_Config) ->
    doc("Rough numbers (printed, not asserted): one-shot call latency against erpc:call and against "
        "with_connection + call; cast_batch messages per second against a `!` loop to the same sink."),
    with_target("dpool_measure", fun(T) ->
        do_load_fixture(T, dpool_count_sink),
        _ = erpc:call(T, dpool_count_sink, start, [dpool_count]),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 4, health_check_interval_ms => 0}),
        Calls = 2000,
        {ok, T} = distribute_pool:call(Pool, erlang, node, []),
        T = erpc:call(T, erlang, node, []),
        OneShotUs = do_time_us(fun() -> {ok, T} = distribute_pool:call(Pool, erlang, node, []) end, Calls),
        ErpcUs = do_time_us(fun() -> T = erpc:call(T, erlang, node, []) end, Calls),
        LeaseUs = do_time_us(fun() ->
                                     {ok, {ok, T}} = distribute_pool:with_connection(
                                                       Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
                             end, Calls),
        ct:pal("latency per call, ~b sequential calls: one-shot call ~.1f us, erpc:call ~.1f us, "
               "with_connection + call ~.1f us", [Calls, OneShotUs, ErpcUs, LeaseUs]),
        N = 200000,
        Messages = [{m, I} || I <- lists:seq(1, N)],
        BatchRate = do_rate(T, N, fun() -> {ok, N} = distribute_pool:cast_batch(Pool, dpool_count, Messages) end),
        Sink = {dpool_count, T},
        BangRate = do_rate(T, N, fun() -> lists:foreach(fun(M) -> Sink ! M end, Messages) end),
        ct:pal("~b messages to one sink: cast_batch ~b msg/s, `!` loop ~b msg/s", [N, BatchRate, BangRate]),
        ok = distribute_pool:destroy(Pool)
    end).

%% Helpers.

-spec do_queue_len(node(), pid()) -> non_neg_integer().
do_queue_len(T, Sink) ->
    {message_queue_len, Len} = erpc:call(T, erlang, process_info, [Sink, message_queue_len]),
    Len.

%% The sink's queue, oldest first (the sink never reads: a case that sends again uses a new sink).
-spec do_take_messages(node(), pid()) -> [term()].
do_take_messages(T, Sink) ->
    {messages, Messages} = erpc:call(T, erlang, process_info, [Sink, messages]),
    Messages.

%% Bytes the target has received on the connection of each pooled node named in Names.
-spec do_received_bytes(node(), [node()]) -> #{node() => non_neg_integer()}.
do_received_bytes(T, Names) ->
    Ctrl = erpc:call(T, erlang, system_info, [dist_ctrl]),
    maps:from_list([{Node, Bytes} || {Node, Port} <- Ctrl, is_port(Port),
                                     lists:member(Node, Names),
                                     {ok, [{recv_oct, Bytes}]} <- [erpc:call(T, inet, getstat, [Port, [recv_oct]])]]).

%% Microseconds per run of Fun, over Runs runs.
-spec do_time_us(fun(() -> term()), pos_integer()) -> float().
do_time_us(Fun, Runs) ->
    {Us, ok} = timer:tc(fun() -> lists:foreach(fun(_) -> Fun() end, lists:seq(1, Runs)) end),
    Us / Runs.

%% Messages per second for Send to deliver N more messages to the counting sink on T (until counted).
-spec do_rate(node(), pos_integer(), fun(() -> term())) -> non_neg_integer().
do_rate(T, N, Send) ->
    Base = erpc:call(T, dpool_count_sink, count, [dpool_count]),
    Start = erlang:monotonic_time(microsecond),
    _ = Send(),
    do_wait_until(fun() -> erpc:call(T, dpool_count_sink, count, [dpool_count]) >= Base + N end, 60000),
    Us = max(1, erlang:monotonic_time(microsecond) - Start),
    N * 1000000 div Us.
