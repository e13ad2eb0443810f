%% The driver of `make bench` (scripts/bench.sh runs it under a private epmd): starts plain target nodes, the
%% application with its embedded C-node, measures every figure of docs/BENCHMARKS.md, prints progress, one
%% `BENCH <name> <value> <unit>` line per figure and one `RATIO <name> <value>` line per comparison, a table,
%% and writes the results as JSON (plus the data the plot is drawn from) under the results directory.
%%
%% Comparisons run both sides in the same run against the same target node, alternating the sides in every
%% repetition, and report the median over the repetitions. Nothing here is tuned to reach a goal: a figure
%% that misses its goal is printed as MISS.
-module(dpool_bench).

-export([main/1]).
-export([sink_loop/2]).
-export([echo_loop/0]).
-export([tls_side/2]).

-define(TARGETS, 10).
-define(TICKTIME_S, "8").
-define(SINK, dpool_bench_sink).
%% Figures with the same repetitions, so medians mean the same everywhere.
-define(REPS, 5).
-define(CALLS_PER_REP, 1000).
-define(HOL_REPS, 3).
-define(HOL_PROBE_MS, 3000).
-define(BIG_BYTES, 8 * 1024 * 1024).
-define(BULK_SENDERS, 4).
-define(LANES, 8).
-define(PIPELINE_SENDERS, 16).
-define(THROUGHPUT_MS, 3000).
-define(THROUGHPUT_REPS, 3).
-define(WARMUP_REPS, 5).
-define(HELD_POOLS, 10).
-define(HELD_PER_POOL, 100).
-define(HOLD_S, 120).
-define(HOLD_SAMPLE_S, 10).
%% USER_HZ: the unit of the CPU times in /proc/<pid>/stat.
-define(CLOCK_TICKS, 100).

%% Percent of one core each OS process used during a throughput repetition.
-type cpu() :: #{caller := non_neg_integer(), cnode := non_neg_integer(), target := non_neg_integer()}.

%% The reference figures of call_floors/1 (no goal): what a pooled call is made of, and the floors that follow.
-define(FLOOR_FIGURES, [<<"floor_direct_erpc_p50">>, <<"floor_beam_echo_p50">>, <<"floor_cnode_ping_p50">>,
                        <<"floor_cnode_target_p50">>, <<"floor_pooled_call_ratio">>,
                        <<"floor_with_connection_ratio">>]).

%% The figures of hol/1: hol_p99 and the reference figures measured with it, in the same repetitions.
%% The figures of tls_cost/1: what TLS distribution costs, plain and TLS clusters measured in turn.
-define(TLS_FIGURES, [<<"tls_connect_p50">>, <<"tls_call_p50">>, <<"tls_msgs_per_s">>]).
-define(TLS_ROUNDS, 3).
-define(TLS_CONNECTS, 100).

