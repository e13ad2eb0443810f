%% distribute_pool_proto, the messages to and from the C-node, and the limits the library shares with it.
%%
%% unit: the builders make the tuples of docs/PROTOCOL.md, and the readers turn each reply shape into what the
%% library matches (bad shapes into {bad_reply, _}), without a C-node.
%% cnode: against the real C-node, every request the builders make is one it knows (never badarg), and each
%% limit of distribute_pool_internal.hrl that the C-node has too is the C-node's: its bound is accepted and
%% the next value refused, on both sides, so that a change on one side only fails here.
-module(distribute_pool_proto_SUITE).

-include_lib("common_test/include/ct.hrl").
-include("../../erlang/distribute_pool_internal.hrl").

-export([all/0]).
-export([groups/0]).
-export([suite/0]).
-export([init_per_group/2]).
-export([end_per_group/2]).
-export([builders_make_the_documented_tuples/1]).
-export([envelopes_are_gen_server_s/1]).
-export([checkout_reply_shapes/1]).
-export([new_and_whereis_reply_shapes/1]).
-export([stats_and_pools_reply_shapes/1]).
-export([call_send_many_and_restore_reply_shapes/1]).
-export([lanes_reply_takes_only_the_implied_names/1]).
-export([cnode_knows_every_request_built/1]).
-export([max_connections_agrees/1]).
-export([acquire_timeout_agrees/1]).
-export([connect_timeout_agrees/1]).
-export([drain_timeout_agrees/1]).
-export([key_hash_range_agrees/1]).
-export([request_timeout_range_agrees/1]).
-export([lanes_limit_agrees/1]).
-export([owner_grace_agrees/1]).
-export([group_limits_agree/1]).

-import(dpool_ct_helper, [doc/1]).

%% A pool id no C-node of these tests hands out.
-define(NO_POOL, 1 bsl 40).
%% A target nobody runs: pools to it are made with min_connections 0, so new/2 answers at once.
-define(NOBODY, 'dpool_proto_nobody@127.0.0.1').

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 2}}].

-spec all() -> list().
all() ->
    [{group, unit}, {group, cnode}].

-spec groups() -> list().
groups() ->
    [{unit, [parallel], [builders_make_the_documented_tuples,
                         envelopes_are_gen_server_s,
                         checkout_reply_shapes,
                         new_and_whereis_reply_shapes,
                         stats_and_pools_reply_shapes,
                         call_send_many_and_restore_reply_shapes,
                         lanes_reply_takes_only_the_implied_names]},
     {cnode, [], [cnode_knows_every_request_built,
                  max_connections_agrees,
                  acquire_timeout_agrees,
                  connect_timeout_agrees,
                  drain_timeout_agrees,
                  key_hash_range_agrees,
                  request_timeout_range_agrees,
                  lanes_limit_agrees,
                  owner_grace_agrees,
                  group_limits_agree]}].

-spec init_per_group(atom(), list()) -> list().
init_per_group(cnode, Config) ->
    dpool_ct_helper:do_init_suite(Config);
init_per_group(_Group, Config) ->
    Config.

-spec end_per_group(atom(), list()) -> ok.
end_per_group(cnode, Config) ->
    dpool_ct_helper:do_end_suite(Config);
end_per_group(_Group, _Config) ->
    ok.

%% Cases: unit.

