%% Operations on a lease against real targets: send, request, call, ping; who the target sees as the
%% sender; many concurrent callers on two client nodes.
-module(distribute_pool_ops_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([target_without_our_code/1]).
-export([sender_is_the_pool_connection/1]).
-export([send_to_name_and_pid_in_order/1]).
-export([send_big_message/1]).
-export([request_replies_and_errors/1]).
-export([call_and_badrpc/1]).
-export([ping_pong/1]).
-export([bad_destinations_are_badarg/1]).
-export([lease_handle_dies_with_the_lease/1]).
-export([concurrent_requests_from_two_nodes/1]).
-export([big_messages_through_pipes/1]).
-export([idle_spare_pipes_are_closed/1]).
-export([answered_requests_leave_no_deadlines/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stop_peer/1, do_pool_nodes/2, with_target/2,
                          with_target_pool/3, with_nodes/2, do_start_fixture/2, do_start_sink/2]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [target_without_our_code,
     sender_is_the_pool_connection,
     send_to_name_and_pid_in_order,
     send_big_message,
     big_messages_through_pipes,
     idle_spare_pipes_are_closed,
     answered_requests_leave_no_deadlines,
     request_replies_and_errors,
     call_and_badrpc,
     ping_pong,
     bad_destinations_are_badarg,
     lease_handle_dies_with_the_lease,
     concurrent_requests_from_two_nodes].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec target_without_our_code(list()) -> ok.
target_without_our_code(_Config) ->
    doc("Against a target that has none of our code (not even a fixture): ping, call, a request to a "
        "stdlib gen_server, and send to a registered name and to a pid all work."),
    with_target("dpool_nocode", fun(T) ->
        non_existing = erpc:call(T, code, which, [distribute_pool]),
        non_existing = erpc:call(T, code, which, [dpool_fixture_server]),
        false = erpc:call(T, code, is_loaded, [dpool_ct_helper]),
        %% A process that only sleeps keeps what it is sent in its queue.
        Sink = do_start_sink(T, dpool_sink),
        {ok, Pool} = distribute_pool:new(T, 2),
        {ok, Results} =
            distribute_pool:with_connection(
              Pool,
              fun(C) ->
                      [distribute_pool:ping(C),
                       distribute_pool:call(C, erlang, node, []),
                       distribute_pool:call(C, lists, reverse, [[1, 2, 3]]),
                       distribute_pool:request(C, application_controller, which_applications),
                       distribute_pool:send(C, dpool_sink, {by_name, 1}),
                       distribute_pool:send(C, Sink, {by_pid, 2}),
                       distribute_pool:send(C, {dpool_sink, T}, {by_name_at_node, 3})]
              end),
        [pong, {ok, T}, {ok, [3, 2, 1]}, {ok, Apps}, ok, ok, ok] = Results,
        {kernel, _, _} = lists:keyfind(kernel, 1, Apps),
        do_wait_until(fun() ->
                              {messages, Ms} = erpc:call(T, erlang, process_info, [Sink, messages]),
                              Ms =:= [{by_name, 1}, {by_pid, 2}, {by_name_at_node, 3}]
                      end, 10000),
        non_existing = erpc:call(T, code, which, [distribute_pool]),
        ok = distribute_pool:destroy(Pool)
    end).

-spec sender_is_the_pool_connection(list()) -> ok.
sender_is_the_pool_connection(_Config) ->
    doc("On the target, a request comes from the leased connection's node (one of the pool's hidden nodes), "
        "not from the caller's node."),
    with_target("dpool_whoami", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        {ok, Pool} = distribute_pool:new(T, 3),
        do_wait_until(fun() -> length(do_pool_nodes(T, Pool)) =:= 3 end, 15000),
        PoolNodes = do_pool_nodes(T, Pool),
        [begin
             {ok, {{ok, Sender}, #{node := ConnNode}}} =
                 distribute_pool:with_connection(
                   Pool, fun(C) -> {distribute_pool:request(C, dpool_fx, whoami),
                                    distribute_pool:connection_info(C)} end),
             true = Sender =/= node(),
             ConnNode = Sender,
             true = lists:member(Sender, PoolNodes)
         end || _ <- lists:seq(1, 6)],
        ok = distribute_pool:destroy(Pool)
    end).

-spec send_to_name_and_pid_in_order(list()) -> ok.
send_to_name_and_pid_in_order(_Config) ->
    doc("Messages sent on one lease, by name and by pid, arrive once each and in the order sent."),
    with_target("dpool_order", fun(T) ->
        FxPid = do_start_fixture(T, dpool_fx),
        {ok, Pool} = distribute_pool:new(T, 2),
        N = 300,
        {ok, ok} = distribute_pool:with_connection(
                     Pool,
                     fun(C) ->
                             lists:foreach(fun(I) when I rem 2 =:= 0 -> ok = distribute_pool:send(C, dpool_fx, {seq, I});
                                              (I) -> ok = distribute_pool:send(C, FxPid, {seq, I})
                                           end, lists:seq(1, N))
                     end),
        [receive {fixture, dpool_fx, {seq, I}} -> ok after 10000 -> ct:fail({missing_or_out_of_order, I}) end
         || I <- lists:seq(1, N)],
        receive {fixture, dpool_fx, Extra} -> ct:fail({extra, Extra}) after 200 -> ok end,
        ok = distribute_pool:destroy(Pool)
    end).

-spec send_big_message(list()) -> ok.
send_big_message(_Config) ->
    doc("A 4 MiB message goes through send, and a 1 MiB term through request, intact."),
    with_target("dpool_big", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        {ok, Pool} = distribute_pool:new(T, 1),
        Big = rand:bytes(4 * 1024 * 1024),
        Term = {lists:seq(1, 1000), rand:bytes(1024 * 1024), #{a => [self(), make_ref()]}},
        {ok, {ok, {ok, Term}}} = distribute_pool:with_connection(
                                   Pool, fun(C) ->
                                                 {distribute_pool:send(C, dpool_fx, {big, Big}),
                                                  distribute_pool:request(C, dpool_fx, {echo, Term}, 20000)}
                                         end),
        receive {fixture, dpool_fx, {big, Got}} -> Big = Got after 20000 -> ct:fail(no_big_message) end,
        ok = distribute_pool:destroy(Pool)
    end).

-spec big_messages_through_pipes(list()) -> ok.
big_messages_through_pipes(_Config) ->
    doc("A message of 1 MiB or more sent on a lease whose last element is a binary (a binary, {tag, Bin}, "
        "{a, {b, Bin}}) goes from the caller's connection to the target's through pipes (info: splice), at sizes "
        "around the C-node's bounds (1 MiB, a read of 256 KiB, a pipe of 1 MiB, the 4 KiB prefix); other shapes "
        "(the binary before the end, in a list) and a one-shot send are read into memory (splice fallbacks). "
        "All of them arrive intact and in order with small messages between them."),
    with_target("dpool_splice", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        CNode = dpool_ct_helper:do_cnode(),
        #{splice := Before, limits := #{max_splice_pipes := MaxPipes}} = dpool_ct_helper:do_cnode_info(CNode),
        true = MaxPipes > 0,
        {ok, Pool} = distribute_pool:new(T, 2),
        Bin = fun(N) -> rand:bytes(N) end,
        MiB = 1024 * 1024,
        Spliced = [Bin(MiB + 1), {tag, Bin(MiB + 256 * 1024 + 3)}, {a, {b, Bin(MiB + 4096)}},
                   Bin(8 * MiB + 17), {tag, Bin(3 * MiB)}],
        Whole = [{Bin(2 * MiB), after_it}, [Bin(2 * MiB)]],
        Small = [{small, I} || I <- lists:seq(1, length(Spliced) + length(Whole))],
        Sent = interleave(Small, Spliced ++ Whole),
        {ok, Results} = distribute_pool:with_connection(
                          Pool, fun(C) -> [distribute_pool:send(C, dpool_fx, M) || M <- Sent] end, #{}),
        true = lists:all(fun(R) -> R =:= ok end, Results),
        OneShot = {one_shot, Bin(2 * MiB)},
        ok = distribute_pool:send(Pool, dpool_fx, OneShot),
        [receive {fixture, dpool_fx, Got} -> Expected = Got after 30000 -> ct:fail({missing, I}) end
         || {I, Expected} <- lists:enumerate(Sent ++ [OneShot])],
        #{splice := After} = dpool_ct_helper:do_cnode_info(CNode),
        Counted = fun(Key) -> maps:get(Key, After) - maps:get(Key, Before) end,
        ct:log("splice before ~p~nafter ~p", [Before, After]),
        %% Every packet of 1 MiB or more had its tail in pipes; those not sent from there were read back.
        Big = length(Spliced) + length(Whole) + 1,
        Big = Counted(packets),
        3 = Counted(fallbacks),
        true = Counted(bytes) >= lists:sum([erlang:external_size(M) || M <- Spliced]) - 4096 * length(Spliced),
        ok = distribute_pool:destroy(Pool)
    end).

-spec idle_spare_pipes_are_closed(list()) -> ok.
idle_spare_pipes_are_closed(_Config) ->
    doc("The pipes kept empty after big messages are closed once no packet took them for an interval (info: "
        "splice pipes_open back to 0, idle_closed counting them, within 10 s and generous bounds here); the "
        "next big message opens pipes again and goes through them intact."),
    with_target("dpool_idle_pipes", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        CNode = dpool_ct_helper:do_cnode(),
        Splice = fun() -> #{splice := S} = dpool_ct_helper:do_cnode_info(CNode), S end,
        {ok, Pool} = distribute_pool:new(T, 2),
        Send = fun(Tag) ->
                       Msg = {Tag, rand:bytes(3 * 1024 * 1024)},
                       {ok, ok} = distribute_pool:with_connection(
                                    Pool, fun(C) -> distribute_pool:send(C, dpool_fx, Msg) end),
                       receive {fixture, dpool_fx, Got} -> Msg = Got after 30000 -> ct:fail({missing, Tag}) end
               end,
        Before = Splice(),
        Send(first),
        AfterFirst = Splice(),
        ct:log("splice before ~p~nafter the first message ~p", [Before, AfterFirst]),
        true = maps:get(packets, AfterFirst) > maps:get(packets, Before),
        true = maps:get(pipes_open, AfterFirst) > 0, % kept for the next packets
        ok = do_wait_until(fun() -> maps:get(pipes_open, Splice()) =:= 0 end, 60000),
        Idle = Splice(),
        ct:log("splice once idle ~p", [Idle]),
        true = maps:get(idle_closed, Idle) - maps:get(idle_closed, AfterFirst) >= maps:get(pipes_open, AfterFirst),
        Send(second),
        AfterSecond = Splice(),
        true = maps:get(packets, AfterSecond) > maps:get(packets, Idle),
        0 = maps:get(fallbacks, AfterSecond) - maps:get(fallbacks, Idle),
        true = maps:get(pipes_open, AfterSecond) > 0,
        ok = distribute_pool:destroy(Pool)
    end).

-spec answered_requests_leave_no_deadlines(list()) -> ok.
answered_requests_leave_no_deadlines(_Config) ->
    doc("20,000 one-shot calls (8,000 in the sanitizer stage) with a 60 s timeout leave the C-node's deadline "
        "queue within one compaction's worth (2 x 1024, info: queued_deadlines) at every sample, not one deadline "
        "per call until it is due; "
        "meanwhile a request that is never answered still times out at its bound, a waiter of an exhausted "
        "pool still gets pool_exhausted at its own, and a lease whose holder is killed comes back."),
    with_target("dpool_deadlines", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        CNode = dpool_ct_helper:do_cnode(),
        Queued = fun() -> #{queued_deadlines := Q} = dpool_ct_helper:do_cnode_info(CNode), Q end,
        {ok, Pool} = distribute_pool:new(T, 4),
        {ok, Exhausted} = distribute_pool:new(T, 1),
        Self = self(),
        Held = spawn_link(fun() ->
                                  {ok, ok} = distribute_pool:with_connection(
                                               Exhausted, fun(C) ->
                                                                  %% The pipelined lease is granted once the
                                                                  %% fun's first operation is answered.
                                                                  pong = distribute_pool:ping(C),
                                                                  Self ! held,
                                                                  receive release -> ok end
                                                          end)
                          end),
        receive held -> ok after 10000 -> ct:fail(not_held) end,
        Timed = fun(Fun) -> T0 = erlang:monotonic_time(millisecond), R = Fun(),
                            {R, erlang:monotonic_time(millisecond) - T0} end,
        Never = spawn_link(fun() ->
                                   Self ! {never, Timed(fun() -> distribute_pool:request(Pool, dpool_fx, never, 4000) end)}
                           end),
        Waiter = spawn_link(fun() ->
                                    Self ! {waiter, Timed(fun() -> distribute_pool:with_connection(
                                                                     Exhausted, fun(_) -> unexpected end,
                                                                     #{acquire_timeout_ms => 4000})
                                                          end)}
                            end),
        %% Either count is several compactions' worth: one deadline per call would break the bound.
        PerCaller = dpool_ct_helper:do_scaled(5000, 2000),
        Callers = [spawn_link(fun() ->
                                      [{ok, T} = distribute_pool:call(Pool, erlang, node, [], 60000)
                                       || _ <- lists:seq(1, PerCaller)],
                                      Self ! {calls_done, self()}
                              end) || _ <- lists:seq(1, 4)],
        %% A lease taken while the calls run, by a process killed after them: the C-node watches a holder once
        %% its lease is 5 ms old (a deadline of its own), and takes the lease back when it exits.
        Holder = spawn(fun() ->
                               distribute_pool:with_connection(
                                 Pool, fun(C) ->
                                               pong = distribute_pool:ping(C),
                                               Self ! holding,
                                               receive never -> ok end
                                       end, #{acquire_timeout_ms => 30000})
                       end),
        receive holding -> ok after 30000 -> ct:fail(holder_got_no_lease) end,
        Samples = sample_until_done(Queued, Callers, []),
        ct:log("queued deadlines while the calls ran: ~w", [Samples]),
        true = length(Samples) > 0,
        [] = [Q || Q <- Samples, Q > 2 * 1024],
        {{error, timeout}, NeverMs} = receive {never, N} -> N after 30000 -> ct:fail(never_timed_out) end,
        {{error, pool_exhausted}, WaitMs} = receive {waiter, W} -> W after 30000 -> ct:fail(waiter_stayed) end,
        ct:log("the unanswered request timed out after ~b ms, the waiter after ~b ms", [NeverMs, WaitMs]),
        %% The C-node's own answers, not the client's fallbacks (which come 5 s and more after the bound): its
        %% deadlines survived the compactions.
        true = NeverMs >= 4000 andalso NeverMs < 8000,
        true = WaitMs >= 4000 andalso WaitMs < 8000,
        {ok, #{failed_operations := 1}} = distribute_pool:stats(Pool),
        {ok, #{acquire_timeouts := 1}} = distribute_pool:stats(Exhausted),
        exit(Holder, kill),
        ok = do_wait_until(fun() -> {ok, #{in_use_connections := InUse}} = distribute_pool:stats(Pool), InUse =:= 0 end,
                           10000),
        [unlink(P) || P <- [Never, Waiter]],
        Held ! release,
        ok = distribute_pool:destroy(Pool),
        ok = distribute_pool:destroy(Exhausted)
    end).

%% Samples Fun every 50 ms until every caller has said it is done (bounded: 120 s).
sample_until_done(Fun, Callers, Acc) ->
    sample_until_done(Fun, Callers, Acc, erlang:monotonic_time(millisecond) + 120000).

sample_until_done(_Fun, [], Acc, _Deadline) ->
    lists:reverse(Acc);
sample_until_done(Fun, Callers, Acc, Deadline) ->
    case erlang:monotonic_time(millisecond) > Deadline of
        true -> ct:fail({callers_not_done, Callers});
        false -> ok
    end,
    receive
        {calls_done, P} -> sample_until_done(Fun, lists:delete(P, Callers), [Fun() | Acc], Deadline)
    after 50 ->
        sample_until_done(Fun, Callers, [Fun() | Acc], Deadline)
    end.

-spec request_replies_and_errors(list()) -> ok.
request_replies_and_errors(_Config) ->
    doc("request: a reply is {ok, Reply}; a missing name is {error, {down, noproc}}; a server that dies "
        "is {error, {down, Reason}}; no reply within the timeout is {error, timeout}, not earlier."),
    with_target("dpool_request", fun(T) ->
        _ = do_start_fixture(T, dpool_fx),
        {ok, _} = erpc:call(T, dpool_fixture_server, start, [dpool_crash, self()]),
        {ok, Pool} = distribute_pool:new(T, 2),
        {ok, Results} =
            distribute_pool:with_connection(
              Pool,
              fun(C) ->
                      R1 = distribute_pool:request(C, dpool_fx, {echo, hello}),
                      R2 = distribute_pool:request(C, {dpool_fx, T}, {echo, there}),
                      R3 = distribute_pool:request(C, dpool_no_such_name, {echo, x}),
                      R4 = distribute_pool:request(C, dpool_crash, crash),
                      T0 = erlang:monotonic_time(millisecond),
                      R5 = distribute_pool:request(C, dpool_fx, never, 300),
                      E5 = erlang:monotonic_time(millisecond) - T0,
                      R6 = distribute_pool:request(C, dpool_fx, {echo, still_works}, infinity),
                      [R1, R2, R3, R4, {R5, E5}, R6]
              end),
        [{ok, hello}, {ok, there}, {error, {down, noproc}}, {error, {down, Crash}}, {{error, timeout}, E},
         {ok, still_works}] = Results,
        {fixture_crash, _} = Crash,
        true = E >= 300,
        ok = distribute_pool:destroy(Pool)
    end).

-spec call_and_badrpc(list()) -> ok.
call_and_badrpc(_Config) ->
    doc("call runs M:F(A) on the target: a value is {ok, V}; a raise or an undefined function is "
        "{error, {badrpc, _}}; a slow call is {error, timeout}."),
    with_target_pool("dpool_call", 1, fun(T, Pool) ->
        {ok, Results} =
            distribute_pool:with_connection(
              Pool,
              fun(C) ->
                      [distribute_pool:call(C, erlang, node, []),
                       distribute_pool:call(C, erlang, error, [boom]),
                       distribute_pool:call(C, dpool_no_such_module, f, []),
                       distribute_pool:call(C, timer, sleep, [3000], 200),
                       distribute_pool:call(C, erlang, '+', [1, 2], 1000)]
              end),
        [{ok, T}, {error, {badrpc, {'EXIT', {boom, _}}}}, {error, {badrpc, {'EXIT', {undef, _}}}},
         {error, timeout}, {ok, 3}] = Results
    end).

-spec ping_pong(list()) -> ok.
ping_pong(_Config) ->
    doc("ping over a lease is pong while the target is up, pang once it is gone."),
    with_target("dpool_ping", fun(T, Peer) ->
        {ok, Pool} = distribute_pool:new(T, 1),
        Self = self(),
        Holder = spawn_link(fun() ->
                                    distribute_pool:with_connection(
                                      Pool, fun(C) ->
                                                    Self ! {ping1, distribute_pool:ping(C)},
                                                    receive next -> ok end,
                                                    Self ! {ping2, distribute_pool:ping(C)}
                                            end)
                            end),
        receive {ping1, P1} -> pong = P1 after 10000 -> ct:fail(no_ping) end,
        do_stop_peer(Peer),
        Holder ! next,
        receive {ping2, P2} -> pang = P2 after 20000 -> ct:fail(no_second_ping) end,
        ok = distribute_pool:destroy(Pool)
    end).

-spec bad_destinations_are_badarg(list()) -> ok.
bad_destinations_are_badarg(_Config) ->
    doc("A destination that is not a name, a pid on the target or {Name, Target} is badarg, for send and "
        "request alike; the lease still works afterwards."),
    with_target_pool("dpool_baddest", 1, fun(T, Pool) ->
        Bad = [self(), {dpool_sink, 'dpool_other@127.0.0.1'}, {dpool_sink, node()}, 42, "name", <<"name">>,
               {a, b, c}, {"a", T}, [], make_ref(), #{}],
        {ok, ok} = distribute_pool:with_connection(
                     Pool, fun(C) ->
                                   [{error, badarg} = distribute_pool:send(C, D, x) || D <- Bad],
                                   [{error, badarg} = distribute_pool:request(C, D, x, 1000) || D <- Bad],
                                   pong = distribute_pool:ping(C),
                                   ok
                           end)
    end).

-spec lease_handle_dies_with_the_lease(list()) -> ok.
lease_handle_dies_with_the_lease(_Config) ->
    doc("A connection handle kept after with_connection returned is invalid_connection; so is one whose "
        "lease id is forged."),
    with_target("dpool_stale", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, 1),
        {ok, Conn} = distribute_pool:with_connection(Pool, fun(C) -> C end),
        %% The checkin is a cast: wait until the lease has ended.
        do_wait_until(fun() -> maps:get(in_use_connections, dpool_ct_helper:do_stats(Pool)) =:= 0 end, 5000),
        {error, invalid_connection} = distribute_pool:send(Conn, x, y),
        {error, invalid_connection} = distribute_pool:request(Conn, x, y),
        {error, invalid_connection} = distribute_pool:call(Conn, erlang, node, []),
        {error, invalid_connection} = distribute_pool:ping(Conn),
        %% Same connection leased again: the old lease id still does not work.
        {ok, {{error, invalid_connection}, ok}} =
            distribute_pool:with_connection(Pool, fun(C) -> {distribute_pool:send(Conn, x, y),
                                                             distribute_pool:send(C, x, y)} end),
        ok = distribute_pool:destroy(Pool),
        {error, invalid_pool} = distribute_pool:send(Conn, x, y)
    end).

-spec concurrent_requests_from_two_nodes(list()) -> ok.
concurrent_requests_from_two_nodes(_Config) ->
    doc("50 processes here and 50 on a second client node share one pool of 4; every request gets its own "
        "reply."),
    with_nodes([{target, "dpool_conc_target"}, {client, "dpool_conc_client"}], fun([{_, T}, {_, Client}]) ->
        _ = do_start_fixture(T, dpool_fx),
        {ok, Pool} = distribute_pool:new(T, 4),
        Rounds = 20,
        Self = self(),
        Tag = make_ref(),
        [spawn_link(dpool_ct_helper, do_echo_worker, [Pool, dpool_fx, {local, I}, Rounds, Self, Tag])
         || I <- lists:seq(1, 50)],
        [_ = erpc:call(Client, erlang, spawn,
                       [dpool_ct_helper, do_echo_worker, [Pool, dpool_fx, {remote, I}, Rounds, Self, Tag]])
         || I <- lists:seq(1, 50)],
        Reports = [receive {Tag, Id, Node, Bad} -> {Id, Node, Bad} after 120000 -> ct:fail(worker_missing) end
                   || _ <- lists:seq(1, 100)],
        [] = [R || {_, _, Bad} = R <- Reports, Bad =/= []],
        50 = length([x || {{local, _}, N, _} <- Reports, N =:= node()]),
        50 = length([x || {{remote, _}, N, _} <- Reports, N =:= Client]),
        dpool_ct_helper:do_wait_idle(Pool),
        #{successful_operations := Ok} = dpool_ct_helper:do_stats(Pool),
        true = Ok >= 100 * Rounds,
        ok = distribute_pool:destroy(Pool)
    end).

%% A, B, A, B, ...: the small messages between the big ones.
interleave([A | As], [B | Bs]) -> [A, B | interleave(As, Bs)];
interleave(As, []) -> As;
interleave([], Bs) -> Bs.
