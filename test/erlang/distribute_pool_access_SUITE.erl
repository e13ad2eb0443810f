%% Who may use a C-node and where its pools may connect (README, "Access"): the caller allow-list by node name
%% and by source address, the embedded C-node's default (only the node that started it), the target
%% allow-list, and a pool's own cookie for a target in another cookie domain, which never shows in stats, info
%% or the C-node's log.
-module(distribute_pool_access_SUITE).

-include_lib("common_test/include/ct.hrl").

-import(dpool_ct_helper, [doc/1, with_nodes/2, do_uniq/1, do_wait_until/2, do_cnode_info/1, do_stats/1,
                          do_stop_peer/1]).

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([caller_outside_the_name_list_is_refused/1,
         caller_address_ranges/1,
         embedded_default_allows_only_its_starter/1,
         app_env_access_args/1,
         target_outside_the_list_is_not_allowed/1,
         pool_cookie_for_another_cookie_domain/1]).

-define(OTHER_COOKIE, "dpool_other_domain_c00kie").

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 4}}].

-spec all() -> [atom()].
all() ->
    [caller_outside_the_name_list_is_refused,
     caller_address_ranges,
     embedded_default_allows_only_its_starter,
     app_env_access_args,
     target_outside_the_list_is_not_allowed,
     pool_cookie_for_another_cookie_domain].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec caller_outside_the_name_list_is_refused(list()) -> ok.
caller_outside_the_name_list_is_refused(_Config) ->
    doc("With --allow-caller, a node whose name matches no pattern is refused in its handshake: "
        "net_kernel:connect_node/1 gives false, the library {error, {connection_failed, {cnode_not_running, "
        "Text}}} with Text saying the C-node runs and refused it; the C-node logs each refused name once and "
        "counts every refusal (info: refused_callers). A node that matches a pattern, and the test node, work."),
    Alive = do_uniq("dpool_acl_names"),
    with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "2",
                         "--allow-caller", atom_to_list(node()) ++ ",dpool_ok-*@127.0.0.1"]},
                {target, "dpool_acl_t"}],
               fun([#{node := CNode} = CNodePort, {_, T}]) ->
        Server = {distribute_pool, CNode},
        Options = #{max_connections => 1, cnode => CNode},
        {ok, Pool} = distribute_pool:new(T, Options),
        {ok, T} = distribute_pool:call(Pool, erlang, node, []),
        with_peers([{"dpool_ok", []}, {"dpool_no", []}, {"dpool_no_again", []}], fun([Ok, No, NoAgain]) ->
            {ok, _} = erpc:call(Ok, distribute_pool, new, [T, Options]),
            false = erpc:call(No, net_kernel, connect_node, [CNode]),
            {error, {connection_failed, {cnode_not_running, Text}}} =
                erpc:call(No, distribute_pool, new, [T, Options]),
            ct:log("the refused caller reads: ~ts", [Text]),
            {match, _} = re:run(Text, "runs .* refused this node's connection"),
            %% A second node refused: its line proves that every line of the first one's refusals is out.
            {error, {connection_failed, {cnode_not_running, _}}} =
                erpc:call(NoAgain, distribute_pool, new, [T, Options]),
            Lines = wait_line(CNodePort, atom_to_list(NoAgain)),
            [Refusal] = [L || L <- Lines,
                              string:find(L, "[caller=" ++ atom_to_list(No) ++ "] refused from") =/= nomatch],
            ct:log("~ts", [Refusal]),
            {match, _} = re:run(Refusal, "matches no allowed caller pattern"),
            #{refused_callers := Refused} = do_cnode_info(Server),
            %% connect_node, then the library's call (and the second node's): each at least one handshake.
            true = Refused >= 3,
            ok
        end)
    end).