-spec builders_make_the_documented_tuples(list()) -> ok.
builders_make_the_documented_tuples(_Config) ->
    doc("Each builder makes the request or cast of docs/PROTOCOL.md, element for element."),
    P = self(),
    Tag = distribute_pool_proto:alias_tag(make_ref()),
    Cases = [{distribute_pool_proto:new(<<"t@h">>, #{max_connections => 1}),
              {new, <<"t@h">>, #{max_connections => 1}}},
             {distribute_pool_proto:whereis(orders), {whereis, orders}},
             {distribute_pool_proto:checkout(1, default), {checkout, 1, default}},
             {distribute_pool_proto:checkout(1, 0), {checkout, 1, 0}},
             {distribute_pool_proto:discard(1, 2, 3), {discard, 1, 2, 3}},
             {distribute_pool_proto:send(1, 2, 3, name, m), {send, 1, 2, 3, name, m}},
             {distribute_pool_proto:send_many(1, 2, 3, [{P, a}, {name, b}]),
              {send_many, 1, 2, 3, [{P, a}, {name, b}]}},
             {distribute_pool_proto:request(1, 2, 3, name, infinity, r), {request, 1, 2, 3, name, infinity, r}},
             {distribute_pool_proto:call(1, 2, 3, m, f, [a], 10), {call, 1, 2, 3, m, f, [a], 10}},
             {distribute_pool_proto:pooled_send(1, {name, 'n@h'}, m), {pooled_send, 1, {name, 'n@h'}, m}},
             {distribute_pool_proto:pooled_request(1, name, 10, r), {pooled_request, 1, name, 10, r}},
             {distribute_pool_proto:pooled_call(1, m, f, [], infinity), {pooled_call, 1, m, f, [], infinity}},
             {distribute_pool_proto:cast_batch(1, name, [a, b]), {cast_batch, 1, name, [a, b]}},
             {distribute_pool_proto:cast_batch_keyed(1, name, [{7, a}]), {cast_batch_keyed, 1, name, [{7, a}]}},
             {distribute_pool_proto:stats(1), {stats, 1}},
             {distribute_pool_proto:destroy(1, 0), {destroy, 1, 0}},
             {distribute_pool_proto:pools(), pools},
             {distribute_pool_proto:restore([{4, 't@h', #{max_connections => 1}}], 5),
              {restore, [{4, 't@h', #{max_connections => 1}}], 5}},
             {distribute_pool_proto:info(), info},
             {distribute_pool_proto:ping(), ping},
             {distribute_pool_proto:lanes(), lanes},
             {distribute_pool_proto:new_group([{'t@h', #{}}], #{max_connections => 1}, #{strategy => least_in_use}),
              {new_group, [{'t@h', #{}}], #{max_connections => 1}, #{strategy => least_in_use}}},
             {distribute_pool_proto:add_target(1, 't@h', #{}), {add_target, 1, 't@h', #{}}},
             {distribute_pool_proto:remove_target(1, 't@h', 0), {remove_target, 1, 't@h', 0}},
             {distribute_pool_proto:keyed(9, distribute_pool_proto:checkout(1, default)),
              {keyed, 9, {checkout, 1, default}}},
             {distribute_pool_proto:checkin(1, 2, 3), {checkin, 1, 2, 3}},
             {distribute_pool_proto:cancel(1, P, Tag), {cancel, 1, P, Tag}}],
    [] = [{Built, Expected} || {Built, Expected} <- Cases, Built =/= Expected],
    ok.

-spec envelopes_are_gen_server_s(list()) -> ok.
envelopes_are_gen_server_s(_Config) ->
    doc("Calls and casts go in gen_server's envelopes, with its alias tags ([alias | Alias], an improper list), "
        "so that gen_server:call/2 and gen_server:cast/2 make the same messages."),
    Alias = make_ref(),
    [alias | Alias] = Tag = distribute_pool_proto:alias_tag(Alias),
    {'$gen_call', {Self, Tag}, ping} = distribute_pool_proto:call_msg(self(), Tag, ping),
    Self = self(),
    Checkin = distribute_pool_proto:checkin(1, 2, 3),
    {'$gen_cast', Checkin} = distribute_pool_proto:cast_msg(Checkin),
    ok.

-spec checkout_reply_shapes(list()) -> ok.
checkout_reply_shapes(_Config) ->
    doc("A checkout's lease comes out as {ok, ConnId, LeaseId, ConnNode}; its errors as they are; a lease with "
        "ids that cannot be ids, or any other shape, as {error, {bad_reply, Reply}}."),
    {ok, 0, 7, 'c_1@h'} = distribute_pool_proto:checkout_reply({ok, {0, 7, 'c_1@h'}}),
    [E = distribute_pool_proto:checkout_reply(E)
     || E <- [{error, pool_exhausted}, {error, invalid_pool}, {error, timeout},
              {error, {connection_failed, {unreachable, <<"why">>}}}]],
    [{error, {bad_reply, R}} = distribute_pool_proto:checkout_reply(R)
     || R <- [{ok, {-1, 7, 'c@h'}}, {ok, {0, -7, 'c@h'}}, {ok, {0, 7, "c@h"}}, {ok, {0, 7}}, ok, pong, {ok, x}]],
    ok.

-spec new_and_whereis_reply_shapes(list()) -> ok.
new_and_whereis_reply_shapes(_Config) ->
    doc("new: {ok, PoolId}; a taken name as {already_started, PoolId, AcquireMs} when both can be a handle's "
        "(acquire timeout within 0..DPOOL_MAX_ACQUIRE_MS), as the C-node's error otherwise; whereis: "
        "{ok, PoolId, AcquireMs} under the same rule; other shapes {error, {bad_reply, _}}."),
    {ok, 3} = distribute_pool_proto:new_reply({ok, 3}),
    {already_started, 3, 0} = distribute_pool_proto:new_reply({error, {already_started, 3, 0}}),
    {already_started, 3, ?DPOOL_MAX_ACQUIRE_MS} =
        distribute_pool_proto:new_reply({error, {already_started, 3, ?DPOOL_MAX_ACQUIRE_MS}}),
    [{error, {already_started, Id, Ms}} = distribute_pool_proto:new_reply({error, {already_started, Id, Ms}})
     || {Id, Ms} <- [{3, ?DPOOL_MAX_ACQUIRE_MS + 1}, {3, -1}, {-3, 0}, {3, default}]],
    Invalid = {error, {invalid_config, {bad_value, max_connections, 0, <<"an integer in 1..1000">>}}},
    Invalid = distribute_pool_proto:new_reply(Invalid),
    {error, timeout} = distribute_pool_proto:new_reply({error, timeout}),
    [{error, {bad_reply, R}} = distribute_pool_proto:new_reply(R) || R <- [{ok, -1}, {ok, a}, ok, {ok, 1, 2}]],

    {ok, 3, 5000} = distribute_pool_proto:whereis_reply({ok, 3, 5000}),
    {error, invalid_pool} = distribute_pool_proto:whereis_reply({error, invalid_pool}),
    [{error, {bad_reply, R}} = distribute_pool_proto:whereis_reply(R)
     || R <- [{ok, 3, ?DPOOL_MAX_ACQUIRE_MS + 1}, {ok, -3, 0}, {ok, 3}, pong]],
    ok.

-spec stats_and_pools_reply_shapes(list()) -> ok.
stats_and_pools_reply_shapes(_Config) ->
    doc("stats: the map with its acquire timeout taken out, when it can be a handle's; pools: the list of ids."),
    Stats = #{acquire_timeout_ms => 250, pool_id => 3},
    {ok, Stats, 250} = distribute_pool_proto:stats_reply({ok, Stats}),
    {error, invalid_pool} = distribute_pool_proto:stats_reply({error, invalid_pool}),
    [{error, {bad_reply, R}} = distribute_pool_proto:stats_reply(R)
     || R <- [{ok, #{}}, {ok, #{acquire_timeout_ms => -1}}, {ok, [{acquire_timeout_ms, 1}]}, ok]],
    {ok, [1, 2]} = distribute_pool_proto:pools_reply({ok, [1, 2]}),
    {ok, []} = distribute_pool_proto:pools_reply({ok, []}),
    {error, timeout} = distribute_pool_proto:pools_reply({error, timeout}),
    {error, {bad_reply, {ok, 1}}} = distribute_pool_proto:pools_reply({ok, 1}),
    ok.

-spec call_send_many_and_restore_reply_shapes(list()) -> ok.
call_send_many_and_restore_reply_shapes(_Config) ->
    doc("call: {ok, {badrpc, R}} is {error, {badrpc, R}} (rex's rule), the rest as it is; send_many: ok, its "
        "errors, or bad_reply; restore: {ok, N}, {refused, Why, PoolId} for the pool of the list it names, the "
        "other errors as they are."),
    {error, {badrpc, nodedown}} = distribute_pool_proto:call_reply({ok, {badrpc, nodedown}}),
    [R = distribute_pool_proto:call_reply(R)
     || R <- [{ok, 1}, {ok, {badrpc}}, {error, {badrpc, {'EXIT', x}}}, {error, timeout}, weird]],
    ok = distribute_pool_proto:send_many_reply(ok),
    {error, invalid_connection} = distribute_pool_proto:send_many_reply({error, invalid_connection}),
    {error, {bad_reply, {ok, 1}}} = distribute_pool_proto:send_many_reply({ok, 1}),
    {ok, 2} = distribute_pool_proto:restore_reply({ok, 2}),
    {refused, invalid_config, 4} = distribute_pool_proto:restore_reply({error, {invalid_config, 4}}),
    {refused, pool_id_taken, 4} = distribute_pool_proto:restore_reply({error, {pool_id_taken, 4}}),
    {error, restore_too_late} = distribute_pool_proto:restore_reply({error, restore_too_late}),
    Unreachable = {error, {connection_failed, {cnode_not_running, <<"down">>}}},
    Unreachable = distribute_pool_proto:restore_reply(Unreachable),
    {error, {bad_reply, pong}} = distribute_pool_proto:restore_reply(pong),
    ok.

-spec lanes_reply_takes_only_the_implied_names(list()) -> ok.
lanes_reply_takes_only_the_implied_names(_Config) ->
    doc("The lanes answer is taken only when it is exactly the names the C-node's own name implies (itself, "
        "then <alive>_lane<k>@<host>), 1 to DPOOL_MAX_LANES of them; anything else (an older C-node's badarg, "
        "names in another order, a name of its own choosing, too many) is `error'."),
    Main = 'cn@127.0.0.1',
    {ok, ["cn@127.0.0.1"]} = distribute_pool_proto:lanes_reply(Main, {ok, [<<"cn@127.0.0.1">>]}),
    Three = [<<"cn@127.0.0.1">>, <<"cn_lane1@127.0.0.1">>, <<"cn_lane2@127.0.0.1">>],
    {ok, ["cn@127.0.0.1", "cn_lane1@127.0.0.1", "cn_lane2@127.0.0.1"]} =
        distribute_pool_proto:lanes_reply(Main, {ok, Three}),
    {ok, Max} = distribute_pool_proto:lane_names(Main, ?DPOOL_MAX_LANES),
    ?DPOOL_MAX_LANES = length(Max),
    MaxBins = [list_to_binary(N) || N <- Max],
    {ok, Max} = distribute_pool_proto:lanes_reply(Main, {ok, MaxBins}),
    TooMany = MaxBins ++ [iolist_to_binary(["cn_lane", integer_to_list(?DPOOL_MAX_LANES), "@127.0.0.1"])],
    [error = distribute_pool_proto:lanes_reply(Main, R)
     || R <- [{error, badarg}, {ok, []}, {ok, lists:reverse(Three)}, {ok, [<<"cn@127.0.0.1">>, <<"evil@h">>]},
              {ok, TooMany}, {ok, [<<"cn@127.0.0.1">> | x]}, {ok, ["cn@127.0.0.1"]}, lanes]],
    error = distribute_pool_proto:lanes_reply('nohost', {ok, [<<"nohost">>]}),
    ok.

%% Cases: cnode.

-spec cnode_knows_every_request_built(list()) -> ok.
cnode_knows_every_request_built(_Config) ->
    doc("Every request the builders make is one the C-node decodes: with a pool id it never handed out, each "
        "is refused invalid_pool (or invalid_connection), never badarg; the others get their documented "
        "answers. Casts leave the C-node running and counting no malformed message."),
    Server = dpool_ct_helper:do_cnode(),
    Call = fun(Request) -> distribute_pool_client:call(Server, Request, 5000) end,
    #{malformed_messages := Malformed} = dpool_ct_helper:do_cnode_info(Server),
    Unknown = [distribute_pool_proto:checkout(?NO_POOL, default),
               distribute_pool_proto:checkout(?NO_POOL, 0),
               distribute_pool_proto:discard(?NO_POOL, 0, 0),
               distribute_pool_proto:send(?NO_POOL, 0, 0, name, m),
               distribute_pool_proto:send_many(?NO_POOL, 0, 0, [{name, m}]),
               distribute_pool_proto:request(?NO_POOL, 0, 0, name, infinity, r),
               distribute_pool_proto:call(?NO_POOL, 0, 0, erlang, node, [], 100),
               distribute_pool_proto:pooled_send(?NO_POOL, name, m),
               distribute_pool_proto:pooled_request(?NO_POOL, name, 100, r),
               distribute_pool_proto:pooled_call(?NO_POOL, erlang, node, [], infinity),
               distribute_pool_proto:cast_batch(?NO_POOL, name, [m]),
               distribute_pool_proto:cast_batch_keyed(?NO_POOL, name, [{1, m}]),
               distribute_pool_proto:stats(?NO_POOL),
               distribute_pool_proto:destroy(?NO_POOL, 0),
               distribute_pool_proto:add_target(?NO_POOL, ?NOBODY, #{}),
               distribute_pool_proto:remove_target(?NO_POOL, ?NOBODY, 0),
               distribute_pool_proto:keyed(?DPOOL_MAX_KEY_DIGEST, distribute_pool_proto:checkout(?NO_POOL, 0))],
    Answers = [{R, Call(R)} || R <- Unknown],
    ct:log("~p", [Answers]),
    [] = [A || {_, Reply} = A <- Answers, Reply =/= {error, invalid_pool}, Reply =/= {error, invalid_connection}],
    {error, invalid_pool} = Call(distribute_pool_proto:whereis(dpool_proto_no_such_name)),
    {ok, Ids} = distribute_pool_proto:pools_reply(Call(distribute_pool_proto:pools())),
    true = lists:all(fun is_integer/1, Ids),
    {ok, #{}} = Call(distribute_pool_proto:info()),
    pong = Call(distribute_pool_proto:ping()),
    {_, CNode} = Server,
    {ok, [_ | _]} = distribute_pool_proto:lanes_reply(CNode, Call(distribute_pool_proto:lanes())),
    %% The embedded C-node got its restore when it started.
    {error, restore_too_late} = distribute_pool_proto:restore_reply(Call(distribute_pool_proto:restore([], 0))),
    {ok, PoolId} = distribute_pool_proto:new_reply(
                     Call(distribute_pool_proto:new(?NOBODY, #{max_connections => 1, min_connections => 0}))),
    {ok, _Stats, ?DPOOL_DEFAULT_ACQUIRE_MS} =
        distribute_pool_proto:stats_reply(Call(distribute_pool_proto:stats(PoolId))),
    Tag = distribute_pool_proto:alias_tag(make_ref()),
    ok = distribute_pool_client:cast(Server, distribute_pool_proto:checkin(PoolId, 0, 0)),
    ok = distribute_pool_client:cast(Server, distribute_pool_proto:cancel(PoolId, self(), Tag)),
    ok = Call(distribute_pool_proto:destroy(PoolId, 0)),
    %% Answered after the casts (this process's lane, as theirs): the C-node read them, none malformed.
    {ok, #{malformed_messages := Malformed}} = Call(distribute_pool_proto:info()),
    ok.

-spec max_connections_agrees(list()) -> ok.
max_connections_agrees(_Config) ->
    doc("max_connections: the C-node takes DPOOL_MAX_CONNECTIONS and refuses one more, saying the range is "
        "1..DPOOL_MAX_CONNECTIONS."),
    {1, ?DPOOL_MAX_CONNECTIONS} = refused_range(max_connections, ?DPOOL_MAX_CONNECTIONS + 1),
    {1, ?DPOOL_MAX_CONNECTIONS} = refused_range(max_connections, 0),
    ok = accepted(#{max_connections => ?DPOOL_MAX_CONNECTIONS}).

-spec acquire_timeout_agrees(list()) -> ok.
acquire_timeout_agrees(_Config) ->
    doc("acquire_timeout_ms: the C-node's range is 0..DPOOL_MAX_ACQUIRE_MS and its default "
        "DPOOL_DEFAULT_ACQUIRE_MS, which a pool's handle and stats then hold."),
    {0, ?DPOOL_MAX_ACQUIRE_MS} = refused_range(acquire_timeout_ms, ?DPOOL_MAX_ACQUIRE_MS + 1),
    ok = accepted(#{acquire_timeout_ms => ?DPOOL_MAX_ACQUIRE_MS}),
    {ok, Pool} = distribute_pool:new(?NOBODY, #{max_connections => 1, min_connections => 0}),
    #{acquire_timeout_ms := ?DPOOL_DEFAULT_ACQUIRE_MS} = dpool_ct_helper:do_stats(Pool),
    ok = distribute_pool:destroy(Pool).

-spec connect_timeout_agrees(list()) -> ok.
connect_timeout_agrees(_Config) ->
    doc("connect_timeout_ms: the C-node's range is 1..DPOOL_MAX_CONNECT_MS, the bound the library assumes when "
        "it works out how long new/2 may take."),
    {1, ?DPOOL_MAX_CONNECT_MS} = refused_range(connect_timeout_ms, ?DPOOL_MAX_CONNECT_MS + 1),
    ok = accepted(#{connect_timeout_ms => ?DPOOL_MAX_CONNECT_MS}).

-spec drain_timeout_agrees(list()) -> ok.
drain_timeout_agrees(_Config) ->
    doc("A destroy's drain: the C-node decodes DPOOL_MAX_DRAIN_MS and refuses one more (badarg); the library "
        "takes the same range in destroy/2 and child_spec/1."),
    Server = dpool_ct_helper:do_cnode(),
    Destroy = fun(Drain) ->
                      distribute_pool_client:call(Server, distribute_pool_proto:destroy(?NO_POOL, Drain), 5000)
              end,
    {error, invalid_pool} = Destroy(?DPOOL_MAX_DRAIN_MS),
    {error, badarg} = Destroy(?DPOOL_MAX_DRAIN_MS + 1),
    {ok, Pool} = distribute_pool:new(?NOBODY, #{max_connections => 1, min_connections => 0}),
    {error, badarg} = distribute_pool:destroy(Pool, #{drain_timeout_ms => ?DPOOL_MAX_DRAIN_MS + 1}),
    ok = distribute_pool:destroy(Pool, #{drain_timeout_ms => ?DPOOL_MAX_DRAIN_MS}),
    #{shutdown := _} = distribute_pool:child_spec(#{name => dpool_proto_drain, target => ?NOBODY,
                                                    max_connections => 1,
                                                    drain_timeout_ms => ?DPOOL_MAX_DRAIN_MS}),
    {'EXIT', {{invalid_config, {bad_value, drain_timeout_ms, _, _}}, _}} =
        (catch distribute_pool:child_spec(#{name => dpool_proto_drain, target => ?NOBODY, max_connections => 1,
                                            drain_timeout_ms => ?DPOOL_MAX_DRAIN_MS + 1})),
    ok.

-spec key_hash_range_agrees(list()) -> ok.
key_hash_range_agrees(_Config) ->
    doc("cast_batch's key hashes: erlang:phash2(Key, DPOOL_KEY_HASH_RANGE) is at most DPOOL_MAX_KEY_HASH, "
        "which the C-node decodes; it refuses one more (badarg)."),
    ?DPOOL_KEY_HASH_RANGE = ?DPOOL_MAX_KEY_HASH + 1,
    Server = dpool_ct_helper:do_cnode(),
    Keyed = fun(Hash) -> distribute_pool_proto:cast_batch_keyed(?NO_POOL, name, [{Hash, m}]) end,
    {error, invalid_pool} = distribute_pool_client:call(Server, Keyed(?DPOOL_MAX_KEY_HASH), 5000),
    {error, badarg} = distribute_pool_client:call(Server, Keyed(?DPOOL_KEY_HASH_RANGE), 5000),
    ok.

-spec request_timeout_range_agrees(list()) -> ok.
request_timeout_range_agrees(_Config) ->
    doc("Request and call timeouts: the C-node decodes up to DPOOL_MAX_WAIT_MS (what a receive takes) and "
        "refuses one more (badarg), for a request on a lease and for a one-shot call alike."),
    Server = dpool_ct_helper:do_cnode(),
    Call = fun(Request) -> distribute_pool_client:call(Server, Request, 5000) end,
    {error, invalid_pool} = Call(distribute_pool_proto:request(?NO_POOL, 0, 0, name, ?DPOOL_MAX_WAIT_MS, r)),
    {error, badarg} = Call(distribute_pool_proto:request(?NO_POOL, 0, 0, name, ?DPOOL_MAX_WAIT_MS + 1, r)),
    {error, invalid_pool} = Call(distribute_pool_proto:pooled_call(?NO_POOL, m, f, [], ?DPOOL_MAX_WAIT_MS)),
    {error, badarg} = Call(distribute_pool_proto:pooled_call(?NO_POOL, m, f, [], ?DPOOL_MAX_WAIT_MS + 1)),
    ok.

-spec lanes_limit_agrees(list()) -> ok.
lanes_limit_agrees(_Config) ->
    doc("--lanes: dpool_cnode refuses DPOOL_MAX_LANES + 1 (usage error, exit 2) and, started with "
        "DPOOL_MAX_LANES, answers that many names, which the library takes; the application env `lanes' has "
        "the same range."),
    Alive = dpool_ct_helper:do_uniq("dpool_proto_lanes"),
    TooMany = integer_to_list(?DPOOL_MAX_LANES + 1),
    {2, Output} = dpool_ct_helper:do_run_exe(["--name", Alive ++ "@127.0.0.1", "--lanes", TooMany]),
    true = string:find(Output, "--lanes") =/= nomatch,
    Args = ["--name", Alive ++ "@127.0.0.1", "--lanes", integer_to_list(?DPOOL_MAX_LANES)],
    dpool_ct_helper:with_nodes(
      [{cnode, Args}],
      fun([#{node := CNode}]) ->
              Server = {distribute_pool, CNode},
              {ok, Names} = distribute_pool_proto:lanes_reply(
                              CNode, distribute_pool_client:call(Server, distribute_pool_proto:lanes(), 5000)),
              ?DPOOL_MAX_LANES = length(Names),
              ?DPOOL_MAX_LANES = length(distribute_pool_client:lane_nodes(Server))
      end),
    Env = #{cnode => embedded, service => distribute_pool, cnode_args => []},
    {ok, #{lanes := ?DPOOL_MAX_LANES}} = distribute_pool_env:check(Env#{lanes => ?DPOOL_MAX_LANES}),
    {error, {bad_app_env, lanes, _}} = distribute_pool_env:check(Env#{lanes => ?DPOOL_MAX_LANES + 1}),
    {ok, #{lanes := ?DPOOL_DEFAULT_LANES}} = distribute_pool_env:check(Env#{lanes => ?DPOOL_DEFAULT_LANES}),
    ok.

-spec owner_grace_agrees(list()) -> ok.
owner_grace_agrees(_Config) ->
    doc("owner_grace_ms: the C-node's range is 0..DPOOL_MAX_OWNER_GRACE_MS and its default (a `new` without "
        "the key) DPOOL_DEFAULT_OWNER_GRACE_MS, the application env's default; the env takes the same range."),
    {0, ?DPOOL_MAX_OWNER_GRACE_MS} = refused_range(owner_grace_ms, ?DPOOL_MAX_OWNER_GRACE_MS + 1),
    ok = accepted(#{owner_grace_ms => ?DPOOL_MAX_OWNER_GRACE_MS}),
    Server = dpool_ct_helper:do_cnode(),
    {ok, Id} = gen_server:call(Server, {new, ?NOBODY, #{max_connections => 1, min_connections => 0}}, 5000),
    {ok, #{owner_grace_ms := ?DPOOL_DEFAULT_OWNER_GRACE_MS, owner := Owner}} =
        gen_server:call(Server, {stats, Id}, 5000),
    Owner = node(),
    ok = gen_server:call(Server, {destroy, Id}, 15000),
    {ok, #{owner_grace_ms := ?DPOOL_DEFAULT_OWNER_GRACE_MS}} = distribute_pool_env:app_config(),
    Env = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 1},
    {ok, #{owner_grace_ms := ?DPOOL_MAX_OWNER_GRACE_MS}} =
        distribute_pool_env:check(Env#{owner_grace_ms => ?DPOOL_MAX_OWNER_GRACE_MS}),
    {error, {bad_app_env, owner_grace_ms, _}} =
        distribute_pool_env:check(Env#{owner_grace_ms => ?DPOOL_MAX_OWNER_GRACE_MS + 1}),
    ok.

%% Helpers.

%% The range the C-node gives in its refusal of Key => Value: {Low, High} of "an integer in Low..High".
-spec refused_range(atom(), integer()) -> {integer(), integer()}.
refused_range(Key, Value) ->
    Options = maps:merge(#{max_connections => 1, min_connections => 0}, #{Key => Value}),
    {error, {invalid_config, {bad_value, Key, Value, Allowed}}} = distribute_pool:new(?NOBODY, Options),
    {match, [Low, High]} = re:run(Allowed, "^an integer in ([0-9]+)\\.\\.([0-9]+)$",
                                  [{capture, all_but_first, list}]),
    {list_to_integer(Low), list_to_integer(High)}.

%% A pool with Options (and min_connections 0) is made by the C-node, and destroyed again.
-spec accepted(map()) -> ok.
accepted(Options) ->
    {ok, Pool} = distribute_pool:new(?NOBODY, maps:merge(#{max_connections => 1, min_connections => 0}, Options)),
    ok = distribute_pool:destroy(Pool).

-spec group_limits_agree(list()) -> ok.
group_limits_agree(_Config) ->
    doc("Pool groups: a key digest is at most DPOOL_MAX_KEY_DIGEST (keyed/2's digests are), which the C-node "
        "decodes, and it refuses one more (badarg); a group holds DPOOL_MAX_GROUP_MEMBERS targets, and "
        "new_group with one more (or with none) is refused, by the library and by the C-node alike."),
    Server = dpool_ct_helper:do_cnode(),
    Call = fun(Request) -> distribute_pool_client:call(Server, Request, 5000) end,
    Checkout = distribute_pool_proto:checkout(?NO_POOL, 0),
    {error, invalid_pool} = Call(distribute_pool_proto:keyed(?DPOOL_MAX_KEY_DIGEST, Checkout)),
    {error, badarg} = Call(distribute_pool_proto:keyed(?DPOOL_MAX_KEY_DIGEST + 1, Checkout)),
    true = lists:all(fun(K) -> distribute_pool_group:key_digest(K) =< ?DPOOL_MAX_KEY_DIGEST end,
                     [0, -1, <<>>, {a, "b"}, make_ref(), lists:seq(1, 100)]),
    Targets = fun(N) -> [{list_to_binary(io_lib:format("dpool_proto_nobody~b@127.0.0.1", [I])), #{}}
                         || I <- lists:seq(1, N)] end,
    Pool = #{max_connections => 1, min_connections => 0},
    {ok, Group} = distribute_pool_proto:new_reply(
                    Call(distribute_pool_proto:new_group(Targets(?DPOOL_MAX_GROUP_MEMBERS), Pool, #{}))),
    ok = Call(distribute_pool_proto:destroy(Group, 0)),
    {error, {invalid_config, {bad_value, targets, _, _}}} =
        Call(distribute_pool_proto:new_group(Targets(?DPOOL_MAX_GROUP_MEMBERS + 1), Pool, #{})),
    {error, {invalid_config, {bad_value, targets, _, _}}} =
        distribute_pool:new_group([T || {T, _} <- Targets(?DPOOL_MAX_GROUP_MEMBERS + 1)], Pool),
    %% No target at all: refused the same way by both.
    {error, {invalid_config, {bad_value, targets, [], _}}} = Call(distribute_pool_proto:new_group([], Pool, #{})),
    {error, {invalid_config, {bad_value, targets, _, _}}} = distribute_pool:new_group([], Pool),
    ok.
