%% The library's side of docs/PROTOCOL.md, checked against a fake C-node: the case process registers the
%% service name on this node and plays the C-node, so every request the library puts on the wire, and every
%% reply it maps, is seen exactly. Needs no C-node binary.
-module(distribute_pool_client_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).
-export([new_request_on_the_wire/1]).
-export([new_rejects_unconvertible_arguments/1]).
-export([new_maps_cnode_failures/1]).
-export([checkout_and_checkin_on_the_wire/1]).
-export([checkin_after_raise_and_reraise/1]).
-export([checkout_errors_pass_through/1]).
-export([first_operation_follows_the_checkout/1]).
-export([other_process_asks_for_the_lease/1]).
-export([checkout_client_timeout_sends_cancel/1]).
-export([lease_operations_on_the_wire/1]).
-export([request_client_wait_is_bounded/1]).
-export([stats_and_destroy_on_the_wire/1]).
-export([dead_cnode_gives_connection_failed/1]).
-export([bad_handles_never_reach_the_wire/1]).
-export([bad_funs_timeouts_and_mfa/1]).
-export([default_cnode_needs_the_application/1]).
-export([no_atoms_from_targets/1]).
-export([remote_envelope_answers_and_failures/1]).
-export([one_shot_call_on_the_wire/1]).
-export([call_behind_shares_the_watch/1]).

-import(dpool_ct_helper, [doc/1, do_stop_peer/1, with_target/2, do_wait_until/2, do_start_fixture/2]).

-define(FAKE, dpool_fake_cnode).
-define(POOL_ID, 7).
-define(CONN_ID, 3).
-define(LEASE_ID, 11).
-define(CONN_NODE, 'fake_7_3@127.0.0.1').

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 2}}].

-spec all() -> [atom()].
all() ->
    [new_request_on_the_wire,
     new_rejects_unconvertible_arguments,
     new_maps_cnode_failures,
     checkout_and_checkin_on_the_wire,
     checkin_after_raise_and_reraise,
     checkout_errors_pass_through,
     first_operation_follows_the_checkout,
     other_process_asks_for_the_lease,
     checkout_client_timeout_sends_cancel,
     lease_operations_on_the_wire,
     request_client_wait_is_bounded,
     stats_and_destroy_on_the_wire,
     dead_cnode_gives_connection_failed,
     bad_handles_never_reach_the_wire,
     bad_funs_timeouts_and_mfa,
     default_cnode_needs_the_application,
     no_atoms_from_targets,
     remote_envelope_answers_and_failures,
     one_shot_call_on_the_wire,
     call_behind_shares_the_watch].

%% The application runs with an "external" C-node: this node, under the fake service name. No port is opened.
-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    true = is_alive(),
    do_start_app(),
    Config.

-spec end_per_suite(list()) -> ok.
end_per_suite(_Config) ->
    _ = application:stop(distribute_pool),
    _ = application:unload(distribute_pool),
    ok.

-spec init_per_testcase(atom(), list()) -> list().
init_per_testcase(_Case, Config) ->
    true = register(?FAKE, self()),
    Config.

-spec end_per_testcase(atom(), list()) -> ok.
end_per_testcase(_Case, _Config) ->
    _ = (catch unregister(?FAKE)),
    ok.

%% Cases.

