%% The C-node's Prometheus endpoint (README, "Prometheus"): its exposition passes promtool, and a real
%% Prometheus server (Debian's, started here on loopback, scraping every second) returns through its query API
%% the same figures as stats/1 after a known workload.
-module(distribute_pool_metrics_SUITE).

-include_lib("common_test/include/ct.hrl").

-import(dpool_ct_helper, [doc/1, with_nodes/2, do_uniq/1, do_wait_until/2, do_wait_value/3, do_stats/1,
                          do_cnode_info/1]).

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([app_env_metrics/1,
         exposition_passes_promtool_and_matches_stats/1,
         prometheus_scrapes_the_same_values/1]).

-define(CALLS, 25).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 4}}].

-spec all() -> [atom()].
all() ->
    [app_env_metrics,
     exposition_passes_promtool_and_matches_stats,
     prometheus_scrapes_the_same_values].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    {ok, _} = application:ensure_all_started(inets),
    [ct:fail("~s not found: scripts/ensure_deps.sh installs Debian's prometheus package", [Tool])
     || Tool <- ["promtool", "prometheus"], os:find_executable(Tool) =:= false],
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec app_env_metrics(list()) -> ok.
app_env_metrics(_Config) ->
    doc("The app env metrics: none (the default: no endpoint), a port, or {Address, Port}, each the embedded "
        "C-node's options; anything else stops the application's start with bad_app_env."),
    Base = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 1},
    {ok, #{metrics := none}} = distribute_pool_env:check(Base),
    [] = distribute_pool_env:metrics_args(none),
    {ok, #{metrics := 9615}} = distribute_pool_env:check(Base#{metrics => 9615}),
    ["--metrics-port", "9615"] = distribute_pool_env:metrics_args(9615),
    {ok, _} = distribute_pool_env:check(Base#{metrics => {"0.0.0.0", 0}}),
    ["--metrics-port", "0", "--metrics-address", "0.0.0.0"] = distribute_pool_env:metrics_args({"0.0.0.0", 0}),
    [{error, {bad_app_env, metrics, Bad}} = distribute_pool_env:check(Base#{metrics => Bad})
     || Bad <- [70000, -1, "9615", {"", 1}, {"a b", 1}, {"localhost", 1}, {'127.0.0.1', 1}, on]],
    ok.

-spec exposition_passes_promtool_and_matches_stats(list()) -> ok.
exposition_passes_promtool_and_matches_stats(Config) ->
    doc("GET /metrics of a C-node with --metrics-port 0 (its port in info's metrics_port): promtool check "
        "metrics passes; a named pool's figures carry its name and target and equal its stats after a known "
        "workload (operations, connections by state); the lane, splice and process families are there, the "
        "splice counters as info says; any other path is 404."),
    with_metrics_cnode(fun(CNode, T, Port) ->
        {ok, Pool} = distribute_pool:new(T, #{cnode => CNode, name => dpool_prom_pool, max_connections => 2,
                                              min_connections => 2}),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 2 end, 10000),
        %% A big message through pipes, for the splice families (to a name nobody has: dropped there).
        {ok, ok} = distribute_pool:with_connection(
                     Pool, fun(C) -> distribute_pool:send(C, dpool_prom_nobody, rand:bytes(2 * 1024 * 1024)) end),
        [{ok, T} = distribute_pool:call(Pool, erlang, node, []) || _ <- lists:seq(1, ?CALLS)],
        #{successful_operations := Ok, failed_operations := Failed} = Stats = do_stats(Pool),
        ?CALLS + 1 = Ok,
        Body = scrape(Port, "/metrics"),
        ct:log("~ts", [Body]),
        Labels = io_lib:format("pool=\"dpool_prom_pool\",target=\"~s\"", [T]),
        Ok = sample(Body, "dpool_pool_operations_total", [Labels, ",result=\"ok\""]),
        Failed = sample(Body, "dpool_pool_operations_total", [Labels, ",result=\"failed\""]),
        2 = sample(Body, "dpool_pool_connections", [Labels, ",state=\"available\""]),
        0 = sample(Body, "dpool_pool_connections", [Labels, ",state=\"in_use\""]),
        true = sample(Body, "dpool_pool_sent_messages_total", Labels) >= ?CALLS,
        true = sample(Body, "dpool_pool_received_bytes_total", Labels) > 0,
        #{connections_created := Created} = Stats,
        Created = sample(Body, "dpool_pool_connections_created_total", Labels),
        true = sample(Body, "dpool_lane_received_messages_total", "lane=\"0\"") > 0,
        true = sample(Body, "process_resident_memory_bytes", "") > 0,
        true = sample(Body, "process_open_fds", "") > 0,
        #{output_lines_dropped := Dropped} = do_cnode_info({distribute_pool, CNode}),
        Dropped = sample(Body, "dpool_output_lines_dropped_total", ""),
        #{splice := #{packets := Spliced, fallbacks := Fallbacks}} = do_cnode_info({distribute_pool, CNode}),
        Spliced = sample(Body, "dpool_splice_packets_total", ""),
        Fallbacks = sample(Body, "dpool_splice_fallbacks_total", ""),
        true = Spliced >= 1,
        ?CALLS = sample(Body, "dpool_pool_request_rtt_seconds_count", Labels),
        promtool_check(Config, Body),
        {404, _} = http_get(Port, "/other"),
        ok = distribute_pool:destroy(Pool)
    end).

-spec prometheus_scrapes_the_same_values(list()) -> ok.
prometheus_scrapes_the_same_values(Config) ->
    doc("A Prometheus server scraping the endpoint every second: a query through its HTTP API for the pool's "
        "successful operations returns what stats/1 says, after a known workload."),
    with_metrics_cnode(fun(CNode, T, Port) ->
        {ok, Pool} = distribute_pool:new(T, #{cnode => CNode, name => dpool_prom_scraped, max_connections => 1}),
        [{ok, T} = distribute_pool:call(Pool, erlang, node, []) || _ <- lists:seq(1, ?CALLS)],
        #{successful_operations := ?CALLS} = do_stats(Pool),
        with_prometheus(Config, Port, fun(WebPort) ->
            Query = "dpool_pool_operations_total{pool=\"dpool_prom_scraped\",result=\"ok\"}",
            Value = do_wait_value(fun() -> query(WebPort, Query) end, fun(V) -> V =:= ?CALLS end, 60000),
            ct:log("Prometheus says ~p for ~s", [Value, Query])
        end),
        ok = distribute_pool:destroy(Pool)
    end).

%% Helpers.

-spec with_metrics_cnode(fun((node(), node(), inet:port_number()) -> ok)) -> ok.
with_metrics_cnode(Fun) ->
    Alive = do_uniq("dpool_prom_cn"),
    with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "2", "--metrics-port", "0"]},
                {target, "dpool_prom_t"}],
               fun([#{node := CNode}, {_, T}]) ->
                   #{metrics_port := Port} = do_cnode_info({distribute_pool, CNode}),
                   true = Port > 0,
                   Fun(CNode, T, Port)
               end).

-spec http_get(inet:port_number(), string()) -> {integer(), string()}.
http_get(Port, Path) ->
    Url = "http://127.0.0.1:" ++ integer_to_list(Port) ++ Path,
    {ok, {{_, Status, _}, _Headers, Body}} = httpc:request(get, {Url, []}, [{timeout, 10000}], []),
    {Status, Body}.

-spec scrape(inet:port_number(), string()) -> string().
scrape(Port, Path) ->
    {200, Body} = http_get(Port, Path),
    Body.

%% The value of the sample `Name{Labels}' in an exposition (an integer, or a float when it has a fraction).
-spec sample(string(), string(), iodata()) -> number().
sample(Body, Name, Labels) ->
    Prefix = case lists:flatten(Labels) of
                 "" -> Name ++ " ";
                 L -> Name ++ "{" ++ L ++ "} "
             end,
    case [string:prefix(Line, Prefix) || Line <- string:split(Body, "\n", all),
                                         string:prefix(Line, Prefix) =/= nomatch] of
        [Value] -> number(string:trim(Value));
        Other -> ct:fail({no_single_sample, Prefix, Other})
    end.

-spec number(string()) -> number().
number(Text) ->
    try list_to_integer(Text)
    catch error:badarg -> list_to_float(Text)
    end.

-spec promtool_check(list(), string()) -> ok.
promtool_check(Config, Body) ->
    File = filename:join(?config(priv_dir, Config), "metrics.txt"),
    ok = file:write_file(File, Body),
    {Status, Out} = run(os:find_executable("promtool"), ["check", "metrics"], File),
    ct:log("promtool check metrics: ~b~n~ts", [Status, Out]),
    0 = Status,
    ok.

%% Runs Exe with Args and File as its standard input: its exit status and output.
-spec run(string(), [string()], file:filename()) -> {integer(), string()}.
run(Exe, Args, Input) ->
    Port = open_port({spawn_executable, "/bin/sh"},
                     [{args, ["-c", "exec \"$0\" \"$@\" < \"$INPUT\"", Exe | Args]}, {env, [{"INPUT", Input}]},
                      exit_status, stderr_to_stdout, binary]),
    collect(Port, []).

-spec collect(port(), [binary()]) -> {integer(), string()}.
collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Data | Acc]);
        {Port, {exit_status, Status}} -> {Status, unicode:characters_to_list(lists:reverse(Acc))}
    after 60000 -> ct:fail({timeout, lists:reverse(Acc)})
    end.

%% A Prometheus server on loopback scraping the C-node's endpoint every second, for as long as Fun runs;
%% stopped by its OS pid.
-spec with_prometheus(list(), inet:port_number(), fun((inet:port_number()) -> term())) -> ok.
with_prometheus(Config, MetricsPort, Fun) ->
    Dir = filename:join(?config(priv_dir, Config), "prometheus"),
    ok = filelib:ensure_path(filename:join(Dir, "data")),
    ConfigFile = filename:join(Dir, "prometheus.yml"),
    ok = file:write_file(ConfigFile, io_lib:format(
        "global:~n  scrape_interval: 1s~n  evaluation_interval: 1s~n"
        "scrape_configs:~n  - job_name: dpool~n    static_configs:~n      - targets: ['127.0.0.1:~b']~n",
        [MetricsPort])),
    WebPort = free_port(),
    Port = open_port({spawn_executable, os:find_executable("prometheus")},
                     [{args, ["--config.file=" ++ ConfigFile, "--storage.tsdb.path=" ++ filename:join(Dir, "data"),
                              "--web.listen-address=127.0.0.1:" ++ integer_to_list(WebPort)]},
                      exit_status, stderr_to_stdout, binary]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    try
        do_wait_until(fun() -> ready(WebPort) end, 60000),
        Fun(WebPort),
        ok
    after
        _ = os:cmd("kill " ++ integer_to_list(OsPid)),
        ct:log("prometheus output:~n~ts", [drain(Port, [])])
    end.

-spec ready(inet:port_number()) -> boolean().
ready(WebPort) ->
    case httpc:request(get, {"http://127.0.0.1:" ++ integer_to_list(WebPort) ++ "/-/ready", []},
                       [{timeout, 2000}], []) of
        {ok, {{_, 200, _}, _, _}} -> true;
        _ -> false
    end.

%% The value of an instant query, as an integer, or none before the first scrape.
-spec query(inet:port_number(), string()) -> integer() | none.
query(WebPort, Query) ->
    Url = "http://127.0.0.1:" ++ integer_to_list(WebPort) ++ "/api/v1/query?query=" ++ uri_string:quote(Query),
    %% {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},"value":[T,"25"]}]}}
    case httpc:request(get, {Url, []}, [{timeout, 5000}], []) of
        {ok, {{_, 200, _}, _, Body}} ->
            case re:run(Body, "\"value\":\\[[0-9.]+,\"([0-9.e+]+)\"\\]", [{capture, all_but_first, list}]) of
                {match, [Value]} -> round(number(Value));
                nomatch -> none
            end;
        Other ->
            {not_yet, Other} % polled again until the bound
    end.

-spec drain(port(), [binary()]) -> binary().
drain(Port, Acc) ->
    receive
        {Port, {data, Data}} -> drain(Port, [Data | Acc]);
        {Port, {exit_status, _}} -> iolist_to_binary(lists:reverse(Acc))
    after 10000 ->
        catch port_close(Port),
        iolist_to_binary(lists:reverse(Acc))
    end.

-spec free_port() -> inet:port_number().
free_port() ->
    {ok, Socket} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(Socket),
    ok = gen_tcp:close(Socket),
    Port.
