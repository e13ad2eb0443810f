%% Issue 5, the caller -> C-node hop: the C-node answers under several node names (lanes, --lanes), each a
%% distribution connection of its own from a caller node, and the library gives each process one lane, so that
%% one process's big message does not hold back another's requests while each process's requests keep their
%% order. Real nodes, real epmd, 127.0.0.1.
%%
%% small_calls_pass_a_big_transfer runs against a C-node it starts with --lanes taken from the environment
%% variable DPOOL_LANES_SUITE_LANES (default 4): with 1 it must fail, which shows it tests the lanes.
-module(distribute_pool_lanes_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([lanes_published_and_answer/1]).
-export([shutdown_unpublishes_every_lane/1]).
-export([processes_get_lanes_round_robin/1]).
-export([per_sender_order_across_operations/1]).
-export([small_calls_pass_a_big_transfer/1]).
-export([client_disconnect_returns_leases_on_every_lane/1]).
-export([one_lane_lost_returns_its_leases_only/1]).
-export([bad_lanes_refused/1]).
-export([connections_to_the_cnode_delay_send/1]).
-export([delay_send_to_cnode_false_leaves_connections_alone/1]).
-export([cnode_sndbuf_sets_the_lanes_send_buffer/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_cnode/0, do_stats/1, do_pool_id/1, do_load_fixture/2,
                          do_release/1, do_uniq/1, do_os_alive/1, with_target/2, with_target_pool/3,
                          with_nodes/2, do_signal/2]).

-define(SINK, dpool_lanes_sink).
-define(PIECE_BYTES, 8 * 1024 * 1024).
-define(PIECES, 32).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [lanes_published_and_answer,
     shutdown_unpublishes_every_lane,
     processes_get_lanes_round_robin,
     per_sender_order_across_operations,
     small_calls_pass_a_big_transfer,
     client_disconnect_returns_leases_on_every_lane,
     one_lane_lost_returns_its_leases_only,
     bad_lanes_refused,
     connections_to_the_cnode_delay_send,
     delay_send_to_cnode_false_leaves_connections_alone, cnode_sndbuf_sets_the_lanes_send_buffer].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec connections_to_the_cnode_delay_send(list()) -> ok.
connections_to_the_cnode_delay_send(_Config) ->
    doc("With the application's default (delay_send_to_cnode true), this node's connection to each lane of the "
        "C-node sends with delay_send once a process has used it; its connection to the pool's target, which "
        "is no C-node's, keeps the default (no delay_send)."),
    Server = do_cnode(),
    LaneNodes = distribute_pool_client:lane_nodes(Server),
    with_target_pool("dpool_lanes_delay", 2, fun(T, Pool) ->
        %% One process per lane (round robin), so that every lane's connection is up.
        _ = [call_in_own_process(fun() -> {ok, T} = distribute_pool:call(Pool, erlang, node, []) end)
             || _ <- LaneNodes],
        do_wait_until(fun() -> [N || N <- LaneNodes, socket_option(N, delay_send) =/= true] =:= [] end, 10000),
        false = socket_option(T, delay_send)
    end).

-spec delay_send_to_cnode_false_leaves_connections_alone(list()) -> ok.
delay_send_to_cnode_false_leaves_connections_alone(_Config) ->
    doc("With the application env delay_send_to_cnode false (and cnode_sndbuf default), the connections to a "
        "C-node's lanes keep the "
        "default (no delay_send); turned on again (its process started again), it sets up the connections "
        "that are up already. A value that is no boolean is refused when the application starts."),
    Env = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 2},
    {ok, #{delay_send_to_cnode := true}} = distribute_pool_env:check(Env),
    {ok, #{delay_send_to_cnode := false}} = distribute_pool_env:check(Env#{delay_send_to_cnode => false}),
    {error, {bad_app_env, delay_send_to_cnode, yes}} = distribute_pool_env:check(Env#{delay_send_to_cnode => yes}),
    Sup = distribute_pool_sup,
    Child = distribute_pool_lane_writes,
    Before = application:get_env(distribute_pool, delay_send_to_cnode),
    SndbufBefore = application:get_env(distribute_pool, cnode_sndbuf),
    ok = application:set_env(distribute_pool, delay_send_to_cnode, false),
    %% No option at all: the default send buffer off too.
    ok = application:set_env(distribute_pool, cnode_sndbuf, default),
    try
        ok = supervisor:terminate_child(Sup, Child),
        {ok, undefined} = supervisor:restart_child(Sup, Child),
        Alive = do_uniq("dpool_lanes_nodelay"),
        with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "2"]}], fun([#{node := CNode}]) ->
            Server = {distribute_pool, CNode},
            LaneNodes = distribute_pool_client:lane_nodes(Server),
            2 = length(LaneNodes),
            Lanes = [call_in_own_process(fun() ->
                                                 {ok, #{lane := L}} = distribute_pool_client:call(Server, info, 5000),
                                                 L
                                         end) || _ <- LaneNodes],
            [0, 1] = lists:sort(Lanes),
            [false, false] = [socket_option(N, delay_send) || N <- LaneNodes],
            ok = application:set_env(distribute_pool, delay_send_to_cnode, true),
            ok = supervisor:terminate_child(Sup, Child),
            {ok, Pid} = supervisor:restart_child(Sup, Child),
            true = is_pid(Pid),
            do_wait_until(fun() -> [socket_option(N, delay_send) || N <- LaneNodes] =:= [true, true] end, 10000)
        end)
    after
        ok = dpool_ct_helper:do_set_env(delay_send_to_cnode, Before),
        ok = dpool_ct_helper:do_set_env(cnode_sndbuf, SndbufBefore),
        case lists:keyfind(Child, 1, supervisor:which_children(Sup)) of
            {Child, P, _, _} when is_pid(P) -> ok;
            _ -> _ = supervisor:terminate_child(Sup, Child),
                 {ok, _} = supervisor:restart_child(Sup, Child)
        end
    end,
    ok.

-spec cnode_sndbuf_sets_the_lanes_send_buffer(list()) -> ok.
cnode_sndbuf_sets_the_lanes_send_buffer(_Config) ->
    doc("With the application env cnode_sndbuf set (its process started again), this node's connections to a "
        "C-node's lanes get that send buffer (as a socket of this node given the same sndbuf reports it): "
        "those up already (the embedded C-node's) at once, besides delay_send, and with delay_send_to_cnode "
        "false those of a C-node that comes up later, without delay_send. The connection to a pool's target, "
        "which is no C-node's, is left alone. The default is 524288; a value that is no size in range is "
        "refused when the application starts. (The embedded C-node's lanes keep the buffer until the suite "
        "stops it.)"),
    Env = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 2},
    {ok, #{cnode_sndbuf := 524288}} = distribute_pool_env:check(Env),
    {ok, #{cnode_sndbuf := default}} = distribute_pool_env:check(Env#{cnode_sndbuf => default}),
    {ok, #{cnode_sndbuf := 262144}} = distribute_pool_env:check(Env#{cnode_sndbuf => 262144}),
    [{error, {bad_app_env, cnode_sndbuf, Bad}} = distribute_pool_env:check(Env#{cnode_sndbuf => Bad})
     || Bad <- [4095, 67108865, 0, -1, 1.0e6, "262144", kernel]],
    Bytes = 65536,
    Expected = sndbuf_reported(Bytes),
    Sup = distribute_pool_sup,
    Child = distribute_pool_lane_writes,
    Restart = fun() ->
                      ok = supervisor:terminate_child(Sup, Child),
                      {ok, Pid} = supervisor:restart_child(Sup, Child),
                      true = is_pid(Pid)
              end,
    Before = [{Key, application:get_env(distribute_pool, Key)} || Key <- [cnode_sndbuf, delay_send_to_cnode]],
    Embedded = do_cnode(),
    EmbeddedLanes = distribute_pool_client:lane_nodes(Embedded),
    _ = [call_in_own_process(fun() -> {ok, _} = distribute_pool_client:call(Embedded, info, 5000) end)
         || _ <- EmbeddedLanes],
    true = lists:all(fun(N) -> socket_option(N, delay_send) =:= true end, EmbeddedLanes),
    true = lists:all(fun(N) -> socket_option(N, sndbuf) =/= Expected end, EmbeddedLanes),
    ok = application:set_env(distribute_pool, cnode_sndbuf, Bytes),
    try
        Restart(),
        do_wait_until(fun() -> lists:all(fun(N) -> socket_option(N, sndbuf) =:= Expected end, EmbeddedLanes) end,
                      10000),
        true = lists:all(fun(N) -> socket_option(N, delay_send) =:= true end, EmbeddedLanes),
        ok = application:set_env(distribute_pool, delay_send_to_cnode, false),
        Restart(),
        Alive = do_uniq("dpool_lanes_sndbuf"),
        with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "2"]}], fun([#{node := CNode}]) ->
            Server = {distribute_pool, CNode},
            LaneNodes = distribute_pool_client:lane_nodes(Server),
            2 = length(LaneNodes),
            _ = [call_in_own_process(fun() -> {ok, _} = distribute_pool_client:call(Server, info, 5000) end)
                 || _ <- LaneNodes],
            do_wait_until(fun() -> [socket_option(N, sndbuf) || N <- LaneNodes] =:= [Expected, Expected] end,
                          10000),
            [false, false] = [socket_option(N, delay_send) || N <- LaneNodes]
        end),
        with_target_pool("dpool_lanes_sndbuf_t", 1, fun(T, Pool) ->
            {ok, T} = distribute_pool:call(Pool, erlang, node, []),
            %% Its sndbuf is the kernel's, which may equal Expected by chance: that it is not a C-node's shows
            %% in delay_send, on again for C-nodes and never set on it.
            ok = application:set_env(distribute_pool, delay_send_to_cnode, true),
            Restart(),
            false = socket_option(T, delay_send)
        end)
    after
        [ok = dpool_ct_helper:do_set_env(Key, Value) || {Key, Value} <- Before],
        _ = supervisor:terminate_child(Sup, Child),
        {ok, _} = supervisor:restart_child(Sup, Child)
    end,
    ok.

%% What getopts reports for a TCP socket of this node given sndbuf Bytes (Linux keeps twice what is set).
-spec sndbuf_reported(pos_integer()) -> pos_integer().
sndbuf_reported(Bytes) ->
    {ok, Socket} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}, {sndbuf, Bytes}]),
    try
        {ok, [{sndbuf, Reported}]} = inet:getopts(Socket, [sndbuf]),
        Reported
    after
        gen_tcp:close(Socket)
    end.

