%% The driver of `make bench` (scripts/bench.sh runs it under a private epmd): starts plain target nodes, the
%% application with its embedded C-node, measures every figure of docs/BENCHMARKS.md, prints progress, one
%% `BENCH <name> <value> <unit>` line per figure and one `RATIO <name> <value>` line per comparison, a table,
%% and writes the results as JSON (plus the data the plot is drawn from) under the results directory.
%%
%% Comparisons run both sides in the same run against the same target node, alternating the sides in every
%% repetition, and report the median over the repetitions. Nothing here is tuned to reach a goal: a figure
%% that misses its goal is printed as MISS.
-module(dpool_bench).

%% The pool handle's fields, for the bare sides of call_floors/1 (bare_sides/2).
-include("../erlang/distribute_pool_internal.hrl").

-export([main/1]).
-export([sink_loop/2]).
-export([echo_loop/0]).
-export([stamp_loop/1]).
-export([tls_side/2]).
-export([probe_for/2]).
-export([relay_control/0]).
-export([relay_loop/2]).

%% pool_core_ops: lease + return per second of the pool core alone (Google Benchmark).
-define(POOL_CORE_GOAL, 5000000).
-define(TARGETS, 20).
-define(TICKTIME_S, "8").
-define(SINK, dpool_bench_sink).
%% The sink of the equal-load figures: it notes when each message arrived (os:system_time, which every node
%% of this machine reads from the same clock), so a side's achieved rate is measured where it is delivered.
-define(STAMP_SINK, dpool_bench_stamps).
%% Figures with the same repetitions, so medians mean the same everywhere.
-define(REPS, 5).
-define(CALLS_PER_REP, 1000).
%% call_floors: how many calls of one side before the next side's turn (time_interleaved/2).
-define(INTERLEAVE_CALLS, 100).
-define(HOL_REPS, 3).
-define(HOL_PROBE_MS, 3000).
-define(BIG_BYTES, 8 * 1024 * 1024).
-define(BULK_SENDERS, 4).
-define(LANES, 16).
-define(PIPELINE_SENDERS, 16).
-define(CONCURRENT_CALLERS, 16).
-define(IN_FLIGHT_CALLERS, 1000).
-define(THROUGHPUT_MS, 3000).
-define(THROUGHPUT_REPS, 3).
-define(WARMUP_REPS, 5).
%% Calls of each side before the timed ones, in the call figures (call_floors/1 counts them in its means).
-define(CALL_WARMUP, 200).
%% hol_equal_*: the load each row paces its 4 senders to (8 MiB messages per second in all), the probe
%% period, and how much the two sides' achieved rates may differ before the figure is refused.
-define(EQUAL_LOADS, [16, 48]).
-define(TUNED_LOAD, 48).
-define(PROBE_PERIOD_US, 2000).
-define(EQUAL_WARMUP_MS, 500).
-define(RATE_TOLERANCE, 0.05).
%% scale: HELD_POOLS pools (one per target) of HELD_PER_POOL connections, opened in steps so that the C-node's
%% RSS is read at each of RSS_STEPS connections; then held HOLD_S seconds, sampled every HOLD_SAMPLE_S.
-define(HELD_POOLS, 20).
-define(HELD_PER_POOL, 500).
-define(RSS_STEPS, [1000, 5000, 10000]).
-define(HOLD_S, 60).
-define(HOLD_SAMPLE_S, 10).
%% USER_HZ: the unit of the CPU times in /proc/<pid>/stat.
-define(CLOCK_TICKS, 100).

%% Percent of one core each OS process used during a throughput repetition.
-type calls_run() :: #{rate := float(), cnode_us := float(), cpu := cpu()}.
-type cpu() :: #{caller := non_neg_integer(), cnode := non_neg_integer(), target := non_neg_integer()}.
%% A hol_equal side's senders: Run(Send) runs one sender's loop (leased or not) and returns what it sent.
-type paced_run() :: fun((fun((fun(() -> term())) -> non_neg_integer())) -> non_neg_integer()).

%% The reference figures of call_floors/1 (no goal): what a pooled call is made of, and the floors that follow.
%% call_floor_ratio and with_connection_vs_call_p50 are measured in the same repetitions (goals of issue 17).
-define(FLOOR_FIGURES, [<<"floor_direct_erpc_p50">>, <<"floor_beam_echo_p50">>, <<"floor_cnode_ping_p50">>,
                        <<"floor_cnode_target_p50">>, <<"floor_pooled_call_ratio">>, <<"floor_bare_call_p50">>,
                        <<"floor_bare_lease_p50">>, <<"floor_bare_lease_ratio">>, <<"call_floor_ratio">>,
                        <<"call_floor_mean_ratio">>, <<"with_connection_vs_call_p50">>]).

%% The figures of hol/1: hol_p99 and the reference figures measured with it, in the same repetitions.
%% The figures of tls_cost/1: what TLS distribution costs, plain and TLS clusters measured in turn.
-define(TLS_FIGURES, [<<"tls_connect_p50">>, <<"tls_call_p50">>, <<"tls_msgs_per_s">>,
                      <<"tls_bytes_per_idle_connection">>]).
%% The figures of groups/1: a pool group over 4 targets against one pool (issue 18).
-define(CONCURRENT_FIGURES, [<<"concurrent_calls">>, <<"calls_in_flight">>]).
-define(GROUP_FIGURES, [<<"group_call_p50">>, <<"group_of_one_call_p50">>, <<"group_cast_batch_throughput">>]).
-define(TLS_ROUNDS, 3).
-define(TLS_CONNECTS, 100).
%% tls: the idle connections whose memory is measured (a pool of that many, all up).
-define(TLS_IDLE_CONNECTIONS, 200).

%% The figures measured on a C-node in the application's default configuration (no lanes env), and the
%% tuned reference row (a C-node with lanes/0 lanes).
-define(BULK_FIGURES, [<<"bulk_throughput">>, <<"bulk_cnode_cpu_s_per_gib">>]).
-define(DEFAULT_FIGURES, [hol_equal_name(L) || L <- ?EQUAL_LOADS] ++ ?BULK_FIGURES).
-define(TUNED_HOL, <<"hol_equal_p99_48_tuned">>).
%% The tuned row's env cnode_sndbuf (README, "Lanes"; docs/BENCHMARKS.md, "Send buffers of the callers' lanes").
-define(TUNED_SNDBUF, 262144).
%% The figures of scale/1: connections_held, bytes_per_idle_connection and the C-node's RSS on the way.
-define(SCALE_FIGURES, [<<"bytes_per_idle_connection">>, <<"connections_held">>
                        | [rss_figure_name(N) || N <- ?RSS_STEPS]]).

%% A figure of kind `reference` has no goal (goal_op none): it is a floor or a measured part shown next to
%% the figures that have one.
-type figure() :: #{name := binary(), value := number() | skipped, unit := binary(),
                    goal_op := le | ge | none, goal := number() | none, detail := binary(),
                    kind := ratio | absolute | reference, extra => map()}.

