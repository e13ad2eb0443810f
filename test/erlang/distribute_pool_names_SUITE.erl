%% Options from Elixir (keyword lists), named pools, and pools under the user's supervisor (child_spec/1).
-module(distribute_pool_names_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([keyword_lists_everywhere/1]).
-export([named_pool_everywhere_a_pool_goes/1]).
-export([name_clash_is_already_started/1]).
-export([stale_name_is_looked_up_again/1]).
-export([child_spec_under_a_supervisor/1]).
-export([child_spec_argument_errors/1]).
-export([child_spec_keeps_secrets_out_of_reports/1]).
-export([name_passes_from_a_draining_pool/1]).
-export([child_never_takes_over_a_pool_it_did_not_make/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_stats/1, do_cnode/0, do_pool_nodes/2, do_uniq/1,
                          with_target/2, with_target_pool/3]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [keyword_lists_everywhere,
     named_pool_everywhere_a_pool_goes,
     name_clash_is_already_started,
     stale_name_is_looked_up_again,
     child_spec_under_a_supervisor,
     child_spec_argument_errors,
     child_spec_keeps_secrets_out_of_reports,
     name_passes_from_a_draining_pool,
     child_never_takes_over_a_pool_it_did_not_make].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec keyword_lists_everywhere(list()) -> ok.
keyword_lists_everywhere(_Config) ->
    doc("Every function that takes an options map takes the same as a keyword list (Elixir's "
        "`max_connections: 2'); a key given twice is refused."),
    with_target("dpool_kw", fun(T) ->
        {ok, Pool} = distribute_pool:new(T, [{max_connections, 2}, {acquire_timeout_ms, 250}]),
        #{max_connections := 2, acquire_timeout_ms := 250} = do_stats(Pool),
        {ok, {ok, T}} = distribute_pool:with_connection(
                          Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end, [{acquire_timeout_ms, 0}]),
        {error, badarg} = distribute_pool:with_connection(Pool, fun(_) -> ok end, [{acquire_timeout_ms, -1}]),
        {error, badarg} = distribute_pool:with_connection(Pool, fun(_) -> ok end, [{bogus, 1}]),
        {ok, 3} = distribute_pool:cast_batch(Pool, nobody, [1, 2, 3], [{key, fun(M) -> M rem 2 end}]),
        {ok, #{successful_operations := _}} = distribute_pool:stress_test(Pool, 2, 2, [{progress, false}]),
        {error, {invalid_config, {duplicate_option, max_connections}}} =
            distribute_pool:new(T, [{max_connections, 1}, {max_connections, 2}]),
        ok = distribute_pool:destroy(Pool, [{drain_timeout_ms, 0}])
    end).

-spec named_pool_everywhere_a_pool_goes(list()) -> ok.
named_pool_everywhere_a_pool_goes(_Config) ->
    doc("A pool made with `name => Name' answers to Name in every function that takes a pool; its stats "
        "name it; after destroy(Name) the name is unknown (invalid_pool) and free again."),
    with_target("dpool_named", fun(T) ->
        Name = dpool_named_orders,
        {ok, Pool} = distribute_pool:new(T, #{name => Name, max_connections => 2}),
        #{name := Name, pool_id := Id} = do_stats(Pool),
        {ok, #{name := Name, pool_id := Id, target := T}} = distribute_pool:stats(Name),
        {ok, {ok, T}} = distribute_pool:with_connection(Name, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        {ok, T} = distribute_pool:call(Name, erlang, node, []),
        {ok, T} = distribute_pool:call(Name, erlang, node, [], 1000),
        {ok, yes} = distribute_pool:request(Name, net_kernel, {is_auth, node()}),
        ok = distribute_pool:send(Name, nobody, hello),
        {ok, 2} = distribute_pool:cast_batch(Name, nobody, [a, b]),
        {ok, [pong, pong]} = distribute_pool:send_batch(Name, [1, 2], fun(C, _) -> distribute_pool:ping(C) end),
        {ok, #{successful := [pong, pong], failed := []}} =
            distribute_pool:send_batch_parallel(Name, [1, 2], fun(C, _) -> distribute_pool:ping(C) end),
        {ok, _} = distribute_pool:stress_test(Name, 3, 2, #{progress => false}),
        {ok, Listed} = distribute_pool:pools(),
        [Name] = [N || {_, #{pool_id := I, name := N}} <- Listed, I =:= Id],
        %% Unnamed pools say so.
        {ok, Unnamed} = distribute_pool:new(T, 1),
        #{name := undefined} = do_stats(Unnamed),
        ok = distribute_pool:destroy(Unnamed),
        ok = distribute_pool:destroy(Name),
        {error, invalid_pool} = distribute_pool:stats(Name),
        {error, invalid_pool} = distribute_pool:with_connection(Name, fun(_) -> ok end),
        {error, invalid_pool} = distribute_pool:stats(dpool_never_named),
        %% Free again: a new pool takes the name.
        {ok, Again} = distribute_pool:new(T, #{name => Name, max_connections => 1}),
        {ok, #{pool_id := AgainId}} = distribute_pool:stats(Name),
        AgainId = maps:get(pool_id, do_stats(Again)),
        true = AgainId =/= Id,
        ok = distribute_pool:destroy(Name)
    end).

-spec name_clash_is_already_started(list()) -> ok.
name_clash_is_already_started(_Config) ->
    doc("A second pool under a name in use is {error, {already_started, Pool}}, Pool the handle of the pool "
        "that has the name; nothing is created."),
    with_target_pool("dpool_clash", #{name => dpool_clash, max_connections => 1}, fun(T, First) ->
        {ok, Before} = gen_server:call(do_cnode(), pools, 5000),
        {error, {already_started, Same}} = distribute_pool:new(T, #{name => dpool_clash, max_connections => 3}),
        {ok, Before} = gen_server:call(do_cnode(), pools, 5000),
        true = maps:get(pool_id, do_stats(Same)) =:= maps:get(pool_id, do_stats(First)),
        "a pool of that name exists already" ++ _ = distribute_pool:format_error({already_started, Same})
    end).

-spec stale_name_is_looked_up_again(list()) -> ok.
stale_name_is_looked_up_again(_Config) ->
    doc("When the pool behind a name this node knows was destroyed and made again elsewhere (straight on the "
        "C-node here), an operation that did nothing when refused (stats, a checkout) finds the new pool at "
        "once; one that may have acted (a one-shot call) is never run twice: it gives invalid_pool once, and "
        "the next call finds the new pool."),
    with_target("dpool_stale", fun(T) ->
        Server = do_cnode(),
        Remake = fun() ->
                         {ok, #{pool_id := Old}} = distribute_pool:stats(dpool_stale),
                         ok = gen_server:call(Server, {destroy, Old, 0}, 10000),
                         {ok, New} = gen_server:call(Server, {new, T, #{name => dpool_stale, max_connections => 1}},
                                                     10000),
                         New
                 end,
        {ok, _} = distribute_pool:new(T, #{name => dpool_stale, max_connections => 1}),
        New = Remake(),
        {ok, #{pool_id := New}} = distribute_pool:stats(dpool_stale),
        {ok, T} = distribute_pool:call(dpool_stale, erlang, node, []),
        Newer = Remake(),
        {ok, {ok, T}} = distribute_pool:with_connection(dpool_stale,
                                                        fun(C) -> distribute_pool:call(C, erlang, node, []) end),
        {ok, #{pool_id := Newer}} = distribute_pool:stats(dpool_stale),
        _ = Remake(),
        {error, invalid_pool} = distribute_pool:call(dpool_stale, erlang, node, []),
        {ok, T} = distribute_pool:call(dpool_stale, erlang, node, []),
        ok = distribute_pool:destroy(dpool_stale)
    end).

-spec child_spec_under_a_supervisor(list()) -> ok.
child_spec_under_a_supervisor(_Config) ->
    doc("child_spec/1 puts a named pool under the caller's supervisor: the target sees its hidden nodes while "
        "the child runs and sees them go when the child stops; a restart makes the pool again; an owner "
        "killed outright is replaced by one that takes its pool over (same pool, no new connections)."),
    with_target("dpool_sup", fun(T) ->
        Name = dpool_supervised,
        Spec = distribute_pool:child_spec(#{name => Name, target => T, max_connections => 2}),
        #{id := {distribute_pool, Name}, start := {distribute_pool, start_link, [_]}} = Spec,
        {ok, Sup} = supervisor:start_link(dpool_ct_sup, {#{strategy => one_for_one, intensity => 5, period => 10},
                                                         [Spec]}),
        unlink(Sup),
        try
            {ok, Pool} = distribute_pool:stats(Name),
            %% The target lists the connections a moment after the C-node has them up.
            do_wait_until(fun() -> length(do_pool_nodes(T, Name)) =:= 2 end, 10000),
            #{pool_id := Id} = Pool,
            %% Stopping the child destroys the pool: its hidden nodes leave the target.
            ok = supervisor:terminate_child(Sup, {distribute_pool, Name}),
            {error, invalid_pool} = distribute_pool:stats(Name),
            do_wait_until(fun() -> hidden_pool_nodes(T) =:= [] end, 10000),
            %% Restarting it makes the pool again.
            {ok, Owner} = supervisor:restart_child(Sup, {distribute_pool, Name}),
            {ok, #{pool_id := Id2}} = distribute_pool:stats(Name),
            true = Id2 =/= Id,
            do_wait_until(fun() -> length(do_pool_nodes(T, Name)) =:= 2 end, 10000),
            %% Killed outright: the supervisor's next owner takes the same pool over.
            exit(Owner, kill),
            do_wait_until(fun() ->
                                  case [P || {_, P, _, _} <- supervisor:which_children(Sup)] of
                                      [P] when is_pid(P), P =/= Owner -> true;
                                      _ -> false
                                  end
                          end, 10000),
            {ok, #{pool_id := Id2, connections_created := 2}} = distribute_pool:stats(Name),
            %% And the supervisor's own shutdown destroys it.
            ok = do_stop_sup(Sup),
            {error, invalid_pool} = distribute_pool:stats(Name),
            do_wait_until(fun() -> hidden_pool_nodes(T) =:= [] end, 10000)
        after
            _ = do_stop_sup(Sup)
        end
    end).

-spec child_spec_keeps_secrets_out_of_reports(list()) -> ok.
child_spec_keeps_secrets_out_of_reports(_Config) ->
    doc("A child spec carries a pool's cookie and TLS password sealed: the spec printed (as supervisor reports "
        "print its start arguments) shows neither, and the child still makes its pool with them."),
    with_target("dpool_sup_secret", fun(T) ->
        Name = dpool_supervised_secret,
        Cookie = atom_to_list(erlang:get_cookie()),
        Password = "pw-never-printed-4711",
        Spec = distribute_pool:child_spec(#{name => Name, target => T, max_connections => 1, cookie => Cookie,
                                            tls => #{mode => none, password => Password}}),
        Printed = lists:flatten(io_lib:format("~p", [Spec])),
        nomatch = string:find(Printed, Cookie),
        nomatch = string:find(Printed, Password),
        {ok, Sup} = supervisor:start_link(dpool_ct_sup, {#{strategy => one_for_one, intensity => 5, period => 10},
                                                         [Spec]}),
        unlink(Sup),
        try
            {ok, #{total_connections := 1, tls := none} = Stats} = distribute_pool:stats(Name),
            nomatch = string:find(lists:flatten(io_lib:format("~p", [Stats])), Password)
        after
            _ = do_stop_sup(Sup)
        end
    end).

-spec child_spec_argument_errors(list()) -> ok.
child_spec_argument_errors(_Config) ->
    doc("child_spec/1 without a name or a target raises error:{invalid_config, Why}; a child whose pool "
        "cannot be made fails to start with the error of new/2."),
    {'EXIT', {{invalid_config, {missing_option, name}}, _}} =
        (catch distribute_pool:child_spec(#{target => 'a@127.0.0.1', max_connections => 1})),
    {'EXIT', {{invalid_config, {missing_option, target}}, _}} =
        (catch distribute_pool:child_spec([{name, x}, {max_connections, 1}])),
    Missing = list_to_atom(do_uniq("dpool_nobody") ++ "@127.0.0.1"),
    Spec = distribute_pool:child_spec([{name, dpool_unstartable}, {target, Missing}, {max_connections, 1}]),
    process_flag(trap_exit, true),
    {error, {shutdown, {failed_to_start_child, {distribute_pool, dpool_unstartable},
                        {connection_failed, {not_registered, _}}}}} =
        supervisor:start_link(dpool_ct_sup, {#{strategy => one_for_one, intensity => 0, period => 1}, [Spec]}),
    process_flag(trap_exit, false),
    {error, invalid_pool} = distribute_pool:stats(dpool_unstartable),
    ok.

-spec name_passes_from_a_draining_pool(list()) -> ok.
name_passes_from_a_draining_pool(_Config) ->
    doc("A name is free as soon as its pool's destroy starts: a new pool takes it while the old one still "
        "drains, keeps it when the old one is gone, and gives it up when destroyed in turn."),
    with_target("dpool_passes", fun(T) ->
        Name = dpool_passing,
        {ok, Old} = distribute_pool:new(T, #{name => Name, max_connections => 1}),
        Holders = dpool_ct_helper:do_hold_leases(Old, 1, passing),
        Self = self(),
        spawn_link(fun() -> Self ! {destroyed, distribute_pool:destroy(Old, #{drain_timeout_ms => 60000})} end),
        do_wait_until(fun() -> maps:get(state, do_stats(Old)) =:= draining end, 10000),
        {ok, New} = distribute_pool:new(T, #{name => Name, max_connections => 1}),
        NewId = maps:get(pool_id, do_stats(New)),
        {ok, #{pool_id := NewId}} = distribute_pool:stats(Name),
        %% The old pool drains to its end and is dropped; the name stays the new pool's.
        dpool_ct_helper:do_release(Holders),
        receive {destroyed, ok} -> ok after 30000 -> ct:fail(drain_did_not_end) end,
        {ok, NewId, _} = gen_server:call(do_cnode(), {whereis, Name}, 5000),
        {ok, #{pool_id := NewId}} = distribute_pool:stats(Name),
        ok = distribute_pool:destroy(Name),
        {error, invalid_pool} = gen_server:call(do_cnode(), {whereis, Name}, 5000),
        {ok, Again} = distribute_pool:new(T, #{name => Name, max_connections => 1}),
        {ok, #{pool_id := AgainId}} = distribute_pool:stats(Name),
        AgainId = maps:get(pool_id, do_stats(Again)),
        ok = distribute_pool:destroy(Name)
    end).

-spec child_never_takes_over_a_pool_it_did_not_make(list()) -> ok.
child_never_takes_over_a_pool_it_did_not_make(_Config) ->
    doc("A child whose name belongs to a pool that new/2 made (no owner of this node) fails to start with "
        "already_started and leaves that pool alone; so does a second child while the first lives."),
    process_flag(trap_exit, true),
    try
        with_target("dpool_foreign", fun(T) ->
            {ok, Foreign} = distribute_pool:new(T, #{name => dpool_foreign, max_connections => 1}),
            {error, {already_started, Same}} =
                distribute_pool:start_link(#{name => dpool_foreign, target => T, max_connections => 1}),
            true = maps:get(pool_id, do_stats(Same)) =:= maps:get(pool_id, do_stats(Foreign)),
            {ok, _} = distribute_pool:stats(dpool_foreign),
            ok = distribute_pool:destroy(Foreign),
            {ok, First} = distribute_pool:start_link(#{name => dpool_owned, target => T, max_connections => 1}),
            {error, {already_started, _}} =
                distribute_pool:start_link(#{name => dpool_owned, target => T, max_connections => 1}),
            {ok, _} = distribute_pool:stats(dpool_owned),
            unlink(First),
            Ref = erlang:monitor(process, First),
            exit(First, shutdown),
            receive {'DOWN', Ref, process, First, _} -> ok after 30000 -> ct:fail(owner_did_not_stop) end,
            {error, invalid_pool} = distribute_pool:stats(dpool_owned)
        end)
    after
        process_flag(trap_exit, false)
    end.

%% Helpers.

%% Hidden nodes on T that are pooled connections of this suite's C-node.
-spec hidden_pool_nodes(node()) -> [node()].
hidden_pool_nodes(T) ->
    {_, CNode} = do_cnode(),
    [Alive | _] = string:split(atom_to_list(CNode), "@"),
    [N || N <- erpc:call(T, erlang, nodes, [hidden]), lists:prefix(Alive ++ "_", atom_to_list(N)),
          not lists:prefix(Alive ++ "_lane", atom_to_list(N))].

-spec do_stop_sup(pid()) -> ok.
do_stop_sup(Sup) ->
    case is_process_alive(Sup) of
        true ->
            Ref = erlang:monitor(process, Sup),
            exit(Sup, shutdown),
            receive {'DOWN', Ref, process, Sup, _} -> ok after 30000 -> ct:fail(supervisor_did_not_stop) end;
        false ->
            ok
    end.
