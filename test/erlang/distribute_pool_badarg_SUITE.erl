%% Wrong inputs, through the API and straight onto the wire: each gives an error, nobody crashes, the
%% C-node keeps answering as the same OS process, and no atoms are created.
-module(distribute_pool_badarg_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).
-export([bad_pool_handles/1]).
-export([bad_connection_handles/1]).
-export([bad_funs_and_timeouts/1]).
-export([bad_new_arguments/1]).
-export([unknown_requests_are_badarg/1]).
-export([malformed_messages_leave_cnode_alive/1]).
-export([other_names_on_cnode_do_not_exist/1]).
-export([atom_count_stable_with_random_targets/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_cnode/0, do_cnode_info/1, do_start_target/1,
                          do_stop_peer/1, do_assert_cnode_alive/1, do_hold_leases/3, do_release/1]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [bad_pool_handles,
     bad_connection_handles,
     bad_funs_and_timeouts,
     bad_new_arguments,
     unknown_requests_are_badarg,
     malformed_messages_leave_cnode_alive,
     other_names_on_cnode_do_not_exist,
     atom_count_stable_with_random_targets].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Every case runs against a fresh target with one live pool, and ends by checking the C-node.
-spec init_per_testcase(atom(), list()) -> list().
init_per_testcase(_Case, Config) ->
    {Peer, T} = do_start_target("dpool_bad"),
    {ok, Pool} = distribute_pool:new(T, 2),
    [{peer, Peer}, {target, T}, {pool, Pool} | Config].

-spec end_per_testcase(atom(), list()) -> ok.
end_per_testcase(_Case, Config) ->
    _ = distribute_pool:destroy(?config(pool, Config)),
    do_stop_peer(?config(peer, Config)).

%% Cases.

-spec bad_pool_handles(list()) -> ok.
bad_pool_handles(Config) ->
    doc("Wrong terms, forged pools with unknown ids and destroyed pools are invalid_pool for every pool "
        "function."),
    Pool = ?config(pool, Config),
    T = ?config(target, Config),
    {ok, Dead} = distribute_pool:new(T, 1),
    ok = distribute_pool:destroy(Dead),
    Forged = [setelement(3, Pool, 1 bsl 40), setelement(3, Pool, 1 bsl 64 - 1), setelement(3, Pool, 1 bsl 64),
              setelement(3, Pool, 1 bsl 200), setelement(3, Pool, element(3, Pool) + 100000)],
    Bad = [undefined, 0, -1, 1 bsl 64, "pool", <<>>, {}, {dpool}, {dpool, a, b, c}, #{}, [Pool],
           setelement(3, Pool, -1), setelement(3, Pool, foo), Dead | Forged],
    [begin
         {error, invalid_pool} = distribute_pool:stats(B),
         {error, invalid_pool} = distribute_pool:destroy(B),
         {error, invalid_pool} = distribute_pool:with_connection(B, fun(_) -> ok end),
         {error, invalid_pool} = distribute_pool:with_connection(B, fun(_) -> ok end, #{acquire_timeout_ms => 0})
     end || B <- Bad],
    %% The real pool is untouched.
    {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec bad_connection_handles(list()) -> ok.
bad_connection_handles(Config) ->
    doc("Wrong terms and forged leases (a checkout tag of no lease, of an ended lease, another pool's lease) "
        "are invalid_connection (or invalid_pool for an unknown pool) for every lease function."),
    Pool = ?config(pool, Config),
    T = ?config(target, Config),
    {ok, Other} = distribute_pool:new(T, 1),
    {ok, Results} =
        distribute_pool:with_connection(
          Pool,
          fun(Conn) ->
                  Wrong = [undefined, 42, "conn", {dpool_conn}, setelement(3, Conn, -1),
                           setelement(3, Conn, [alias | x]), setelement(4, Conn, x),
                           setelement(4, Conn, {"s", node()}), erlang:append_element(Conn, x)],
                  %% A lease is named by its checkout's tag: a tag no checkout had, one of a lease that ended,
                  %% or this lease's in another pool.
                  {ok, Ended} = distribute_pool:with_connection(Pool, fun(C) -> C end),
                  ForgedIds = [setelement(3, Conn, [alias | make_ref()]), setelement(2, Ended, Pool),
                               setelement(2, Conn, Other)],
                  %% A pool is a handle for the one-shot send, request and call, but no lease.
                  {error, invalid_connection} = distribute_pool:ping(Pool),
                  {error, invalid_connection} = distribute_pool:connection_info(Pool),
                  {error, invalid_connection} = distribute_pool:send_async(Pool, x, y),
                  _ = [[{error, invalid_connection} = distribute_pool:send(B, x, y),
                    {error, invalid_connection} = distribute_pool:send_async(B, x, y),
                    {error, invalid_connection} = distribute_pool:request(B, x, y),
                    {error, invalid_connection} = distribute_pool:call(B, erlang, node, []),
                    {error, invalid_connection} = distribute_pool:ping(B),
                    {error, invalid_connection} = distribute_pool:connection_info(B)] || B <- Wrong],
                  Forged = [{distribute_pool:send(B, x, y), distribute_pool:request(B, x, y),
                             distribute_pool:call(B, erlang, node, []), distribute_pool:ping(B)}
                            || B <- ForgedIds],
                  %% The real lease still works.
                  {Forged, distribute_pool:call(Conn, erlang, node, [])}
          end),
    {Forged, {ok, T}} = Results,
    [{{error, invalid_connection}, {error, invalid_connection}, {error, invalid_connection},
      {error, invalid_connection}} = F
     || F <- Forged],
    ok = distribute_pool:destroy(Other),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec bad_funs_and_timeouts(list()) -> ok.
bad_funs_and_timeouts(Config) ->
    doc("Bad funs, checkout options, request timeouts and M/F/A are badarg; no lease is left behind."),
    Pool = ?config(pool, Config),
    [{error, badarg} = distribute_pool:with_connection(Pool, F)
     || F <- [undefined, fun() -> ok end, fun(_, _) -> ok end, {erlang, node}, 42]],
    [{error, badarg} = distribute_pool:with_connection(Pool, fun(_) -> ok end, O)
     || O <- [#{acquire_timeout_ms => -1}, #{acquire_timeout_ms => 1 bsl 40}, #{acquire_timeout_ms => x},
              #{bogus => 1}, [{bogus, 1}], [{acquire_timeout_ms, -1}], [a], 5000]],
    {ok, ok} = distribute_pool:with_connection(
                 Pool, fun(C) ->
                               [{error, badarg} = distribute_pool:request(C, x, y, T) || T <- [-1, 1 bsl 40, x, 1.0]],
                               [{error, badarg} = distribute_pool:call(C, M, F, A)
                                || {M, F, A} <- [{1, node, []}, {erlang, 1, []}, {erlang, node, [a | b]},
                                                 {erlang, node, x}]],
                               [{error, badarg} = distribute_pool:call(C, erlang, node, [], T) || T <- [-1, x]],
                               ok
                       end),
    #{in_use_connections := 0, waiting := 0} = dpool_ct_helper:do_stats(Pool),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec bad_new_arguments(list()) -> ok.
bad_new_arguments(Config) ->
    doc("new/2 with wrong second arguments and wrong cnode options is invalid_config."),
    T = ?config(target, Config),
    [{error, {invalid_config, _}} = distribute_pool:new(T, A)
     || A <- [foo, 1.0, [1], {1}, "1", <<"1">>, -5, 1 bsl 80, #{max_connections => 1, cnode => 42},
              #{max_connections => 1, cnode => {1, 2}}, #{max_connections => 1, cnode => "n@h"}]],
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec unknown_requests_are_badarg(list()) -> ok.
unknown_requests_are_badarg(Config) ->
    doc("Inside a valid call envelope, an unknown or ill-typed request is answered {error, badarg} (or the "
        "documented error of its kind), and the tag comes back unchanged whatever its shape; a tag "
        "[alias | Alias] is answered to the alias, which drops the answer once deactivated."),
    Server = do_cnode(),
    Alias = alias(),
    Tags = [make_ref(), {make_ref(), <<"bytes">>, 3.5, [a | b], #{k => v}}, [alias | Alias], [alias | x],
            [alias, make_ref()], <<0:8000>>, -1 bsl 100],
    [{error, badarg} = do_raw_call(Server, Tag, R)
     || Tag <- Tags,
        R <- [hello, {hello}, {stats}, {stats, 1, 2}, {checkout, 1}, {send, 1, 2, 3}, {request, 1, 2, 3, 4, 5},
              {checkout, 0, never}, {checkout, 0, -5}, {checkout, 0, 1 bsl 40},
              {request, 0, 0, 0, x, -1, y}, {request, 0, 0, 0, x, 1 bsl 40, y}, lists:seq(1, 100000),
              rand:bytes(1024 * 1024), do_deep(100000)]],
    %% An answer to an alias that is no longer active is dropped by this node.
    true = unalias(Alias),
    Server ! {'$gen_call', {self(), [alias | Alias]}, hello},
    receive {[alias | Alias], Late} -> ct:fail({answer_to_inactive_alias, Late}) after 1000 -> ok end,
    %% Wrong ids are errors of their kind.
    [{error, invalid_pool} = do_raw_call(Server, make_ref(), R)
     || R <- [{stats, -1}, {stats, foo}, {stats, 1 bsl 64}, {destroy, -1}, {destroy, 1 bsl 80},
              {checkout, -1, default}, {checkout, bar, default}]],
    [{error, {invalid_config, _}} = do_raw_call(Server, make_ref(), R)
     || R <- [{new, 'a@127.0.0.1', not_a_map}, {new, 42, #{max_connections => 1}},
              {new, <<"a@127.0.0.1">>, #{max_connections => 1, cnode => x}}]],
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec malformed_messages_leave_cnode_alive(list()) -> ok.
malformed_messages_leave_cnode_alive(Config) ->
    doc("Junk sent straight to the C-node's name (wrong envelopes, bad From, huge and deep terms, casts of "
        "every wrong shape) is dropped and counted; the C-node still serves the live pool's lease."),
    {_, CNode} = Server = do_cnode(),
    Pool = ?config(pool, Config),
    T = ?config(target, Config),
    Holders = do_hold_leases(Pool, 1, held),
    #{malformed_messages := M0} = do_cnode_info(Server),
    RemotePid = erpc:call(T, erlang, whereis, [init]),
    Junk = [hello, 'EXIT', 42, [], {}, <<"bin">>, {'$gen_call'}, {'$gen_call', info},
            {'$gen_call', notapid, info}, {'$gen_call', {self()}, info}, {'$gen_call', {self(), t, x}, info},
            {'$gen_call', {notapid, t}, info}, {'$gen_call', {RemotePid, t}, info},
            {'$gen_call', {self(), t}, info, extra}, {'$gen_cast'}, {'$gen_cast', a, b},
            {'$gen_call', {make_ref(), t}, info}, {system, {self(), t}, get_state},
            rand:bytes(8 * 1024 * 1024), lists:seq(1, 200000), do_deep(200000)],
    [Server ! J || J <- Junk],
    Casts = [junk, {checkin}, {checkin, -1, a, b}, {checkin, 0, 0, 1 bsl 80}, {checkin, 1 bsl 70, 0, 0},
             {cancel, 0, notpid, t}, {cancel, -1, self(), t}, {cancel, 0, self()}, do_deep(100000),
             {checkin, element(3, Pool), 999999, 999999}],
    [gen_server:cast(Server, C) || C <- Casts],
    %% No reply may come for any of it: replies to wrong envelopes have nowhere valid to go.
    #{malformed_messages := M1} = do_cnode_info(Server),
    ct:log("malformed_messages ~b -> ~b", [M0, M1]),
    true = M1 - M0 >= length(Junk),
    receive {t, Unexpected} -> ct:fail({reply_to_malformed, Unexpected}) after 0 -> ok end,
    true = lists:member(CNode, nodes(hidden)),
    %% The held lease was not disturbed by the bogus checkins.
    #{in_use_connections := 1} = dpool_ct_helper:do_stats(Pool),
    do_release(Holders),
    {ok, {ok, T}} = distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec other_names_on_cnode_do_not_exist(list()) -> ok.
other_names_on_cnode_do_not_exist(Config) ->
    doc("Any other registered name on the C-node does not exist: a monitor on it fires with noproc at once, "
        "and messages to it are dropped."),
    {_, CNode} = do_cnode(),
    [begin
         Ref = erlang:monitor(process, {Name, CNode}),
         receive {'DOWN', Ref, process, _, noproc} -> ok after 5000 -> ct:fail({no_noproc, Name}) end,
         {Name, CNode} ! {'$gen_call', {self(), Ref}, info}
     end || Name <- [net_kernel, rex, dpool_other, code_server]],
    receive {_, {ok, #{}}} = M -> ct:fail({answered_under_other_name, M}) after 0 -> ok end,
    {'EXIT', {noproc, _}} = (catch gen_server:call({net_kernel, CNode}, {is_auth, node()}, 5000)),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

-spec atom_count_stable_with_random_targets(list()) -> ok.
atom_count_stable_with_random_targets(Config) ->
    doc("Thousands of new/2 calls with distinct random targets (binaries and strings, well-formed names of "
        "missing nodes and random bytes) leave this node's atom count almost where it was."),
    Server = do_cnode(),
    {ok, PoolsBefore} = gen_server:call(Server, pools, 5000),
    Before = erlang:system_info(atom_count),
    [begin
         Bytes = << <<B>> || <<B>> <= rand:bytes(16), B =/= $@ >>,
         {error, {invalid_config, _}} = distribute_pool:new(Bytes, 1),
         {error, {invalid_config, _}} = distribute_pool:new(binary_to_list(Bytes), 1)
     end || _ <- lists:seq(1, 1500)],
    Missing = [begin
                   Name = "dpool_rnd_" ++ binary_to_list(binary:encode_hex(rand:bytes(8))) ++ "@127.0.0.1",
                   case I rem 2 of
                       0 -> Name;
                       1 -> list_to_binary(Name)
                   end
               end || I <- lists:seq(1, 200)],
    [{error, {connection_failed, _}} = distribute_pool:new(Name, #{max_connections => 1, connect_timeout_ms => 1000})
     || Name <- Missing],
    After = erlang:system_info(atom_count),
    ct:log("atom_count ~b -> ~b", [Before, After]),
    true = After - Before < 50,
    {ok, PoolsBefore} = gen_server:call(Server, pools, 5000),
    do_assert_cnode_alive(?config(cnode_os_pid, Config)).

%% Helpers.

%% A call envelope with an arbitrary tag, as gen_server would send it.
do_raw_call(Server, Tag, Request) ->
    Mref = erlang:monitor(process, Server),
    Server ! {'$gen_call', {self(), Tag}, Request},
    receive
        {Tag, Reply} ->
            erlang:demonitor(Mref, [flush]),
            Reply;
        {'DOWN', Mref, _, _, Reason} ->
            ct:fail({cnode_down, Reason, Request})
    after 10000 ->
        ct:fail({no_reply, Tag, do_short(Request)})
    end.

do_deep(N) ->
    lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, N)).

do_short(Term) ->
    case erlang:external_size(Term) > 200 of
        true -> {big_term, erlang:external_size(Term)};
        false -> Term
    end.