-spec lanes_published_and_answer(list()) -> ok.
lanes_published_and_answer(_Config) ->
    doc("The embedded C-node has the configured number of lanes; each is registered in epmd on a port of its "
        "own, answers info as itself, and serves pool requests: a lease taken over lane k by a process that "
        "then exits comes back (the C-node's monitor of the holder is lane k's)."),
    {Service, CNode} = Server = do_cnode(),
    {ok, Lanes} = application:get_env(distribute_pool, lanes),
    true = Lanes >= 2,
    {ok, Names} = gen_server:call(Server, lanes, 5000),
    Lanes = length(Names),
    LaneNodes = distribute_pool_client:lane_nodes(Server),
    [CNode | _] = LaneNodes,
    Names = [atom_to_binary(N) || N <- LaneNodes],
    {ok, Registered} = net_adm:names("127.0.0.1"),
    Ports = [begin
                 [Alive, "127.0.0.1"] = string:split(atom_to_list(N), "@"),
                 {Alive, Port} = lists:keyfind(Alive, 1, Registered),
                 Port
             end || N <- LaneNodes],
    Lanes = length(lists:usort(Ports)),
    Numbered = lists:zip(lists:seq(0, Lanes - 1), LaneNodes),
    [{ok, #{lane := K, lanes := Lanes, node := Name}} = gen_server:call({Service, N}, info, 5000)
     || {{K, N}, Name} <- lists:zip(Numbered, Names)],
    [true = lists:member(N, nodes(hidden)) || N <- LaneNodes],
    with_target_pool("dpool_lanes_each", 1, fun(T, Pool) ->
        Id = do_pool_id(Pool),
        Self = self(),
        [begin
             %% Checkout, a request over the lease and exit without a checkin, all on lane K.
             {Pid, Mref} = spawn_monitor(
                             fun() ->
                                     {ok, {ConnId, LeaseId, _}} =
                                         gen_server:call({Service, N}, {checkout, Id, 5000}, 10000),
                                     {ok, T} = gen_server:call({Service, N},
                                                               {request, Id, ConnId, LeaseId, rex, 5000,
                                                                {call, erlang, node, [], user}}, 10000),
                                     Self ! {leased, K, self()}
                             end),
             receive {leased, K, Pid} -> ok after 15000 -> ct:fail({no_lease_on_lane, K}) end,
             receive {'DOWN', Mref, process, Pid, normal} -> ok after 5000 -> ct:fail({holder_stuck, K}) end,
             do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 1 end, 10000)
         end || {K, N} <- Numbered]
    end).

