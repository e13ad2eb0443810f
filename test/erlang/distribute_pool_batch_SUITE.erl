%% Batch operations against a real target: send_batch (one lease, order), send_batch_parallel (real
%% parallelism, order, failure indices, caller death) and stress_test (round trips, progress, stats).
-module(distribute_pool_batch_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([send_batch_one_lease_in_order/1]).
-export([send_batch_errors/1]).
-export([send_batch_raise_returns_the_lease/1]).
-export([parallel_is_parallel_and_ordered/1]).
-export([parallel_failures_have_indices/1]).
-export([parallel_without_any_lease/1]).
-export([parallel_caller_death_leaks_nothing/1]).
-export([stress_test_round_trips_and_progress/1]).
-export([stress_test_bad_arguments/1]).
-export([stress_test_caller_death/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stats/1, do_wait_idle/1, do_hold_leases/3, do_release/1,
                          with_target/2, with_target_pool/3, do_start_sink/2]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [send_batch_one_lease_in_order,
     send_batch_errors,
     send_batch_raise_returns_the_lease,
     parallel_is_parallel_and_ordered,
     parallel_failures_have_indices,
     parallel_without_any_lease,
     parallel_caller_death_leaks_nothing,
     stress_test_round_trips_and_progress,
     stress_test_bad_arguments,
     stress_test_caller_death].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec send_batch_one_lease_in_order(list()) -> ok.
send_batch_one_lease_in_order(_Config) ->
    doc("send_batch sends every element over one leased connection, in order, and returns the send "
        "function's results in order."),
    with_target("dpool_batch", fun(T) ->
        Sink = do_start_sink(T, dpool_batch_sink),
        {ok, Pool} = distribute_pool:new(T, 3),
        Messages = lists:seq(1, 200),
        Send = fun(Conn, I) ->
                       ok = distribute_pool:send(Conn, dpool_batch_sink, {seq, I}),
                       {I, maps:get(id, distribute_pool:connection_info(Conn))}
               end,
        {ok, Results} = distribute_pool:send_batch(Pool, Messages, Send),
        Messages = [I || {I, _} <- Results],
        [_] = lists:usort([Id || {_, Id} <- Results]),
        Expected = [{seq, I} || I <- Messages],
        do_wait_until(fun() -> sink_messages(T, Sink) =:= Expected end, 10000),
        {ok, []} = distribute_pool:send_batch(Pool, [], Send),
        do_wait_idle(Pool),
        ok = distribute_pool:destroy(Pool)
    end).

-spec send_batch_errors(list()) -> ok.
send_batch_errors(_Config) ->
    doc("send_batch: pool_exhausted when no connection comes within the acquire timeout, badarg for a "
        "bad list or fun, invalid_pool for a destroyed pool."),
    with_target("dpool_batch_err", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, acquire_timeout_ms => 200}),
        Holders = do_hold_leases(Pool, 1, exhaust),
        Send = fun(Conn, _) -> distribute_pool:ping(Conn) end,
        {error, pool_exhausted} = distribute_pool:send_batch(Pool, [a, b], Send),
        do_release(Holders),
        {ok, [pong, pong]} = distribute_pool:send_batch(Pool, [a, b], Send),
        {error, badarg} = distribute_pool:send_batch(Pool, [a | b], Send),
        {error, badarg} = distribute_pool:send_batch(Pool, not_a_list, Send),
        {error, badarg} = distribute_pool:send_batch(Pool, [a], fun(_) -> ok end),
        {error, badarg} = distribute_pool:send_batch_parallel(Pool, [a | b], Send),
        {error, badarg} = distribute_pool:send_batch_parallel(Pool, [a], not_a_fun),
        {error, invalid_pool} = distribute_pool:send_batch(not_a_pool, [a], Send),
        {error, invalid_pool} = distribute_pool:send_batch_parallel(not_a_pool, [a], Send),
        ok = distribute_pool:destroy(Pool),
        {error, invalid_pool} = distribute_pool:send_batch(Pool, [a], Send),
        {error, invalid_pool} = distribute_pool:send_batch_parallel(Pool, [a], Send),
        {error, invalid_pool} = distribute_pool:send_batch_parallel(Pool, [], Send)
    end).