%% Args: [ResultsDir, PoolCoreCsv | Only] (strings, from -run). Only, when given, names the figures to
%% measure (for work on one figure; `make bench` measures them all).
-spec main([string()]) -> no_return().
main([ResultsDir, CoreCsv | Only]) ->
    put(only, Only),
    Code = try run(ResultsDir, CoreCsv) of
               ok -> 0
           catch
               Class:Reason:Stack ->
                   io:format("~nbench failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
                   1
           end,
    erlang:halt(Code).

-spec run(string(), string()) -> ok.
run(ResultsDir, CoreCsv) ->
    logger:set_primary_config(level, warning),
    T0 = erlang:monotonic_time(millisecond),
    put(t0, T0),
    progress("pool_core_ops, packet_normalize_ns: reading the Google Benchmark results (~s)", [CoreCsv]),
    Core = core_figures(CoreCsv),
    _ = [report(F) || #{name := N} = F <- Core, selected(N)],
    progress("starting ~b plain target nodes (net_ticktime ~s)", [?TARGETS, ?TICKTIME_S]),
    Targets = start_targets(?TARGETS),
    try
        Figures = [F || #{name := N} = F <- Core ++ measure(Targets), selected(N)],
        finish(ResultsDir, Figures, erlang:monotonic_time(millisecond) - T0)
    after
        stop_cnode(),
        stop_targets(Targets)
    end.

-spec measure([{pid(), node(), integer()}]) -> [figure()].
measure(Targets) ->
    Nodes = [N || {_, N, _} <- Targets],
    [T1, T2, T3, T4, T5 | _] = Nodes,
    %% The tuned C-node (lanes/0) for the figures of issue 5 and the tuned reference of hol_equal.
    start_cnode(lanes(), #{}),
    Warm = run_figure(<<"warmup_100_ms">>, fun() -> warmup_100(T1) end),
    WithConn = run_figure(<<"with_connection_call_p50">>, fun() -> with_connection_call(T1) end),
    PooledCall = run_figure(<<"pooled_call_p50">>, fun() -> pooled_call(T1) end),
    Floors = run_group(?FLOOR_FIGURES, fun() -> call_floors(T1) end),
    OneConn = run_figure(<<"one_connection_ops">>, fun() -> one_connection_ops(T2) end),
    Concurrent = run_group(?CONCURRENT_FIGURES, fun() -> concurrent_calls(T2) end),
    Fanout = run_figure(<<"fanout_throughput">>, fun() -> fanout(T2) end),
    Groups = run_group(?GROUP_FIGURES, fun() -> groups([T1, T2, T3, T4]) end),
    Tuned = run_group(hol_names(?TUNED_HOL),
                      fun() ->
                              with_cnode_sndbuf(?TUNED_SNDBUF, fun() ->
                                  hol_equal(?TUNED_HOL, T3, T5, ?TUNED_LOAD,
                                            fmt("tuned: ~b lanes, cnode_sndbuf ~b, a pool of ~b",
                                                [lanes_in_use(), ?TUNED_SNDBUF, ?BULK_SENDERS + 2]))
                              end)
                      end),
    Tls = run_group(?TLS_FIGURES, fun() -> tls_cost() end),
    %% The application as a user runs it: no lanes env, so its own default lanes. (A floor selected alone
    %% runs its row as well.)
    DefaultNames = ?DEFAULT_FIGURES ++ lists:append([tl(hol_names(hol_equal_name(L))) || L <- ?EQUAL_LOADS]),
    Default = phase(DefaultNames, default, #{}, fun() ->
                  Config = fmt("default configuration: ~b lanes (no lanes env), a pool of ~b with default options",
                               [lanes_in_use(), ?BULK_SENDERS + 2]),
                  Bulk = run_group(?BULK_FIGURES, fun() -> bulk_throughput(T4) end),
                  Hols = [run_group(hol_names(hol_equal_name(Load)),
                                    fun() -> hol_equal(hol_equal_name(Load), T4, T5, Load, Config) end)
                          || Load <- ?EQUAL_LOADS],
                  lists:append(Hols) ++ Bulk
              end),
    %% A fresh C-node, so that its RSS growth is the connections' and not left over from the figures above.
    Scale = phase(?SCALE_FIGURES, default, #{max_connections_per_caller => ?HELD_POOLS * ?HELD_PER_POOL},
                  fun() -> run_group(?SCALE_FIGURES, fun() -> scale(Nodes) end) end),
    [Warm, WithConn, PooledCall | Floors] ++ [OneConn | Concurrent] ++ [Fanout | Groups] ++ Tuned ++ Tls
        ++ Default ++ Scale.

%% Runs Fun with the application env cnode_sndbuf at Bytes: the lane connections that are up get that send
%% buffer now (distribute_pool_lane_writes started again), and keep it after (a socket given a size is no
%% longer sized by the kernel); the next C-node's connections, made after the env is back, do not.
-spec with_cnode_sndbuf(pos_integer(), fun(() -> Result)) -> Result.
with_cnode_sndbuf(Bytes, Fun) ->
    Restart = fun() ->
                      ok = supervisor:terminate_child(distribute_pool_sup, distribute_pool_lane_writes),
                      {ok, _} = supervisor:restart_child(distribute_pool_sup, distribute_pool_lane_writes)
              end,
    Before = application:get_env(distribute_pool, cnode_sndbuf),
    ok = application:set_env(distribute_pool, cnode_sndbuf, Bytes),
    Restart(),
    try
        Fun()
    after
        ok = case Before of
                 {ok, Value} -> application:set_env(distribute_pool, cnode_sndbuf, Value);
                 undefined -> application:unset_env(distribute_pool, cnode_sndbuf)
             end,
        Restart()
    end.

%% Figures that need a C-node of their own: restarts the application with Lanes and Limits and runs Fun, when
%% any of Names is selected.
-spec phase([binary()], default | pos_integer(), map(), fun(() -> [figure()])) -> [figure()].
phase(Names, Lanes, Limits, Fun) ->
    case lists:any(fun selected/1, Names) of
        true -> restart_cnode(Lanes, Limits), Fun();
        false -> []
    end.

-spec hol_equal_name(pos_integer()) -> binary().
hol_equal_name(Load) ->
    fmt("hol_equal_p99_~b", [Load]).

%% The reference figure measured with a hol_equal row: its floor.
-spec hol_floor_name(binary()) -> binary().
hol_floor_name(Row) ->
    <<Row/binary, "_floor">>.

%% The other reference figure of a hol_equal row: the floor probed from a node that takes no part in the load.
-spec hol_idle_name(binary()) -> binary().
hol_idle_name(Row) ->
    <<Row/binary, "_idle_node">>.

%% A hol_equal row and the reference figures measured with it.
-spec hol_names(binary()) -> [binary(), ...].
hol_names(Row) ->
    [Row, hol_floor_name(Row), hol_idle_name(Row)].

%% The number of lanes of the running C-node (the library's view: its lane node names).
-spec lanes_in_use() -> pos_integer().
lanes_in_use() ->
    length(distribute_pool_client:lane_nodes(distribute_pool:default_cnode())).

%% A figure that fails is reported as ERROR and the run goes on with the next one.
-spec run_figure(binary(), fun(() -> figure())) -> figure().
run_figure(Name, Fun) ->
    Figure = try selected(Name) orelse throw(not_selected),
                 Fun()
             catch throw:not_selected ->
                     skipped(Name, <<>>, ge, 0, <<"not selected">>);
                   Class:Reason:Stack ->
                     io:format("~s failed: ~p:~p~n~p~n", [Name, Class, Reason, Stack]),
                     failed(Name, Class, Reason)
             end,
    selected(Name) andalso report(Figure),
    Figure.

%% Figures measured together in one run (their sides alternating in every repetition): all of them, or none
%% when none is selected. Selecting `call_floors` selects the floors.
-spec run_group([binary()], fun(() -> [figure()])) -> [figure()].
run_group(Names, Fun) ->
    case lists:any(fun selected/1, Names) of
        false ->
            [];
        true ->
            Figures = try Fun()
                      catch Class:Reason:Stack ->
                              io:format("~s failed: ~p:~p~n~p~n", [hd(Names), Class, Reason, Stack]),
                              [failed(N, Class, Reason) || N <- Names]
                      end,
            [report(F) || F <- Figures],
            Figures
    end.

-spec selected(binary()) -> boolean().
selected(Name) ->
    case get(only) of
        [] -> true;
        Only -> lists:member(binary_to_list(Name), Only)
                    orelse (lists:member(Name, ?FLOOR_FIGURES) andalso lists:member("call_floors", Only))
                    orelse (lists:member(Name, ?DEFAULT_FIGURES ++ [?TUNED_HOL])
                            andalso string:prefix(Name, <<"hol_equal">>) =/= nomatch
                            andalso lists:member("hol_equal", Only))
                    orelse lists:any(fun(Row) -> lists:member(Name, tl(hol_names(Row))) andalso selected(Row) end,
                                     ?DEFAULT_FIGURES ++ [?TUNED_HOL])
                    orelse (lists:member(Name, ?BULK_FIGURES) andalso lists:member("bulk", Only))
                    orelse (lists:member(Name, ?SCALE_FIGURES) andalso lists:member("scale", Only))
                    orelse (lists:member(Name, ?TLS_FIGURES) andalso lists:member("tls", Only))
                    orelse (lists:member(Name, ?GROUP_FIGURES) andalso lists:member("groups", Only))
    end.

-spec failed(binary(), atom(), term()) -> figure().
failed(Name, Class, Reason) ->
    #{name => Name, value => skipped, unit => <<>>, goal_op => ge, goal => 0, kind => absolute,
      detail => fmt("error: ~P", [{Class, Reason}, 12]), extra => #{error => true}}.

%%% Nodes

-spec start_targets(pos_integer()) -> [{pid(), node(), integer()}].
start_targets(N) ->
    Cookie = atom_to_list(erlang:get_cookie()),
    {Mod, Bin, File} = code:get_object_code(?MODULE),
    [begin
         Name = "dpool_bench_t" ++ integer_to_list(I),
         {ok, Peer, Node} = peer:start(#{name => Name, host => "127.0.0.1", longnames => true,
                                         %% connect_all false: the targets stay out of each other's
                                         %% way (no mesh, no global partition checks between them).
                                         args => ["-setcookie", Cookie, "-kernel", "net_ticktime", ?TICKTIME_S,
                                                  "-connect_all", "false"]}),
         %% The sink is the only code of ours on a target; the pooled path needs none.
         {module, Mod} = erpc:call(Node, code, load_binary, [Mod, File, Bin]),
         Sink = erpc:call(Node, erlang, spawn, [?MODULE, sink_loop, [0, none]]),
         true = erpc:call(Node, erlang, register, [?SINK, Sink]),
         OsPid = list_to_integer(erpc:call(Node, os, getpid, [])),
         put({os_pid, Node}, OsPid),
         {Peer, Node, OsPid}
     end || I <- lists:seq(1, N)].

-spec stop_targets([{pid(), node(), integer()}]) -> ok.
stop_targets(Targets) ->
    [catch peer:stop(Peer) || {Peer, _, _} <- Targets],
    [kill_if_alive(OsPid) || {_, _, OsPid} <- Targets],
    progress("stopped ~b target nodes", [length(Targets)]).

%% Starts the application with its embedded C-node: Lanes `default' leaves the application's own lanes (no
%% `lanes' env: what a user who sets nothing runs), Limits is its `limits' env.
-spec start_cnode(default | pos_integer(), map()) -> ok.
start_cnode(Lanes, Limits) ->
    application:load(distribute_pool),
    %% DPOOL_BENCH_CNODE_ARGS: more options for the C-node, to compare settings by hand (README, Benchmarks).
    Extra = string:lexemes(os:getenv("DPOOL_BENCH_CNODE_ARGS", ""), " "),
    ok = application:set_env(distribute_pool, cnode_args,
                             ["--net-ticktime", ?TICKTIME_S, "--log-level", "warn" | Extra]),
    case Lanes of
        default -> ok = application:unset_env(distribute_pool, lanes);
        _ -> ok = application:set_env(distribute_pool, lanes, Lanes)
    end,
    ok = application:set_env(distribute_pool, limits, Limits),
    {ok, _} = application:ensure_all_started(distribute_pool),
    {ok, OsPid} = distribute_pool_cnode:os_pid(),
    put(cnode_os_pid, OsPid),
    progress("C-node up (os pid ~b, lanes ~p)", [OsPid, Lanes]).

%% A fresh C-node: its RSS growth and its lanes are then the phase's own.
-spec restart_cnode(default | pos_integer(), map()) -> ok.
restart_cnode(Lanes, Limits) ->
    progress("restarting the application for a fresh C-node", []),
    stop_cnode(),
    %% The application forgets the lanes it knew of its C-node when it starts one (they may change here).
    start_cnode(Lanes, Limits).

%% The tuned C-node's lanes: ?LANES (the most a C-node has), or DPOOL_BENCH_LANES. A hol figure has 5 busy
%% processes of one node talking to the C-node (4 senders and the prober), which get 5 different lanes when
%% there are at least 5 (docs/BENCHMARKS.md); the application's default has 8.
-spec lanes() -> pos_integer().
lanes() ->
    case os:getenv("DPOOL_BENCH_LANES") of
        false -> ?LANES;
        Text -> list_to_integer(Text)
    end.

-spec stop_cnode() -> ok.
stop_cnode() ->
    OsPid = get(cnode_os_pid),
    _ = application:stop(distribute_pool),
    case OsPid of
        undefined -> ok;
        _ -> wait_gone(OsPid, 50), kill_if_alive(OsPid)
    end,
    erase(cnode_os_pid),
    ok.

-spec wait_gone(integer(), non_neg_integer()) -> boolean().
wait_gone(_OsPid, 0) -> false;
wait_gone(OsPid, N) ->
    case filelib:is_dir("/proc/" ++ integer_to_list(OsPid)) of
        false -> true;
        true -> timer:sleep(100), wait_gone(OsPid, N - 1)
    end.

-spec kill_if_alive(integer()) -> ok.
kill_if_alive(OsPid) ->
    case wait_gone(OsPid, 100) of
        true -> ok;
        false ->
            progress("process ~b still alive: kill -9", [OsPid]),
            _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
            ok
    end.

%% Counts every message it gets; {Ref, From, expect, N} asks for {Ref, reached} once N have arrived since
%% the last reset, {Ref, From, count} for the count, {Ref, From, reset} zeroes it.
-spec sink_loop(non_neg_integer(), none | {reference(), pid(), non_neg_integer()}) -> no_return().
sink_loop(Count, Wait) when is_tuple(Wait), Count >= element(3, Wait) ->
    {Ref, From, _} = Wait,
    From ! {Ref, reached},
    sink_loop(Count, none);
sink_loop(Count, Wait) ->
    receive
        {Ref, From, expect, N} when is_reference(Ref), is_pid(From) -> sink_loop(Count, {Ref, From, N});
        {Ref, From, count} when is_reference(Ref), is_pid(From) -> From ! {Ref, Count}, sink_loop(Count, Wait);
        {Ref, From, reset} when is_reference(Ref), is_pid(From) -> From ! {Ref, ok}, sink_loop(0, none);
        _ -> sink_loop(Count + 1, Wait)
    end.

%% A plain process on the target that answers {From, Ref} with Ref: the BEAM-to-BEAM round trip of the floors.
-spec echo_loop() -> no_return().
echo_loop() ->
    receive
        {From, Ref} when is_pid(From) -> From ! Ref, echo_loop();
        _ -> echo_loop()
    end.

-spec sink_ask(node(), count | reset) -> term().
sink_ask(Node, What) ->
    sink_ask(Node, ?SINK, What).

%% The same, of the sink registered as Name (sink_loop/2 or stamp_loop/1).
-spec sink_ask(node(), atom(), count | reset | stamps) -> term().
sink_ask(Node, Name, What) ->
    Ref = make_ref(),
    {Name, Node} ! {Ref, self(), What},
    receive {Ref, Answer} -> Answer after 60000 -> error({sink_timeout, Node, What}) end.

%% Waits until the sink has received N messages since its reset; the time it happened.
-spec sink_wait(node(), non_neg_integer()) -> integer().
sink_wait(Node, N) ->
    Ref = make_ref(),
    {?SINK, Node} ! {Ref, self(), expect, N},
    receive {Ref, reached} -> erlang:monotonic_time(microsecond)
    after 120000 -> error({sink_never_reached, Node, N, sink_ask(Node, count)})
    end.

%% Waits until nothing more arrives at the sink (big messages still in flight after their senders stopped).
-spec sink_settle(node(), atom()) -> ok.
sink_settle(Node, Name) ->
    A = sink_ask(Node, Name, count),
    timer:sleep(300),
    case sink_ask(Node, Name, count) of
        A -> ok;
        _ -> sink_settle(Node, Name)
    end.

%%% Figures

%% The figures of the C++ micro-benchmarks (bench/pool_core_bench.cpp), from Google Benchmark's CSV.
-spec core_figures(string()) -> [figure()].
core_figures(Csv) ->
    case file:read_file(Csv) of
        {ok, Text} ->
            Rows = parse_benchmark_csv(Text),
            [pool_core_figure(Rows) | packet_normalize_figure(Csv, Rows)];
        {error, _} ->
            [skipped(<<"pool_core_ops">>, <<"ops/s">>, ge, ?POOL_CORE_GOAL,
                     <<"pool_core_bench not built (libbenchmark-dev missing?)">>)]
    end.

-spec pool_core_figure([{binary(), number()}]) -> figure().
pool_core_figure(Rows) ->
    case lists:keyfind(<<"lease_and_return/8_median">>, 1, Rows) of
        {_, Ips} ->
            Others = [#{name => Name, items_per_second => V}
                      || {Name, V} <- Rows, string:prefix(Name, <<"lease_and_return">>) =/= nomatch],
            figure(<<"pool_core_ops">>, Ips, <<"ops/s">>, ge, ?POOL_CORE_GOAL,
                   fmt("Google Benchmark lease_and_return/8, median of 5 repetitions "
                       "(/100: ~s, /100 half busy: ~s)",
                       [fmt_num(row(<<"lease_and_return/100_median">>, Rows)),
                        fmt_num(row(<<"lease_and_return_half_busy/100_median">>, Rows))]),
                   absolute, #{rows => Others});
        false ->
            skipped(<<"pool_core_ops">>, <<"ops/s">>, ge, ?POOL_CORE_GOAL, <<"no lease_and_return/8 row">>)
    end.

%% The C-node's decode of one received packet (Google Benchmark packet_normalize: a caller's one-shot call,
%% its atoms all references to the atom cache), ns per packet; none, said so, when its row is missing.
-spec packet_normalize_figure(string(), [{binary(), number()}]) -> [figure()].
packet_normalize_figure(Csv, Rows) ->
    case row(<<"packet_normalize_median">>, Rows) of
        Ips when is_number(Ips), Ips > 0 ->
            [reference(<<"packet_normalize_ns">>, 1.0e9 / Ips, <<"ns">>,
                       "Google Benchmark packet_normalize, median of 5 repetitions: protocol::normalize_packet of "
                       "a caller's one-shot call as its node sends it (dist header of 7 atom cache references, "
                       "REG_SEND control and '$gen_call' message), what every packet from a BEAM node goes through",
                       #{})];
        _ ->
            progress("packet_normalize_ns: no packet_normalize row in ~s (the benchmark failed?)", [Csv]),
            []
    end.

-spec row(binary(), [{binary(), number()}]) -> number() | undefined.
row(Name, Rows) ->
    case lists:keyfind(Name, 1, Rows) of
        {_, V} -> V;
        false -> undefined
    end.

%% Google Benchmark's CSV: a header line starting with `name,`, then one row per result.
-spec parse_benchmark_csv(binary()) -> [{binary(), number()}].
parse_benchmark_csv(Text) ->
    Lines = binary:split(Text, <<"\n">>, [global, trim_all]),
    case lists:dropwhile(fun(L) -> binary:part(L, 0, min(5, byte_size(L))) =/= <<"name,">> end, Lines) of
        [Header | Rows] ->
            Cols = binary:split(Header, <<",">>, [global]),
            Index = index_of(<<"items_per_second">>, Cols),
            [{unquote(hd(Fields)), to_number(lists:nth(Index, Fields))}
             || Row <- Rows,
                Fields <- [binary:split(Row, <<",">>, [global])],
                length(Fields) >= Index, lists:nth(Index, Fields) =/= <<>>];
        [] ->
            []
    end.

-spec index_of(binary(), [binary()]) -> pos_integer().
index_of(X, L) -> index_of(X, L, 1).
index_of(X, [X | _], I) -> I;
index_of(X, [_ | T], I) -> index_of(X, T, I + 1).

-spec unquote(binary()) -> binary().
unquote(<<$", Rest/binary>>) -> binary:part(Rest, 0, byte_size(Rest) - 1);
unquote(B) -> B.

-spec to_number(binary()) -> number().
to_number(B) ->
    try binary_to_integer(B)
    catch error:badarg ->
            %% binary_to_float/1 wants a fraction: "1e+08" -> "1.0e+08".
            case binary:match(B, <<".">>) of
                nomatch -> binary_to_float(binary:replace(B, [<<"e">>, <<"E">>], <<".0e">>));
                _ -> binary_to_float(B)
            end
    end.

%% Time from new/2 to its {ok, Pool}: new/2 returns once min_connections (here all 100) are up.
-spec warmup_100(node()) -> figure().
warmup_100(Target) ->
    Ms = [begin
              progress("warmup_100_ms: rep ~b/~b: new(~s, 100 connections)", [R, ?WARMUP_REPS, Target]),
              Start = erlang:monotonic_time(microsecond),
              {ok, Pool} = distribute_pool:new(Target, #{max_connections => 100, min_connections => 100}),
              Elapsed = (erlang:monotonic_time(microsecond) - Start) / 1000,
              {ok, #{total_connections := 100, available_connections := 100}} = distribute_pool:stats(Pool),
              ok = distribute_pool:destroy(Pool),
              Elapsed
          end || R <- lists:seq(1, ?WARMUP_REPS)],
    figure(<<"warmup_100_ms">>, median(Ms), <<"ms">>, le, 1000,
           fmt("new/2 with min = max = 100 until it returns (all up), median of ~b: ~s ms",
               [?WARMUP_REPS, fmt_list(Ms)]),
           absolute, #{reps_ms => Ms}).

-spec with_connection_call(node()) -> figure().
with_connection_call(Target) ->
    {ok, Pool} = distribute_pool:new(Target, 4),
    Pooled = fun() ->
                     {ok, {ok, Target}} = distribute_pool:with_connection(
                                            Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
             end,
    try
        latency_comparison(<<"with_connection_call_p50">>, Target, Pooled, 1.5,
                           <<"with_connection + call(erlang, node, []) vs erpc:call">>)
    after
        distribute_pool:destroy(Pool)
    end.

%% The one-shot pooled call of issue 5, measured once it exists (call/4 accepting a pool).
-spec pooled_call(node()) -> figure().
pooled_call(Target) ->
    {ok, Pool} = distribute_pool:new(Target, 4),
    try
        case catch distribute_pool:call(Pool, erlang, node, []) of
            {ok, Target} ->
                Pooled = fun() -> {ok, Target} = distribute_pool:call(Pool, erlang, node, []) end,
                latency_comparison(<<"pooled_call_p50">>, Target, Pooled, 1.2,
                                   <<"call(Pool, erlang, node, []) vs erpc:call">>);
            _ ->
                skipped(<<"pooled_call_p50">>, <<"ratio">>, le, 1.2, <<"not built yet">>)
        end
    after
        distribute_pool:destroy(Pool)
    end.

%% The floors under the two call figures, measured in one run against the same target from the same process,
%% the sides alternating in every repetition (median over the repetitions of each side's p50):
%% - direct erpc:call, the denominator of both ratios;
%% - a BEAM-to-BEAM echo: `!` to a plain process on the target and its answer back;
%% - a C-node ping: the `ping` request, caller -> C-node -> caller, through the same envelope as every call;
%% - the C-node -> target round trip of a call, as the C-node itself times it (the pool's request_rtt_p50_us,
%%   from the request queued on the pooled connection to its answer read), next to pooled call - ping; the
%%   one-shot calls have a pool of their own, so that its stats time those calls and no other side's;
%% - the floor that follows: a one-shot call needs a ping's round trip and the target's, and so does
%%   with_connection + call, whose quiet checkout travels with the call;
%% - with_connection + call, in the same repetitions: with_connection_vs_call_p50 is its p50 over the one-shot
%%   call's, and call_floor_ratio the one-shot call's p50 over its floor (ping + C-node -> target);
%% - the same by means (call_floor_mean_ratio), over every call of the two sides (their warm-up included, as
%%   the C-node's mean includes it): a mean of a sum is the sum of the means, which a p50 is not;
%% - the messages of both sent by hand (bare_sides/2): what is left of each without the library's code.
-spec call_floors(node()) -> [figure()].
call_floors(Target) ->
    {ok, Pool} = distribute_pool:new(Target, 4),
    {ok, OneShotPool} = distribute_pool:new(Target, 4),
    Echo = erpc:call(Target, erlang, spawn, [?MODULE, echo_loop, []]),
    {Service, CNode} = distribute_pool:default_cnode(),
    PingRequest = distribute_pool_proto:ping(),
    {BareCall, BareLease} = bare_sides(Pool, Target),
    try
        Sides = [{erpc, fun() -> Target = erpc:call(Target, erlang, node, []) end},
                 {echo, fun() -> Ref = make_ref(), Echo ! {self(), Ref}, receive Ref -> ok end end},
                 {ping, fun() -> pong = distribute_pool_client:call({Service, CNode}, PingRequest, 5000) end},
                 {pooled, fun() -> {ok, Target} = distribute_pool:call(OneShotPool, erlang, node, []) end},
                 {with_connection, fun() ->
                                           {ok, {ok, Target}} = distribute_pool:with_connection(
                                                                  Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
                                   end},
                 {bare_call, BareCall},
                 {bare_lease, BareLease}],
        WarmUp = [{S, time_calls(F, ?CALL_WARMUP)} || {S, F} <- Sides],
        Reps = [begin
                    progress("call_floors: rep ~b/~b: ~b each of erpc, echo, C-node ping, pooled call, "
                             "with_connection + call",
                             [R, ?REPS, ?CALLS_PER_REP]),
                    time_interleaved(Sides, ?CALLS_PER_REP)
                end || R <- lists:seq(1, ?REPS)],
        P50s = [[{S, percentile(0.5, Ts)} || {S, Ts} <- Rep] || Rep <- Reps],
        Med = fun(S) -> median([proplists:get_value(S, Rep) || Rep <- P50s]) end,
        Mean = fun(S) -> mean(lists:append([proplists:get_value(S, Run) || Run <- [WarmUp | Reps]])) end,
        Order = [erpc, echo, ping, pooled, with_connection, bare_call, bare_lease],
        [Erpc, Echo50, Ping, Pooled, WithConn, Bare1, Bare3] = [Med(S) || S <- Order],
        {ok, #{request_rtt_p50_us := Inside, request_rtt_avg_us := InsideMean}} = distribute_pool:stats(OneShotPool),
        [PingMean, PooledMean] = [Mean(S) || S <- [ping, pooled]],
        RepsUs = #{reps_us => [[proplists:get_value(S, Rep) || S <- Order] || Rep <- P50s]},
        Of = fun(What) -> fmt("~s; medians of ~b reps x ~b, sides alternating every ~b calls",
                              [What, ?REPS, ?CALLS_PER_REP, ?INTERLEAVE_CALLS]) end,
        [reference(<<"floor_direct_erpc_p50">>, Erpc, <<"us">>,
                   Of("erpc:call(T, erlang, node, []) from the bench node"), RepsUs),
         reference(<<"floor_beam_echo_p50">>, Echo50, <<"us">>,
                   Of("{self(), Ref} to a plain process on the target, Ref back"), #{}),
         reference(<<"floor_cnode_ping_p50">>, Ping, <<"us">>,
                   Of("the ping request: caller -> C-node -> caller, through distribute_pool_client"), #{}),
         reference(<<"floor_cnode_target_p50">>, Inside, <<"us">>,
                   fmt("C-node -> target -> C-node for call(Pool, erlang, node, []), timed inside the C-node "
                       "(stats request_rtt_p50_us, histogram bucket bound); pooled call p50 ~.1f us - ping p50 "
                       "~.1f us = ~.1f us", [Pooled, Ping, Pooled - Ping]), #{pooled_call_p50 => Pooled}),
         reference(<<"floor_pooled_call_ratio">>, (Ping + Inside) / Erpc, <<"ratio">>,
                   fmt("(ping ~.1f + C-node->target ~b) / erpc ~.1f: the least pooled_call_p50 and "
                       "with_connection_call_p50 (whose checkout travels with the call) can be with these parts",
                       [Ping, Inside, Erpc]), #{}),
         reference(<<"floor_bare_call_p50">>, Bare1, <<"us">>,
                   Of(fmt("one-shot call's message built once and sent by hand (an alias, one send, its answer "
                          "awaited): the pooled call without the library's code (pooled call p50 ~.1f us)",
                          [Pooled])), #{}),
         reference(<<"floor_bare_lease_p50">>, Bare3, <<"us">>,
                   Of(fmt("with_connection + call's three messages sent by hand (quiet checkout, call by its tag, "
                          "check-in): the lease without the library's code (with_connection + call p50 ~.1f us)",
                          [WithConn])), #{}),
         reference(<<"floor_bare_lease_ratio">>, Bare3 / Bare1, <<"ratio">>,
                   fmt("bare lease ~.1f us / bare one-shot call ~.1f us: what with_connection_vs_call_p50 would be "
                       "if the library's code cost nothing (library: +~.1f us on the lease, +~.1f us on the call)",
                       [Bare3, Bare1, WithConn - Bare3, Pooled - Bare1]), #{}),
         figure(<<"call_floor_ratio">>, Pooled / (Ping + Inside), <<"ratio">>, le, 1.05,
                Of(fmt("one-shot call(Pool, erlang, node, []) p50 ~.1f us / its floor: C-node ping p50 ~.1f us + "
                       "C-node->target p50 ~b us", [Pooled, Ping, Inside])),
                ratio, #{sides => [{<<"pooled_call_p50">>, Pooled, <<"us">>},
                                   {<<"floor">>, Ping + Inside, <<"us">>}]}),
         reference(<<"call_floor_mean_ratio">>, PooledMean / (PingMean + InsideMean), <<"ratio">>,
                   fmt("call_floor_ratio by means: one-shot call mean ~.1f us / (C-node ping mean ~.1f us + "
                       "C-node->target mean ~b us, stats request_rtt_avg_us of the same calls, to the nearest us); "
                       "means over all ~b calls of each side, warm-up included: the call's own cost over its two "
                       "parts, whatever the shape of their spread (a p50 of a sum is not the sum of the p50s)",
                       [PooledMean, PingMean, InsideMean, ?CALL_WARMUP + ?REPS * ?CALLS_PER_REP]),
                   #{sides => [{<<"pooled_call_mean">>, PooledMean, <<"us">>},
                               {<<"floor_mean">>, PingMean + InsideMean, <<"us">>}]}),
         figure(<<"with_connection_vs_call_p50">>, WithConn / Pooled, <<"ratio">>, le, 1.1,
                Of(fmt("with_connection + call(C, erlang, node, []) p50 ~.1f us / one-shot call(Pool, erlang, node, "
                       "[]) p50 ~.1f us (pool of 4)", [WithConn, Pooled])),
                ratio, #{sides => [{<<"with_connection_p50">>, WithConn, <<"us">>},
                                   {<<"call_p50">>, Pooled, <<"us">>}]})]
    after
        exit(Echo, kill),
        distribute_pool:destroy(OneShotPool),
        distribute_pool:destroy(Pool)
    end.

%% A control for call_floor_ratio, run by hand, not by main/1 (docs/BENCHMARKS.md, `call_floor_ratio`):
%%   erlc -o /tmp bench/dpool_bench.erl && scripts/with_epmd.sh erl -noshell -name dpool_bench@127.0.0.1 \
%%       -setcookie relay_$RANDOM -pa /tmp -run dpool_bench relay_control
%% The same quotient as call_floors/1 with a plain BEAM node R as the relay in place of the C-node: a call goes
%% caller -> R -> target (erpc:call) -> R -> caller; its floor is R's ping (caller -> R -> caller) plus R's own
%% erpc:call to the target, timed inside R as the C-node times request_rtt. The sides take turns as in
%% call_floors/1, with its warm-up and repetitions; no code of the pool is involved, so what the call pays over
%% its two parts here is what any relay pays on this machine. Prints one line.
-spec relay_control() -> no_return().
relay_control() ->
    [{_, Target, _}, {_, RelayNode, _}] = Nodes = start_targets(2),
    try
        Relay = erpc:call(RelayNode, erlang, spawn, [?MODULE, relay_loop, [Target, []]]),
        Ask = fun(What) -> Ref = make_ref(), Relay ! {What, self(), Ref}, receive {Ref, Answer} -> Answer end end,
        Sides = [{ping, fun() -> pong = Ask(ping) end}, {call, fun() -> Target = Ask(call) end}],
        WarmUp = [{S, time_calls(F, ?CALL_WARMUP)} || {S, F} <- Sides],
        Reps = [time_interleaved(Sides, ?CALLS_PER_REP) || _ <- lists:seq(1, ?REPS)],
        Med = fun(S) -> median([percentile(0.5, proplists:get_value(S, Rep)) || Rep <- Reps]) end,
        Mean = fun(S) -> mean(lists:append([proplists:get_value(S, Run) || Run <- [WarmUp | Reps]])) end,
        %% R's own times, over every call as the C-node's stats are: p50 and mean.
        Inner = Ask(inner),
        [PingP50, CallP50, InnerP50] = [Med(ping), Med(call), percentile(0.5, Inner)],
        [PingMean, CallMean, InnerMean] = [Mean(ping), Mean(call), mean(Inner)],
        io:format("relay_control: ping p50 ~.1f us, R -> target p50 ~.1f us, call p50 ~.1f us: ratio ~.3f; "
                  "by means ~.1f / (~.1f + ~.1f) = ~.3f~n",
                  [PingP50, InnerP50, CallP50, CallP50 / (PingP50 + InnerP50), CallMean, PingMean, InnerMean,
                   CallMean / (PingMean + InnerMean)])
    after
        stop_targets(Nodes)
    end,
    erlang:halt(0).

%% relay_control/0's relay: answers a ping at once, makes a call to the target and keeps its time (us), and
%% gives the times kept when asked.
-spec relay_loop(node(), [float()]) -> no_return().
relay_loop(Target, Times) ->
    receive
        {ping, From, Ref} ->
            From ! {Ref, pong},
            relay_loop(Target, Times);
        {call, From, Ref} ->
            Start = erlang:monotonic_time(nanosecond),
            Node = erpc:call(Target, erlang, node, []),
            Us = (erlang:monotonic_time(nanosecond) - Start) / 1000,
            From ! {Ref, Node},
            relay_loop(Target, [Us | Times]);
        {inner, From, Ref} ->
            From ! {Ref, Times},
            relay_loop(Target, Times)
    end.

%% The messages of a one-shot call and of with_connection + call, built as the library builds them and sent by
%% hand over this process's lane, with no more than an alias per call (no node watch, timer or lease record):
%% what the two figures cost on the wire and in the C-node, so that the rest is the library's own code.
-spec bare_sides(#dpool{}, node()) -> {fun(() -> ok), fun(() -> ok)}.
bare_sides(Pool, Target) ->
    #dpool{server = Server, id = Id} = Pool,
    Lane = distribute_pool_client:lane(Server),
    OneShot = distribute_pool_proto:pooled_call(Id, erlang, node, [], 5000),
    Checkout = distribute_pool_proto:checkout_quiet(Id, 1000),
    Ask = fun(Request) ->
                  Alias = erlang:alias(),
                  Tag = distribute_pool_proto:alias_tag(Alias),
                  Lane ! distribute_pool_proto:call_msg(self(), Tag, Request),
                  {Alias, Tag}
          end,
    Call = fun() ->
                   {Alias, Tag} = Ask(OneShot),
                   receive {Tag, {ok, Target}} -> ok end,
                   true = erlang:unalias(Alias),
                   ok
           end,
    Lease = fun() ->
                    {CheckoutAlias, CheckoutTag} = Ask(Checkout),
                    {Alias, Tag} = Ask(distribute_pool_proto:call(Id, checkout, CheckoutTag, erlang, node, [], 5000)),
                    receive {Tag, {leased, {ConnId, LeaseId, _}, {ok, Target}}} -> ok end,
                    true = erlang:unalias(Alias),
                    true = erlang:unalias(CheckoutAlias),
                    Lane ! distribute_pool_proto:cast_msg(distribute_pool_proto:checkin(Id, ConnId, LeaseId)),
                    ok
            end,
    {Call, Lease}.

%% p50 of the pooled round trip over p50 of erpc:call, to the same target, the sides taking turns every
%% ?INTERLEAVE_CALLS calls in each repetition (as in call_floors/1), so that a slow spell of the VM falls on both.
-spec latency_comparison(binary(), node(), fun(() -> term()), number(), binary()) -> figure().
latency_comparison(Name, Target, Pooled, Goal, What) ->
    Direct = fun() -> Target = erpc:call(Target, erlang, node, []) end,
    _ = [begin Direct(), Pooled() end || _ <- lists:seq(1, ?CALL_WARMUP)],
    Reps = [begin
                progress("~s: rep ~b/~b: ~b direct, ~b pooled, taking turns every ~b",
                         [Name, R, ?REPS, ?CALLS_PER_REP, ?CALLS_PER_REP, ?INTERLEAVE_CALLS]),
                [{direct, D}, {pooled, P}] = [{S, percentile(0.5, Ts)}
                                              || {S, Ts} <- time_interleaved([{direct, Direct}, {pooled, Pooled}],
                                                                             ?CALLS_PER_REP)],
                {D, P}
            end || R <- lists:seq(1, ?REPS)],
    D50 = median([D || {D, _} <- Reps]),
    P50 = median([P || {_, P} <- Reps]),
    Sides = [{<<"direct_p50">>, D50, <<"us">>}, {<<"pooled_p50">>, P50, <<"us">>}],
    figure(Name, P50 / D50, <<"ratio">>, le, Goal,
           fmt("~s: pooled p50 ~.1f us / direct p50 ~.1f us (medians of ~b reps x ~b calls, sides alternating "
               "every ~b)", [What, P50, D50, ?REPS, ?CALLS_PER_REP, ?INTERLEAVE_CALLS]),
           ratio, #{sides => Sides, reps_us => [[D, P] || {D, P} <- Reps]}).

%% N timed calls of each side, the sides taking turns every ?INTERLEAVE_CALLS calls, so that what the machine
%% does meanwhile (this 2-core VM drifts over tens of ms) falls on every side alike: [{Side, Times}] in
%% the order of Sides.
-spec time_interleaved([{atom(), fun(() -> term())}], pos_integer()) -> [{atom(), [float()]}].
time_interleaved(Sides, N) ->
    Rounds = [[{S, time_calls(F, ?INTERLEAVE_CALLS)} || {S, F} <- Sides]
              || _ <- lists:seq(1, max(1, N div ?INTERLEAVE_CALLS))],
    [{S, lists:append([Ts || Round <- Rounds, {S1, Ts} <- Round, S1 =:= S])} || {S, _} <- Sides].

%% Microseconds per call, sequential calls.
-spec time_calls(fun(() -> term()), pos_integer()) -> [float()].
time_calls(Fun, N) ->
    [begin
         S = erlang:monotonic_time(nanosecond),
         Fun(),
         (erlang:monotonic_time(nanosecond) - S) / 1000
     end || _ <- lists:seq(1, N)].

%% Many processes share ONE leased connection and send 64-byte binaries to the sink, pipelined: each calls
%% send_async/3, which hands the message to the C-node without waiting and waits (as send/3) only at the end
%% of each window of 64 messages, so a sender is held back when the connection is busy. Rate = messages /
%% time until the sink has them all. Each sender's last message is a send/3, so its count includes only
%% messages the C-node queued.
-spec one_connection_ops(node()) -> figure().
one_connection_ops(Target) ->
    {ok, Pool} = distribute_pool:new(Target, 1),
    Msg = binary:copy(<<"x">>, 64),
    try
        {ok, Reps} = distribute_pool:with_connection(Pool, fun(Conn) ->
            [begin
                 progress("one_connection_ops: rep ~b/~b: ~b senders on one connection for ~b ms",
                          [R, ?THROUGHPUT_REPS, ?PIPELINE_SENDERS, ?THROUGHPUT_MS]),
                 delivered_rate(Target, ?PIPELINE_SENDERS,
                                fun() -> ok = distribute_pool:send_async(Conn, ?SINK, Msg), 1 end,
                                fun() -> ok = distribute_pool:send(Conn, ?SINK, Msg), 1 end)
             end || R <- lists:seq(1, ?THROUGHPUT_REPS)]
        end),
        Rates = [Rate || {Rate, _} <- Reps],
        Cpu = median_cpu([C || {_, C} <- Reps]),
        figure(<<"one_connection_ops">>, median(Rates), <<"ops/s">>, ge, 100000,
               fmt("~b processes calling send_async/3 (64-byte binary) on one lease, delivered to a sink; "
                   "median of ~b: ~s; ~s", [?PIPELINE_SENDERS, ?THROUGHPUT_REPS, fmt_list(Rates), fmt_cpu(Cpu)]),
               absolute, #{reps => Rates, cpu_percent => Cpu})
    after
        distribute_pool:destroy(Pool)
    end.

%% Calls from many processes at once, against the same number of processes making erpc:call over the direct
%% link, the sides taking turns in every repetition (THROUGHPUT_MS each); calls answered per second:
%% - concurrent_calls: CONCURRENT_CALLERS processes each making one-shot call(Pool, erlang, node, []) in a
%%   loop on a pool of 4 (each call leases a connection for its round trip, so at most 4 are on their way and
%%   the others wait in the pool's line);
%% - calls_in_flight: IN_FLIGHT_CALLERS processes calling call(Conn, erlang, node, []) on ONE lease, so up to
%%   that many requests are in flight on one connection at once (the C-node's bookkeeping of them).
%% References (no goal): pooled calls/s / direct calls/s, with the C-node's CPU per call.
-spec concurrent_calls(node()) -> [figure()].
concurrent_calls(Target) ->
    {ok, Pool} = distribute_pool:new(Target, #{max_connections => 4, min_connections => 4}),
    {ok, One} = distribute_pool:new(Target, #{max_connections => 1, max_pending_requests => ?IN_FLIGHT_CALLERS}),
    try
        {ok, Target} = distribute_pool:call(Pool, erlang, node, []),
        {ok, Lease} = distribute_pool:with_connection(One, fun(Conn) ->
            [begin
                 progress("concurrent_calls: rep ~b/~b: ~b processes, direct then pooled, ~b ms each",
                          [R, ?THROUGHPUT_REPS, ?CONCURRENT_CALLERS, ?THROUGHPUT_MS]),
                 OneShot = {calls_run(direct, Target, ?CONCURRENT_CALLERS),
                            calls_run(Pool, Target, ?CONCURRENT_CALLERS)},
                 progress("calls_in_flight: rep ~b/~b: ~b processes, direct then on one lease, ~b ms each",
                          [R, ?THROUGHPUT_REPS, ?IN_FLIGHT_CALLERS, ?THROUGHPUT_MS]),
                 {OneShot, {calls_run(direct, Target, ?IN_FLIGHT_CALLERS), calls_run(Conn, Target, ?IN_FLIGHT_CALLERS)}}
             end || R <- lists:seq(1, ?THROUGHPUT_REPS)]
        end),
        [calls_figure(<<"concurrent_calls">>,
                      fmt("~b processes each calling call(Pool, erlang, node, []) in a loop, a pool of 4",
                          [?CONCURRENT_CALLERS]),
                      [OneShot || {OneShot, _} <- Lease]),
         calls_figure(<<"calls_in_flight">>,
                      fmt("~b processes each calling call(Conn, erlang, node, []) on one lease of a pool of 1 "
                          "(max_pending_requests ~b)", [?IN_FLIGHT_CALLERS, ?IN_FLIGHT_CALLERS]),
                      [InFlight || {_, InFlight} <- Lease])]
    after
        distribute_pool:destroy(One),
        distribute_pool:destroy(Pool)
    end.

-spec calls_figure(binary(), binary(), [{calls_run(), calls_run()}]) -> figure().
calls_figure(Name, What, Reps) ->
    Direct = median([Rate || {#{rate := Rate}, _} <- Reps]),
    Pooled = median([Rate || {_, #{rate := Rate}} <- Reps]),
    CnodeUs = median([Us || {_, #{cnode_us := Us}} <- Reps]),
    Cpu = fun(Side) -> median_cpu([maps:get(cpu, element(Side, R)) || R <- Reps]) end,
    reference(Name, Pooled / Direct, <<"ratio">>,
              fmt("~s, against as many processes making erpc:call(T, erlang, node, []); calls/s, median of ~b: "
                  "pooled ~s (~s; ~s), direct ~s (~s; ~s); C-node CPU ~.1f us per pooled call",
                  [What, ?THROUGHPUT_REPS, fmt_num(Pooled), fmt_list([R || {_, #{rate := R}} <- Reps]),
                   fmt_cpu(Cpu(2)), fmt_num(Direct), fmt_list([R || {#{rate := R}, _} <- Reps]), fmt_cpu(Cpu(1)),
                   CnodeUs]),
              #{sides => [{<<"pooled">>, Pooled, <<"calls/s">>}, {<<"direct">>, Direct, <<"calls/s">>}],
                cnode_cpu_us_per_call => CnodeUs}).

%% Callers processes calling for THROUGHPUT_MS: erpc:call over the direct link, or call/5 on a pool or lease.
-spec calls_run(direct | distribute_pool:pool() | distribute_pool:conn(), node(), pos_integer()) -> calls_run().
calls_run(Via, Target, Callers) ->
    Parent = self(),
    Cpu0 = cpu_start(Target),
    Start = erlang:monotonic_time(microsecond),
    Deadline = Start + ?THROUGHPUT_MS * 1000,
    Call = case Via of
               direct -> fun() -> Target = erpc:call(Target, erlang, node, [], 30000), 1 end;
               _ -> fun() -> {ok, Target} = distribute_pool:call(Via, erlang, node, [], 30000), 1 end
           end,
    Pids = [spawn_link(fun() -> Parent ! {calls, self(), send_until(Call, Deadline, 0)} end)
            || _ <- lists:seq(1, Callers)],
    Calls = lists:sum([receive {calls, P, N} -> N end || P <- Pids]),
    Micros = erlang:monotonic_time(microsecond) - Start,
    Ticks = cpu_used(Cpu0),
    Cpu = cpu_percent(Ticks, Micros / 1.0e6),
    Rate = Calls * 1.0e6 / Micros,
    CnodeUs = maps:get(cnode, Ticks) * 1.0e6 / ?CLOCK_TICKS / Calls,
    progress("    ~s: ~s calls/s; ~s", [case Via of direct -> "direct"; _ -> "pooled" end, fmt_num(Rate),
                                          fmt_cpu(Cpu)]),
    #{rate => Rate, cnode_us => CnodeUs, cpu => Cpu}.

%% Delivered msg/s at the target's sink: cast_batch of 64-byte binaries over a direct `!` loop.
-spec fanout(node()) -> figure().
fanout(Target) ->
    {module, distribute_pool} = code:ensure_loaded(distribute_pool),
    case erlang:function_exported(distribute_pool, cast_batch, 3) of
        false ->
            skipped(<<"fanout_throughput">>, <<"ratio">>, ge, 3.0, <<"not built yet">>);
        true ->
            {ok, Pool} = distribute_pool:new(Target, 4),
            Msg = binary:copy(<<"x">>, 64),
            Batch = lists:duplicate(1000, Msg),
            Pooled = fun() ->
                             case distribute_pool:cast_batch(Pool, ?SINK, Batch) of
                                 ok -> length(Batch);
                                 {ok, _} -> length(Batch);
                                 Other -> error({cast_batch, Other})
                             end
                     end,
            Direct = fun() -> {?SINK, Target} ! Msg, 1 end,
            try
                %% The denominator is the better of 1 and BULK_SENDERS direct sender processes.
                Reps = [begin
                            progress("fanout_throughput: rep ~b/~b: direct ! loop in 1 and ~b processes, "
                                     "then cast_batch", [R, ?THROUGHPUT_REPS, ?BULK_SENDERS]),
                            {delivered_rate(Target, 1, Direct), delivered_rate(Target, ?BULK_SENDERS, Direct),
                             delivered_rate(Target, 1, Pooled)}
                        end || R <- lists:seq(1, ?THROUGHPUT_REPS)],
                [D1, D4, P] = [median([element(1, element(I, Rep)) || Rep <- Reps]) || I <- [1, 2, 3]],
                [D1Cpu, D4Cpu, PCpu] = [median_cpu([element(2, element(I, Rep)) || Rep <- Reps]) || I <- [1, 2, 3]],
                D = max(D1, D4),
                figure(<<"fanout_throughput">>, P / D, <<"ratio">>, ge, 3.0,
                       fmt("cast_batch (batches of 1000) ~s msg/s / the better direct ! side ~s msg/s delivered "
                           "(1 process ~s, ~b processes ~s), 64-byte binaries, medians of ~b; pooled: ~s; "
                           "direct 1: ~s; direct ~b: ~s",
                           [fmt_num(P), fmt_num(D), fmt_num(D1), ?BULK_SENDERS, fmt_num(D4), ?THROUGHPUT_REPS,
                            fmt_cpu(PCpu), fmt_cpu(D1Cpu), ?BULK_SENDERS, fmt_cpu(D4Cpu)]),
                       ratio, #{sides => [{<<"direct_1">>, D1, <<"msg/s">>},
                                          {fmt("direct_~b", [?BULK_SENDERS]), D4, <<"msg/s">>},
                                          {<<"pooled">>, P, <<"msg/s">>}],
                                reps => [[element(1, X) || X <- tuple_to_list(Rep)] || Rep <- Reps],
                                cpu_percent => #{direct_1 => D1Cpu, direct_4 => D4Cpu, pooled => PCpu}})
            after
                distribute_pool:destroy(Pool)
            end
    end.

%% A pool group over 4 targets against one pool, in the same repetitions (sides alternating):
%% - group_call_p50 (reference): the p50 of a one-shot call(Group, erlang, node, []) (round robin over 4
%%   members of 4 connections) over that of call(Pool, ...) (one pool of 4 connections to the first target):
%%   a call through a group spread over 4 targets against one through a pool to one; on 2 cores it measures
%%   4 target VMs taking turns more than the group (docs/BENCHMARKS.md, "Pool groups");
%% - group_of_one_call_p50 (goal <= 1.1): the same through a group whose only member is the pool's target,
%%   over the pool's: what the group's pick and routing alone cost a call, without the spread;
%% - group_cast_batch_throughput: 64-byte messages delivered per second by cast_batch of 1000 through the
%%   group (each batch to one member, round robin: 4 targets' sinks) over the same through the pool (one
%%   target's sink), ?BULK_SENDERS senders each.
-spec groups([node()]) -> [figure()].
groups([First | _] = Targets) ->
    {ok, Group} = distribute_pool:new_group(Targets, #{max_connections => 4}),
    {ok, Pool} = distribute_pool:new(First, 4),
    {ok, One} = distribute_pool:new_group([First], #{max_connections => 4}),
    Msg = binary:copy(<<"x">>, 64),
    Batch = lists:duplicate(1000, Msg),
    Caster = fun(Handle) -> fun() -> {ok, N} = distribute_pool:cast_batch(Handle, ?SINK, Batch), N end end,
    Caller = fun(Handle) -> fun() -> {ok, _} = distribute_pool:call(Handle, erlang, node, []) end end,
    try
        _ = [[(Caller(H))() || _ <- lists:seq(1, ?CALL_WARMUP)] || H <- [Group, Pool, One]],
        Reps = [begin
                    progress("groups: rep ~b/~b: ~b calls through the group and the pool, then cast_batch through "
                             "each for ~b ms", [R, ?REPS, ?CALLS_PER_REP, ?THROUGHPUT_MS]),
                    G50 = percentile(0.5, time_calls(Caller(Group), ?CALLS_PER_REP)),
                    P50 = percentile(0.5, time_calls(Caller(Pool), ?CALLS_PER_REP)),
                    O50 = percentile(0.5, time_calls(Caller(One), ?CALLS_PER_REP)),
                    GRate = sinks_rate(Targets, Caster(Group)),
                    PRate = sinks_rate([First], Caster(Pool)),
                    {G50, P50, GRate, PRate, O50}
                end || R <- lists:seq(1, ?REPS)],
        [G50, P50, GRate, PRate, O50] = [median([element(I, Rep) || Rep <- Reps]) || I <- [1, 2, 3, 4, 5]],
        [reference(<<"group_call_p50">>, G50 / P50, <<"ratio">>,
                   fmt("one-shot call(Group, erlang, node, []) p50 ~.1f us (round robin over 4 targets) / "
                       "call(Pool, ...) p50 ~.1f us (one target), pools of 4, medians of ~b reps x ~b calls",
                       [G50, P50, ?REPS, ?CALLS_PER_REP]),
                   #{sides => [{<<"group_p50">>, G50, <<"us">>}, {<<"pool_p50">>, P50, <<"us">>}]}),
         figure(<<"group_of_one_call_p50">>, O50 / P50, <<"ratio">>, le, 1.1,
                fmt("one-shot call through a group of the pool's one target p50 ~.1f us / call(Pool, ...) p50 "
                    "~.1f us: the pick and routing alone", [O50, P50]),
                ratio, #{sides => [{<<"group_of_one_p50">>, O50, <<"us">>}, {<<"pool_p50">>, P50, <<"us">>}]}),
         figure(<<"group_cast_batch_throughput">>, GRate / PRate, <<"ratio">>, ge, 1.0,
                fmt("cast_batch (batches of 1000 64-byte binaries, ~b senders) through a group of 4 targets ~s "
                    "msg/s / through one pool ~s msg/s, delivered at the targets' sinks, medians of ~b",
                    [?BULK_SENDERS, fmt_num(GRate), fmt_num(PRate), ?REPS]),
                ratio, #{sides => [{<<"group">>, GRate, <<"msg/s">>}, {<<"pool">>, PRate, <<"msg/s">>}]})]
    after
        [distribute_pool:destroy(H) || H <- [Group, Pool, One]]
    end.

%% ?BULK_SENDERS processes run Send() (messages sent) for THROUGHPUT_MS; messages per second from the start
%% until the sinks of Targets together have every one of them.
-spec sinks_rate([node()], fun(() -> pos_integer())) -> float().
sinks_rate(Targets, Send) ->
    [ok = sink_ask(T, reset) || T <- Targets],
    Parent = self(),
    Start = erlang:monotonic_time(microsecond),
    Deadline = Start + ?THROUGHPUT_MS * 1000,
    Pids = [spawn_link(fun() -> Parent ! {sent, self(), send_until(Send, Deadline, 0)} end)
            || _ <- lists:seq(1, ?BULK_SENDERS)],
    Sent = lists:sum([receive {sent, P, N} -> N end || P <- Pids]),
    Done = sinks_reached(Targets, Sent, erlang:monotonic_time(millisecond) + 120000),
    Rate = Sent / ((Done - Start) / 1.0e6),
    progress("    ~s msg/s over ~b targets", [fmt_num(Rate), length(Targets)]),
    Rate.

%% The time the sinks of Targets together have counted N messages, polled every 5 ms.
-spec sinks_reached([node()], non_neg_integer(), integer()) -> integer().
sinks_reached(Targets, N, Deadline) ->
    Now = erlang:monotonic_time(microsecond),
    case lists:sum([sink_ask(T, count) || T <- Targets]) >= N of
        true -> Now;
        false when Now div 1000 > Deadline -> error({sinks_never_reached, Targets, N});
        false -> timer:sleep(5), sinks_reached(Targets, N, Deadline)
    end.

%% What TLS distribution costs: the same work on a plain cluster and on a TLS one (mode verified: certificates
%% from a test CA), in turn, ?TLS_ROUNDS times. Each cluster is a caller node with its own embedded C-node (the
%% caller's distribution is the C-node's TLS mode: tls auto) and a target; this node is plain, so it drives
%% the callers over their standard I/O (peer, connection standard_io) and they measure from inside. Figures:
%% TLS / plain of the p50 of new/2 of a 1-connection pool (connect + handshakes), the p50 of with_connection +
%% call, and 64-byte messages delivered per second over one lease.
-spec tls_cost() -> [figure()].
tls_cost() ->
    Dir = filename:join(["_build", "bench", "tls"]),
    Certs = dpool_tls_certs:generate(Dir),
    Optfile = maps:get({a, verified}, maps:get(optfile, Certs)),
    Rounds = [begin
                  progress("tls: round ~b/~b, ~s cluster", [R, ?TLS_ROUNDS, Mode]),
                  TlsArgs = case Mode of
                                plain -> [];
                                tls -> dpool_tls_certs:peer_args(Optfile)
                            end,
                  {Caller, _} = dpool_tls_certs:start_peer("dpool_bench_tls_caller", TlsArgs,
                                                           dpool_tls_certs:code_path_args()),
                  Side = try peer:call(Caller, ?MODULE, tls_side, [TlsArgs, atom_to_list(erlang:get_cookie())],
                                       300000)
                         after
                             peer:stop(Caller)
                         end,
                  progress("    connect p50 ~b us, call p50 ~b us, ~s msg/s, ~s bytes per idle connection; CPU: ~s",
                           [maps:get(connect_p50_us, Side), maps:get(call_p50_us, Side),
                            fmt_num(maps:get(msgs_per_s, Side)), fmt_num(maps:get(idle_bytes, Side)),
                            fmt_cpu(maps:get(cpu, Side))]),
                  {Mode, Side}
              end || R <- lists:seq(1, ?TLS_ROUNDS), Mode <- [plain, tls]],
    Of = fun(Mode, Key) -> median([maps:get(Key, S) || {M, S} <- Rounds, M =:= Mode]) end,
    Ratio = fun(Name, Key, Unit, What) ->
                    Plain = Of(plain, Key),
                    Tls = Of(tls, Key),
                    figure(Name, Tls / Plain, <<"ratio">>, none, none,
                           fmt("~s, TLS (verified) / plain: ~s / ~s ~s, medians of ~b rounds of each, in turn",
                               [What, fmt_num(Tls), fmt_num(Plain), Unit, ?TLS_ROUNDS]),
                           reference, #{sides => [{<<"plain">>, Plain, Unit}, {<<"tls">>, Tls, Unit}],
                                        rounds => [S#{cluster => M} || {M, S} <- Rounds]})
            end,
    Cpu = fun(Mode) -> fmt_cpu(median_cpu([maps:get(cpu, S) || {M, S} <- Rounds, M =:= Mode])) end,
    [Ratio(<<"tls_connect_p50">>, connect_p50_us, <<"us">>,
           fmt("p50 of ~b new/2 of a 1-connection pool (epmd, connect, handshakes)", [?TLS_CONNECTS])),
     Ratio(<<"tls_call_p50">>, call_p50_us, <<"us">>,
           fmt("p50 of ~b with_connection + call(erlang, node, []) on a pool of 4", [?CALLS_PER_REP])),
     Ratio(<<"tls_msgs_per_s">>, msgs_per_s, <<"msg/s">>,
           fmt("64-byte binaries delivered per second, ~b processes calling send_async/3 on one lease (TLS: ~s; "
               "plain: ~s)", [?PIPELINE_SENDERS, Cpu(tls), Cpu(plain)])),
     Ratio(<<"tls_bytes_per_idle_connection">>, idle_bytes, <<"bytes">>,
           fmt("C-node memory per idle connection: VmRSS growth with a pool of ~b connections up, 1 s idle, per "
               "connection", [?TLS_IDLE_CONNECTIONS]))].

%% tls_cost/0's work, run in its caller node (plain or TLS): starts the application (an embedded C-node in
%% the caller's own distribution mode) and a target of the same mode, and measures.
-spec tls_side([string()], string()) -> #{atom() => term()}.
tls_side(TlsArgs, Cookie) ->
    logger:set_primary_config(level, warning),
    {ok, _} = application:ensure_all_started(distribute_pool),
    {ok, CNodeOsPid} = distribute_pool_cnode:os_pid(),
    put(cnode_os_pid, CNodeOsPid),
    {ok, TargetPeer, Target} = peer:start(#{name => peer:random_name("dpool_bench_tls_target"),
                                            host => "127.0.0.1", longnames => true,
                                            args => ["-setcookie", Cookie, "-connect_all", "false" | TlsArgs]}),
    try
        {Mod, Bin, File} = code:get_object_code(?MODULE),
        {module, Mod} = erpc:call(Target, code, load_binary, [Mod, File, Bin]),
        Sink = erpc:call(Target, erlang, spawn, [?MODULE, sink_loop, [0, none]]),
        true = erpc:call(Target, erlang, register, [?SINK, Sink]),
        put({os_pid, Target}, list_to_integer(erpc:call(Target, os, getpid, []))),
        Connects = [begin
                        {Us, {ok, P}} = timer:tc(distribute_pool, new, [Target, 1]),
                        ok = distribute_pool:destroy(P),
                        Us
                    end || _ <- lists:seq(1, ?TLS_CONNECTS)],
        IdleBytes = idle_connection_bytes(Target, ?TLS_IDLE_CONNECTIONS),
        {ok, Pool} = distribute_pool:new(Target, 4),
        Call = fun() ->
                       {ok, {ok, Target}} = distribute_pool:with_connection(
                                              Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
               end,
        _ = [Call() || _ <- lists:seq(1, ?CALLS_PER_REP div 10)], % warm-up
        Calls = [element(1, timer:tc(Call)) || _ <- lists:seq(1, ?CALLS_PER_REP)],
        Msg = binary:copy(<<"x">>, 64),
        {ok, {Rate, Cpu}} = distribute_pool:with_connection(Pool, fun(Conn) ->
            delivered_rate(Target, ?PIPELINE_SENDERS,
                           fun() -> ok = distribute_pool:send_async(Conn, ?SINK, Msg), 1 end,
                           fun() -> ok = distribute_pool:send(Conn, ?SINK, Msg), 1 end)
        end),
        ok = distribute_pool:destroy(Pool),
        #{connect_p50_us => median(Connects), call_p50_us => median(Calls), msgs_per_s => Rate, cpu => Cpu,
          idle_bytes => IdleBytes}
    after
        peer:stop(TargetPeer),
        application:stop(distribute_pool)
    end.

%% The C-node's memory per idle connection to Target: its VmRSS growth, 1 s after a pool of N connections is
%% up (new/2 returns once min_connections are), per connection.
-spec idle_connection_bytes(node(), pos_integer()) -> float().
idle_connection_bytes(Target, N) ->
    OsPid = get(cnode_os_pid),
    Before = rss_kb(OsPid),
    {ok, Pool} = distribute_pool:new(Target, #{max_connections => N, min_connections => N}),
    timer:sleep(1000),
    After = rss_kb(OsPid),
    ok = distribute_pool:destroy(Pool),
    (After - Before) * 1024 / N.

%% Runs Senders processes doing Send() (which returns how many messages it sent) for THROUGHPUT_MS, then
%% waits until the sink has every message: delivered messages per second from start to last delivery, and
%% the CPU each OS process used meanwhile (percent of one core: this caller node, the C-node, the target).
-spec delivered_rate(node(), pos_integer(), fun(() -> pos_integer())) -> {float(), cpu()}.
delivered_rate(Target, Senders, Send) ->
    delivered_rate(Target, Senders, Send, fun() -> 0 end).

%% The same, each sender calling Last() once after its last Send().
-spec delivered_rate(node(), pos_integer(), fun(() -> pos_integer()), fun(() -> non_neg_integer())) ->
    {float(), cpu()}.
delivered_rate(Target, Senders, Send, Last) ->
    delivered_runs(Target, Senders, fun(Deadline) -> send_until(Send, Deadline, 0) + Last() end).

%% The same, each sender running Run(Deadline), which sends until Deadline and returns how many it sent.
-spec delivered_runs(node(), pos_integer(), fun((integer()) -> non_neg_integer())) -> {float(), cpu()}.
delivered_runs(Target, Senders, Run) ->
    ok = sink_ask(Target, reset),
    Parent = self(),
    Cpu0 = cpu_start(Target),
    Start = erlang:monotonic_time(microsecond),
    Deadline = Start + ?THROUGHPUT_MS * 1000,
    Pids = [spawn_link(fun() -> Parent ! {sent, self(), Run(Deadline)} end)
            || _ <- lists:seq(1, Senders)],
    Sent = lists:sum([receive {sent, P, N} -> N end || P <- Pids]),
    Done = sink_wait(Target, Sent),
    Seconds = (Done - Start) / 1.0e6,
    Cpu = cpu_percent(cpu_used(Cpu0), Seconds),
    progress("    ~s msg/s; CPU: caller node ~b%, C-node ~b%, target ~b% (of one core)",
             [fmt_num(Sent / Seconds), maps:get(caller, Cpu), maps:get(cnode, Cpu), maps:get(target, Cpu)]),
    {Sent / Seconds, Cpu}.

%% The CPU clock ticks used so far by this caller node, the C-node and Target, for cpu_used/1 to measure a
%% phase from.
-spec cpu_start(node()) -> [{caller | cnode | target, integer() | undefined, non_neg_integer()}].
cpu_start(Target) ->
    [{Who, P, cpu_ticks(P)}
     || {Who, P} <- [{caller, list_to_integer(os:getpid())}, {cnode, get(cnode_os_pid)},
                     {target, get({os_pid, Target})}]].

%% The clock ticks each of them used since cpu_start/1.
-spec cpu_used([{caller | cnode | target, integer() | undefined, non_neg_integer()}]) ->
    #{caller | cnode | target => integer()}.
cpu_used(Start) ->
    maps:from_list([{Who, cpu_ticks(P) - T0} || {Who, P, T0} <- Start]).

%% Ticks over Seconds, in percent of one core.
-spec cpu_percent(#{caller | cnode | target => integer()}, float()) -> cpu().
cpu_percent(Ticks, Seconds) ->
    maps:map(fun(_, T) -> round(100 * T / ?CLOCK_TICKS / Seconds) end, Ticks).

%% utime + stime of an OS process, in clock ticks (/proc/<pid>/stat, fields 14 and 15).
-spec cpu_ticks(integer() | undefined) -> non_neg_integer().
cpu_ticks(undefined) ->
    0;
cpu_ticks(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            %% The command name (field 2) may hold spaces: count fields after its closing parenthesis.
            [_, After] = string:split(Stat, <<")">>, trailing),
            Fields = binary:split(After, <<" ">>, [global, trim_all]),
            binary_to_integer(lists:nth(12, Fields)) + binary_to_integer(lists:nth(13, Fields));
        {error, _} ->
            0
    end.

%% The median CPU share of each OS process over the repetitions.
-spec median_cpu([cpu()]) -> cpu().
median_cpu(Cpus) ->
    maps:from_list([{K, median([maps:get(K, C) || C <- Cpus])} || K <- [caller, cnode, target]]).

-spec fmt_cpu(cpu()) -> binary().
fmt_cpu(#{caller := A, cnode := B, target := C}) ->
    fmt("CPU caller node ~b%, C-node ~b%, target ~b%", [A, B, C]).

-spec send_until(fun(() -> pos_integer()), integer(), non_neg_integer()) -> non_neg_integer().
send_until(Send, Deadline, N) ->
    case erlang:monotonic_time(microsecond) < Deadline of
        true -> send_until(Send, Deadline, N + Send());
        false -> N
    end.

%% Head-of-line blocking at equal load (issue 17): p99 of small calls made every PROBE_PERIOD_US while
%% BULK_SENDERS processes stream 8 MiB binaries to the same target, paced so that both sides carry the same
%% load: Load messages per second in all, each sender Load / BULK_SENDERS per second at even intervals from
%% its start (the senders start together, as a user's would, so their messages go out about together),
%% catching up when late but never sending ahead of its schedule. Direct: `!'
%% and erpc:call(T, erlang, node, []); pooled: each sender on its own lease with send/3, the probe the
%% one-shot call(Pool, erlang, node, []). Every process is an ordinary one, started in the order a user's
%% would be (senders, then the prober); the C-node is the one of the phase it runs in (default lanes, or the
%% tuned reference's). Each side's achieved rate is measured at the target (arrivals during the probes); a
%% figure whose sides' achieved rates differ by more than RATE_TOLERANCE is refused (MISS, disqualified).
%% A third side in the same repetitions, the row's floor (reference figure <Name>_floor): the pooled side's
%% load, probed by erpc:call over the bench node's own connection to the target, idle then; and at the same
%% time by Idle, a node that takes no part in the load, over its own connection (<Name>_idle_node).
-spec hol_equal(binary(), node(), node(), pos_integer(), binary()) -> [figure()].
hol_equal(Name, Target, Idle, Load, Config) ->
    {ok, Pool} = distribute_pool:new(Target, ?BULK_SENDERS + 2),
    %% Idle (a node that takes no part in the load) probes the target too in the floor's phases: connected now,
    %% so that no probe of it waits for a connection.
    pong = erpc:call(Idle, net_adm, ping, [Target]),
    Stamps = erpc:call(Target, erlang, spawn, [?MODULE, stamp_loop, [[]]]),
    true = erpc:call(Target, erlang, register, [?STAMP_SINK, Stamps]),
    Big = binary:copy(<<"y">>, ?BIG_BYTES),
    Sides = #{direct => {fun(Send) -> Send(fun() -> {?STAMP_SINK, Target} ! Big end) end,
                         fun() -> Target = erpc:call(Target, erlang, node, []) end},
              pooled => {fun(Send) ->
                                 {ok, N} = distribute_pool:with_connection(Pool, fun(C) ->
                                     Send(fun() -> ok = distribute_pool:send(C, ?STAMP_SINK, Big) end)
                                 end),
                                 N
                         end,
                         fun() -> {ok, Target} = distribute_pool:call(Pool, erlang, node, [], 60000) end},
              %% The floor: the pooled side's load, probed by erpc:call over the bench node's own connection
              %% to the target, which carries nothing else then: the two BEAM nodes alone, no C-node on the
              %% probe's way, under the load that the pooled side puts on the machine. At the same time Idle
              %% probes the same way: what the target and the machine alone take under that load.
              floor => {fun(Send) ->
                                {ok, N} = distribute_pool:with_connection(Pool, fun(C) ->
                                    Send(fun() -> ok = distribute_pool:send(C, ?STAMP_SINK, Big) end)
                                end),
                                N
                        end,
                        fun() -> Target = erpc:call(Target, erlang, node, []) end,
                        Idle}},
    try
        Reps = [begin
                    Order = case R rem 2 of 1 -> [direct, pooled, floor]; 0 -> [floor, pooled, direct] end,
                    progress("~s: rep ~b/~b: ~b x 8 MiB/s paced over ~b senders, a call every ~b us for ~b ms, ~p",
                             [Name, R, ?HOL_REPS, Load, ?BULK_SENDERS, ?PROBE_PERIOD_US, ?HOL_PROBE_MS, Order]),
                    maps:from_list([{Side, paced_load(Target, Load, maps:get(Side, Sides))} || Side <- Order])
                end || R <- lists:seq(1, ?HOL_REPS)],
        Med = fun(Side, Key) -> median([maps:get(Key, maps:get(Side, Rep)) || Rep <- Reps]) end,
        [D99, P99, F99] = [Med(S, p99) || S <- [direct, pooled, floor]],
        I99 = Med(floor, idle_p99),
        [DRate, PRate, FRate] = [Med(S, rate) || S <- [direct, pooled, floor]],
        Apart = abs(DRate - PRate) / max(DRate, PRate),
        Why = case Apart > ?RATE_TOLERANCE of
                  true -> fmt("DISQUALIFIED: achieved rates differ by ~.1f % (direct ~.1f, pooled ~.1f msg/s; "
                              "at most ~b % allowed): the two sides were not under the same load",
                              [100 * Apart, DRate, PRate, round(100 * ?RATE_TOLERANCE)]);
                  false -> <<>>
              end,
        PerRep = fun(Side, Key) -> fmt_list([maps:get(Key, maps:get(Side, Rep)) || Rep <- Reps]) end,
        [figure(Name, P99 / D99, <<"ratio">>, le, 0.5,
               [Why, [" " || Why =/= <<>>],
                fmt("p99 of call(Pool, erlang, node, []) / erpc:call, a call every ~b ms, under ~b x 8 MiB/s "
                    "paced over ~b senders: pooled ~.2f ms / direct ~.2f ms; achieved 8 MiB msg/s at the target: "
                    "direct ~.1f, pooled ~.1f (apart ~.1f %); medians of ~b reps, sides alternating; ~s; "
                    "per rep p99 us: direct ~s, pooled ~s; probes: direct ~s, pooled ~s",
                    [?PROBE_PERIOD_US div 1000, Load, ?BULK_SENDERS, P99 / 1000, D99 / 1000, DRate, PRate,
                     100 * Apart, ?HOL_REPS, Config, PerRep(direct, p99), PerRep(pooled, p99),
                     PerRep(direct, probes), PerRep(pooled, probes)])],
               ratio, #{sides => [{<<"direct_p99">>, D99, <<"us">>}, {<<"pooled_p99">>, P99, <<"us">>},
                                  {<<"direct_achieved">>, DRate, <<"msg/s">>},
                                  {<<"pooled_achieved">>, PRate, <<"msg/s">>}],
                        paced_msgs_per_s => Load, rates_apart => Apart, disqualified => Why =/= <<>>,
                        disqualified_why => Why, configuration => Config,
                        reps => [maps:map(fun(_, M) -> maps:with([p99, idle_p99, rate, probes, sent], M) end, Rep)
                                 || Rep <- Reps]}),
         reference(hol_floor_name(Name), F99 / D99, <<"ratio">>,
                   fmt("p99 of erpc:call over the bench node's own connection to the target (idle: no C-node on "
                       "the probe's way) under the pooled side's load / the direct p99: ~.2f ms / ~.2f ms; the "
                       "least ~s can be while the machine carries the pooled side's work; achieved 8 MiB msg/s: "
                       "~.1f; per rep p99 us: ~s; medians of ~b reps, in the same repetitions as ~s",
                       [F99 / 1000, D99 / 1000, Name, FRate, PerRep(floor, p99), ?HOL_REPS, Name]),
                   #{sides => [{<<"floor_p99">>, F99, <<"us">>}, {<<"direct_p99">>, D99, <<"us">>},
                               {<<"floor_achieved">>, FRate, <<"msg/s">>}]}),
         reference(hol_idle_name(Name), I99 / D99, <<"ratio">>,
                   fmt("p99 of erpc:call from ~s, a node that takes no part in the load (its own connection to "
                       "the target), under the pooled side's load, at the same time as the floor's probe / the "
                       "direct p99: ~.2f ms / ~.2f ms; what the target and the machine alone take then, with "
                       "neither the C-node nor the senders' node on the probe's way; per rep p99 us: ~s; "
                       "medians of ~b reps", [Idle, I99 / 1000, D99 / 1000, PerRep(floor, idle_p99), ?HOL_REPS]),
                   #{sides => [{<<"idle_node_p99">>, I99, <<"us">>}, {<<"direct_p99">>, D99, <<"us">>}]})]
    after
        exit(Stamps, kill),
        distribute_pool:destroy(Pool)
    end.

%% One side of a hol_equal repetition: the paced senders (Run(Send) runs a sender's loop, leased or not),
%% after EQUAL_WARMUP_MS of them an ordinary prober for HOL_PROBE_MS; then the senders stop and the target is
%% let drain. The p99 of the probes (us), their count, and the 8 MiB messages per second that arrived at the
%% target during the probes (from the first arrival to the last in that window).
-spec paced_load(node(), pos_integer(), {paced_run(), fun(() -> term())} | {paced_run(), fun(() -> term()), node()}) ->
    #{atom() => number()}.
paced_load(Target, Load, {Run, Probe}) ->
    paced_load(Target, Load, {Run, Probe, none});
paced_load(Target, Load, {Run, Probe, Idle}) ->
    ok = sink_ask(Target, ?STAMP_SINK, reset),
    IntervalUs = ?BULK_SENDERS * 1000000 div Load,
    Senders = [spawn_monitor(fun() ->
                                     Due = erlang:monotonic_time(microsecond),
                                     exit({sent, Run(fun(Send) -> paced_loop(Send, Due, IntervalUs, 0) end)})
                             end) || _ <- lists:seq(1, ?BULK_SENDERS)],
    timer:sleep(?EQUAL_WARMUP_MS),
    Parent = self(),
    Ref = make_ref(),
    IdleProber = case Idle of
                     none -> none;
                     _ -> spawn_monitor(fun() ->
                                                exit({samples, erpc:call(Idle, ?MODULE, probe_for,
                                                                         [Target, ?HOL_PROBE_MS],
                                                                         ?HOL_PROBE_MS + 60000)})
                                        end)
                 end,
    {Prober, ProberMref} =
        spawn_monitor(fun() ->
                              From = os:system_time(microsecond),
                              Start = erlang:monotonic_time(microsecond),
                              Samples = probe_every(Probe, Start, Start + ?HOL_PROBE_MS * 1000, []),
                              Parent ! {Ref, From, os:system_time(microsecond), Samples}
                      end),
    {W0, W1, Us} = receive
                       {Ref, A, B, S} -> {A, B, S};
                       {'DOWN', ProberMref, process, Prober, ProberDown} -> error({prober, ProberDown})
                   end,
    IdleP99 = case IdleProber of
                  none -> #{};
                  {IdlePid, IdleMref} ->
                      receive
                          {'DOWN', IdleMref, process, IdlePid, {samples, IdleUs}} ->
                              #{idle_p99 => percentile(0.99, IdleUs)};
                          {'DOWN', IdleMref, process, IdlePid, IdleDown} ->
                              error({idle_prober, IdleDown})
                      after ?HOL_PROBE_MS + 90000 ->
                          error(idle_prober_stuck)
                      end
              end,
    [P ! stop || {P, _} <- Senders],
    Sent = [receive {'DOWN', M, process, P, {sent, N}} -> N; {'DOWN', M, process, P, Why} -> error({bulk_sender, Why})
            after 120000 -> error(bulk_sender_stuck) end || {P, M} <- Senders],
    sink_settle(Target, ?STAMP_SINK),
    Arrived = [T || T <- sink_ask(Target, ?STAMP_SINK, stamps), T >= W0, T =< W1],
    IdleP99#{p99 => percentile(0.99, Us), probes => length(Us), rate => arrival_rate(Arrived),
             sent => lists:sum(Sent)}.

%% Run on a node that takes no part in a hol_equal load: the floor's probe, erpc:call(Target, erlang, node, [])
%% once per PROBE_PERIOD_US for Ms, from there. The round trips (us).
-spec probe_for(node(), pos_integer()) -> [float()].
probe_for(Target, Ms) ->
    Start = erlang:monotonic_time(microsecond),
    probe_every(fun() -> Target = erpc:call(Target, erlang, node, []) end, Start, Start + Ms * 1000, []).

%% Arrivals per second: the least-squares slope of the arrival count over the arrival times (us). The senders
%% send together, so messages arrive in clusters; a slope over every arrival is not thrown off by where the
%% window cuts a cluster, as the first-to-last span would be.
-spec arrival_rate([integer()]) -> float().
arrival_rate(Stamps) when length(Stamps) < 2 ->
    0.0;
arrival_rate(Stamps) ->
    N = length(Stamps),
    Is = lists:seq(1, N),
    MeanT = lists:sum(Stamps) / N,
    MeanI = (N + 1) / 2,
    Cov = lists:sum([(T - MeanT) * (I - MeanI) || {T, I} <- lists:zip(Stamps, Is)]),
    Var = lists:sum([(T - MeanT) * (T - MeanT) || T <- Stamps]),
    case Var == 0 of
        true -> 0.0;
        false -> Cov / Var * 1.0e6
    end.

%% Sends at Due, Due + IntervalUs, ... until told to stop: a message late on its schedule goes at once (the
%% sender catches up), none goes before its time. Returns the number sent.
-spec paced_loop(fun(() -> term()), integer(), pos_integer(), non_neg_integer()) -> non_neg_integer().
paced_loop(Send, Due, IntervalUs, N) ->
    WaitMs = max(0, ceil((Due - erlang:monotonic_time(microsecond)) / 1000)),
    receive
        stop -> N
    after WaitMs ->
        case erlang:monotonic_time(microsecond) >= Due of
            true -> Send(), paced_loop(Send, Due + IntervalUs, IntervalUs, N + 1);
            false -> paced_loop(Send, Due, IntervalUs, N)
        end
    end.

%% One Probe() per PROBE_PERIOD_US slot until Deadline; a probe that overran its slot is followed by the next
%% slot's (missed slots are skipped, not made up). Each probe's round trip in us.
-spec probe_every(fun(() -> term()), integer(), integer(), [float()]) -> [float()].
probe_every(Probe, Slot, Deadline, Acc) ->
    Now = erlang:monotonic_time(microsecond),
    if
        Now >= Deadline ->
            Acc;
        Now < Slot ->
            timer:sleep(ceil((Slot - Now) / 1000)),
            probe_every(Probe, Slot, Deadline, Acc);
        true ->
            [Us] = time_calls(Probe, 1),
            After = erlang:monotonic_time(microsecond),
            Next = Slot + ?PROBE_PERIOD_US * (1 + (After - Slot) div ?PROBE_PERIOD_US),
            probe_every(Probe, Next, Deadline, [Us | Acc])
    end.

%% Notes the arrival time (os:system_time, us) of every message; {Ref, From, count | reset | stamps} answer
%% with the number noted, after forgetting them, or with them (oldest first).
-spec stamp_loop([integer()]) -> no_return().
stamp_loop(Stamps) ->
    receive
        {Ref, From, count} when is_reference(Ref), is_pid(From) -> From ! {Ref, length(Stamps)}, stamp_loop(Stamps);
        {Ref, From, reset} when is_reference(Ref), is_pid(From) -> From ! {Ref, ok}, stamp_loop([]);
        {Ref, From, stamps} when is_reference(Ref), is_pid(From) -> From ! {Ref, lists:reverse(Stamps)},
                                                                     stamp_loop(Stamps);
        _ -> stamp_loop([os:system_time(microsecond) | Stamps])
    end.

%% Bulk throughput (issue 17): BULK_SENDERS processes send 8 MiB binaries as fast as they can for
%% THROUGHPUT_MS; delivered bytes per second at the sink (until it has every message), directly with `!' and
%% through a pool of BULK_SENDERS (each sender on its own lease, send/3), sides alternating over
%% THROUGHPUT_REPS; medians. Also the C-node's CPU time per GiB it relayed in the pooled phases.
-spec bulk_throughput(node()) -> [figure()].
bulk_throughput(Target) ->
    {ok, Pool} = distribute_pool:new(Target, ?BULK_SENDERS),
    Big = binary:copy(<<"z">>, ?BIG_BYTES),
    Direct = fun(Deadline) -> send_until(fun() -> {?SINK, Target} ! Big, 1 end, Deadline, 0) end,
    Pooled = fun(Deadline) ->
                     {ok, N} = distribute_pool:with_connection(Pool, fun(C) ->
                         send_until(fun() -> ok = distribute_pool:send(C, ?SINK, Big), 1 end, Deadline, 0)
                     end),
                     N
             end,
    MiB = fun(Rate) -> Rate * ?BIG_BYTES / (1024 * 1024) end,
    SpliceBefore = cnode_splice(),
    try
        Reps = [begin
                    Order = case R rem 2 of 1 -> [direct, pooled]; 0 -> [pooled, direct] end,
                    progress("bulk_throughput: rep ~b/~b: ~b senders of 8 MiB for ~b ms, ~p",
                             [R, ?THROUGHPUT_REPS, ?BULK_SENDERS, ?THROUGHPUT_MS, Order]),
                    Run = #{direct => Direct, pooled => Pooled},
                    maps:from_list([{S, delivered_runs(Target, ?BULK_SENDERS, maps:get(S, Run))} || S <- Order])
                end || R <- lists:seq(1, ?THROUGHPUT_REPS)],
        [D, P] = [median([MiB(element(1, maps:get(S, Rep))) || Rep <- Reps]) || S <- [direct, pooled]],
        %% The C-node's share of a core over the pooled phase, over the GiB it relayed per second meanwhile.
        CpuPerGiB = median([maps:get(cnode, Cpu) / 100 / (MiB(Rate) / 1024)
                            || Rep <- Reps, {Rate, Cpu} <- [maps:get(pooled, Rep)]]),
        [DCpu, PCpu] = [median_cpu([element(2, maps:get(S, Rep)) || Rep <- Reps]) || S <- [direct, pooled]],
        SpliceAfter = cnode_splice(),
        [Spliced, Fallbacks] = [maps:get(K, SpliceAfter) - maps:get(K, SpliceBefore) || K <- [packets, fallbacks]],
        Detail = fmt("delivered MiB/s at the sink, ~b processes sending 8 MiB binaries for ~b ms: pool of ~b "
                     "(a lease each, send/3) ~.1f / direct ! ~.1f; medians of ~b, sides alternating; "
                     "pooled: ~s; direct: ~s; C-node: ~b packets through pipes, ~b of them read into memory "
                     "(max_splice_pipes ~b)",
                     [?BULK_SENDERS, ?THROUGHPUT_MS, ?BULK_SENDERS, P, D, ?THROUGHPUT_REPS,
                      fmt_cpu(PCpu), fmt_cpu(DCpu), Spliced, Fallbacks,
                      maps:get(max_splice_pipes, maps:get(limits, cnode_info()))]),
        [figure(<<"bulk_throughput">>, P / D, <<"ratio">>, ge, 1.0, Detail, ratio,
                #{sides => [{<<"direct">>, D, <<"MiB/s">>}, {<<"pooled">>, P, <<"MiB/s">>}],
                  reps_mib_per_s => [[MiB(element(1, maps:get(S, Rep))) || S <- [direct, pooled]] || Rep <- Reps],
                  cpu_percent => #{direct => DCpu, pooled => PCpu}}),
         reference(<<"bulk_cnode_cpu_s_per_gib">>, CpuPerGiB, <<"s/GiB">>,
                   fmt("C-node utime + stime (/proc/<pid>/stat) over each pooled phase of bulk_throughput, per GiB "
                       "delivered; median of ~b", [?THROUGHPUT_REPS]), #{})]
    after
        distribute_pool:destroy(Pool)
    end.

%% The C-node's info map, and its splice counters.
-spec cnode_info() -> map().
cnode_info() ->
    {ok, Info} = gen_server:call(distribute_pool:default_cnode(), info, 10000),
    Info.

-spec cnode_splice() -> #{packets := non_neg_integer(), fallbacks := non_neg_integer(), atom() => term()}.
cnode_splice() ->
    maps:get(splice, cnode_info()).

%% scale (issue 17): HELD_POOLS pools of HELD_PER_POOL connections, one per target, opened a pool at a time on
%% a fresh C-node; the C-node's RSS (VmRSS) is read, 2 s idle, once RSS_STEPS connections are up; the growth
%% per connection at the last step, then whether all of them stay up, answering ticks, for HOLD_S seconds.
-spec scale([node()]) -> [figure()].
scale(Targets) ->
    OsPid = get(cnode_os_pid),
    timer:sleep(1000),
    Rss0 = rss_kb(OsPid),
    Total = ?HELD_POOLS * ?HELD_PER_POOL,
    progress("scale: C-node RSS before: ~b kB; opening ~b pools x ~b connections", [Rss0, ?HELD_POOLS, ?HELD_PER_POOL]),
    Start = erlang:monotonic_time(millisecond),
    Ref = make_ref(),
    put(Ref, []),
    try
        Steps = lists:foldl(
                  fun(T, Acc) ->
                          {ok, P} = distribute_pool:new(T, #{max_connections => ?HELD_PER_POOL,
                                                             min_connections => ?HELD_PER_POOL}),
                          put(Ref, [P | get(Ref)]),
                          Up = length(get(Ref)) * ?HELD_PER_POOL,
                          case lists:member(Up, ?RSS_STEPS) of
                              true ->
                                  timer:sleep(2000),
                                  Rss = rss_kb(OsPid),
                                  progress("scale: ~b connections up after ~b ms; C-node RSS ~b kB, ~b open fds",
                                           [Up, erlang:monotonic_time(millisecond) - Start, Rss, open_fds(OsPid)]),
                                  [{Up, Rss} | Acc];
                              false ->
                                  Acc
                          end
                  end, [], lists:sublist(Targets, ?HELD_POOLS)),
        Pools = get(Ref),
        Rss1 = proplists:get_value(Total, Steps),
        PerConn = (Rss1 - Rss0) * 1024 / Total,
        RssFigures = [reference(rss_figure_name(N), Kb, <<"kB">>,
                                fmt("C-node VmRSS with ~b idle connections (~b per target); ~b kB before any",
                                    [N, ?HELD_PER_POOL, Rss0]), #{connections => N})
                      || {N, Kb} <- lists:reverse(Steps)],
        Bytes = figure(<<"bytes_per_idle_connection">>, PerConn, <<"bytes">>, le, 12288,
                       fmt("C-node VmRSS ~b kB -> ~b kB with ~b idle connections (~b pools x ~b, one per target)",
                           [Rss0, Rss1, Total, ?HELD_POOLS, ?HELD_PER_POOL]),
                       absolute, #{rss_before_kb => Rss0, rss_after_kb => Rss1, connections => Total,
                                   rss_steps_kb => [[N, Kb] || {N, Kb} <- lists:reverse(Steps)]}),
        put(rss_steps, [{0, Rss0} | lists:reverse(Steps)]),
        Samples = hold(Pools, ?HOLD_S div ?HOLD_SAMPLE_S, []),
        Held = lists:min([H || {H, _, _} <- Samples]),
        Dropped = lists:max([D || {_, D, _} <- Samples]),
        Extra = lists:max([E || {_, _, E} <- Samples]),
        HiddenSeen = lists:sum([length(erpc:call(T, erlang, nodes, [hidden]))
                                || T <- lists:sublist(Targets, ?HELD_POOLS)]),
        Rss2 = rss_kb(OsPid),
        Held1 = figure(<<"connections_held">>, Held, <<"connections">>, ge, Total,
                       fmt("~b targets x ~b, net_ticktime ~s s, ~b s: fewest up at a sample ~b, "
                           "target_down closes ~b, re-opened ~b, hidden nodes seen by the targets at the end ~b "
                           "(any drop is a MISS); RSS after ~b kB",
                           [?HELD_POOLS, ?HELD_PER_POOL, ?TICKTIME_S, ?HOLD_S, Held, Dropped, Extra, HiddenSeen,
                            Rss2]),
                       absolute, #{min_up => Held, target_down => Dropped, reopened => Extra,
                                   disqualified => Dropped + Extra > 0,
                                   hidden_seen_by_targets => HiddenSeen, rss_end_kb => Rss2}),
        RssFigures ++ [Bytes, Held1]
    after
        [distribute_pool:destroy(P) || P <- get(Ref)],
        erase(Ref)
    end.

-spec rss_figure_name(pos_integer()) -> binary().
rss_figure_name(N) ->
    fmt("rss_at_~b_connections_kb", [N]).

%% Samples every HOLD_SAMPLE_S: {connections up (available + in use), target_down closes, connections
%% created beyond the first ones}.
-spec hold([term()], non_neg_integer(), [{integer(), integer(), integer()}]) -> [{integer(), integer(), integer()}].
hold(_Pools, 0, Acc) ->
    Acc;
hold(Pools, Left, Acc) ->
    timer:sleep(?HOLD_SAMPLE_S * 1000),
    Stats = [S || P <- Pools, {ok, S} <- [distribute_pool:stats(P)]],
    length(Stats) =:= length(Pools) orelse error({stats_failed, length(Stats)}),
    Up = lists:sum([A + U || #{available_connections := A, in_use_connections := U} <- Stats]),
    Down = lists:sum([D || #{connections_closed := #{target_down := D}} <- Stats]),
    Extra = lists:sum([C || #{connections_created := C} <- Stats]) - ?HELD_POOLS * ?HELD_PER_POOL,
    Elapsed = (?HOLD_S div ?HOLD_SAMPLE_S - Left + 1) * ?HOLD_SAMPLE_S,
    progress("connections_held: ~b/~b s: ~b up, target_down ~b, re-opened ~b, C-node RSS ~b kB",
             [Elapsed, ?HOLD_S, Up, Down, Extra, rss_kb(get(cnode_os_pid))]),
    hold(Pools, Left - 1, [{Up, Down, Extra} | Acc]).

-spec open_fds(integer()) -> non_neg_integer().
open_fds(OsPid) ->
    case file:list_dir("/proc/" ++ integer_to_list(OsPid) ++ "/fd") of
        {ok, Fds} -> length(Fds);
        {error, _} -> 0
    end.

-spec rss_kb(integer()) -> integer().
rss_kb(OsPid) ->
    {ok, Status} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =:= {0, 6}],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).

%%% Figures, output

-spec figure(binary(), number(), binary(), le | ge | none, number() | none, iodata(),
             ratio | absolute | reference, map()) -> figure().
figure(Name, Value, Unit, Op, Goal, Detail, Kind, Extra) ->
    #{name => Name, value => Value, unit => Unit, goal_op => Op, goal => Goal,
      detail => iolist_to_binary(Detail), kind => Kind, extra => Extra}.

-spec reference(binary(), number(), binary(), iodata(), map()) -> figure().
reference(Name, Value, Unit, Detail, Extra) ->
    figure(Name, Value, Unit, none, none, Detail, reference, Extra).

-spec skipped(binary(), binary(), le | ge, number(), binary()) -> figure().
skipped(Name, Unit, Op, Goal, Why) ->
    #{name => Name, value => skipped, unit => Unit, goal_op => Op, goal => Goal, detail => Why,
      kind => ratio}.

-spec verdict(figure()) -> binary().
verdict(#{value := skipped, extra := #{error := true}}) -> <<"ERROR">>;
verdict(#{value := skipped}) -> <<"SKIP">>;
verdict(#{kind := reference}) -> <<"REF">>;
verdict(#{extra := #{disqualified := true}}) -> <<"MISS">>;
verdict(#{value := V, goal_op := le, goal := G}) when V =< G -> <<"PASS">>;
verdict(#{value := V, goal_op := ge, goal := G}) when V >= G -> <<"PASS">>;
verdict(_) -> <<"MISS">>.

-spec report(figure()) -> ok.
report(#{name := Name, value := skipped, extra := #{error := true}, detail := Why}) ->
    io:format("BENCH ~s error (~s)~n", [Name, Why]);
report(#{name := Name, value := skipped, detail := Why}) ->
    io:format("BENCH ~s skipped (~s)~n", [Name, Why]);
report(#{name := Name, value := V, unit := Unit, kind := Kind} = F) ->
    [io:format("BENCH ~s.~s ~s ~s~n", [Name, Side, fmt_num(SV), SU])
     || {Side, SV, SU} <- maps:get(sides, maps:get(extra, F, #{}), [])],
    io:format("BENCH ~s ~s ~s~n", [Name, fmt_num(V), Unit]),
    Kind =:= ratio andalso io:format("RATIO ~s ~s~n", [Name, fmt_num(V)]),
    case Kind of
        reference -> io:format("    -> ~s ~s (reference, no goal)~n", [fmt_num(V), Unit]);
        _ -> io:format("    -> ~s ~s (goal ~s) ~s~n", [fmt_num(V), Unit, goal_text(F), verdict(F)])
    end,
    case maps:get(extra, F, #{}) of
        #{disqualified := true, disqualified_why := Why} -> io:format("    ~s~n", [Why]);
        _ -> ok
    end.

-spec goal_text(figure()) -> string().
goal_text(#{goal_op := none}) -> "-";
goal_text(#{goal_op := le, goal := G}) -> "<= " ++ fmt_num(G);
goal_text(#{goal_op := ge, goal := G}) -> ">= " ++ fmt_num(G).

-spec finish(string(), [figure()], integer()) -> ok.
finish(Dir, Figures, ElapsedMs) ->
    Rows = [{binary_to_list(N), value_text(F), binary_to_list(U), goal_text(F), binary_to_list(verdict(F)),
             binary_to_list(D)}
            || #{name := N, unit := U, detail := D} = F <- Figures],
    Head = {"figure", "value", "unit", "goal", "result", "how"},
    W = fun(I) -> lists:max([length(element(I, R)) || R <- [Head | Rows]]) end,
    Line = fun({A, B, C, D, E, G}) ->
                   io_lib:format("| ~-*s | ~*s | ~-*s | ~-*s | ~-*s | ~s |~n",
                                 [W(1), A, W(2), B, W(3), C, W(4), D, W(5), E, G])
           end,
    Rule = io_lib:format("|~s|~s:|~s|~s|~s|---|~n",
                         [lists:duplicate(W(I) + 2 - case I of 2 -> 1; _ -> 0 end, $-) || I <- [1, 2, 3, 4, 5]]),
    Table = [Line(Head), Rule, [Line(R) || R <- Rows]],
    io:format("~n== results (~.1f s in all)~n~n~s~n", [ElapsedMs / 1000, Table]),
    ok = filelib:ensure_dir(filename:join([Dir, "tmp", "x"])),
    Json = json(#{run => #{started_utc => list_to_binary(calendar:system_time_to_rfc3339(
                                                          erlang:system_time(second) - ElapsedMs div 1000,
                                                          [{offset, "Z"}])),
                           duration_s => ElapsedMs / 1000,
                           otp_release => list_to_binary(erlang:system_info(otp_release)),
                           schedulers => erlang:system_info(schedulers_online),
                           cores => erlang:system_info(logical_processors_available)},
                  figures => [json_figure(F) || F <- Figures]}),
    %% A run of selected figures only does not replace the results of a full run.
    JsonFile = case get(only) of
                   [] -> filename:join(Dir, "latest.json");
                   _ -> filename:join([Dir, "tmp", "partial.json"])
               end,
    ok = file:write_file(JsonFile, [Json, "\n"]),
    ok = file:write_file(filename:join([Dir, "tmp", "table.md"]), Table),
    ok = file:write_file(filename:join([Dir, "tmp", "plot.dat"]), plot_data(Figures)),
    %% The C-node's RSS on the way to HELD_POOLS x HELD_PER_POOL connections (scale/1), for the second plot.
    RssFile = filename:join([Dir, "tmp", "rss.dat"]),
    case get(rss_steps) of
        undefined -> _ = file:delete(RssFile);
        Steps -> ok = file:write_file(RssFile, ["# connections rss_kb\n"
                                                | [io_lib:format("~b ~b~n", [N, Kb]) || {N, Kb} <- Steps]])
    end,
    io:format("wrote ~s (and the table and plot data under ~s/tmp)~n", [JsonFile, Dir]).

-spec value_text(figure()) -> string().
value_text(#{value := skipped}) -> "skipped";
value_text(#{value := V}) -> fmt_num(V).

%% One line per measured figure: name, how far from its goal (>= 1 meets it), 0 miss / 1 pass (a disqualified
%% figure is a miss whatever its score).
-spec plot_data([figure()]) -> iodata().
plot_data(Figures) ->
    ["# figure score(>=1 meets the goal) pass\n"
     | [io_lib:format("~s ~.6g ~b~n", [N, float(Score), case verdict(F) of <<"PASS">> -> 1; _ -> 0 end])
        || #{name := N, value := V, goal := G, goal_op := Op} = F <- Figures, is_number(V), Op =/= none,
           Score <- [case Op of
                         ge -> V / G;
                         le when V == 0 -> 1000.0;
                         le -> G / V
                     end]]].

-spec json_figure(figure()) -> map().
json_figure(#{name := N, value := V, unit := U, goal_op := Op, goal := G, detail := D} = F) ->
    Extra = maps:get(extra, F, #{}),
    Sides = [#{name => S, value => SV, unit => SU} || {S, SV, SU} <- maps:get(sides, Extra, [])],
    #{name => N, value => case V of skipped -> null; _ -> V end, unit => U,
      goal_op => case Op of none -> null; _ -> Op end, goal => case G of none -> null; _ -> G end,
      result => verdict(F), detail => D, sides => Sides, data => maps:remove(sides, Extra)}.

%%% Small helpers

-spec json(term()) -> iodata().
json(null) -> <<"null">>;
json(true) -> <<"true">>;
json(false) -> <<"false">>;
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(I) when is_integer(I) -> integer_to_binary(I);
json(F) when is_float(F) -> float_to_binary(F, [{decimals, 6}, compact]);
json(B) when is_binary(B) -> [$", escape(B), $"];
json(L) when is_list(L) -> [$[, lists:join($,, [json(X) || X <- L]), $]];
json(M) when is_map(M) ->
    [${, lists:join($,, [[json(key(K)), $:, json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), $}].

-spec key(atom() | binary()) -> binary().
key(K) when is_atom(K) -> atom_to_binary(K);
key(K) when is_binary(K) -> K.

-spec escape(binary()) -> iodata().
escape(B) ->
    [case C of
         $" -> "\\\"";
         $\\ -> "\\\\";
         C when C < 32 -> io_lib:format("\\u~4.16.0b", [C]);
         C -> C
     end || <<C>> <= B].

-spec median([number()]) -> number().
median(L) -> percentile(0.5, L).

-spec mean([number(), ...]) -> float().
mean(L) -> lists:sum(L) / length(L).

%% Nearest-rank percentile.
-spec percentile(float(), [number()]) -> number().
percentile(P, L) ->
    Sorted = lists:sort(L),
    lists:nth(max(1, min(length(Sorted), ceil(P * length(Sorted)))), Sorted).

-spec fmt(string(), [term()]) -> binary().
fmt(Format, Args) -> iolist_to_binary(io_lib:format(Format, Args)).

-spec fmt_num(number() | undefined) -> string().
fmt_num(undefined) -> "n/a";
fmt_num(I) when is_integer(I) -> integer_to_list(I);
fmt_num(F) when abs(F) >= 1000 -> integer_to_list(round(F));
fmt_num(F) when abs(F) >= 10 -> float_to_list(F, [{decimals, 1}]);
fmt_num(F) -> float_to_list(F, [{decimals, 3}]).

-spec fmt_list([number()]) -> string().
fmt_list(L) -> lists:join(" ", [fmt_num(X) || X <- L]).

-spec progress(string(), [term()]) -> ok.
progress(Format, Args) ->
    case get(t0) of
        undefined ->
            ok; % in a peer of tls_cost/0, whose standard I/O is its control channel
        T0 ->
            S = (erlang:monotonic_time(millisecond) - T0) div 1000,
            io:format("[~3b s] " ++ Format ++ "~n", [S | Args])
    end.