-spec caller_address_ranges(list()) -> ok.
caller_address_ranges(_Config) ->
    doc("With --allow-caller-address 127.0.0.2/31, a caller whose connections come from 127.0.0.3 is let in; "
        "one from 127.0.0.4, and the test node (127.0.0.1), are refused, and the log names the address."),
    Alive = do_uniq("dpool_acl_addr"),
    with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "1",
                         "--allow-caller-address", "127.0.0.2/31"]},
                {target, "dpool_acl_t"}],
               fun([#{node := CNode} = CNodePort, {_, T}]) ->
        Options = #{max_connections => 1, cnode => CNode},
        with_peers([{"dpool_from3", from(3)}, {"dpool_from4", from(4)}], fun([From3, From4]) ->
            {ok, Pool} = erpc:call(From3, distribute_pool, new, [T, Options]),
            {ok, T} = erpc:call(From3, distribute_pool, call, [Pool, erlang, node, []]),
            {error, {connection_failed, {cnode_not_running, _}}} =
                erpc:call(From4, distribute_pool, new, [T, Options]),
            Lines = wait_line(CNodePort, atom_to_list(From4)),
            [Refusal] = [L || L <- Lines, string:find(L, atom_to_list(From4)) =/= nomatch],
            ct:log("~ts", [Refusal]),
            {match, _} = re:run(Refusal, "its address 127.0.0.4 is in no allowed range"),
            {error, {connection_failed, {cnode_not_running, _}}} = distribute_pool:new(T, Options),
            _ = wait_line(CNodePort, atom_to_list(node())),
            #{refused_callers := Refused} =
                ok_value(erpc:call(From3, gen_server, call, [{distribute_pool, CNode}, info, 5000])),
            true = Refused >= 2,
            ok
        end)
    end).

-spec embedded_default_allows_only_its_starter(list()) -> ok.
embedded_default_allows_only_its_starter(_Config) ->
    doc("The embedded C-node of a node that leaves allowed_callers at its default (starter) serves that node "
        "only: another node with the same cookie, and the test node, are refused."),
    with_nodes([{target, "dpool_acl_t"}], fun([{_, T}]) ->
        with_peers([{"dpool_starter", []}, {"dpool_stranger", []}], fun([Starter, Stranger]) ->
            ok = erpc:call(Starter, application, set_env,
                           [distribute_pool, cnode_executable, dpool_ct_helper:do_executable()]),
            {ok, _} = erpc:call(Starter, application, ensure_all_started, [distribute_pool]),
            {ok, Pool} = erpc:call(Starter, distribute_pool, new, [T, 1]),
            {ok, T} = erpc:call(Starter, distribute_pool, call, [Pool, erlang, node, []]),
            {distribute_pool, EmbeddedNode} = erpc:call(Starter, distribute_pool_cnode, address, []),
            Options = #{max_connections => 1, cnode => EmbeddedNode},
            {error, {connection_failed, {cnode_not_running, Text}}} =
                erpc:call(Stranger, distribute_pool, new, [T, Options]),
            {match, _} = re:run(Text, "refused this node's connection"),
            {error, {connection_failed, {cnode_not_running, _}}} = distribute_pool:new(T, Options),
            Info = fun() ->
                           erpc:call(Starter, gen_server, call, [{distribute_pool, EmbeddedNode}, info, 5000])
                   end,
            do_wait_until(fun() -> maps:get(refused_callers, ok_value(Info())) >= 2 end, 10000),
            ok = erpc:call(Starter, application, stop, [distribute_pool])
        end)
    end).

-spec app_env_access_args(list()) -> ok.
app_env_access_args(_Config) ->
    doc("The application env's allow-lists become the embedded C-node's options: the starter always among the "
        "callers unless allowed_callers is any; bad values are {bad_app_env, Key, Value}."),
    Base = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 1},
    {ok, #{access := Default}} = distribute_pool_env:check(Base),
    ["--allow-caller", "me@h"] = distribute_pool_env:access_args(Default, 'me@h'),
    {ok, #{access := Wide}} =
        distribute_pool_env:check(Base#{allowed_callers => ["app_*@10.0.0.*", 'ops@h', <<"*@h2">>],
                                        allowed_caller_addresses => ["10.0.0.0/8"],
                                        allowed_targets => [<<"db_*@10.1.0.*">>]}),
    ["--allow-caller", "me@h", "--allow-caller", "app_*@10.0.0.*", "--allow-caller", "ops@h",
     "--allow-caller", "*@h2", "--allow-caller-address", "10.0.0.0/8", "--allow-target", "db_*@10.1.0.*"] =
        distribute_pool_env:access_args(Wide, 'me@h'),
    {ok, #{access := Any}} = distribute_pool_env:check(Base#{allowed_callers => any}),
    [] = distribute_pool_env:access_args(Any, 'me@h'),
    [{error, {bad_app_env, Key, Value}} = distribute_pool_env:check(Base#{Key => Value})
     || {Key, Value} <- [{allowed_callers, "app@h"}, {allowed_callers, [<<"a,b@h">>]},
                         {allowed_caller_addresses, starter}, {allowed_targets, [42]}, {allowed_targets, [""]}]],
    ok.

-spec target_outside_the_list_is_not_allowed(list()) -> ok.
target_outside_the_list_is_not_allowed(_Config) ->
    doc("With --allow-target, new/2 to a target that matches no pattern is {error, {invalid_config, "
        "{target_not_allowed, Target}}} (Target as given), counted in info (refused_targets); one that matches "
        "works."),
    Alive = do_uniq("dpool_acl_targets"),
    with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "1",
                         "--allow-target", "dpool_allowed*@127.0.0.1"]},
                {target, "dpool_allowed"}, {target, "dpool_elsewhere"}],
               fun([#{node := CNode}, {_, Allowed}, {_, Elsewhere}]) ->
        Options = #{max_connections => 1, cnode => CNode},
        {error, {invalid_config, {target_not_allowed, Elsewhere}}} = distribute_pool:new(Elsewhere, Options),
        AsString = atom_to_list(Elsewhere),
        {error, {invalid_config, {target_not_allowed, AsString}} = Why} = distribute_pool:new(AsString, Options),
        Text = distribute_pool:format_error(Why),
        ct:log("~ts", [Text]),
        {match, _} = re:run(Text, "outside the C-node's target allow-list"),
        {ok, Pool} = distribute_pool:new(Allowed, Options),
        {ok, Allowed} = distribute_pool:call(Pool, erlang, node, []),
        #{refused_targets := 2} = do_cnode_info({distribute_pool, CNode}),
        ok
    end).

-spec pool_cookie_for_another_cookie_domain(list()) -> ok.
pool_cookie_for_another_cookie_domain(_Config) ->
    doc("A target with another cookie refuses a pool without the `cookie' option (handshake_refused) and "
        "accepts one with it (atom or binary); a malformed cookie is refused as {bad_value, cookie, hidden, "
        "Allowed}; the cookie appears in no stats, info, error or log line of the C-node (logging at trace); "
        "the C-node's other pools keep its own cookie."),
    Alive = do_uniq("dpool_acl_cookie"),
    with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "1", "--log-level", "trace"]},
                {isolated, "dpool_other_domain", ?OTHER_COOKIE}, {target, "dpool_same_domain"}],
               fun([#{node := CNode} = CNodePort, {_, Other}, {_, Same}]) ->
        Options = #{max_connections => 1, cnode => CNode},
        {error, {connection_failed, {handshake_refused, _}}} = distribute_pool:new(Other, Options),
        {ok, ByAtom} = distribute_pool:new(Other, Options#{cookie => list_to_atom(?OTHER_COOKIE)}),
        {ok, Other} = distribute_pool:call(ByAtom, erlang, node, []),
        {ok, ByBinary} = distribute_pool:new(Other, Options#{max_connections => 2,
                                                             cookie => list_to_binary(?OTHER_COOKIE)}),
        {ok, Other} = distribute_pool:call(ByBinary, erlang, node, []),
        {ok, ByString} = distribute_pool:new(Other, Options#{cookie => ?OTHER_COOKIE}),
        {ok, Other} = distribute_pool:call(ByString, erlang, node, []),
        {ok, Own} = distribute_pool:new(Same, Options),
        {ok, Same} = distribute_pool:call(Own, erlang, node, []),
        Bad = ?OTHER_COOKIE ++ " with a space",
        {error, {invalid_config, {bad_value, cookie, hidden, Allowed}} = Why} =
            distribute_pool:new(Other, Options#{cookie => list_to_binary(Bad)}),
        ct:log("~p: ~ts", [Allowed, distribute_pool:format_error(Why)]),
        Seen = [term_to_binary(do_stats(P)) || P <- [ByAtom, ByBinary, ByString, Own]]
            ++ [term_to_binary(do_cnode_info({distribute_pool, CNode})), term_to_binary(Why)],
        %% A line that follows every one written for the pools above.
        {error, {invalid_config, {target_is_self, _}}} = distribute_pool:new(CNode, Options),
        Lines = wait_line(CNodePort, "refusing a pool: its target is the C-node itself"),
        ct:log("~b lines of the C-node's log, e.g. ~ts", [length(Lines), hd(Lines)]),
        true = length(Lines) > 5,
        nomatch = binary:match(iolist_to_binary([Seen, Lines]), <<?OTHER_COOKIE>>),
        ok
    end).

%% Helpers.

%% Runs Fun with client nodes (the library in their code path), each {Prefix, ExtraArgs}, and stops them.
with_peers(Specs, Fun) ->
    Started = [start_peer(Prefix, Extra) || {Prefix, Extra} <- Specs],
    try
        Fun([Node || {_, Node} <- Started])
    after
        [do_stop_peer(Peer) || {Peer, _} <- Started]
    end.

start_peer(Prefix, Extra) ->
    LibEbin = filename:dirname(code:which(distribute_pool)),
    HelperDir = filename:dirname(code:which(dpool_ct_helper)),
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(Prefix), host => "127.0.0.1",
                                         longnames => true,
                                         %% Out of global's mesh: a node the C-node refuses must not make
                                         %% global cut this node off from the others (overlapping partitions).
                                         args => ["-setcookie", atom_to_list(erlang:get_cookie()),
                                                  "-connect_all", "false",
                                                  "-pa", LibEbin, "-pa", HelperDir | Extra]}),
    {Peer, Node}.

%% Distribution connections of a node made from 127.0.0.N (loopback: any 127.0.0.0/8 address is local).
from(N) ->
    ["-kernel", "inet_dist_connect_options", lists:flatten(io_lib:format("[{ip,{127,0,0,~b}}]", [N]))].

%% The lines the C-node of CNodePort printed, read until one contains Text (15 s at most).
wait_line(#{port := Port}, Text) ->
    wait_line(Port, Text, erlang:monotonic_time(millisecond) + 15000, []).

wait_line(Port, Text, Deadline, Acc) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, {_, Line}}} ->
            Lines = [Line | Acc],
            case string:find(Line, Text) of
                nomatch -> wait_line(Port, Text, Deadline, Lines);
                _ -> lists:reverse(Lines)
            end
    after Left ->
        ct:fail({no_line_with, Text, lists:reverse(Acc)})
    end.

ok_value({ok, Value}) -> Value.