-spec new_request_on_the_wire(list()) -> ok.
new_request_on_the_wire(_Config) ->
    doc("new/2 sends {new, Target, Options}: strings become binaries, atoms stay, an integer becomes "
        "#{max_connections => N}, the library-only cnode key is removed, other keys go to the C-node as is."),
    {ok, Pool} = do_fake_new("t@127.0.0.1", 3, #{max_connections => 3}, <<"t@127.0.0.1">>),
    #{} = do_info_pool(Pool),
    {ok, _} = do_fake_new('t@127.0.0.1', #{max_connections => 2, min_connections => 1,
                                           cnode => {?FAKE, node()}},
                          #{max_connections => 2, min_connections => 1}, 't@127.0.0.1'),
    {ok, _} = do_fake_new(<<"t@127.0.0.1">>, #{max_connections => 1, cnode => node(), acquire_timeout_ms => 9},
                          #{max_connections => 1, acquire_timeout_ms => 9}, <<"t@127.0.0.1">>),
    %% Unknown keys are the C-node's to refuse.
    Ref = do_async(fun() -> distribute_pool:new("t@h", #{max_connections => 1, weird => x}) end),
    {From, {new, <<"t@h">>, #{max_connections := 1, weird := x}}} = do_expect_call(),
    do_reply(From, {error, {invalid_config, {unknown_option, weird}}}),
    {ok, {error, {invalid_config, {unknown_option, weird}}}} = do_await(Ref),
    ok.

-spec new_rejects_unconvertible_arguments(list()) -> ok.
new_rejects_unconvertible_arguments(_Config) ->
    doc("Targets and options the wire cannot carry as a target or a map give invalid_config without a "
        "request."),
    Bad = [{42, 1}, {{t}, 1}, {[a | b], 1}, {[16#110000], 1}, {"ok@h", [4]}, {"ok@h", foo}, {"ok@h", 1.5},
           {"ok@h", #{max_connections => 1, cnode => 42}}, {"ok@h", #{max_connections => 1, cnode => "n@h"}},
           {"ok@h", #{max_connections => 1, cnode => {1, 2}}}, {self(), 1}, {make_ref(), 1}],
    [{error, {invalid_config, _}} = distribute_pool:new(T, O) || {T, O} <- Bad],
    do_expect_no_call(),
    ok.

-spec new_maps_cnode_failures(list()) -> ok.
new_maps_cnode_failures(_Config) ->
    doc("new/2 returns the C-node's errors as they come; an unreachable C-node is "
        "{connection_failed, {cnode_not_running, Text}}."),
    [begin
         Ref = do_async(fun() -> distribute_pool:new("t@h", 1) end),
         {From, {new, <<"t@h">>, _}} = do_expect_call(),
         do_reply(From, {error, E}),
         {ok, {error, E}} = do_await(Ref)
     end || E <- [{invalid_config, {bad_value, max_connections, 0, <<"an integer in 1..1000">>}},
                  {connection_failed, {not_registered, <<"epmd on 127.0.0.1 has no node named 't'">>}}]],
    {error, {connection_failed, {cnode_not_running, Text}}} =
        distribute_pool:new("t@h", #{max_connections => 1, cnode => 'dpool_nosuch_cnode@127.0.0.1'}),
    true = is_binary(Text),
    ok.

-spec checkout_and_checkin_on_the_wire(list()) -> ok.
checkout_and_checkin_on_the_wire(_Config) ->
    doc("with_connection checks out with the pool's default or the given timeout, runs the fun with the "
        "lease, checks in with a cast, and returns {ok, Result}."),
    Pool = do_fake_pool(),
    Self = self(),
    Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun distribute_pool:connection_info/1) end),
    {From, {checkout, ?POOL_ID, default}} = do_expect_call(),
    do_grant(From),
    {ok, {ok, #{id := ?CONN_ID, node := ?CONN_NODE, pool := Pool}}} = do_await(Ref),
    {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast(),
    Ref2 = do_async(fun() ->
                            distribute_pool:with_connection(Pool, fun(_) -> Self ! in_fun, 42 end,
                                                            #{acquire_timeout_ms => 250})
                    end),
    {From2, {checkout, ?POOL_ID, 250}} = do_expect_call(),
    do_grant(From2),
    receive in_fun -> ok after 5000 -> ct:fail(fun_not_run) end,
    {ok, {ok, 42}} = do_await(Ref2),
    {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast(),
    ok.

-spec checkin_after_raise_and_reraise(list()) -> ok.
checkin_after_raise_and_reraise(_Config) ->
    doc("When the fun raises, the lease is checked in and the exception leaves with_connection unchanged: "
        "class, reason and the stacktrace from inside the fun."),
    Pool = do_fake_pool(),
    [begin
         Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun(_) -> do_raise(Class) end) end),
         {From, {checkout, ?POOL_ID, default}} = do_expect_call(),
         do_grant(From),
         {raised, Class, {boom, Class}, [{?MODULE, do_raise, 1, _} | _]} = do_await(Ref),
         {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast()
     end || Class <- [error, exit, throw]],
    ok.

-spec checkout_errors_pass_through(list()) -> ok.
checkout_errors_pass_through(_Config) ->
    doc("Checkout errors come back as they are; the fun has run meanwhile (the lease is pipelined) and its "
        "result is dropped; a malformed grant is not a lease."),
    Pool = do_fake_pool(),
    Self = self(),
    [begin
         Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun(_) -> Self ! ran, result end) end),
         {From, {checkout, ?POOL_ID, default}} = do_expect_call(),
         do_reply(From, {error, E}),
         {ok, {error, E}} = do_await(Ref),
         receive ran -> ok after 5000 -> ct:fail(fun_not_run) end
     end || E <- [pool_exhausted, connection_failed, invalid_pool, badarg]],
    Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun(_) -> Self ! ran end) end),
    {From, _} = do_expect_call(),
    do_reply(From, {ok, {not_an_id, 1, <<"n@h">>}}),
    {ok, {error, {bad_reply, _}}} = do_await(Ref),
    do_expect_no_call(),
    ok.

-spec first_operation_follows_the_checkout(list()) -> ok.
first_operation_follows_the_checkout(_Config) ->
    doc("The fun's first operation goes right behind the checkout, naming the lease by the checkout's tag; "
        "lease_pending (the checkout waits in line) makes the holder wait for the checkout's answer and send "
        "the operation again with the lease's ids; when the checkout fails, that operation ends the fun and "
        "with_connection returns the checkout's error; nothing more is sent, nothing is checked in."),
    Pool = do_fake_pool(),
    Ref = do_async(fun() ->
                           distribute_pool:with_connection(Pool, fun(C) ->
                               {distribute_pool:call(C, m, f, []), distribute_pool:call(C, m, g, [])}
                           end)
                   end),
    {{_, Tag} = Checkout, {checkout, ?POOL_ID, default}} = do_expect_call(),
    {ByTag, {call, ?POOL_ID, checkout, Tag, m, f, [], 5000}} = do_expect_call(),
    do_reply(ByTag, {error, lease_pending}),
    do_grant(Checkout),
    {Again, {call, ?POOL_ID, ?CONN_ID, ?LEASE_ID, m, f, [], 5000}} = do_expect_call(),
    do_reply(Again, {ok, 1}),
    {Second, {call, ?POOL_ID, ?CONN_ID, ?LEASE_ID, m, g, [], 5000}} = do_expect_call(),
    do_reply(Second, {ok, 2}),
    {ok, {ok, {{ok, 1}, {ok, 2}}}} = do_await(Ref),
    {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast(),
    %% The checkout fails while the first operation waits behind it.
    Ref2 = do_async(fun() ->
                            distribute_pool:with_connection(Pool, fun(C) ->
                                {distribute_pool:send(C, dest, msg), distribute_pool:call(C, m, f, [])}
                            end)
                    end),
    {{_, Tag2} = Checkout2, {checkout, ?POOL_ID, default}} = do_expect_call(),
    {ByTag2, {send, ?POOL_ID, checkout, Tag2, dest, msg}} = do_expect_call(),
    do_reply(ByTag2, {error, lease_pending}),
    do_reply(Checkout2, {error, pool_exhausted}),
    {ok, {error, pool_exhausted}} = do_await(Ref2),
    do_expect_no_call(),
    ok.

-spec other_process_asks_for_the_lease(list()) -> ok.
other_process_asks_for_the_lease(_Config) ->
    doc("A process given the lease by its holder asks the C-node for the lease's ids ({lease_of, PoolId, Tag}) "
        "over the lane of the checkout, again while the answer is lease_pending, then uses the ids."),
    Pool = do_fake_pool(),
    Ref = do_async(fun() ->
                           distribute_pool:with_connection(Pool, fun(C) ->
                               {Pid, Mref} = spawn_monitor(fun() -> exit({done, distribute_pool:call(C, m, f, [])}) end),
                               receive {'DOWN', Mref, process, Pid, {done, Result}} -> Result end
                           end)
                   end),
    {{_, Tag} = Checkout, {checkout, ?POOL_ID, default}} = do_expect_call(),
    {Ask, {lease_of, ?POOL_ID, Tag}} = do_expect_call(),
    do_reply(Ask, {error, lease_pending}),
    {Ask2, {lease_of, ?POOL_ID, Tag}} = do_expect_call(),
    do_grant(Ask2),
    {Call, {call, ?POOL_ID, ?CONN_ID, ?LEASE_ID, m, f, [], 5000}} = do_expect_call(),
    do_reply(Call, {ok, 7}),
    do_grant(Checkout),
    {ok, {ok, {ok, 7}}} = do_await(Ref),
    {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast(),
    ok.

-spec checkout_client_timeout_sends_cancel(list()) -> ok.
checkout_client_timeout_sends_cancel(_Config) ->
    doc("A C-node that does not answer a checkout within acquire timeout + 5 s: the caller gets "
        "pool_exhausted and the library withdraws the checkout with {cancel, PoolId, Pid, Tag}."),
    Pool = do_fake_pool(),
    T0 = erlang:monotonic_time(millisecond),
    Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun(_) -> ran end,
                                                            #{acquire_timeout_ms => 100}) end),
    {{CallerPid, Tag}, {checkout, ?POOL_ID, 100}} = do_expect_call(),
    {ok, {error, pool_exhausted}} = do_await(Ref, 20000),
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    true = Elapsed >= 5100,
    {cancel, ?POOL_ID, CallerPid, Tag} = do_expect_cast(),
    ok.

-spec lease_operations_on_the_wire(list()) -> ok.
lease_operations_on_the_wire(_Config) ->
    doc("send, request, call and ping put the lease's ids on the wire and map the replies: call is "
        "{call, Pool, Conn, Lease, M, F, A, Timeout}, whose {ok, {badrpc, R}} (rex's answer) becomes an error and "
        "whose errors pass unchanged; ping is net_kernel is_auth."),
    Pool = do_fake_pool(),
    Node = node(),
    Ops = fun(C) ->
                  [distribute_pool:send(C, dest, msg),
                   distribute_pool:request(C, {name, 'x@h'}, req),
                   distribute_pool:request(C, dest, req, infinity),
                   distribute_pool:request(C, dest, req, 0),
                   distribute_pool:call(C, m, f, [a]),
                   distribute_pool:call(C, m, f, [], 77),
                   distribute_pool:call(C, m, f, []),
                   distribute_pool:call(C, m, f, [b], infinity),
                   distribute_pool:ping(C),
                   distribute_pool:ping(C),
                   distribute_pool:ping(C)]
          end,
    Ref = do_async(fun() -> distribute_pool:with_connection(Pool, Ops) end),
    {{_, Tag} = F0, {checkout, ?POOL_ID, default}} = do_expect_call(),
    do_grant(F0),
    L = {?POOL_ID, ?CONN_ID, ?LEASE_ID},
    %% The first operation follows the checkout before its answer was read: it names the checkout's tag.
    Script = [{{send, dest, msg}, ok},
              {{request, {name, 'x@h'}, 5000, req}, {ok, r1}},
              {{request, dest, infinity, req}, {error, timeout}},
              {{request, dest, 0, req}, {error, {down, noproc}}},
              {{call, m, f, [a], 5000}, {ok, {badrpc, nope}}},
              {{call, m, f, [], 77}, {ok, 42}},
              {{call, m, f, [], 5000}, {error, invalid_connection}},
              {{call, m, f, [b], infinity}, {error, {badrpc, {'EXIT', oops}}}},
              {{request, net_kernel, 5000, {is_auth, Node}}, {ok, yes}},
              {{request, net_kernel, 5000, {is_auth, Node}}, {ok, no}},
              {{request, net_kernel, 5000, {is_auth, Node}}, {error, {connection_failed, {connection_lost, <<>>}}}}],
    Leases = [{?POOL_ID, checkout, Tag} | lists:duplicate(length(Script) - 1, L)],
    [begin
         {From, Wire} = do_expect_call(),
         Wire = do_lease_request(Lease, Expected),
         do_reply(From, Reply)
     end || {{Expected, Reply}, Lease} <- lists:zip(Script, Leases)],
    {ok, {ok, Results}} = do_await(Ref),
    [ok, {ok, r1}, {error, timeout}, {error, {down, noproc}}, {error, {badrpc, nope}}, {ok, 42},
     {error, invalid_connection}, {error, {badrpc, {'EXIT', oops}}}, pong, pang, pang] = Results,
    {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast(),
    ok.

-spec one_shot_call_on_the_wire(list()) -> ok.
one_shot_call_on_the_wire(_Config) ->
    doc("call given a pool is one {pooled_call, Pool, M, F, A, Timeout} request; its replies map as on a "
        "lease; bad arguments never reach the wire."),
    Pool = do_fake_pool(),
    Script = [{fun() -> distribute_pool:call(Pool, m, f, [a]) end, {pooled_call, ?POOL_ID, m, f, [a], 5000},
               {ok, 42}, {ok, 42}},
              {fun() -> distribute_pool:call(Pool, m, f, [], 10) end, {pooled_call, ?POOL_ID, m, f, [], 10},
               {ok, {badrpc, x}}, {error, {badrpc, x}}},
              {fun() -> distribute_pool:call(Pool, m, f, "ab", infinity) end,
               {pooled_call, ?POOL_ID, m, f, "ab", infinity},
               {error, {badrpc, {'EXIT', {undef, []}}}}, {error, {badrpc, {'EXIT', {undef, []}}}}},
              {fun() -> distribute_pool:call(Pool, m, f, []) end, {pooled_call, ?POOL_ID, m, f, [], 5000},
               {error, pool_exhausted}, {error, pool_exhausted}}],
    [begin
         Ref = do_async(Fun),
         {From, Wire} = do_expect_call(),
         do_reply(From, Reply),
         {ok, Result} = do_await(Ref)
     end || {Fun, Wire, Reply, Result} <- Script],
    [{error, badarg} = distribute_pool:call(Pool, M, F, A, T)
     || {M, F, A, T} <- [{"m", f, [], 5}, {m, f, [a | b], 5}, {m, f, [], -1}, {m, f, [], 1 bsl 40}]],
    do_expect_no_call(),
    ok.

-spec request_client_wait_is_bounded(list()) -> ok.
request_client_wait_is_bounded(_Config) ->
    doc("A request the C-node never answers ends with {error, timeout} once Timeout + 1 s has passed."),
    Pool = do_fake_pool(),
    Ref = do_async(fun() ->
                           distribute_pool:with_connection(
                             Pool, fun(C) ->
                                           %% The lease first, so that the request goes by its ids and its
                                           %% wait is its own.
                                           #{} = distribute_pool:connection_info(C),
                                           T0 = erlang:monotonic_time(millisecond),
                                           R = distribute_pool:request(C, dest, req, 200),
                                           {R, erlang:monotonic_time(millisecond) - T0}
                                   end)
                   end),
    {F0, _} = do_expect_call(),
    do_grant(F0),
    {_, {request, ?POOL_ID, ?CONN_ID, ?LEASE_ID, dest, 200, req}} = do_expect_call(),
    {ok, {ok, {{error, timeout}, Elapsed}}} = do_await(Ref, 20000),
    true = Elapsed >= 1200,
    {checkin, ?POOL_ID, ?CONN_ID, ?LEASE_ID} = do_expect_cast(),
    ok.

-spec stats_and_destroy_on_the_wire(list()) -> ok.
stats_and_destroy_on_the_wire(_Config) ->
    doc("stats and destroy send {stats, PoolId} and {destroy, PoolId, DrainMs} (5000 by default) and return "
        "the replies; a bad drain option never reaches the wire."),
    Pool = do_fake_pool(),
    R1 = do_async(fun() -> distribute_pool:stats(Pool) end),
    {F1, {stats, ?POOL_ID}} = do_expect_call(),
    do_reply(F1, {ok, #{pool_id => ?POOL_ID}}),
    {ok, {ok, #{pool_id := ?POOL_ID}}} = do_await(R1),
    R2 = do_async(fun() -> distribute_pool:destroy(Pool) end),
    {F2, {destroy, ?POOL_ID, 5000}} = do_expect_call(),
    do_reply(F2, ok),
    {ok, ok} = do_await(R2),
    R3 = do_async(fun() -> distribute_pool:destroy(Pool, #{drain_timeout_ms => 0}) end),
    {F3, {destroy, ?POOL_ID, 0}} = do_expect_call(),
    do_reply(F3, {error, invalid_pool}),
    {ok, {error, invalid_pool}} = do_await(R3),
    {error, badarg} = distribute_pool:destroy(Pool, #{drain_timeout_ms => -1}),
    {error, badarg} = distribute_pool:destroy(Pool, #{drain_timeout_ms => 600001}),
    {error, badarg} = distribute_pool:destroy(Pool, #{drain => 1}),
    {error, badarg} = distribute_pool:destroy(Pool, not_a_map),
    {error, invalid_pool} = distribute_pool:destroy({not_a_pool}, #{}),
    ok.

-spec dead_cnode_gives_connection_failed(list()) -> ok.
dead_cnode_gives_connection_failed(_Config) ->
    doc("When the C-node dies during a call, or its name is gone, calls return connection_failed at once "
        "instead of waiting out their timeouts."),
    %% A fake that creates the pool, then dies on the first checkout.
    true = unregister(?FAKE),
    Self = self(),
    _ = spawn(fun() ->
                      true = register(?FAKE, self()),
                      Self ! fake_up,
                      receive {'$gen_call', F1, {new, _, _}} -> do_reply(F1, {ok, ?POOL_ID}) end,
                      receive {'$gen_call', _, {checkout, _, _} = R} -> Self ! {fake_got, R} end,
                      exit(dying)
              end),
    receive fake_up -> ok after 5000 -> ct:fail(fake_not_up) end,
    {ok, Pool} = distribute_pool:new("t@h", 1),
    Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun(_) -> ran end,
                                                            #{acquire_timeout_ms => 60000}) end),
    receive {fake_got, {checkout, ?POOL_ID, 60000}} -> ok after 5000 -> ct:fail(no_checkout) end,
    {ok, {error, {connection_failed, _}}} = do_await(Ref, 5000),
    %% Now the service name is not registered at all.
    undefined = whereis(?FAKE),
    {error, {connection_failed, _}} = distribute_pool:stats(Pool),
    {error, {connection_failed, _}} = distribute_pool:destroy(Pool),
    {error, {connection_failed, _}} = distribute_pool:with_connection(Pool, fun(_) -> ran end),
    ok.

-spec bad_handles_never_reach_the_wire(list()) -> ok.
bad_handles_never_reach_the_wire(_Config) ->
    doc("Anything that is not a pool or lease handle gives invalid_pool or invalid_connection, without a "
        "request and without raising."),
    Pool = do_fake_pool(),
    Conn = do_fake_conn(Pool),
    BadPools = [undefined, 42, -1, 1 bsl 70, "pool", <<"pool">>, #{}, [], {dpool}, {dpool, x, y, z},
                setelement(3, Pool, -1), setelement(3, Pool, a), setelement(2, Pool, {"s", node()}),
                setelement(4, Pool, 1 bsl 40), Conn, self(), make_ref()],
    [begin
         {error, invalid_pool} = distribute_pool:stats(B),
         {error, invalid_pool} = distribute_pool:destroy(B),
         {error, invalid_pool} = distribute_pool:with_connection(B, fun(_) -> ok end),
         {error, invalid_pool} = distribute_pool:with_connection(B, fun(_) -> ok end, #{})
     end || B <- BadPools],
    {error, invalid_connection} = distribute_pool:discard(Pool),
    BadConns = [undefined, 42, {dpool_conn}, setelement(3, Conn, -1), setelement(3, Conn, [alias | x]),
                setelement(4, Conn, x), setelement(4, Conn, {"s", node()}), setelement(2, Conn, undefined),
                erlang:append_element(Conn, x), "conn", self()],
    %% A pool is a handle for the one-shot send, request and call, but no lease.
    {error, invalid_connection} = distribute_pool:ping(Pool),
    {error, invalid_connection} = distribute_pool:connection_info(Pool),
    {error, invalid_connection} = distribute_pool:send_async(Pool, dest, msg),
    [begin
         {error, invalid_connection} = distribute_pool:send(B, dest, msg),
         {error, invalid_connection} = distribute_pool:send_async(B, dest, msg),
         {error, invalid_connection} = distribute_pool:request(B, dest, req),
         {error, invalid_connection} = distribute_pool:request(B, dest, req, 100),
         {error, invalid_connection} = distribute_pool:call(B, erlang, node, []),
         {error, invalid_connection} = distribute_pool:call(B, erlang, node, [], 100),
         {error, invalid_connection} = distribute_pool:ping(B),
         {error, invalid_connection} = distribute_pool:connection_info(B)
     end || B <- BadConns],
    do_expect_no_call(),
    ok.

-spec bad_funs_timeouts_and_mfa(list()) -> ok.
bad_funs_timeouts_and_mfa(_Config) ->
    doc("A bad fun, checkout options, request timeout or M/F/A gives badarg without a request."),
    Pool = do_fake_pool(),
    Conn = do_fake_conn(Pool),
    [{error, badarg} = distribute_pool:with_connection(Pool, F)
     || F <- [undefined, 42, fun() -> ok end, fun(_, _) -> ok end, {m, f}, "fun"]],
    [{error, badarg} = distribute_pool:with_connection(Pool, fun(_) -> ok end, O)
     || O <- [#{acquire_timeout_ms => -1}, #{acquire_timeout_ms => 86400001}, #{acquire_timeout_ms => 1 bsl 64},
              #{acquire_timeout_ms => infinity}, #{acquire_timeout_ms => 1.0}, #{other => 1},
              #{acquire_timeout_ms => 1, other => 1}, [{acquire_timeout_ms, -1}], [{acquire_timeout_ms, 1}, x],
              100, undefined]],
    [{error, badarg} = distribute_pool:request(Conn, dest, req, T)
     || T <- [-1, 1.5, foo, 1 bsl 64, 4294967295, "100"]],
    [{error, badarg} = distribute_pool:call(Conn, M, F, A)
     || {M, F, A} <- [{"erlang", node, []}, {erlang, "node", []}, {erlang, node, [a | b]},
                      {erlang, node, {}}, {erlang, node, a}, {1, 2, 3}]],
    [{error, badarg} = distribute_pool:call(Conn, erlang, node, [], T) || T <- [-5, bar, 1 bsl 64]],
    do_expect_no_call(),
    ok.

-spec default_cnode_needs_the_application(list()) -> ok.
default_cnode_needs_the_application(_Config) ->
    doc("Without the application there is no default C-node: default_cnode/0 says so, and new/2 without a "
        "cnode option starts the application first. With it, default_cnode/0 is the configured address."),
    {?FAKE, Node} = distribute_pool:default_cnode(),
    Node = node(),
    ok = application:stop(distribute_pool),
    try
        {error, not_started} = distribute_pool:default_cnode(),
        Ref = do_async(fun() -> distribute_pool:new("t@h", 1) end),
        {From, {new, <<"t@h">>, #{max_connections := 1}}} = do_expect_call(),
        do_reply(From, {ok, ?POOL_ID}),
        {ok, {ok, _Pool}} = do_await(Ref),
        true = lists:keymember(distribute_pool, 1, application:which_applications())
    after
        do_start_app()
    end,
    {?FAKE, Node} = distribute_pool:default_cnode(),
    ok.

-spec call_behind_shares_the_watch(list()) -> ok.
call_behind_shares_the_watch(_Config) ->
    doc("A call sent behind a pending call (call_behind/4: a lease's first operation behind its checkout) shares "
        "the pending call's watch on the node: both are answered, the second first; against a node nobody runs "
        "both give connection_failed at once (the nodedown the second call reads is put back for the first: "
        "without it the first would wait 5 s for one), and no message is left in the caller's mailbox."),
    with_target("dpool_behind", fun(T, _Peer) ->
        _ = do_start_fixture(T, dpool_fx_service),
        Server = {dpool_fx_service, T},
        {ok, Pending} = distribute_pool_client:send_call(Server, {sleep_echo, 300, first}, 5000),
        second = distribute_pool_client:call_behind(Server, Pending, {echo, second}, 5000),
        {reply, first} = distribute_pool_client:await_call(Pending, 5000),
        {messages, []} = process_info(self(), messages),
        Nobody = {dpool_fx_service, 'dpool_nobody_behind@127.0.0.1'},
        T0 = erlang:monotonic_time(millisecond),
        {ok, Lost} = distribute_pool_client:send_call(Nobody, {echo, first}, 30000),
        {error, {connection_failed, {cnode_not_running, _}}} =
            distribute_pool_client:call_behind(Nobody, Lost, {echo, second}, 30000),
        {error, {connection_failed, {cnode_not_running, _}}} = distribute_pool_client:await_call(Lost, 30000),
        Took = erlang:monotonic_time(millisecond) - T0,
        ct:log("both calls to a node nobody runs ended after ~b ms", [Took]),
        true = Took < 2000,
        {messages, []} = process_info(self(), messages),
        ok
    end).

-spec remote_envelope_answers_and_failures(list()) -> ok.
remote_envelope_answers_and_failures(_Config) ->
    doc("The envelope against a service on another node (a gen_server standing in for the C-node): answers, "
        "fast and after the service check; client timeouts, after which a late answer never reaches the "
        "caller; a node without the service, an unreachable node and a node that goes away mid-call give "
        "connection_failed, not a timeout; no monitor message is left behind in the caller's mailbox, and a "
        "nodedown message of the caller's own is neither taken nor mistaken for the call's."),
    with_target("dpool_envelope", fun(T, Peer) ->
        Self = self(),
        _ = do_start_fixture(T, dpool_fx_service),
        Server = {dpool_fx_service, T},
        Call = fun(Request, Wait) -> distribute_pool_client:call(Server, Request, Wait) end,
        %% Answers: at once, and after the ?NAME_CHECK_MS check of the name.
        1 = Call({echo, 1}, 5000),
        2 = Call({sleep_echo, 300, 2}, 5000),
        {reply, 3} = distribute_pool_client:call_tagged(Server, {echo, 3}, infinity),
        %% Client timeouts, before and after the check; the tag names the request for a cancel.
        {error, timeout} = Call(never, 50),
        {timeout, [alias | Alias]} = distribute_pool_client:call_tagged(Server, never, 250),
        true = is_reference(Alias),
        %% Late answers (500 ms after their client stopped waiting) are dropped by this node. The fixture says
        %% when it has answered, after the answer and from the same process: once that is here, so was the answer.
        {error, timeout} = Call({late_echo, 500, late_1}, 50),
        {error, timeout} = Call({late_echo, 500, late_2}, 250),
        [receive {fixture, dpool_fx_service, {answered, L}} -> ok after 10000 -> ct:fail({no_late_answer, L}) end
         || L <- [late_1, late_2]],
        {messages, []} = process_info(self(), messages),
        %% A {nodedown, T} the caller had not read yet (from a node monitor of its own) is not this call's:
        %% the call is answered, and the message is still there for the caller, once.
        self() ! {nodedown, T},
        6 = Call({echo, 6}, 5000),
        7 = Call({sleep_echo, 300, 7}, 5000),
        {messages, [{nodedown, T}]} = process_info(self(), messages),
        receive {nodedown, T} -> ok end,
        %% A live node without the service; a node nobody runs; a node that goes away during the call.
        {error, {connection_failed, _}} = distribute_pool_client:call({dpool_no_such_service, T}, ping, 30000),
        {error, {connection_failed, _}} = distribute_pool_client:call({dpool_fx_service, 'dpool_nobody@127.0.0.1'},
                                                                  ping, 30000),
        {messages, []} = process_info(self(), messages),
        Caller = spawn_link(fun() ->
                                    Self ! {waiting, self()},
                                    R = distribute_pool_client:call(Server, never, 30000),
                                    Self ! {result, self(), R, process_info(self(), messages)}
                            end),
        receive {waiting, Caller} -> ok end,
        %% The target goes once the call is under way past its name check (it monitors the service by name).
        do_wait_until(fun() ->
                              {monitors, Monitors} = process_info(Caller, monitors),
                              lists:member({process, {dpool_fx_service, T}}, Monitors)
                      end, 10000),
        do_stop_peer(Peer),
        receive
            {result, Caller, {error, {connection_failed, {cnode_not_running, _}}}, {messages, []}} -> ok;
            {result, Caller, Other, Left} -> ct:fail({after_nodedown, Other, Left})
        after 20000 ->
            ct:fail(no_answer_after_nodedown)
        end,
        {error, {connection_failed, _}} = Call({echo, 4}, 30000),
        {messages, []} = process_info(self(), messages),
        ok
    end).

-spec no_atoms_from_targets(list()) -> ok.
no_atoms_from_targets(_Config) ->
    doc("Thousands of distinct random targets, as binaries and strings, create no atoms in the library."),
    true = unregister(?FAKE),
    Fake = spawn_link(fun() -> true = register(?FAKE, self()), do_refuse_all() end),
    do_wait_registered(),
    Before = erlang:system_info(atom_count),
    [begin
         Name = "dpool_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_"
             ++ binary_to_list(binary:encode_hex(rand:bytes(6))) ++ "@127.0.0.1",
         {error, {invalid_config, _}} = distribute_pool:new(Name, 1),
         {error, {invalid_config, _}} = distribute_pool:new(list_to_binary(Name ++ "x"), #{max_connections => 1})
     end || _ <- lists:seq(1, 2000)],
    After = erlang:system_info(atom_count),
    ct:log("atoms before ~b, after ~b", [Before, After]),
    true = After - Before < 20,
    unlink(Fake),
    exit(Fake, kill),
    ok.

%% Helpers.

-spec do_start_app() -> ok.
do_start_app() ->
    _ = application:load(distribute_pool),
    ok = application:set_env(distribute_pool, cnode, node()),
    ok = application:set_env(distribute_pool, service, ?FAKE),
    {ok, _} = application:ensure_all_started(distribute_pool),
    ok.

%% Runs new/2 in another process while this one answers as the C-node.
do_fake_new(Target, Arg, ExpectedOptions, ExpectedTarget) ->
    Ref = do_async(fun() -> distribute_pool:new(Target, Arg) end),
    {From, {new, WireTarget, WireOptions}} = do_expect_call(),
    ExpectedTarget = WireTarget,
    ExpectedOptions = WireOptions,
    do_reply(From, {ok, ?POOL_ID}),
    {ok, Result} = do_await(Ref),
    Result.

do_fake_pool() ->
    {ok, Pool} = do_fake_new("t@127.0.0.1", 2, #{max_connections => 2}, <<"t@127.0.0.1">>),
    Pool.

%% A lease handle, taken out of with_connection (it outlives the lease; the C-node would refuse it).
do_fake_conn(Pool) ->
    Ref = do_async(fun() -> distribute_pool:with_connection(Pool, fun(C) -> C end) end),
    {From, _} = do_expect_call(),
    do_grant(From),
    {ok, {ok, Conn}} = do_await(Ref),
    {checkin, _, _, _} = do_expect_cast(),
    Conn.

do_info_pool(Pool) ->
    Ref = do_async(fun() -> distribute_pool:stats(Pool) end),
    {From, {stats, ?POOL_ID}} = do_expect_call(),
    do_reply(From, {ok, #{}}),
    {ok, {ok, Map}} = do_await(Ref),
    Map.

do_grant(From) ->
    do_reply(From, {ok, {?CONN_ID, ?LEASE_ID, ?CONN_NODE}}).

do_lease_request({P, C, L}, {send, Dest, Msg}) -> {send, P, C, L, Dest, Msg};
do_lease_request({P, C, L}, {request, Dest, T, Req}) -> {request, P, C, L, Dest, T, Req};
do_lease_request({P, C, L}, {call, M, F, A, T}) -> {call, P, C, L, M, F, A, T}.

do_raise(Class) ->
    erlang:raise(Class, {boom, Class}, [{?MODULE, do_raise, 1, []}]).

do_async(Fun) ->
    Self = self(),
    Ref = make_ref(),
    _ = spawn(fun() ->
                      Result = try {ok, Fun()} catch C:R:St -> {raised, C, R, St} end,
                      Self ! {async, Ref, Result}
              end),
    Ref.

do_await(Ref) ->
    do_await(Ref, 10000).

do_await(Ref, Timeout) ->
    receive {async, Ref, Result} -> Result after Timeout -> ct:fail(async_no_result) end.

do_expect_call() ->
    receive
        {'$gen_call', From, lanes} ->
            %% The client asks a C-node for its lanes once; the fake answers as a C-node without lanes.
            do_reply(From, {error, badarg}),
            do_expect_call();
        {'$gen_call', From, Request} -> {From, Request}
    after 10000 ->
        ct:fail(no_call_reached_the_fake_cnode)
    end.

do_expect_cast() ->
    receive
        {'$gen_cast', Request} -> Request
    after 10000 ->
        ct:fail(no_cast_reached_the_fake_cnode)
    end.

%% Nothing was sent: every request is sent before the call returns, so what is not here now never will be.
do_expect_no_call() ->
    receive
        {'$gen_call', _, _} = M -> ct:fail({unexpected_request, M});
        {'$gen_cast', _} = M -> ct:fail({unexpected_cast, M})
    after 0 ->
        ok
    end.

do_reply({Pid, Tag}, Reply) ->
    Pid ! {Tag, Reply},
    ok.

do_refuse_all() ->
    receive
        {'$gen_call', From, {new, Target, _}} ->
            do_reply(From, {error, {invalid_config, {bad_target, Target}}}),
            do_refuse_all();
        _ ->
            do_refuse_all()
    end.

do_wait_registered() ->
    dpool_ct_helper:do_wait_until(fun() -> is_pid(whereis(?FAKE)) end, 5000).
