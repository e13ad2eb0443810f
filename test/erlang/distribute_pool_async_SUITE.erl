%% send_async/3: pipelined sends on one lease, against real targets. Delivery exactly once and in each
%% sender's order, errors of leases that ended, and back-pressure with a frozen target (bounded C-node memory,
%% senders held back, nothing lost).
-module(distribute_pool_async_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([send_async_exactly_once_in_order/1]).
-export([send_async_errors/1]).
-export([send_async_back_pressure_frozen_target/1]).
-export([messages_name_atoms_by_cache_reference/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stats/1, do_load_fixture/2, do_cnode_os_pid/0,
                          do_wait_idle/1, with_target/2, do_target_os_pid/1, do_signal/2]).

%% send_async/3's window (erlang/distribute_pool.erl): the 64th message since the last wait is a send/3.
-define(WINDOW, 64).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [send_async_exactly_once_in_order,
     send_async_errors,
     send_async_back_pressure_frozen_target,
     messages_name_atoms_by_cache_reference].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec send_async_exactly_once_in_order(list()) -> ok.
send_async_exactly_once_in_order(_Config) ->
    doc("8 processes share one lease and each sends 1,000 numbered messages with send_async/3 (windows of 64, "
        "the last message with send/3): the target receives every message exactly once and each sender's in "
        "order; nothing is dropped, and the holder's window entry is gone once with_connection returns."),
    with_target("dpool_async_once", fun(T) ->
        do_load_fixture(T, dpool_seq_collector),
        {ok, Collector} = erpc:call(T, dpool_seq_collector, start, []),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, health_check_interval_ms => 0}),
        Senders = 8,
        N = 1000,
        {ok, ok} = distribute_pool:with_connection(Pool, fun(Conn) ->
            #{id := ConnId} = distribute_pool:connection_info(Conn),
            Self = self(),
            Pids = [spawn_link(fun() ->
                                       [ok = distribute_pool:send_async(Conn, Collector, {seq, S, 1, ConnId, I})
                                        || I <- lists:seq(1, N - 1)],
                                       %% Once this returns, everything the sender sent before is queued.
                                       ok = distribute_pool:send(Conn, Collector, {seq, S, 1, ConnId, N}),
                                       Self ! {sent, self()}
                               end) || S <- lists:seq(1, Senders)],
            [receive {sent, P} -> ok after 60000 -> ct:fail(sender_stuck) end || P <- Pids],
            ok = distribute_pool:send_async(Conn, Collector, {seq, holder, 1, ConnId, 1}),
            [_] = window_entries(),
            ok = distribute_pool:send(Conn, Collector, {marker, ConnId})
        end),
        [] = window_entries(),
        {complete, Summary} = dpool_seq_collector:verdict(Collector, 1, 30000),
        ct:pal("collector: ~p", [maps:without([ranges], Summary)]),
        Total = Senders * N + 1,
        #{total := Total, distinct := Total, duplicates := 0, order_violations := 0, gaps := 0,
          ranges := Ranges} = Summary,
        [[{1, N}] = maps:get(S, Ranges) || S <- lists:seq(1, Senders)],
        do_wait_idle(Pool),
        #{dropped_sends := 0, failed_operations := 0} = do_stats(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec send_async_errors(list()) -> ok.
send_async_errors(_Config) ->
    doc("Errors of send_async/3: invalid_connection for a handle that is no lease, badarg for a destination "
        "of the wrong shape (at once, nothing sent). A pid on another node is dropped by the C-node and "
        "counted. After the lease ended, send_async/3 answers invalid_connection at once (the library asks "
        "the C-node for the lease, which has none), sending nothing; after destroy the error is invalid_pool."),
    with_sink("dpool_async_err", fun(T, Pool) ->
        {error, invalid_connection} = distribute_pool:send_async(not_a_lease, dpool_async_sink, hello),
        {error, invalid_connection} = distribute_pool:send_async(Pool, dpool_async_sink, hello),
        {ok, Stale} = distribute_pool:with_connection(Pool, fun(Conn) ->
            {error, badarg} = distribute_pool:send_async(Conn, "dpool_async_sink", hello),
            {error, badarg} = distribute_pool:send_async(Conn, {1, 2}, hello),
            ok = distribute_pool:send_async(Conn, self(), not_for_the_target),
            ok = distribute_pool:send_async(Conn, dpool_async_sink, one),
            ok = distribute_pool:send(Conn, dpool_async_sink, two),
            Conn
        end),
        do_wait_until(fun() -> sink_count(T) =:= 2 end, 10000),
        do_wait_idle(Pool),
        #{dropped_sends := 1} = do_stats(Pool),
        Late = [distribute_pool:send_async(Stale, dpool_async_sink, late) || _ <- lists:seq(1, ?WINDOW)],
        Late = lists:duplicate(?WINDOW, {error, invalid_connection}),
        %% The lease is over for good, and so is the pipe of the holder.
        [] = window_entries(),
        #{dropped_sends := 1} = do_stats(Pool),
        {error, invalid_connection} = distribute_pool:send(Stale, dpool_async_sink, late),
        2 = sink_count(T),
        ok = distribute_pool:destroy(Pool),
        Gone = [distribute_pool:send_async(Stale, dpool_async_sink, late) || _ <- lists:seq(1, ?WINDOW)],
        Gone = lists:duplicate(?WINDOW, {error, invalid_pool}),
        2 = sink_count(T)
    end),
    ok.

