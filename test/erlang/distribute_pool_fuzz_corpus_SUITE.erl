%% The seed corpora of the fuzz targets (test/fuzz/, README "Fuzzing") come from real traffic, recorded here.
%%
%% The embedded C-node runs with --record-packets (a test aid: every packet each link receives goes to a file of
%% that link). Real callers (this node, through the library and distribute_pool_proto's builders) send every
%% request and cast of docs/PROTOCOL.md, good and refused, to it, and a real target answers its pooled
%% connections (replies, call exits of every kind, spawn replies, monitors). dpool_fuzz_split (test/fuzz/
%% corpus_split.cpp, built with the C++ tests) then splits the recorded links into the inputs of each target with
%% the C-node's own decoders; it fails when a recorded packet does not decode, when a target gets no input, or
%% when a request of the C-node's request table was never sent.
%%
%% scripts/fuzz_corpus.sh runs this suite with DPOOL_FUZZ_CORPUS_OUT set: the inputs then go there, to be
%% minimised into test/fuzz/corpus/. Without it they stay in the case's private directory.
-module(distribute_pool_fuzz_corpus_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([recorded_traffic_reaches_every_decoder/1]).

-import(dpool_ct_helper, [doc/1, with_target/2]).

-define(FIXTURE, dpool_fuzz_fixture).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [recorded_traffic_reaches_every_decoder].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    Recorded = filename:join(?config(priv_dir, Config), "recorded"),
    case application:load(distribute_pool) of
        ok -> ok;
        {error, {already_loaded, distribute_pool}} -> ok % by a suite before this one
    end,
    ok = application:set_env(distribute_pool, cnode_args, ["--record-packets", Recorded]),
    [{recorded, Recorded} | dpool_ct_helper:do_init_suite(Config)].

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    ok = dpool_ct_helper:do_end_suite(Config),
    application:unset_env(distribute_pool, cnode_args).

%% Cases.

-spec recorded_traffic_reaches_every_decoder(list()) -> ok.
recorded_traffic_reaches_every_decoder(Config) ->
    doc("Every request of the protocol, sent by real callers to a C-node that records its links, and a real "
        "target's answers, split by dpool_fuzz_split into inputs for each fuzz target: every recorded packet "
        "decodes, every target gets inputs, every request of the request table was seen."),
    with_target("dpool_fuzzrec", fun(Target) -> traffic(Target) end),
    Out = case os:getenv("DPOOL_FUZZ_CORPUS_OUT") of
              false -> filename:join(?config(priv_dir, Config), "split");
              Dir -> Dir
          end,
    {Status, Report} = run_split(?config(recorded, Config), Out),
    ct:log("dpool_fuzz_split ~ts -> ~ts:~n~ts", [?config(recorded, Config), Out, Report]),
    0 = Status,
    ok.

%% The traffic: through the library (as callers use it) and, for the forms the library does not send (refused
%% requests, the long arities), through distribute_pool_proto's envelopes with hand-made requests.
traffic(Target) ->
    Server = dpool_ct_helper:do_cnode(),
    Call = fun(Request) -> distribute_pool_client:call(Server, Request, 10000) end,
    _ = dpool_ct_helper:do_start_fixture(Target, ?FIXTURE),
    {ok, Pool} = distribute_pool:new(Target, #{max_connections => 2, name => dpool_fuzz_pool,
                                               acquire_timeout_ms => 5000, health_check_interval_ms => 100}),
    PoolId = dpool_ct_helper:do_pool_id(Pool),
    %% new, refused: each kind of invalid_config.
    {error, {invalid_config, _}} = Call(distribute_pool_proto:new(Target, #{max_connections => 0})),
    {error, {invalid_config, _}} = Call(distribute_pool_proto:new(Target, #{max_conections => 1})),
    {error, {invalid_config, _}} = Call(distribute_pool_proto:new(<<"no_host">>, #{max_connections => 1})),
    {error, {invalid_config, _}} = Call({new, Target, [{max_connections, 1}]}),
    {error, {invalid_config, _}} = Call(distribute_pool_proto:new(Target, #{min_connections => 1})),
    {error, {invalid_config, _}} =
        Call(distribute_pool_proto:new(Target, #{max_connections => 1, backoff_min_ms => 10, backoff_max_ms => 5})),
    {error, {invalid_config, _}} =
        Call(distribute_pool_proto:new(Target, #{max_connections => 1, validate_on_checkout => maybe})),
    {error, badarg} = Call({new, Target}),
    {error, badarg} = Call({no_such_request, 1}),
    {ok, PoolId, 5000} = Call(distribute_pool_proto:whereis(dpool_fuzz_pool)),
    {error, invalid_pool} = Call(distribute_pool_proto:whereis(dpool_fuzz_nobody)),
    %% Operations on a lease: send, send_many (send_async's pipe), request, call of every outcome, ping.
    {ok, ok} = distribute_pool:with_connection(
           Pool,
           fun(Conn) ->
                   ok = distribute_pool:send(Conn, ?FIXTURE, hello),
                   ok = distribute_pool:send(Conn, {?FIXTURE, Target}, {hello, <<"tuple destination">>}),
                   [ok = distribute_pool:send_async(Conn, ?FIXTURE, {async, N}) || N <- lists:seq(1, 20)],
                   {ok, 42} = distribute_pool:request(Conn, ?FIXTURE, {echo, 42}),
                   {ok, [1, 2.5, "str"]} = distribute_pool:request(Conn, ?FIXTURE, {echo, [1, 2.5, "str"]}, 5000),
                   {ok, Target} = distribute_pool:call(Conn, erlang, node, []),
                   {ok, {1, 2}} = distribute_pool:call(Conn, erlang, list_to_tuple, [[1, 2]]),
                   {ok, thrown} = distribute_pool:call(Conn, erlang, throw, [thrown]),
                   {error, _} = distribute_pool:call(Conn, erlang, exit, [bye]),
                   {error, _} = distribute_pool:call(Conn, erlang, error, [oops]),
                   {error, _} = distribute_pool:call(Conn, erlang, binary_to_atom, [not_a_binary]),
                   {error, _} = distribute_pool:call(Conn, dpool_fuzz_no_such_module, f, []),
                   {error, _} = distribute_pool:request(Conn, dpool_fuzz_nobody, hello, 5000),
                   pong = distribute_pool:ping(Conn),
                   %% Another process asks for the lease (lease_of) before it uses it.
                   {Pid, Mref} = spawn_monitor(fun() -> exit({pinged, distribute_pool:ping(Conn)}) end),
                   receive {'DOWN', Mref, process, Pid, {pinged, pong}} -> ok after 10000 -> error(no_ping) end,
                   ok
           end),
    {ok, discarded} = distribute_pool:with_connection(Pool, fun(Conn) ->
                                                                    ok = distribute_pool:discard(Conn),
                                                                    discarded
                                                            end),
    %% One-shot operations, both arities, and the cast batches.
    ok = distribute_pool:send(Pool, ?FIXTURE, one_shot),
    {ok, 7} = distribute_pool:request(Pool, ?FIXTURE, {echo, 7}),
    {ok, Target} = distribute_pool:call(Pool, erlang, node, []),
    ok = Call({pooled_send, PoolId, ?FIXTURE, one_shot, 5000}),
    {ok, 8} = Call({pooled_request, PoolId, ?FIXTURE, 5000, {echo, 8}, default}),
    {ok, Target} = Call({pooled_call, PoolId, erlang, node, [], infinity, 5000}),
    {ok, 3} = distribute_pool:cast_batch(Pool, ?FIXTURE, [a, b, c]),
    {ok, 2} = Call(distribute_pool_proto:cast_batch_keyed(PoolId, ?FIXTURE, [{1, x}, {2, y}])),
    {ok, 0} = Call(distribute_pool_proto:cast_batch(PoolId, ?FIXTURE, "")),
    %% Lease forms by hand: a checkout, its checkin and a cancel (casts), a lease that is no more.
    {ok, {ConnId, LeaseId, _}} = Call(distribute_pool_proto:checkout(PoolId, 5000)),
    ok = distribute_pool_client:cast(Server, distribute_pool_proto:checkin(PoolId, ConnId, LeaseId)),
    ok = distribute_pool_client:cast(Server, distribute_pool_proto:cancel(PoolId, self(), make_ref())),
    {error, invalid_connection} = Call(distribute_pool_proto:lease_of(PoolId, distribute_pool_proto:alias_tag(make_ref()))),
    {error, invalid_connection} = Call(distribute_pool_proto:send(PoolId, ConnId, LeaseId, ?FIXTURE, late)),
    {error, invalid_connection} = Call(distribute_pool_proto:discard(PoolId, ConnId, LeaseId)),
    {error, _} = Call(distribute_pool_proto:send_many(PoolId, ConnId, LeaseId, [{?FIXTURE, m}])),
    {error, _} = Call(distribute_pool_proto:request(PoolId, ConnId, LeaseId, ?FIXTURE, infinity, r)),
    {error, _} = Call(distribute_pool_proto:call(PoolId, ConnId, LeaseId, erlang, node, [], 100)),
    %% The service's own requests.
    #{} = dpool_ct_helper:do_stats(Pool),
    {ok, [_ | _]} = distribute_pool:pools(),
    {ok, #{}} = Call(distribute_pool_proto:info()),
    pong = Call(distribute_pool_proto:ping()),
    {ok, [_ | _]} = Call(distribute_pool_proto:lanes()),
    {error, restore_too_late} =
        Call(distribute_pool_proto:restore([{1 bsl 40, Target, #{max_connections => 1}},
                                            {group, (1 bsl 40) + 1, [{(1 bsl 40) + 2, Target, #{}}],
                                             #{max_connections => 1}, #{strategy => least_in_use}}],
                                           1 bsl 41)),
    %% Pool groups: new_group, keyed operations, add_target, remove_target of both arities (the added targets
    %% have no node behind them: with min_connections 0 they open nothing until asked).
    {ok, Group} = distribute_pool:new_group([Target], #{max_connections => 1}),
    GroupId = dpool_ct_helper:do_pool_id(Group),
    Keyed = distribute_pool:keyed(Group, {user, 42}),
    {ok, Target} = distribute_pool:call(Keyed, erlang, node, []),
    {ok, Target} = distribute_pool:with_connection(Keyed, fun(C) ->
                                                                  {ok, N} = distribute_pool:call(C, erlang, node, []),
                                                                  N
                                                          end),
    {ok, 1} = distribute_pool:cast_batch(Keyed, ?FIXTURE, [keyed]),
    [ok = distribute_pool:add_target(Group, {Nobody, #{min_connections => 0}})
     || Nobody <- ['dpool_fuzz_nobody_1@127.0.0.1', 'dpool_fuzz_nobody_2@127.0.0.1']],
    ok = distribute_pool:remove_target(Group, 'dpool_fuzz_nobody_1@127.0.0.1', #{drain_timeout_ms => 0}),
    ok = Call({remove_target, GroupId, 'dpool_fuzz_nobody_2@127.0.0.1'}),
    {error, {invalid_config, _}} = Call(distribute_pool_proto:new_group([{Target, #{}}, {Target, #{}}],
                                                                        #{max_connections => 1}, #{})),
    {error, badarg} = Call(distribute_pool_proto:keyed(1, distribute_pool_proto:keyed(2, pools))),
    {ok, #{members := [_]}} = distribute_pool:stats(Group),
    ok = distribute_pool:destroy(Group),
    %% Destroys, both arities; and one of a pool no more.
    {ok, Pool2} = distribute_pool:new(Target, #{max_connections => 1}),
    ok = Call({destroy, dpool_ct_helper:do_pool_id(Pool2)}),
    ok = distribute_pool:destroy(Pool),
    {error, invalid_pool} = Call(distribute_pool_proto:stats(PoolId)),
    ok.

%% Runs _build/cmake/dpool_fuzz_split (found from the application's priv/, a link to the repository's).
run_split(Recorded, Out) ->
    Exe = filename:join([code:lib_dir(distribute_pool), "priv", "..", "_build", "cmake", "dpool_fuzz_split"]),
    case filelib:is_regular(Exe) of
        true -> ok;
        false -> ct:fail({missing, Exe, "build it first: make cnode"})
    end,
    dpool_ct_helper:do_run_program(Exe, [Recorded, Out], []).
