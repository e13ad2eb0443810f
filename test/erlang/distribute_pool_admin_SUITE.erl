%% The admin view (README, "Admin view"): distribute_pool:info/0,1 and scripts/dpool_admin print a C-node's
%% pools, a pool's connections and the caller nodes with their lanes, as aligned tables.
-module(distribute_pool_admin_SUITE).

-include_lib("common_test/include/ct.hrl").

-import(dpool_ct_helper, [doc/1, with_nodes/2, with_target/2, do_uniq/1, do_wait_until/2, do_stats/1]).

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([info_prints_pools_and_callers/1,
         admin_script_against_a_standalone_cnode/1]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [info_prints_pools_and_callers,
     admin_script_against_a_standalone_cnode].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec info_prints_pools_and_callers(list()) -> ok.
info_prints_pools_and_callers(_Config) ->
    doc("distribute_pool:info() prints a row per pool (its name, target (a group: its targets up), connections "
        "total/available/in use/connecting, operations ok/failed) and a row per caller connection (this node, "
        "on each lane it uses); info({connections, Pool}) a row per connection of the pool."),
    with_target("dpool_admin_t", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, #{name => dpool_admin_pool, max_connections => 3, min_connections => 3}),
        try
            do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 3 end, 10000),
            [{ok, T} = distribute_pool:call(Pool, erlang, node, []) || _ <- lists:seq(1, 5)],
            Printed = printed(fun() -> ok = distribute_pool:info() end),
            ct:log("~ts", [Printed]),
            Row = line_with(Printed, "dpool_admin_pool "),
            ["dpool_admin_pool", Target, "3/3/0/0", _Waiting, Ops | _] = cells(Row),
            true = Target =:= atom_to_list(T),
            {ok, #{successful_operations := Ok, failed_operations := Failed}} = distribute_pool:stats(Pool),
            true = Ops =:= lists:flatten(io_lib:format("~b/~b", [Ok, Failed])),
            %% This node is connected to the C-node on one lane at least.
            [_ | _] = [L || L <- lines(Printed), string:prefix(string:trim(L), atom_to_list(node())) =/= nomatch],
            Connections = printed(fun() -> ok = distribute_pool:info({connections, dpool_admin_pool}) end),
            ct:log("~ts", [Connections]),
            3 = length([L || L <- lines(Connections), string:find(L, "| available") =/= nomatch]),
            {error, invalid_pool} = distribute_pool:info({connections, dpool_admin_no_such_pool}),
            %% A group's row says how many of its targets are up.
            {ok, Group} = distribute_pool:new_group([T], #{name => dpool_admin_group, max_connections => 1}),
            try
                GroupRow = line_with(printed(fun() -> ok = distribute_pool:info() end), "dpool_admin_group "),
                ["dpool_admin_group", "group: 1 of 1 targets up" | _] = cells(GroupRow)
            after
                ok = distribute_pool:destroy(Group)
            end
        after
            ok = distribute_pool:destroy(Pool)
        end
    end).

-spec admin_script_against_a_standalone_cnode(list()) -> ok.
admin_script_against_a_standalone_cnode(_Config) ->
    doc("scripts/dpool_admin CNODE prints the same tables for a standalone C-node, joining as a hidden node "
        "(which shows among the callers); `connections POOL' takes a pool's name or id; a C-node that does not "
        "run is an error exit with its reason."),
    Alive = do_uniq("dpool_admin_cn"),
    with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "2"]}, {target, "dpool_admin_t2"}],
               fun([#{node := CNode}, {_, T}]) ->
        {ok, Pool} = distribute_pool:new(T, #{cnode => CNode, name => dpool_admin_sa, max_connections => 2,
                                              min_connections => 2}),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 2 end, 10000),
        {0, Out} = admin([atom_to_list(CNode)]),
        ct:log("~ts", [Out]),
        ["dpool_admin_sa", _, "2/2/0/0" | _] = cells(line_with(Out, "dpool_admin_sa ")),
        %% The script's own hidden node is a caller: a row of the callers table (node, lane).
        [_ | _] = [Node || L <- lines(Out), [Node, Lane] <- [cells(L)],
                           string:prefix(Node, "dpool_admin_") =/= nomatch, Lane =/= "",
                           lists:all(fun(C) -> C >= $0 andalso C =< $9 end, Lane)],
        {0, Conns} = admin([atom_to_list(CNode), "connections", "dpool_admin_sa"]),
        2 = length([L || L <- lines(Conns), string:find(L, "| available") =/= nomatch]),
        #{pool_id := Id} = do_stats(Pool),
        {0, Conns2} = admin([atom_to_list(CNode), "connections", integer_to_list(Id)]),
        2 = length([L || L <- lines(Conns2), string:find(L, "| available") =/= nomatch]),
        {1, NoPool} = admin([atom_to_list(CNode), "connections", "nope"]),
        [_ | _] = string:find(NoPool, "no_such_pool"),
        ok = distribute_pool:destroy(Pool)
    end),
    {1, Down} = admin(["dpool_admin_nobody@127.0.0.1"]),
    ct:log("~ts", [Down]),
    [_ | _] = string:find(Down, "dpool_admin: "),
    ok.

%% Helpers.

%% What Fun printed to its group leader.
-spec printed(fun(() -> ok)) -> string().
printed(Fun) ->
    ok = ct:capture_start(),
    try Fun() after ct:capture_stop() end,
    lists:flatten(ct:capture_get()).

%% The cells of a table's row, trimmed.
-spec cells(string()) -> [string()].
cells(Row) ->
    [string:trim(C) || C <- string:split(Row, "|", all)].

-spec lines(string()) -> [string()].
lines(Text) ->
    string:split(Text, "\n", all).

-spec line_with(string(), string()) -> string().
line_with(Text, Part) ->
    [Line | _] = [L || L <- lines(Text), string:find(L, Part) =/= nomatch],
    Line.

%% Runs scripts/dpool_admin with Args and the test node's cookie: its exit status and output.
-spec admin([string()]) -> {non_neg_integer(), string()}.
admin(Args) ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Script = filename:join([filename:dirname(Source), "..", "..", "scripts", "dpool_admin"]),
    Ebin = filename:dirname(code:which(distribute_pool)),
    Port = open_port({spawn_executable, Script},
                     [{args, Args ++ ["--cookie", atom_to_list(erlang:get_cookie())]},
                      {env, [{"DISTRIBUTE_POOL_EBIN", Ebin}]}, exit_status, stderr_to_stdout, binary]),
    collect(Port, []).

-spec collect(port(), [binary()]) -> {non_neg_integer(), string()}.
collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Data | Acc]);
        {Port, {exit_status, Status}} -> {Status, unicode:characters_to_list(lists:reverse(Acc))}
    after 60000 ->
        ct:fail({dpool_admin_timeout, lists:reverse(Acc)})
    end.