-define(HOL_FIGURES, [<<"hol_p99">>, <<"hol_with_connection_p99">>, <<"hol_floor_beam_p99">>,
                      <<"hol_floor_ratio">>]).

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
    progress("pool_core_ops: reading the Google Benchmark results (~s)", [CoreCsv]),
    Core = pool_core_figure(CoreCsv),
    selected(<<"pool_core_ops">>) andalso report(Core),
    progress("starting ~b plain target nodes (net_ticktime ~s)", [?TARGETS, ?TICKTIME_S]),
    Targets = start_targets(?TARGETS),
    try
        Figures = [F || #{name := N} = F <- [Core | measure(Targets)], selected(N)],
        finish(ResultsDir, Figures, erlang:monotonic_time(millisecond) - T0)
    after
        stop_cnode(),
        stop_targets(Targets)
    end.

-spec measure([{pid(), node(), integer()}]) -> [figure()].
measure(Targets) ->
    Nodes = [N || {_, N, _} <- Targets],
    [T1, T2, T3 | _] = Nodes,
    start_cnode(),
    Skip = fun(Name) -> skipped(Name, <<>>, ge, 0, <<"not selected">>) end,
    Warm = run_figure(<<"warmup_100_ms">>, fun() -> warmup_100(T1) end),
    WithConn = run_figure(<<"with_connection_call_p50">>, fun() -> with_connection_call(T1) end),
    PooledCall = run_figure(<<"pooled_call_p50">>, fun() -> pooled_call(T1) end),
    Floors = run_group(?FLOOR_FIGURES, fun() -> call_floors(T1) end),
    OneConn = run_figure(<<"one_connection_ops">>, fun() -> one_connection_ops(T2) end),
    Fanout = run_figure(<<"fanout_throughput">>, fun() -> fanout(T2) end),
    Hol = run_group(?HOL_FIGURES, fun() -> hol(T3) end),
    Tls = run_group(?TLS_FIGURES, fun() -> tls_cost() end),
    %% A fresh C-node, so that its RSS growth is the connections' and not left over from the figures above.
    Connections = selected(<<"bytes_per_idle_connection">>) orelse selected(<<"connections_held">>),
    {Bytes, Held} = try Connections orelse throw(not_selected),
                        progress("restarting the application for a fresh C-node", []),
                        stop_cnode(),
                        start_cnode(),
                        held_connections(Nodes)
                    catch throw:not_selected ->
                            {Skip(<<"bytes_per_idle_connection">>), Skip(<<"connections_held">>)};
                          Class:Reason:Stack ->
                            io:format("connections phase failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
                            B = failed(<<"bytes_per_idle_connection">>, Class, Reason),
                            report(B),
                            {B, failed(<<"connections_held">>, Class, Reason)}
                    end,
    selected(<<"connections_held">>) andalso report(Held),
    [Warm, WithConn, PooledCall | Floors] ++ [OneConn, Fanout | Hol] ++ Tls ++ [Bytes, Held].

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
                    orelse (lists:member(Name, ?HOL_FIGURES) andalso lists:member("hol_p99", Only))
                    orelse (lists:member(Name, ?TLS_FIGURES) andalso lists:member("tls", Only))
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

-spec start_cnode() -> ok.
start_cnode() ->
    application:load(distribute_pool),
    ok = application:set_env(distribute_pool, cnode_args,
                             ["--net-ticktime", ?TICKTIME_S, "--log-level", "warn"]),
    ok = application:set_env(distribute_pool, lanes, lanes()),
    {ok, _} = application:ensure_all_started(distribute_pool),
    {ok, OsPid} = distribute_pool_cnode:os_pid(),
    put(cnode_os_pid, OsPid),
    progress("C-node up (os pid ~b)", [OsPid]).

%% The C-node's lanes: ?LANES, or DPOOL_BENCH_LANES. hol_p99 has 5 busy processes of one node talking to the
%% C-node (4 senders and the prober), which start one after the other and so get 5 different lanes when there
%% are at least 5 (docs/BENCHMARKS.md).
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
    Ref = make_ref(),
    {?SINK, Node} ! {Ref, self(), What},
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
-spec sink_settle(node()) -> ok.
sink_settle(Node) ->
    A = sink_ask(Node, count),
    timer:sleep(300),
    case sink_ask(Node, count) of
        A -> ok;
        _ -> sink_settle(Node)
    end.

%%% Figures

-spec pool_core_figure(string()) -> figure().
pool_core_figure(Csv) ->
    Goal = 5000000,
    case file:read_file(Csv) of
        {ok, Text} ->
            Rows = parse_benchmark_csv(Text),
            case lists:keyfind(<<"lease_and_return/8_median">>, 1, Rows) of
                {_, Ips} ->
                    Others = [#{name => Name, items_per_second => V} || {Name, V} <- Rows],
                    figure(<<"pool_core_ops">>, Ips, <<"ops/s">>, ge, Goal,
                           fmt("Google Benchmark lease_and_return/8, median of 5 repetitions "
                               "(/100: ~s, /100 half busy: ~s)",
                               [fmt_num(row(<<"lease_and_return/100_median">>, Rows)),
                                fmt_num(row(<<"lease_and_return_half_busy/100_median">>, Rows))]),
                           absolute, #{rows => Others});
                false ->
                    skipped(<<"pool_core_ops">>, <<"ops/s">>, ge, Goal, <<"no lease_and_return/8 row">>)
            end;
        {error, _} ->
            skipped(<<"pool_core_ops">>, <<"ops/s">>, ge, Goal,
                    <<"pool_core_bench not built (libbenchmark-dev missing?)">>)
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
%%   from the request queued on the pooled connection to its answer read), next to pooled call - ping;
%% - the floors that follow: a one-shot call needs a ping's round trip and the target's; with_connection needs
%%   two of the first (the lease comes before the fun runs) and one of the second.
-spec call_floors(node()) -> [figure()].
call_floors(Target) ->
    {ok, Pool} = distribute_pool:new(Target, 4),
    Echo = erpc:call(Target, erlang, spawn, [?MODULE, echo_loop, []]),
    {Service, CNode} = distribute_pool:default_cnode(),
    PingRequest = distribute_pool_proto:ping(),
    try
        Sides = [{erpc, fun() -> Target = erpc:call(Target, erlang, node, []) end},
                 {echo, fun() -> Ref = make_ref(), Echo ! {self(), Ref}, receive Ref -> ok end end},
                 {ping, fun() -> pong = distribute_pool_client:call({Service, CNode}, PingRequest, 5000) end},
                 {pooled, fun() -> {ok, Target} = distribute_pool:call(Pool, erlang, node, []) end}],
        _ = [[F() || _ <- lists:seq(1, 200)] || {_, F} <- Sides],
        Reps = [begin
                    progress("call_floors: rep ~b/~b: ~b each of erpc, echo, C-node ping, pooled call",
                             [R, ?REPS, ?CALLS_PER_REP]),
                    [{S, percentile(0.5, time_calls(F, ?CALLS_PER_REP))} || {S, F} <- Sides]
                end || R <- lists:seq(1, ?REPS)],
        Med = fun(S) -> median([proplists:get_value(S, Rep) || Rep <- Reps]) end,
        [Erpc, Echo50, Ping, Pooled] = [Med(S) || S <- [erpc, echo, ping, pooled]],
        {ok, #{request_rtt_p50_us := Inside}} = distribute_pool:stats(Pool),
        RepsUs = #{reps_us => [[proplists:get_value(S, Rep) || S <- [erpc, echo, ping, pooled]] || Rep <- Reps]},
        Of = fun(What) -> fmt("~s; medians of ~b reps x ~b, sides alternating", [What, ?REPS, ?CALLS_PER_REP]) end,
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
                   fmt("(ping ~.1f + C-node->target ~b) / erpc ~.1f: the least pooled_call_p50 can be with "
                       "these parts", [Ping, Inside, Erpc]), #{}),
         reference(<<"floor_with_connection_ratio">>, (2 * Ping + Inside) / Erpc, <<"ratio">>,
                   fmt("(2 x ping ~.1f + C-node->target ~b) / erpc ~.1f: the least with_connection_call_p50 "
                       "can be with these parts", [Ping, Inside, Erpc]), #{})]
    after
        exit(Echo, kill),
        distribute_pool:destroy(Pool)
    end.

%% p50 of the pooled round trip over p50 of erpc:call, to the same target, alternating sides per repetition.
-spec latency_comparison(binary(), node(), fun(() -> term()), number(), binary()) -> figure().
latency_comparison(Name, Target, Pooled, Goal, What) ->
    Direct = fun() -> Target = erpc:call(Target, erlang, node, []) end,
    _ = [begin Direct(), Pooled() end || _ <- lists:seq(1, 200)],
    Reps = [begin
                progress("~s: rep ~b/~b: ~b direct, ~b pooled", [Name, R, ?REPS, ?CALLS_PER_REP, ?CALLS_PER_REP]),
                D = percentile(0.5, time_calls(Direct, ?CALLS_PER_REP)),
                P = percentile(0.5, time_calls(Pooled, ?CALLS_PER_REP)),
                {D, P}
            end || R <- lists:seq(1, ?REPS)],
    D50 = median([D || {D, _} <- Reps]),
    P50 = median([P || {_, P} <- Reps]),
    Sides = [{<<"direct_p50">>, D50, <<"us">>}, {<<"pooled_p50">>, P50, <<"us">>}],
    figure(Name, P50 / D50, <<"ratio">>, le, Goal,
           fmt("~s: pooled p50 ~.1f us / direct p50 ~.1f us (medians of ~b reps x ~b calls)",
               [What, P50, D50, ?REPS, ?CALLS_PER_REP]),
           ratio, #{sides => Sides, reps_us => [[D, P] || {D, P} <- Reps]}).

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
                Reps = [begin
                            progress("fanout_throughput: rep ~b/~b: direct ! loop, then cast_batch",
                                     [R, ?THROUGHPUT_REPS]),
                            {delivered_rate(Target, 1, Direct), delivered_rate(Target, 1, Pooled)}
                        end || R <- lists:seq(1, ?THROUGHPUT_REPS)],
                D = median([X || {{X, _}, _} <- Reps]),
                P = median([X || {_, {X, _}} <- Reps]),
                DCpu = median_cpu([C || {{_, C}, _} <- Reps]),
                PCpu = median_cpu([C || {_, {_, C}} <- Reps]),
                figure(<<"fanout_throughput">>, P / D, <<"ratio">>, ge, 3.0,
                       fmt("cast_batch (batches of 1000) ~s msg/s / direct ! ~s msg/s delivered, 64-byte "
                           "binaries, medians of ~b; pooled: ~s; direct: ~s",
                           [fmt_num(P), fmt_num(D), ?THROUGHPUT_REPS, fmt_cpu(PCpu), fmt_cpu(DCpu)]),
                       ratio, #{sides => [{<<"direct">>, D, <<"msg/s">>}, {<<"pooled">>, P, <<"msg/s">>}],
                                reps => [[X, Y] || {{X, _}, {Y, _}} <- Reps],
                                cpu_percent => #{direct => DCpu, pooled => PCpu}})
            after
                distribute_pool:destroy(Pool)
            end
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
                  progress("    connect p50 ~b us, call p50 ~b us, ~s msg/s; CPU: ~s",
                           [maps:get(connect_p50_us, Side), maps:get(call_p50_us, Side),
                            fmt_num(maps:get(msgs_per_s, Side)), fmt_cpu(maps:get(cpu, Side))]),
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
               "plain: ~s)", [?PIPELINE_SENDERS, Cpu(tls), Cpu(plain)]))].

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
        #{connect_p50_us => median(Connects), call_p50_us => median(Calls), msgs_per_s => Rate, cpu => Cpu}
    after
        peer:stop(TargetPeer),
        application:stop(distribute_pool)
    end.

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
    ok = sink_ask(Target, reset),
    Parent = self(),
    OsPids = [{caller, list_to_integer(os:getpid())}, {cnode, get(cnode_os_pid)}, {target, get({os_pid, Target})}],
    Cpu0 = [{Who, cpu_ticks(P)} || {Who, P} <- OsPids],
    Start = erlang:monotonic_time(microsecond),
    Deadline = Start + ?THROUGHPUT_MS * 1000,
    Pids = [spawn_link(fun() -> Parent ! {sent, self(), send_until(Send, Deadline, 0) + Last()} end)
            || _ <- lists:seq(1, Senders)],
    Sent = lists:sum([receive {sent, P, N} -> N end || P <- Pids]),
    Done = sink_wait(Target, Sent),
    Seconds = (Done - Start) / 1.0e6,
    Cpu = maps:from_list([{Who, round(100 * (cpu_ticks(P) - T0) / ?CLOCK_TICKS / Seconds)}
                          || {{Who, P}, {Who, T0}} <- lists:zip(OsPids, Cpu0)]),
    progress("    ~s msg/s; CPU: caller node ~b%, C-node ~b%, target ~b% (of one core)",
             [fmt_num(Sent / Seconds), maps:get(caller, Cpu), maps:get(cnode, Cpu), maps:get(target, Cpu)]),
    {Sent / Seconds, Cpu}.

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

%% Head-of-line blocking: p99 of small round trips while BULK_SENDERS processes stream 8 MiB binaries to the
%% same target. Direct: erpc:call while the big messages go with `!` over the node's one connection. Pooled:
%% the pool's request/reply, call(Pool, erlang, node, []) (one message from the caller, as erpc:call is one
%% call), while the big messages go with send/3, each sender on its own leased connection and, like the
%% prober, on its own lane of the C-node.
%% While the pooled streams run, the prober alternates three kinds of round trip: the figure's, with_connection
%% + call (reference: three exchanges with the C-node), and an erpc:call over the bench node's own connection
%% to the target, idle in that phase (reference: the two BEAM nodes' own latency under the load, with no C-node
%% in its path, which no pooled round trip can beat: it visits the same two nodes).
-spec hol(node()) -> [figure()].
hol(Target) ->
    {ok, Pool} = distribute_pool:new(Target, ?BULK_SENDERS + 2),
    Big = binary:copy(<<"y">>, ?BIG_BYTES),
    DirectProbe = fun() -> Target = erpc:call(Target, erlang, node, []) end,
    PooledProbe = fun() -> {ok, Target} = distribute_pool:call(Pool, erlang, node, [], 60000) end,
    WithConnProbe = fun() ->
                            {ok, {ok, Target}} = distribute_pool:with_connection(
                                                   Pool, fun(C) -> distribute_pool:call(C, erlang, node, [], 60000) end)
                    end,
    DirectBulk = fun() -> bulk_loop(fun() -> {?SINK, Target} ! Big end) end,
    PooledBulk = fun() ->
                         {ok, _} = distribute_pool:with_connection(Pool, fun(C) ->
                             bulk_loop(fun() -> ok = distribute_pool:send(C, ?SINK, Big) end)
                         end)
                 end,
    try
        IdleD = percentile(0.99, time_calls(DirectProbe, 1000)),
        IdleP = percentile(0.99, time_calls(PooledProbe, 1000)),
        Reps = [begin
                    progress("hol_p99: rep ~b/~b: ~b x 8 MiB senders, ~b ms of probes, direct then pooled",
                             [R, ?HOL_REPS, ?BULK_SENDERS, ?HOL_PROBE_MS]),
                    #{direct := D, streamed := DS} = under_load(Target, DirectBulk, [{direct, DirectProbe}]),
                    P = under_load(Target, PooledBulk, [{pooled, PooledProbe}, {with_connection, WithConnProbe},
                                                        {beam, DirectProbe}]),
                    P#{direct => D, direct_streamed => DS}
                end || R <- lists:seq(1, ?HOL_REPS)],
        Med = fun(K) -> median([element(1, maps:get(K, Rep)) || Rep <- Reps]) end,
        Counts = fun(K) -> fmt_list([element(2, maps:get(K, Rep)) || Rep <- Reps]) end,
        [D99, P99, W99, B99] = [Med(K) || K <- [direct, pooled, with_connection, beam]],
        MedRate = fun(K) -> median([maps:get(K, Rep) || Rep <- Reps]) end,
        [DRate, PRate] = [MedRate(K) || K <- [direct_streamed, streamed]],
        RepsUs = [[element(1, maps:get(K, Rep)) || K <- [direct, pooled, with_connection, beam]] || Rep <- Reps],
        Of = fun(What) -> fmt("~s; medians of ~b reps, sides alternating in the pooled phase", [What, ?HOL_REPS]) end,
        [figure(<<"hol_p99">>, P99 / D99, <<"ratio">>, le, 0.1,
                fmt("p99 of call(Pool, ...) vs erpc:call under 4 x 8 MiB streams: pooled ~.1f ms / direct ~.1f ms (idle: ~.2f / "
                    "~.2f ms), medians of ~b reps, C-node with ~b lanes; probes per rep: direct ~s, pooled ~s; "
                    "8 MiB messages sent per second meanwhile: direct ~.1f, pooled ~.1f",
                    [P99 / 1000, D99 / 1000, IdleP / 1000, IdleD / 1000, ?HOL_REPS, lanes(),
                     Counts(direct), Counts(pooled), DRate, PRate]),
                ratio, #{sides => [{<<"direct_p99">>, D99, <<"us">>}, {<<"pooled_p99">>, P99, <<"us">>},
                                   {<<"direct_idle_p99">>, IdleD, <<"us">>},
                                   {<<"pooled_idle_p99">>, IdleP, <<"us">>},
                                   {<<"direct_streamed">>, DRate, <<"msg/s">>},
                                   {<<"pooled_streamed">>, PRate, <<"msg/s">>}],
                         reps_us => [[D, P] || [D, P, _, _] <- RepsUs]}),
         reference(<<"hol_with_connection_p99">>, W99 / D99, <<"ratio">>,
                   Of(fmt("with_connection + call(erlang, node, []) under the pooled streams: p99 ~.1f ms / "
                          "direct ~.1f ms", [W99 / 1000, D99 / 1000])), #{}),
         reference(<<"hol_floor_beam_p99">>, B99, <<"us">>,
                   Of("erpc:call over the bench node's own (idle) connection to the target while the pooled "
                      "streams run: the caller's and the target's BEAM alone under the load"), #{}),
         reference(<<"hol_floor_ratio">>, B99 / D99, <<"ratio">>,
                   Of(fmt("hol_floor_beam_p99 ~.1f ms / direct ~.1f ms: the least hol_p99 can be under this load",
                          [B99 / 1000, D99 / 1000])), #{reps_us => RepsUs})]
    after
        distribute_pool:destroy(Pool)
    end.

%% Sends until told to stop, then exits with the number of messages it sent.
-spec bulk_loop(fun(() -> term())) -> no_return().
bulk_loop(Send) ->
    bulk_loop(Send, 0).

bulk_loop(Send, N) ->
    receive
        stop -> exit({sent, N})
    after 0 ->
        Send(),
        bulk_loop(Send, N + 1)
    end.

%% Starts a prober process, which makes one untimed round of its probes (so that, pooled, it has its lane of
%% the C-node before the senders take theirs: processes get lanes round robin in the order they first talk to
%% it), then the bulk senders; lets them get going, probes for HOL_PROBE_MS (the probes in turn), stops the
%% senders and waits until the target received everything still in flight. Each probe's p99 (us) and count,
%% and under `streamed` the big messages the senders sent per second (from their start to their stop).
-spec under_load(node(), fun(() -> term()), [{atom(), fun(() -> term())}]) -> #{atom() => term()}.
under_load(Target, Bulk, Probes) ->
    Parent = self(),
    Ref = make_ref(),
    {Prober, ProberMref} =
        spawn_monitor(fun() ->
                              [Probe() || {_, Probe} <- Probes],
                              Parent ! {Ref, ready},
                              receive {Ref, go} -> ok end,
                              Deadline = erlang:monotonic_time(microsecond) + ?HOL_PROBE_MS * 1000,
                              Parent ! {Ref, samples, probe_until(Probes, Deadline, #{})}
                      end),
    receive {Ref, ready} -> ok after 60000 -> error(prober_not_ready) end,
    Started = erlang:monotonic_time(microsecond),
    Senders = [spawn_monitor(Bulk) || _ <- lists:seq(1, ?BULK_SENDERS)],
    timer:sleep(500),
    Prober ! {Ref, go},
    Samples = receive
                  {Ref, samples, S} -> S;
                  {'DOWN', ProberMref, process, Prober, ProberDown} -> error({prober, ProberDown})
              end,
    [P ! stop || {P, _} <- Senders],
    Sent = [receive {'DOWN', M, process, P, {sent, N}} -> N; {'DOWN', M, process, P, Why} -> error({bulk_sender, Why})
            after 120000 -> error(bulk_sender_stuck) end || {P, M} <- Senders],
    Streamed = lists:sum(Sent) * 1.0e6 / (erlang:monotonic_time(microsecond) - Started),
    sink_settle(Target),
    (maps:map(fun(_, Us) -> {percentile(0.99, Us), length(Us)} end, Samples))#{streamed => Streamed}.

-spec probe_until([{atom(), fun(() -> term())}], integer(), #{atom() => [float()]}) -> #{atom() => [float()]}.
probe_until(Probes, Deadline, Acc) ->
    case erlang:monotonic_time(microsecond) < Deadline of
        true ->
            Acc1 = lists:foldl(fun({Key, Probe}, A) ->
                                       Sample = time_calls(Probe, 1),
                                       A#{Key => Sample ++ maps:get(Key, A, [])}
                               end, Acc, Probes),
            probe_until(Probes, Deadline, Acc1);
        false -> Acc
    end.

%% HELD_POOLS pools of HELD_PER_POOL connections, one per target: the C-node's RSS growth per connection once
%% they are all up and idle, then whether all of them stay up, answering ticks, for HOLD_S seconds.
-spec held_connections([node()]) -> {figure(), figure()}.
held_connections(Targets) ->
    OsPid = get(cnode_os_pid),
    timer:sleep(1000),
    Rss0 = rss_kb(OsPid),
    progress("connections: C-node RSS before: ~b kB; opening ~b pools x ~b connections",
             [Rss0, ?HELD_POOLS, ?HELD_PER_POOL]),
    Start = erlang:monotonic_time(millisecond),
    Pools = [begin
                 {ok, P} = distribute_pool:new(T, #{max_connections => ?HELD_PER_POOL,
                                                    min_connections => ?HELD_PER_POOL}),
                 P
             end || T <- lists:sublist(Targets, ?HELD_POOLS)],
    progress("connections: ~b up in ~b ms", [?HELD_POOLS * ?HELD_PER_POOL,
                                             erlang:monotonic_time(millisecond) - Start]),
    timer:sleep(2000),
    Rss1 = rss_kb(OsPid),
    Total = ?HELD_POOLS * ?HELD_PER_POOL,
    PerConn = (Rss1 - Rss0) * 1024 / Total,
    Bytes = figure(<<"bytes_per_idle_connection">>, PerConn, <<"bytes">>, le, 16384,
                   fmt("C-node VmRSS ~b kB -> ~b kB with ~b idle connections (~b pools)",
                       [Rss0, Rss1, Total, ?HELD_POOLS]),
                   absolute, #{rss_before_kb => Rss0, rss_after_kb => Rss1, connections => Total}),
    report(Bytes),
    try
        Samples = hold(Pools, Targets, ?HOLD_S div ?HOLD_SAMPLE_S, []),
        Held = lists:min([H || {H, _, _} <- Samples]),
        Dropped = lists:max([D || {_, D, _} <- Samples]),
        Extra = lists:max([E || {_, _, E} <- Samples]),
        HiddenSeen = lists:sum([length(erpc:call(T, erlang, nodes, [hidden]))
                                || T <- lists:sublist(Targets, ?HELD_POOLS)]),
        Rss2 = rss_kb(OsPid),
        Figure = figure(<<"connections_held">>, Held, <<"connections">>, ge, 1000,
                        fmt("~b targets x ~b, net_ticktime ~s s, ~b s: fewest up at a sample ~b, "
                            "target_down closes ~b, re-opened ~b, hidden nodes seen by the targets at the end ~b "
                            "(any drop is a MISS); RSS after ~b kB",
                            [?HELD_POOLS, ?HELD_PER_POOL, ?TICKTIME_S, ?HOLD_S, Held, Dropped, Extra, HiddenSeen,
                             Rss2]),
                        absolute, #{min_up => Held, target_down => Dropped, reopened => Extra,
                                    disqualified => Dropped + Extra > 0,
                                    hidden_seen_by_targets => HiddenSeen, rss_end_kb => Rss2}),
        {Bytes, Figure}
    after
        [distribute_pool:destroy(P) || P <- Pools]
    end.

%% Samples every HOLD_SAMPLE_S: {connections up (available + in use), target_down closes, connections
%% created beyond the first ones}.
-spec hold([term()], [node()], non_neg_integer(), [{integer(), integer(), integer()}]) ->
    [{integer(), integer(), integer()}].
hold(_Pools, _Targets, 0, Acc) ->
    Acc;
hold(Pools, Targets, Left, Acc) ->
    timer:sleep(?HOLD_SAMPLE_S * 1000),
    Stats = [S || P <- Pools, {ok, S} <- [distribute_pool:stats(P)]],
    length(Stats) =:= length(Pools) orelse error({stats_failed, length(Stats)}),
    Up = lists:sum([A + U || #{available_connections := A, in_use_connections := U} <- Stats]),
    Down = lists:sum([D || #{connections_closed := #{target_down := D}} <- Stats]),
    Extra = lists:sum([C || #{connections_created := C} <- Stats]) - ?HELD_POOLS * ?HELD_PER_POOL,
    Elapsed = (?HOLD_S div ?HOLD_SAMPLE_S - Left + 1) * ?HOLD_SAMPLE_S,
    progress("connections_held: ~b/~b s: ~b up, target_down ~b, re-opened ~b, C-node RSS ~b kB",
             [Elapsed, ?HOLD_S, Up, Down, Extra, rss_kb(get(cnode_os_pid))]),
    hold(Pools, Targets, Left - 1, [{Up, Down, Extra} | Acc]).

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
    io:format("wrote ~s (and the table and plot data under ~s/tmp)~n", [JsonFile, Dir]).

-spec value_text(figure()) -> string().
value_text(#{value := skipped}) -> "skipped";
value_text(#{value := V}) -> fmt_num(V).

%% One line per measured figure: name, how far from its goal (>= 1 meets it), 0 miss / 1 pass.
-spec plot_data([figure()]) -> iodata().
plot_data(Figures) ->
    ["# figure score(>=1 meets the goal) pass\n"
     | [io_lib:format("~s ~.6g ~b~n", [N, float(Score), if Score >= 1 -> 1; true -> 0 end])
        || #{name := N, value := V, goal := G, goal_op := Op} <- Figures, is_number(V), Op =/= none,
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
