%% The demo run by `make demo': starts the application (and with it the embedded C-node), starts a plain
%% Erlang target node with none of our code, creates a named pool to it, leases connections from many
%% processes at once, runs stress_test with its progress printed, shows what a mistake looks like, and prints
%% what happened and the pool's stats as tables (within 100 columns).
-module(distribute_pool_demo).

-export([main/0]).
-export([stats_tables/2]).

-define(POOL_SIZE, 4).
-define(WORKERS, 16).
-define(CALLS_PER_WORKER, 50).

-spec main() -> no_return().
main() ->
    Code = try run() of
               ok -> 0
           catch
               Class:Reason:Stack ->
                   io:format("~ndemo failed: ~p:~p~n~p~n", [Class, Reason, Stack]),
                   1
           end,
    erlang:halt(Code).

-spec run() -> ok.
run() ->
    step("starting the application (embedded C-node)"),
    {ok, _} = application:ensure_all_started(distribute_pool),
    {_, CNode} = distribute_pool:default_cnode(),
    io:format("    C-node ~s is up~n", [CNode]),

    step("starting a plain target node (none of our code on it)"),
    {ok, Peer, Target} = peer:start_link(#{name => demo_target, host => "127.0.0.1", longnames => true,
                                           args => ["-setcookie", atom_to_list(erlang:get_cookie())]}),
    try
        demo(Target)
    after
        peer:stop(Peer),
        application:stop(distribute_pool)
    end.

-spec demo(node()) -> ok.
demo(Target) ->
    non_existing = erpc:call(Target, code, which, [distribute_pool]),
    io:format("    target ~s, code:which(distribute_pool) there: non_existing~n", [Target]),

    step(io_lib:format("creating a pool of ~b connections, named demo_pool", [?POOL_SIZE])),
    {ok, Pool} = distribute_pool:new(Target, [{name, demo_pool}, {max_connections, ?POOL_SIZE}]),
    Hidden = erpc:call(Target, erlang, nodes, [hidden]),
    io:format("    the target sees ~b hidden nodes:~n", [length(Hidden)]),
    [io:format("      ~s~n", [N]) || N <- lists:sort(Hidden)],

    step("one lease: call, ping, gen_server request and send over the leased connection"),
    Sink = erpc:call(Target, proc_lib, spawn, [timer, sleep, [infinity]]),
    {ok, Summary} = distribute_pool:with_connection(Pool, fun(Conn) ->
        #{node := ConnNode} = distribute_pool:connection_info(Conn),
        {ok, Node} = distribute_pool:call(Conn, erlang, node, []),
        pong = distribute_pool:ping(Conn),
        {ok, Apps} = distribute_pool:request(Conn, application_controller, which_applications),
        ok = distribute_pool:send(Conn, Sink, {hello, from, ConnNode}),
        #{conn => ConnNode, node => Node, apps => [A || {A, _, _} <- Apps]}
    end),
    io:format("    leased ~s; ping -> pong;~n    call(erlang, node, []) -> ~s;"
              "~n    request(application_controller, which_applications) -> ~p~n",
              [maps:get(conn, Summary), maps:get(node, Summary), maps:get(apps, Summary)]),
    {messages, [Got]} = erpc:call(Target, erlang, process_info, [Sink, messages]),
    io:format("    the sink on the target received ~p~n", [Got]),

    step(io_lib:format("~b processes x ~b leases, each with a remote call", [?WORKERS, ?CALLS_PER_WORKER])),
    Start = erlang:monotonic_time(microsecond),
    Results = parallel_leases(Pool),
    Elapsed = erlang:monotonic_time(microsecond) - Start,
    Ok = length([ok || {ok, {ok, _}} <- Results]),
    io:format("    ~b/~b leases done in ~.1f ms (~b leases/s)~n",
              [Ok, length(Results), Elapsed / 1000, round(length(Results) / (Elapsed / 1.0e6))]),

    step("stress_test: 8 processes x 200 leases, each with a ping; its progress printed here"),
    {ok, _} = distribute_pool:stress_test(demo_pool, 200, 8,
                                          #{progress_interval_ms => 250,
                                            on_progress => fun(R) ->
                                                                   io:format("    ~s~n",
                                                                             [distribute_pool_batch:format_progress(R)])
                                                           end}),

    step("errors say why"),
    {error, Typo} = distribute_pool:new(Target, #{max_conections => 4}),
    io:format("    new(Target, #{max_conections => 4})~n      -> ~0tp~n", [{error, Typo}]),
    {error, {connection_failed, {Kind, Text}}} = distribute_pool:new('nobody@127.0.0.1', 1),
    io:format("    new('nobody@127.0.0.1', 1)~n      -> {error, {connection_failed, {~0tp, Text}}}, Text:~n"
              "       ~ts~n", [Kind, Text]),

    step("a lease held by a process that dies comes back by itself"),
    Self = self(),
    Holder = spawn(fun() ->
        distribute_pool:with_connection(Pool, fun(_) -> Self ! leased, receive never -> ok end end)
    end),
    receive leased -> ok end,
    {ok, #{in_use_connections := InUse}} = distribute_pool:stats(Pool),
    exit(Holder, kill),
    wait_until(fun() -> {ok, #{in_use_connections := N}} = distribute_pool:stats(Pool), N =:= 0 end),
    io:format("    in use while held: ~b; after exit(Holder, kill): 0~n", [InUse]),

    step("pool stats"),
    {ok, Stats} = distribute_pool:stats(Pool),
    io:format("~ts", [stats_tables(Pool, Stats)]),

    step("destroying the pool"),
    ok = distribute_pool:destroy(Pool),
    wait_until(fun() -> erpc:call(Target, erlang, nodes, [hidden]) =:= [] end),
    io:format("    the target's hidden nodes now: ~p; destroy again -> ~p~n",
              [erpc:call(Target, erlang, nodes, [hidden]), distribute_pool:destroy(Pool)]),
    io:format("~ndemo finished~n"),
    ok.

-spec parallel_leases(distribute_pool:pool()) -> [term()].
parallel_leases(Pool) ->
    Parent = self(),
    Workers = [spawn_monitor(fun() ->
                   Rs = [distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end)
                         || _ <- lists:seq(1, ?CALLS_PER_WORKER)],
                   Parent ! {self(), Rs}
               end) || _ <- lists:seq(1, ?WORKERS)],
    lists:append([receive {Pid, Rs} -> Rs; {'DOWN', Ref, process, Pid, Why} -> error({worker_died, Why}) end
                  || {Pid, Ref} <- Workers]).

%% The stats as two tables that fit in 100 columns: the pool's figures (the map of closes by reason as one
%% row per reason), then its connections.
-spec stats_tables(distribute_pool:pool(), distribute_pool:stats()) -> iolist().
stats_tables(Pool, Stats) ->
    [distribute_pool_admin:pools_table([{Pool, Stats}]), "\n", distribute_pool_admin:connections_table(Stats)].

-spec step(iodata()) -> ok.
step(Text) ->
    io:format("~n== ~s~n", [Text]).

-spec wait_until(fun(() -> boolean())) -> ok.
wait_until(Check) ->
    wait_until(Check, erlang:monotonic_time(millisecond) + 5000).

-spec wait_until(fun(() -> boolean()), integer()) -> ok.
wait_until(Check, Deadline) ->
    case Check() of
        true -> ok;
        false ->
            erlang:monotonic_time(millisecond) < Deadline orelse error(timeout),
            timer:sleep(20),
            wait_until(Check, Deadline)
    end.