-spec shutdown_unpublishes_every_lane(list()) -> ok.
shutdown_unpublishes_every_lane(_Config) ->
    doc("A C-node started with --lanes 3 registers its name and name_lane1, name_lane2 in epmd; when it stops "
        "(standard input closed) all three are gone."),
    Alive = do_uniq("dpool_lanes_stop"),
    Expected = [Alive, Alive ++ "_lane1", Alive ++ "_lane2"],
    Published = fun() ->
                        {ok, Registered} = net_adm:names("127.0.0.1"),
                        [A || A <- Expected, lists:keymember(A, 1, Registered)]
                end,
    CNodePort = with_nodes([{cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", "3"]}], fun([Started]) ->
        Expected = Published(),
        Started
    end),
    false = do_os_alive(maps:get(os_pid, CNodePort)),
    do_wait_until(fun() -> Published() =:= [] end, 5000).

-spec processes_get_lanes_round_robin(list()) -> ok.
processes_get_lanes_round_robin(_Config) ->
    doc("Processes that talk to the C-node one after the other get its lanes round robin (so as many busy "
        "processes as lanes get different ones), and each keeps its lane for every operation: checkout, a call "
        "over the lease, checkin, stats, a one-shot send, a cast batch. Seen from the C-node: info answers with "
        "the lane the request came in on."),
    {Service, _} = Server = do_cnode(),
    LaneNodes = distribute_pool_client:lane_nodes(Server),
    Lanes = length(LaneNodes),
    with_target_pool("dpool_lanes_rr", 2, fun(T, Pool) ->
        Self = self(),
        Seen = [begin
                    Ref = make_ref(),
                    {Pid, Mref} =
                        spawn_monitor(
                          fun() ->
                                  Lane = fun() ->
                                                 {ok, #{lane := L}} = distribute_pool_client:call(Server, info, 5000),
                                                 L
                                         end,
                                  L1 = Lane(),
                                  {ok, {ok, T}} = distribute_pool:with_connection(
                                                    Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end),
                                  L2 = Lane(),
                                  {ok, _} = distribute_pool:stats(Pool),
                                  ok = distribute_pool:send(Pool, no_such_name, hello),
                                  {ok, 2} = distribute_pool:cast_batch(Pool, no_such_name, [a, b]),
                                  L3 = Lane(),
                                  Self ! {Ref, [L1, L2, L3], distribute_pool_client:lane(Server)}
                          end),
                    Result = receive {Ref, Ls, Address} -> {Ls, Address} after 15000 -> ct:fail(no_lane_report) end,
                    receive {'DOWN', Mref, process, Pid, normal} -> ok after 5000 -> ct:fail(worker_stuck) end,
                    Result
                end || _ <- lists:seq(1, 2 * Lanes)],
        ct:log("lanes of ~b processes one after the other: ~p", [2 * Lanes, [Ls || {Ls, _} <- Seen]]),
        %% One lane per process, the one its own address names.
        Firsts = [begin
                      [L, L, L] = Ls,
                      Address = {Service, lists:nth(L + 1, LaneNodes)},
                      L
                  end || {Ls, Address} <- Seen],
        %% Round robin: each next process takes the next lane.
        [0 = (B - A - 1 + Lanes) rem Lanes || {A, B} <- lists:zip(lists:droplast(Firsts), tl(Firsts))],
        Everyone = lists:seq(0, Lanes - 1),
        Everyone = lists:usort(lists:sublist(Firsts, Lanes)),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= 0 end, 10000)
    end).

-spec per_sender_order_across_operations(list()) -> ok.
per_sender_order_across_operations(_Config) ->
    doc("Several processes at once (one per lane), each interleaving one-shot send(Pool, ...), with_connection "
        "+ send and cast_batch (plain and keyed) of sequence-numbered messages to a sink on the target: none is "
        "lost and each sender's arrive in the order it sent them. The pool has one connection, so the sink sees "
        "them in the order the C-node handled them."),
    Server = do_cnode(),
    Lanes = length(distribute_pool_client:lane_nodes(Server)),
    with_target("dpool_lanes_order", fun(T) ->
        do_load_fixture(T, dpool_order_sink),
        _ = erpc:call(T, dpool_order_sink, start, [?SINK, self()]),
        {ok, Pool} = distribute_pool:new(T, 1),
        Self = self(),
        Senders = [begin
                       Id = {sender, S},
                       {spawn_link(fun() -> Self ! {sent, Id, order_sender(Pool, Server, Id, 1, 400, [])} end), Id}
                   end || S <- lists:seq(1, Lanes)],
        Sent = [receive {sent, Id, Result} -> {Id, Result} after 60000 -> ct:fail({sender_stuck, Id}) end
                || {_, Id} <- Senders],
        ct:log("senders: ~p", [[{Id, maps:without([ops], R)} || {Id, R} <- Sent]]),
        %% Each sender kept one lane, and they used different ones.
        SenderLanes = [L || {_, #{lanes := [L]}} <- Sent],
        Lanes = length(lists:usort(SenderLanes)),
        Total = lists:sum([Last || {_, #{last := Last}} <- Sent]),
        do_wait_until(fun() -> length(erpc:call(T, dpool_order_sink, dump, [?SINK])) >= Total end, 30000),
        Received = erpc:call(T, dpool_order_sink, dump, [?SINK]),
        Total = length(Received),
        [begin
             Seqs = [Seq || {seq, I, Seq} <- Received, I =:= Id],
             case lists:seq(1, Last) of
                 Seqs -> ok;
                 Expected -> ct:fail({order_or_loss, Id, {missing, Expected -- Seqs}, {got, Seqs}})
             end
         end || {Id, #{last := Last}} <- Sent],
        ok = distribute_pool:destroy(Pool)
    end).

-spec small_calls_pass_a_big_transfer(list()) -> ok.
small_calls_pass_a_big_transfer(_Config) ->
    doc("Process A pushes one message of 32 x 8 MiB (256 MiB) through its own lease; process B, on another "
        "lane, sends a small message over A's very lease and then makes 10 small calls through the pool. The "
        "C-node is paused (SIGSTOP) while both messages are put on the wire, A's first, and resumed: B's small "
        "message reaches the sink before A's big one (the C-node got it while A's was still coming in), and "
        "B's calls all complete before the big message reaches the target. With --lanes 1 (environment "
        "DPOOL_LANES_SUITE_LANES=1) B's messages queue behind A's on the one connection and this case fails."),
    Lanes = list_to_integer(os:getenv("DPOOL_LANES_SUITE_LANES", "4")),
    Alive = do_uniq("dpool_lanes_hol"),
    CNode = {cnode, ["--name", Alive ++ "@127.0.0.1", "--lanes", integer_to_list(Lanes), "--service", "dpool_hol"]},
    %% The C-node is resumed below whatever happens; if it were not, stopping it kills it by its pid.
    with_nodes([CNode, {target, "dpool_lanes_hol_t"}], fun([CNodePort, {_, T}]) ->
        OsPid = integer_to_list(maps:get(os_pid, CNodePort)),
        Server = {dpool_hol, maps:get(node, CNodePort)},
        Self = self(),
        do_load_fixture(T, dpool_order_sink),
        _ = erpc:call(T, dpool_order_sink, start, [?SINK, Self]),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 3, cnode => Server}),
        A = spawn_link(fun() -> big_pusher(Pool, Server, Self) end),
        {ConnA, LaneA} = receive {a_holds, Conn, LA} -> {Conn, LA} after 15000 -> ct:fail(a_no_lease) end,
        B = spawn_link(fun() -> small_caller(Pool, Server, ConnA, T, Self) end),
        LaneB = receive {b_ready, LB} -> LB after 15000 -> ct:fail(b_not_ready) end,
        ct:log("--lanes ~b: A on ~p, B on ~p", [Lanes, LaneA, LaneB]),
        ok = do_signal(OsPid, "STOP"),
        try
            A ! go,
            %% A's 256 MiB are on A's connection to the C-node (enqueued: A waits for the answer) ...
            do_wait_until(fun() -> in_client_call(A) end, 30000),
            B ! go,
            receive b_sending -> ok after 15000 -> ct:fail(b_not_sending) end,
            %% ... before B's small message is on its own (or, with one lane, waits behind A's).
            do_wait_until(fun() -> in_client_call(B) end, 30000)
        after
            do_signal(OsPid, "CONT")
        end,
        First = receive
                    {b_done, Calls} -> {b_done, Calls};
                    {sink_big, a} -> sink_big
                after 60000 -> ct:fail(nothing_finished)
                end,
        receive {a_sent, ok} -> ok after 60000 -> ct:fail(a_send_not_answered) end,
        %% Both messages are at the sink once it has the big one (B's went before it on the same connection).
        First =:= sink_big orelse receive {sink_big, a} -> true after 60000 -> ct:fail(big_not_seen) end,
        Received = erpc:call(T, dpool_order_sink, dump, [?SINK]),
        ct:log("first to finish: ~p; the sink received, in order: ~p", [First, Received]),
        %% The C-node handled B's message before the end of A's: it was not queued behind it.
        [{small, b}, {big, a, Bytes}] = Received,
        Bytes = ?PIECES * ?PIECE_BYTES,
        {b_done, Results} = First,
        [{ok, T}] = lists:usort(Results),
        ok = distribute_pool:destroy(Pool)
    end).

-spec client_disconnect_returns_leases_on_every_lane(list()) -> ok.
client_disconnect_returns_leases_on_every_lane(_Config) ->
    doc("A client node whose processes hold leases taken over every lane of the C-node disconnects from it "
        "(every lane): all those leases come back."),
    Server = do_cnode(),
    Lanes = length(distribute_pool_client:lane_nodes(Server)),
    with_nodes([{target, "dpool_lanes_dc_t"}, {client, "dpool_lanes_dc_c"}], fun([{_, T}, {_, Client}]) ->
        {ok, Pool} = distribute_pool:new(T, 2 * Lanes),
        Holders = remote_holders(Client, Pool, Server, 2 * Lanes),
        Lanes = length(lists:usort([L || {_, _, L} <- Holders])),
        #{in_use_connections := InUse} = do_stats(Pool),
        InUse = 2 * Lanes,
        Disconnected = dpool_ct_helper:do_disconnect_cnode(Client, Server),
        Lanes = length(Disconnected),
        do_wait_until(fun() ->
                              #{in_use_connections := U, available_connections := A} = do_stats(Pool),
                              U =:= 0 andalso A =:= 2 * Lanes
                      end, 10000),
        ok = distribute_pool:destroy(Pool)
    end).

-spec one_lane_lost_returns_its_leases_only(list()) -> ok.
one_lane_lost_returns_its_leases_only(_Config) ->
    doc("A client node loses its connection to one lane of the C-node: the leases taken over that lane come "
        "back, the others stay with their holders, who still return them normally."),
    {Service, _} = Server = do_cnode(),
    LaneNodes = distribute_pool_client:lane_nodes(Server),
    Lanes = length(LaneNodes),
    with_nodes([{target, "dpool_lanes_one_t"}, {client, "dpool_lanes_one_c"}], fun([{_, T}, {_, Client}]) ->
        {ok, Pool} = distribute_pool:new(T, 2 * Lanes),
        Holders = remote_holders(Client, Pool, Server, 2 * Lanes),
        Lost = lists:nth(2, LaneNodes),
        OnLost = [H || {_, _, L} = H <- Holders, L =:= Lost],
        Others = Holders -- OnLost,
        [_ | _] = OnLost,
        [_ | _] = Others,
        true = erpc:call(Client, erlang, disconnect_node, [Lost]),
        Kept = length(Others),
        do_wait_until(fun() -> maps:get(in_use_connections, do_stats(Pool)) =:= Kept end, 10000),
        %% The C-node still serves the client on that lane once it reconnects (here: a call from the client).
        {ok, #{lane := 1}} = erpc:call(Client, gen_server, call, [{Service, Lost}, info, 5000]),
        #{in_use_connections := Kept} = do_stats(Pool),
        %% The others still hold theirs: they return them as usual; those whose lease came back end normally.
        do_release([{Pid, Tag} || {Pid, Tag, _} <- Others]),
        do_release([{Pid, Tag} || {Pid, Tag, _} <- OnLost]),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 2 * Lanes end, 10000),
        ok = distribute_pool:destroy(Pool)
    end).

-spec bad_lanes_refused(list()) -> ok.
bad_lanes_refused(_Config) ->
    doc("dpool_cnode refuses --lanes 0, 17, -3 and non-numbers with a usage error (exit 2) naming --lanes, "
        "before it registers anything."),
    Alive = do_uniq("dpool_lanes_bad"),
    [begin
         {2, Output} = dpool_ct_helper:do_run_exe(["--name", Alive ++ "@127.0.0.1", "--lanes", Bad]),
         true = string:find(Output, "--lanes") =/= nomatch
     end || Bad <- ["0", "17", "-3", "four", "2x", ""]],
    {ok, Registered} = net_adm:names("127.0.0.1"),
    false = lists:any(fun({A, _}) -> lists:prefix(Alive, A) end, Registered),
    ok.

%% Helpers.

%% One sender of per_sender_order_across_operations: sequence numbers From..To, each operation carrying one
%% to three of them, cycling through the four kinds of operation. Reports the lanes it was seen on.
order_sender(_Pool, Server, _Id, Next, To, Lanes) when Next > To ->
    {ok, #{lane := L}} = distribute_pool_client:call(Server, info, 5000),
    #{last => To, lanes => lists:usort([L | Lanes])};
order_sender(Pool, Server, Id, Next, To, Lanes) ->
    {ok, #{lane := L}} = distribute_pool_client:call(Server, info, 5000),
    Count = min(To - Next + 1, 1 + Next rem 3),
    Msgs = [{seq, Id, S} || S <- lists:seq(Next, Next + Count - 1)],
    case Next rem 4 of
        0 ->
            [ok = distribute_pool:send(Pool, ?SINK, M) || M <- Msgs];
        1 ->
            {ok, _} = distribute_pool:with_connection(
                        Pool, fun(C) -> [ok = distribute_pool:send(C, ?SINK, M) || M <- Msgs] end,
                        #{acquire_timeout_ms => 30000});
        2 ->
            {ok, Count} = distribute_pool:cast_batch(Pool, ?SINK, Msgs);
        3 ->
            {ok, Count} = distribute_pool:cast_batch(Pool, ?SINK, Msgs, #{key => fun(_) -> Id end})
    end,
    order_sender(Pool, Server, Id, Next + Count, To, [L | Lanes]).

%% A of small_calls_pass_a_big_transfer: takes a lease, and on `go` sends the big message over it.
big_pusher(Pool, Server, Parent) ->
    Pieces = [binary:copy(<<I>>, ?PIECE_BYTES) || I <- lists:seq(1, ?PIECES)],
    {ok, ok} = distribute_pool:with_connection(
                 Pool,
                 fun(Conn) ->
                         #{} = distribute_pool:connection_info(Conn),
                         {_, Lane} = distribute_pool_client:lane(Server),
                         Parent ! {a_holds, Conn, Lane},
                         receive go -> ok end,
                         Parent ! {a_sent, distribute_pool:send(Conn, ?SINK, {big, a, Pieces})},
                         ok
                 end),
    ok.

%% B of small_calls_pass_a_big_transfer: connected to its lane before the pause; on `go`, one small message
%% over A's lease, then 10 small calls through the pool.
small_caller(Pool, Server, ConnA, Target, Parent) ->
    {ok, Target} = distribute_pool:call(Pool, erlang, node, []),
    {_, Lane} = distribute_pool_client:lane(Server),
    Parent ! {b_ready, Lane},
    receive go -> ok end,
    Parent ! b_sending,
    ok = distribute_pool:send(ConnA, ?SINK, {small, b}),
    Parent ! {b_done, [distribute_pool:call(Pool, erlang, node, [], 60000) || _ <- lists:seq(1, 10)]}.

%% The process has put its request on the wire and waits for the answer (or, its connection being busy,
%% is suspended before it could).
in_client_call(Pid) ->
    case erlang:process_info(Pid, [status, current_function]) of
        [{status, waiting}, {current_function, {distribute_pool_client, _, _}}] -> true;
        [{status, suspended}, _] -> true;
        _ -> false
    end.

%% N lease holders on Client, each taking its lease as a new process (so they spread over the lanes); gives
%% {Pid, Tag, LaneNode} of each once all hold one.
remote_holders(Client, Pool, Server, N) ->
    Self = self(),
    [begin
         Tag = {holder, I},
         _ = erpc:call(Client, erlang, spawn, [dpool_ct_helper, do_hold_lease_on_lane, [Pool, Server, Self, Tag]]),
         receive {held, Tag, Pid, Lane} -> {Pid, Tag, Lane} after 15000 -> ct:fail({no_remote_lease, I}) end
     end || I <- lists:seq(1, N)].

%% Fun's result, run in a process of its own (so it gets a lane of its own).
-spec call_in_own_process(fun(() -> Result)) -> Result.
call_in_own_process(Fun) ->
    Ref = make_ref(),
    Self = self(),
    {Pid, Mref} = spawn_monitor(fun() -> Self ! {Ref, Fun()} end),
    Result = receive {Ref, R} -> R after 15000 -> ct:fail(caller_stuck) end,
    receive {'DOWN', Mref, process, Pid, normal} -> ok after 5000 -> ct:fail(caller_not_done) end,
    Result.

%% An option of this node's connection to Node (not_connected when there is none; the suites run plain
%% distribution, whose controllers are ports).
-spec socket_option(node(), delay_send | sndbuf) -> boolean() | non_neg_integer() | not_connected.
socket_option(Node, Option) ->
    case lists:keyfind(Node, 1, erlang:system_info(dist_ctrl)) of
        {Node, Port} when is_port(Port) ->
            {ok, [{Option, Value}]} = inet:getopts(Port, [Option]),
            Value;
        {Node, Controller} ->
            ct:fail({not_a_port_controller, Node, Controller});
        false ->
            not_connected
    end.