-spec send_async_back_pressure_frozen_target(list()) -> ok.
send_async_back_pressure_frozen_target(_Config) ->
    doc("4 processes stream 1 KiB messages with send_async/3 over one lease; the target is frozen (SIGSTOP): "
        "the senders are held back (their count stops growing once the socket buffers and the connection's "
        "busy limit are full) and the C-node's RSS grows by little; after SIGCONT every message arrives "
        "exactly once and in each sender's order, and none was dropped."),
    with_target("dpool_async_frozen", fun(T) ->
        OsPid = do_target_os_pid(T),
        try
            do_load_fixture(T, dpool_seq_collector),
            {ok, Collector} = erpc:call(T, dpool_seq_collector, start, []),
            {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, health_check_interval_ms => 0}),
            CNode = do_cnode_os_pid(),
            Senders = 4,
            Counter = counters:new(Senders, [write_concurrency]),
            Padding = binary:copy(<<"z">>, 1024),
            {ok, Last} = distribute_pool:with_connection(Pool, fun(Conn) ->
                #{id := ConnId} = distribute_pool:connection_info(Conn),
                Self = self(),
                Pids = [spawn_link(fun() -> stream(Conn, {Collector, ConnId, S, Padding}, Counter, 1, Self) end)
                        || S <- lists:seq(1, Senders)],
                do_wait_until(fun() -> sent(Counter, Senders) > 20000 end, 60000),
                Rss0 = rss_kb(CNode),
                Frozen = sent(Counter, Senders),
                do_signal(OsPid, "STOP"),
                try
                    %% Held back: no sender gets further for a whole second.
                    Held = wait_stable(Counter, Senders, 1000, 20000),
                    Rss1 = rss_kb(CNode),
                    ct:pal("while frozen: ~b messages (~b KiB) sent after SIGSTOP, then none; C-node RSS ~b -> ~b kB",
                           [Held - Frozen, Held - Frozen, Rss0, Rss1]),
                    %% What the kernel's socket buffers, the busy limit (1 MiB) and one window per sender hold.
                    true = Held - Frozen < 40000,
                    true = Rss1 - Rss0 < 64 * 1024
                after
                    do_signal(OsPid, "CONT")
                end,
                [P ! stop || P <- Pids],
                Ends = [receive {stopped, P, I} -> I after 60000 -> ct:fail(sender_stuck) end || P <- Pids],
                ok = distribute_pool:send(Conn, Collector, {marker, ConnId}),
                Ends
            end),
            {complete, Summary} = dpool_seq_collector:verdict(Collector, 1, 60000),
            ct:pal("collector: ~p", [maps:without([ranges], Summary)]),
            Total = lists:sum(Last),
            #{total := Total, distinct := Total, duplicates := 0, order_violations := 0, gaps := 0,
              ranges := Ranges} = Summary,
            [[{1, L}] = maps:get(S, Ranges) || {S, L} <- lists:zip(lists:seq(1, Senders), Last)],
            #{dropped_sends := 0} = do_stats(Pool),
            ok = distribute_pool:destroy(Pool)
        after
            do_signal(OsPid, "CONT")
        end
    end).