-spec send_batch_raise_returns_the_lease(list()) -> ok.
send_batch_raise_returns_the_lease(_Config) ->
    doc("An exception in send_batch's function leaves unchanged, and the lease goes back."),
    with_target_pool("dpool_batch_raise", 1, fun(_T, Pool) ->
        Send = fun(_Conn, 3) -> error({boom, 3});
                  (Conn, _) -> distribute_pool:ping(Conn)
               end,
        {'EXIT', {{boom, 3}, _}} = (catch distribute_pool:send_batch(Pool, [1, 2, 3, 4], Send)),
        do_wait_idle(Pool),
        {ok, [pong]} = distribute_pool:send_batch(Pool, [1], Send)
    end).

-spec parallel_is_parallel_and_ordered(list()) -> ok.
parallel_is_parallel_and_ordered(_Config) ->
    doc("send_batch_parallel runs as many elements at once as the pool has connections, never more, each "
        "worker on its own lease; successful results come in input order."),
    with_target_pool("dpool_par", 4, fun(_T, Pool) ->
        Tracker = spawn_link(fun() -> tracker(0, 0) end),
        Send = fun(Conn, I) ->
                       Tracker ! enter,
                       {ok, ok} = distribute_pool:call(Conn, timer, sleep, [30]),
                       Tracker ! leave,
                       {I * 10, maps:get(id, distribute_pool:connection_info(Conn)), self()}
               end,
        Messages = lists:seq(1, 40),
        {ok, #{successful := Results, failed := []}} = distribute_pool:send_batch_parallel(Pool, Messages, Send),
        Tens = [I * 10 || I <- Messages],
        Tens = [V || {V, _, _} <- Results],
        4 = length(lists:usort([Id || {_, Id, _} <- Results])),
        Workers = lists:usort([W || {_, _, W} <- Results]),
        4 = length(Workers),
        Tracker ! {max, self()},
        Max = receive {max, M} -> M after 5000 -> ct:fail(no_tracker) end,
        {max_concurrency, 4} = {max_concurrency, Max},
        %% Every worker has ended by the time the call returns.
        [] = [W || W <- Workers, is_process_alive(W)],
        do_wait_idle(Pool),
        %% A batch smaller than the pool uses only as many workers as it has elements.
        {ok, #{successful := [{10, _, _}], failed := []}} = distribute_pool:send_batch_parallel(Pool, [1], Send),
        {ok, #{successful := [], failed := []}} = distribute_pool:send_batch_parallel(Pool, [], Send),
        unlink(Tracker),
        exit(Tracker, kill)
    end).

-spec parallel_failures_have_indices(list()) -> ok.
parallel_failures_have_indices(_Config) ->
    doc("An element whose function raises, throws, exits or kills its worker is in `failed` with its index "
        "(from 0) and what happened; the others succeed, in order; no lease or worker is left behind."),
    with_target_pool("dpool_par_fail", 2, fun(_T, Pool) ->
        Self = self(),
        Seen = ets:new(dpool_par_fail_workers, [public, set]),
        Send = fun(Conn, I) ->
                       Self ! {worker, self()},
                       true = ets:insert(Seen, {self()}),
                       case I of
                           3 -> error(boom);
                           5 -> exit(self(), kill);
                           7 -> throw(thrown);
                           8 -> exit(gone);
                           %% The plain elements after the one that kills its worker wait (holding their lease)
                           %% until a third worker ran an element: the replacement of the killed worker is then
                           %% still needed when the killed worker's lease comes back (the C-node watches a
                           %% holder from 5 ms on), and runs on that lease. Bounded: without a replacement they
                           %% go on after 10 s, and the count of workers below fails.
                           _ when I > 5 -> wait_workers(Seen, 3, 10000), {distribute_pool:ping(Conn), I};
                           _ -> {distribute_pool:ping(Conn), I}
                       end
               end,
        Messages = lists:seq(0, 11),
        {ok, #{successful := Ok, failed := Failed}} = distribute_pool:send_batch_parallel(Pool, Messages, Send),
        [{3, {raised, error, boom}}, {5, {worker_down, killed}}, {7, {raised, throw, thrown}},
         {8, {raised, exit, gone}}] = Failed,
        Expected = [{pong, I} || I <- Messages -- [3, 5, 7, 8]],
        Expected = Ok,
        Workers = lists:usort(collect_workers()),
        true = length(Workers) >= 3, % the killed worker was replaced
        [] = [W || W <- Workers, is_process_alive(W)],
        do_wait_idle(Pool),
        #{total_connections := 2, available_connections := 2} = do_stats(Pool)
    end).

-spec parallel_without_any_lease(list()) -> ok.
parallel_without_any_lease(_Config) ->
    doc("When no worker gets a connection within the acquire timeout, the batch is {error, pool_exhausted} "
        "and nothing ran."),
    with_target_pool("dpool_par_none", #{max_connections => 2, acquire_timeout_ms => 100}, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, 2, busy),
        Self = self(),
        Send = fun(_Conn, I) -> Self ! {ran, I} end,
        {error, pool_exhausted} = distribute_pool:send_batch_parallel(Pool, [1, 2, 3], Send),
        receive {ran, _} -> ct:fail(element_ran) after 0 -> ok end,
        do_release(Holders),
        do_wait_idle(Pool)
    end).

-spec parallel_caller_death_leaks_nothing(list()) -> ok.
parallel_caller_death_leaks_nothing(_Config) ->
    doc("When the caller of send_batch_parallel is killed, its workers end at once, also one still waiting "
        "for a lease, and every lease comes back."),
    with_target_pool("dpool_par_death", #{max_connections => 2, acquire_timeout_ms => 60000}, fun(_T, Pool) ->
        [Holder] = do_hold_leases(Pool, 1, outside),
        Self = self(),
        Send = fun(_Conn, _I) ->
                       Self ! {worker, self()},
                       receive never -> ok end
               end,
        Caller = spawn(fun() -> distribute_pool:send_batch_parallel(Pool, lists:seq(1, 10), Send) end),
        Busy = receive {worker, W} -> W after 10000 -> ct:fail(no_worker) end,
        %% One worker holds the second connection; the other waits behind the outside holder.
        do_wait_until(fun() -> maps:get(waiting, do_stats(Pool)) =:= 1 end, 5000),
        Processes = erlang:system_info(process_count),
        BusyRef = erlang:monitor(process, Busy),
        exit(Caller, kill),
        receive {'DOWN', BusyRef, process, Busy, killed} -> ok after 10000 -> ct:fail(worker_outlived_caller) end,
        %% The coordinator and both workers are gone well before any acquire timeout (60 s).
        do_wait_until(fun() -> erlang:system_info(process_count) =< Processes - 3 end, 10000),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 1 end, 10000),
        do_release([Holder]),
        do_wait_idle(Pool),
        #{total_connections := 2, available_connections := 2} = do_stats(Pool)
    end).

-spec stress_test_round_trips_and_progress(list()) -> ok.
stress_test_round_trips_and_progress(_Config) ->
    doc("stress_test runs Workers x Ops leases, each with a round trip to the target, reports progress to "
        "on_progress while it runs (then once when done), and returns the pool's stats afterwards. The library "
        "prints nothing itself: by default the reports go to logger at info level."),
    with_target_pool("dpool_stress", 3, fun(_T, Pool) ->
        #{successful_operations := Before} = do_stats(Pool),
        Self = self(),
        OnProgress = fun(Report) -> Self ! {progress, Report} end,
        {{ok, Stats}, ""} =
            with_captured_output(fun() ->
                                         distribute_pool:stress_test(Pool, 100, 6, #{progress_interval_ms => 50,
                                                                                     on_progress => OnProgress})
                                 end),
        #{successful_operations := After, failed_operations := 0, total_connections := 3} = Stats,
        600 = After - Before,
        Reports = collect_reports(),
        true = length(Reports) >= 2,
        #{phase := done, done := 600, total := 600, failed := 0} = Done = lists:last(Reports),
        [running] = lists:usort([P || #{phase := P} <- lists:droplast(Reports)]),
        "stress_test: done, 600/600 ops (100%), 0 failed," ++ _ = distribute_pool_batch:format_progress(Done),
        %% By default: nothing on stdout (the reports go to logger).
        {{ok, _}, ""} = with_captured_output(fun() -> distribute_pool:stress_test(Pool, 20, 2, #{progress_interval_ms => 10}) end),
        %% Silent when asked.
        {{ok, _}, ""} = with_captured_output(fun() -> distribute_pool:stress_test(Pool, 5, 2, #{progress => false,
                                                                                              on_progress => OnProgress}) end),
        [] = collect_reports(),
        do_wait_idle(Pool)
    end).

-spec stress_test_bad_arguments(list()) -> ok.
stress_test_bad_arguments(_Config) ->
    doc("stress_test refuses bad counts and options with invalid_config, and bad pools with invalid_pool."),
    with_target("dpool_stress_bad", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, 1),
        [{error, {invalid_config, _}} = distribute_pool:stress_test(Pool, Ops, Workers)
         || {Ops, Workers} <- [{-1, 1}, {1, 0}, {1, -3}, {a, 1}, {1, 1.5}, {1, 1000000000}]],
        {error, {invalid_config, {bad_value, workers, 0, <<"an integer in 1..100000">>}}} =
            distribute_pool:stress_test(Pool, 1, 0),
        {error, {invalid_config, {bad_value, ops_per_worker, -1, <<"an integer in 0..1000000000">>}}} =
            distribute_pool:stress_test(Pool, -1, 1),
        {error, {invalid_config, {bad_value, progress, maybe, <<"true or false">>}}} =
            distribute_pool:stress_test(Pool, 1, 1, #{progress => maybe}),
        {error, {invalid_config, {bad_value, on_progress, x, _}}} =
            distribute_pool:stress_test(Pool, 1, 1, [{on_progress, x}]),
        {error, {invalid_config, {unknown_option, unknown}}} = distribute_pool:stress_test(Pool, 1, 1, #{unknown => 1}),
        {error, {invalid_config, {bad_options, not_a_map}}} = distribute_pool:stress_test(Pool, 1, 1, not_a_map),
        {error, invalid_pool} = distribute_pool:stress_test(not_a_pool, 1, 1),
        ok = distribute_pool:destroy(Pool),
        {error, invalid_pool} = distribute_pool:stress_test(Pool, 1, 1)
    end).

-spec stress_test_caller_death(list()) -> ok.
stress_test_caller_death(_Config) ->
    doc("Killing the caller of a long stress_test ends its workers and returns every lease."),
    with_target_pool("dpool_stress_death", 2, fun(_T, Pool) ->
        Processes = erlang:system_info(process_count),
        Caller = spawn(fun() -> distribute_pool:stress_test(Pool, 1000000, 8, #{progress => false}) end),
        do_wait_until(fun() -> maps:get(successful_operations, do_stats(Pool)) > 100 end, 10000),
        exit(Caller, kill),
        do_wait_until(fun() -> erlang:system_info(process_count) =< Processes end, 10000),
        do_wait_idle(Pool),
        #{total_connections := 2, available_connections := 2} = do_stats(Pool)
    end).

%% Helpers.

-spec sink_messages(node(), pid()) -> [term()].
sink_messages(T, Sink) ->
    {messages, Ms} = erpc:call(T, erlang, process_info, [Sink, messages]),
    Ms.

%% Counts how many senders are inside at once.
-spec tracker(non_neg_integer(), non_neg_integer()) -> ok.
tracker(Now, Max) ->
    receive
        enter -> tracker(Now + 1, max(Max, Now + 1));
        leave -> tracker(Now - 1, Max);
        {max, From} -> From ! {max, Max}, tracker(Now, Max)
    end.

-spec collect_reports() -> [distribute_pool_batch:progress_report()].
collect_reports() ->
    receive {progress, R} -> [R | collect_reports()] after 0 -> [] end.

%% Waits until the table Seen has N workers in it, or TimeoutMs went by (it runs in a worker: the case checks).
-spec wait_workers(ets:tid(), pos_integer(), non_neg_integer()) -> ok.
wait_workers(Seen, N, TimeoutMs) ->
    case ets:info(Seen, size) >= N orelse TimeoutMs =< 0 of
        true -> ok;
        false -> receive after 5 -> wait_workers(Seen, N, TimeoutMs - 5) end
    end.

-spec collect_workers() -> [pid()].
collect_workers() ->
    receive {worker, W} -> [W | collect_workers()] after 0 -> [] end.

%% The Gleam suite's capture (test/distribute_test_ffi.erl, compiled by rebar3 too), with the text as a string.
-spec with_captured_output(fun(() -> term())) -> {term(), string()}.
with_captured_output(Fun) ->
    {Result, Text} = distribute_test_ffi:capture_output(Fun),
    {Result, unicode:characters_to_list(Text)}.