-spec messages_name_atoms_by_cache_reference(list()) -> ok.
messages_name_atoms_by_cache_reference(_Config) ->
    doc("Pooled connections take distribution headers with an atom cache (both ends announce "
        "DFLAG_DIST_HDR_ATOM_CACHE): a message to a registered name names the sender's node and the name by "
        "cache reference, so the target receives about 103 bytes per 64-byte binary instead of about 150 "
        "with the node name and the name as text; every message arrives."),
    with_sink("dpool_async_cache", fun(T, Pool) ->
        [#{node := Node}] = maps:get(connections, do_stats(Pool)),
        N = 2000,
        Msg = binary:copy(<<"x">>, 64),
        %% The pool has the connection once its side of the handshake is done; the target records it a moment
        %% later (after its challenge ack is sent).
        do_wait_until(fun() -> lists:keymember(Node, 1, erpc:call(T, erlang, system_info, [dist_ctrl])) end, 20000),
        Before = received_bytes(T, Node),
        {ok, ok} = distribute_pool:with_connection(Pool, fun(Conn) ->
            [ok = distribute_pool:send_async(Conn, dpool_async_sink, Msg) || _ <- lists:seq(1, N - 1)],
            distribute_pool:send(Conn, dpool_async_sink, Msg)
        end),
        do_wait_until(fun() -> sink_count(T) =:= N end, 20000),
        PerMessage = (received_bytes(T, Node) - Before) / N,
        ct:pal("the target received ~.1f bytes per message over ~s", [PerMessage, Node]),
        true = PerMessage < 110,
        ok = distribute_pool:destroy(Pool)
    end).

%% Helpers.

%% Runs Fun with a target that has a counting sink registered as dpool_async_sink, and a pool of one connection
%% to it (which Fun destroys).
-spec with_sink(string(), fun((node(), distribute_pool:pool()) -> R)) -> R.
with_sink(Prefix, Fun) ->
    with_target(Prefix, fun(T) ->
                                do_load_fixture(T, dpool_count_sink),
                                _ = erpc:call(T, dpool_count_sink, start, [dpool_async_sink]),
                                {ok, Pool} = distribute_pool:new(T, #{max_connections => 1,
                                                                      health_check_interval_ms => 0}),
                                Fun(T, Pool)
                        end).

%% Bytes the target has received over the distribution connection of the pooled node Node.
-spec received_bytes(node(), node()) -> non_neg_integer().
received_bytes(T, Node) ->
    Ctrl = erpc:call(T, erlang, system_info, [dist_ctrl]),
    [Port] = [P || {N, P} <- Ctrl, N =:= Node],
    {ok, [{recv_oct, Bytes}]} = erpc:call(T, inet, getstat, [Port, [recv_oct]]),
    Bytes.

%% Sends {seq, S, 1, ConnId, I, Padding} with send_async/3 until told to stop; the last one with send/3.
-spec stream(distribute_pool:conn(), {pid(), term(), pos_integer(), binary()}, counters:counters_ref(),
             pos_integer(), pid()) -> ok.
stream(Conn, {Collector, ConnId, S, Padding} = What, Counter, I, Parent) ->
    receive
        stop ->
            ok = distribute_pool:send(Conn, Collector, {seq, S, 1, ConnId, I, Padding}),
            Parent ! {stopped, self(), I},
            ok
    after 0 ->
        ok = distribute_pool:send_async(Conn, Collector, {seq, S, 1, ConnId, I, Padding}),
        counters:add(Counter, S, 1),
        stream(Conn, What, Counter, I + 1, Parent)
    end.

-spec sent(counters:counters_ref(), pos_integer()) -> non_neg_integer().
sent(Counter, Senders) ->
    lists:sum([counters:get(Counter, S) || S <- lists:seq(1, Senders)]).

%% Waits until the count has not moved for StableMs; fails after TimeoutMs. The count then. The sleep is a
%% window in which nothing may happen: a sleep is never shorter than asked, and senders that are held back stay
%% held back however long it lasts, so a busy machine cannot make this fail (it can only make it slower).
-spec wait_stable(counters:counters_ref(), pos_integer(), pos_integer(), pos_integer()) -> non_neg_integer().
wait_stable(Counter, Senders, StableMs, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    wait_stable(Counter, Senders, StableMs, Deadline, sent(Counter, Senders)).

wait_stable(Counter, Senders, StableMs, Deadline, Before) ->
    timer:sleep(StableMs),
    case sent(Counter, Senders) of
        Before ->
            Before;
        Now ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true -> ct:fail({senders_not_held_back, Before, Now});
                false -> wait_stable(Counter, Senders, StableMs, Deadline, Now)
            end
    end.

-spec window_entries() -> [term()].
window_entries() ->
    case get(distribute_pool_async) of
        undefined -> [];
        Pipes -> maps:keys(Pipes)
    end.

-spec sink_count(node()) -> non_neg_integer().
sink_count(T) ->
    erpc:call(T, dpool_count_sink, count, [dpool_async_sink]).

-spec rss_kb(non_neg_integer()) -> non_neg_integer().
rss_kb(OsPid) ->
    {ok, Status} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =:= {0, 6}],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).
