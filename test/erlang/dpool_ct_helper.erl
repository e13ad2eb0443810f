%% Helpers shared by the distribute_pool suites: peers, the C-node, polling.
%% Targets are started with no code of ours (no -pa); client peers get the library's and these helpers'
%% directories, so that processes there can hold leases (do_hold_lease/3, do_echo_worker/6).
-module(dpool_ct_helper).

-export([doc/1]).
-export([with_target/2]).
-export([with_pool/3]).
-export([with_target_pool/3]).
-export([with_nodes/2]).
-export([do_wait_value/3]).
-export([do_start_named_target/2]).
-export([do_start_fixture/2]).
-export([do_start_sink/2]).
-export([do_target_os_pid/1]).
-export([do_signal/2]).
-export([do_init_suite/1]).
-export([do_end_suite/1]).
-export([do_start_target/1]).
-export([do_start_client/1]).
-export([do_start_isolated/2]).
-export([do_stop_peer/1]).
-export([do_wait_until/2]).
-export([do_load_fixture/2]).
-export([do_cnode/0]).
-export([do_cnode_os_pid/0]).
-export([do_kill_cnode/1]).
-export([do_cnode_info/1]).
-export([do_assert_cnode_alive/1]).
-export([do_stats/1]).
-export([do_pool_id/1]).
-export([do_pool_nodes/2]).
-export([do_pool_node_names/1]).
-export([do_hidden_among/2]).
-export([do_disconnect_cnode/2]).
-export([do_hold_lease/3]).
-export([do_hold_leases/3]).
-export([do_hold_lease_on_lane/4]).
-export([do_release/1]).
-export([do_wait_idle/1]).
-export([do_echo_worker/6]).
-export([do_executable/0]).
-export([do_run_exe/1]).
-export([do_run_program/3]).
-export([do_collect/3]).
-export([do_start_cnode_port/2]).
-export([do_start_cnode_port/3]).
-export([do_start_cnode_port/4]).
-export([do_stop_cnode_port/1]).
-export([do_os_alive/1]).
-export([do_sanitized/0]).
-export([do_scaled/2, do_scaled/3]).
-export([do_uniq/1]).
-export([do_set_env/2]).

-include_lib("common_test/include/ct.hrl").

-type holder() :: {pid(), reference()}.
-type cnode_port() :: #{port := port(), os_pid := non_neg_integer(), node := node(), output := [binary()]}.
%% What with_nodes/2 starts, and what it gives the case for each, in the order asked for:
%% {target, Prefix}: a target (do_start_target/1), as {Peer, Node};
%% {client, Prefix}: a client node (do_start_client/1), as {Peer, Node};
%% {isolated, Prefix, Cookie} and {isolated, Prefix, Cookie, ExtraArgs}: a node controlled over stdio
%%   (do_start_isolated/3), as {Peer, Node};
%% {named_target, Name} and {killable_target, Name}: a target of exactly that name (do_start_named_target/2),
%%   linked to the case, or not (a target the case kills with kill -9: its end must not end the case), as
%%   {Peer, Node};
%% {not_distributed, Args}: a node that is not distributed, controlled over stdio, as {Peer, nonode@nohost};
%% {cnode, Args}: a C-node started by hand with our cookie (do_start_cnode_port/2), as its cnode_port().
-type node_spec() :: {target | client, string()} | {isolated, string(), string()}
                   | {isolated, string(), string(), [string()]} | {named_target | killable_target, string()}
                   | {not_distributed, [string()]} | {cnode, [string()]}.
-type started() :: {pid(), node()} | cnode_port().

-export_type([holder/0]).
-export_type([cnode_port/0]).
-export_type([node_spec/0]).

%% What a case proves, shown in the CT log.
-spec doc(string()) -> ok.
doc(Text) ->
    ct:comment("~ts", [Text]),
    ok.

%% Runs Fun with a fresh target (do_start_target/1) and stops that target afterwards, also when Fun fails.
%% Fun takes the target's node, or the node and the peer (for a case that stops the target itself: stopping it
%% twice is harmless). Gives what Fun gives.
-spec with_target(string(), fun((node()) -> R) | fun((node(), pid()) -> R)) -> R.
with_target(Prefix, Fun) ->
    with_nodes([{target, Prefix}], fun([{Peer, Node}]) ->
                                           case erlang:fun_info(Fun, arity) of
                                               {arity, 1} -> Fun(Node);
                                               {arity, 2} -> Fun(Node, Peer)
                                           end
                                   end).

%% Runs Fun with a pool made by new(Target, Options) (which must give {ok, Pool}). When Fun returns, the pool is
%% destroyed and that destroy must give ok (what the cases used to end with); when Fun fails, the pool is
%% destroyed without a drain and Fun's exception goes on. Gives what Fun gives. A case that destroys its pool
%% itself (to check what happens then) makes it with new/2 instead.
-spec with_pool(distribute_pool:target(), distribute_pool:options() | pos_integer(),
                fun((distribute_pool:pool()) -> R)) -> R.
with_pool(Target, Options, Fun) ->
    {ok, Pool} = distribute_pool:new(Target, Options),
    Result = try
                 Fun(Pool)
             catch
                 Class:Reason:Stack ->
                     _ = (catch distribute_pool:destroy(Pool, #{drain_timeout_ms => 0})),
                     erlang:raise(Class, Reason, Stack)
             end,
    ok = distribute_pool:destroy(Pool),
    Result.

%% with_target/2 and with_pool/3 in one: Fun gets the target's node and the pool.
-spec with_target_pool(string(), distribute_pool:options() | pos_integer(),
                       fun((node(), distribute_pool:pool()) -> R)) -> R.
with_target_pool(Prefix, Options, Fun) ->
    with_target(Prefix, fun(Node) -> with_pool(Node, Options, fun(Pool) -> Fun(Node, Pool) end) end).

%% Starts the nodes of Specs one after the other, runs Fun with what was started (in the order of Specs), and
%% then stops each of them, by its pid or OS process, in the reverse order: also when Fun fails, and also
%% those started before one that could not be.
-spec with_nodes([node_spec()], fun(([started()]) -> R)) -> R.
with_nodes(Specs, Fun) ->
    with_nodes(Specs, [], Fun).

with_nodes([], Started, Fun) ->
    Fun(lists:reverse(Started));
with_nodes([Spec | Specs], Started, Fun) ->
    This = do_start_node(Spec),
    try
        with_nodes(Specs, [This | Started], Fun)
    after
        do_stop_node(This)
    end.

do_start_node({target, Prefix}) -> do_start_target(Prefix);
do_start_node({client, Prefix}) -> do_start_client(Prefix);
do_start_node({isolated, Prefix, Cookie}) -> do_start_isolated(Prefix, Cookie);
do_start_node({isolated, Prefix, Cookie, Extra}) -> do_start_isolated(Prefix, Cookie, Extra);
do_start_node({named_target, Name}) -> do_start_named_target(Name, true);
do_start_node({killable_target, Name}) -> do_start_named_target(Name, false);
do_start_node({not_distributed, Args}) ->
    {ok, Peer, Node} = peer:start_link(#{connection => standard_io, args => Args}),
    {Peer, Node};
do_start_node({cnode, Args}) -> do_start_cnode_port(Args, atom_to_list(erlang:get_cookie())).

do_stop_node({Peer, _Node}) -> do_stop_peer(Peer);
do_stop_node(#{port := _} = CNodePort) -> do_stop_cnode_port(CNodePort).

%% Starts the application (embedded C-node). A missing binary is a build failure, not a reason to skip.
-spec do_init_suite(list()) -> list().
do_init_suite(Config) ->
    case is_alive() of
        false -> ct:fail("the suites need a distributed test node: rebar3 ct --name x@127.0.0.1");
        true -> ok
    end,
    _ = do_executable(),
    %% The suites' client nodes use the embedded C-node too: all of them run on 127.0.0.1 (by default only
    %% this node could; distribute_pool_access_SUITE tests that default).
    ok = application:set_env(distribute_pool, allowed_callers, ["*@127.0.0.1"]),
    {ok, _} = application:ensure_all_started(distribute_pool),
    [{cnode_os_pid, do_cnode_os_pid()} | Config].

-spec do_end_suite(list()) -> ok.
do_end_suite(_Config) ->
    _ = application:stop(distribute_pool),
    ok.

%% The C-node binary the application starts (application env cnode_executable: priv/dpool_cnode, or the
%% sanitizer build of scripts/sanitize_test.sh), so that C-nodes started by hand are the same build.
-spec do_executable() -> file:filename().
do_executable() ->
    _ = application:load(distribute_pool),
    {ok, #{cnode_executable := Configured}} = distribute_pool_env:app_config(),
    case distribute_pool_cnode:executable(Configured) of
        {ok, Exe} -> Exe;
        {error, Reason} -> ct:fail({Reason, "build it first: make cnode"})
    end.

%% Makes application:get_env(distribute_pool, Key) give Setting: {ok, Value}, or undefined (unset); a case
%% that changes an env puts it back so, with what get_env gave before.
-spec do_set_env(atom(), {ok, term()} | undefined) -> ok.
do_set_env(Key, {ok, Value}) ->
    application:set_env(distribute_pool, Key, Value);
do_set_env(Key, undefined) ->
    application:unset_env(distribute_pool, Key).

-spec do_uniq(string()) -> string().
do_uniq(Prefix) ->
    Prefix ++ "_" ++ integer_to_list(erlang:unique_integer([positive])) ++ "_" ++ os:getpid().

%% A target node: longnames on 127.0.0.1, the test cookie, nothing of ours on its code path.
%% Linked to the calling case, so it goes away with the case even when the case fails; cases still stop it.
-spec do_start_target(string()) -> {pid(), node()}.
do_start_target(Prefix) ->
    do_start_peer(Prefix, []).

%% A client node: like a target, plus the library and these helpers on its code path.
-spec do_start_client(string()) -> {pid(), node()}.
do_start_client(Prefix) ->
    LibEbin = filename:dirname(code:which(distribute_pool)),
    HelperDir = filename:dirname(code:which(?MODULE)),
    do_start_peer(Prefix, ["-pa", LibEbin, "-pa", HelperDir]).

-spec do_start_peer(string(), [string()]) -> {pid(), node()}.
do_start_peer(Prefix, Extra) ->
    %% peer passes no cookie: without -setcookie the node would read ~/.erlang.cookie and could not connect
    %% back to this node.
    Args = ["-setcookie", atom_to_list(erlang:get_cookie()) | Extra],
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(Prefix), host => "127.0.0.1",
                                         longnames => true, args => Args}),
    {Peer, Node}.

%% A peer controlled over its stdio instead of distribution: it need not share our cookie.
-spec do_start_isolated(string(), string()) -> {pid(), node()}.
do_start_isolated(Prefix, Cookie) ->
    do_start_isolated(Prefix, Cookie, []).

-spec do_start_isolated(string(), string(), [string()]) -> {pid(), node()}.
do_start_isolated(Prefix, Cookie, Extra) ->
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(Prefix), host => "127.0.0.1",
                                         longnames => true, connection => standard_io,
                                         args => ["-setcookie", Cookie | Extra]}),
    {Peer, Node}.

%% A target under exactly the name Name (on 127.0.0.1), linked to the case or not: a target that the case
%% kills must not be linked, its end would end the case.
-spec do_start_named_target(string(), boolean()) -> {pid(), node()}.
do_start_named_target(Name, Link) ->
    Options = #{name => Name, host => "127.0.0.1", longnames => true,
                args => ["-setcookie", atom_to_list(erlang:get_cookie())]},
    {ok, Peer, Node} = case Link of
                           true -> peer:start_link(Options);
                           false -> peer:start(Options)
                       end,
    {Peer, Node}.

-spec do_stop_peer(pid()) -> ok.
do_stop_peer(Peer) ->
    _ = (catch peer:stop(Peer)),
    ok.

%% Polls Fun every 20 ms until it returns true; after TimeoutMs, fails the case with what Fun returned last
%% (for a condition whose value tells more than false, see do_wait_value/3).
-spec do_wait_until(fun(() -> boolean()), non_neg_integer()) -> ok.
do_wait_until(Fun, TimeoutMs) ->
    true = do_wait_value(Fun, fun(Value) -> Value =:= true end, TimeoutMs),
    ok.

%% Polls Fun every 20 ms until Pred holds for its value, and gives that value; after TimeoutMs, fails the case
%% with the last value Fun gave.
-spec do_wait_value(fun(() -> V), fun((V) -> boolean()), non_neg_integer()) -> V.
do_wait_value(Fun, Pred, TimeoutMs) ->
    Deadline = erlang:monotonic_time(millisecond) + TimeoutMs,
    do_wait_value_loop(Fun, Pred, Deadline, TimeoutMs).

do_wait_value_loop(Fun, Pred, Deadline, TimeoutMs) ->
    Value = Fun(),
    case Pred(Value) of
        true ->
            Value;
        false ->
            case erlang:monotonic_time(millisecond) > Deadline of
                true ->
                    ct:fail({condition_not_met_within_ms, TimeoutMs, erlang:fun_info(Fun, name),
                             {last_value, Value}});
                false ->
                    receive after 20 -> ok end,
                    do_wait_value_loop(Fun, Pred, Deadline, TimeoutMs)
            end
    end.

%% Loads a fixture module onto a node over erpc (the target has no access to our directories).
-spec do_load_fixture(node(), module()) -> ok.
do_load_fixture(Node, Module) ->
    {Module, Bin, File} = code:get_object_code(Module),
    {module, Module} = erpc:call(Node, code, load_binary, [Module, File, Bin]),
    ok.

%% dpool_fixture_server on Node, registered as Name, forwarding what it is sent to the calling process.
-spec do_start_fixture(node(), atom()) -> pid().
do_start_fixture(Node, Name) ->
    ok = do_load_fixture(Node, dpool_fixture_server),
    {ok, Pid} = erpc:call(Node, dpool_fixture_server, start, [Name, self()]),
    Pid.

%% A process on Node that only sleeps, so that everything it is sent stays in its queue; registered as Name.
-spec do_start_sink(node(), atom()) -> pid().
do_start_sink(Node, Name) ->
    %% timer loaded first: a sink that loaded it itself could keep code_server's late answer in its mailbox,
    %% among the messages a case counts.
    {module, timer} = erpc:call(Node, code, ensure_loaded, [timer]),
    Sink = erpc:call(Node, erlang, spawn, [timer, sleep, [infinity]]),
    true = erpc:call(Node, erlang, register, [Name, Sink]),
    Sink.

%% The OS process of a node (a target: the case's own peer), as os:getpid/0 gives it there.
-spec do_target_os_pid(node()) -> string().
do_target_os_pid(Node) ->
    erpc:call(Node, os, getpid, []).

%% Sends Signal ("STOP", "CONT", ...) to the OS process OsPid (do_target_os_pid/1: taken before a STOP). A STOP
%% returns once every thread of the process is stopped: kill(2) returns before that, since the thread that
%% takes the signal stops the others only when it next runs, and meanwhile they run on (on a busy machine a
%% frozen target answered a request sent after the kill).
-spec do_signal(string(), string()) -> ok.
do_signal(OsPid, Signal) ->
    "" = os:cmd("kill -" ++ Signal ++ " " ++ OsPid),
    case Signal of
        "STOP" ->
            %% Callers send CONT in an `after' that this wait is outside of: a failed wait resumes the process.
            try
                do_wait_until(fun() -> all_threads_stopped(OsPid) end, 10000)
            catch
                Class:Reason:Stack ->
                    _ = os:cmd("kill -CONT " ++ OsPid),
                    erlang:raise(Class, Reason, Stack)
            end;
        _ ->
            ok
    end.

%% Whether every thread of the OS process OsPid is in the stopped state (T in /proc/<pid>/task/<tid>/stat).
-spec all_threads_stopped(string()) -> boolean().
all_threads_stopped(OsPid) ->
    Tasks = "/proc/" ++ OsPid ++ "/task",
    case file:list_dir(Tasks) of
        {ok, Tids} -> lists:all(fun(Tid) -> thread_state(filename:join([Tasks, Tid, "stat"])) =:= $T end, Tids);
        {error, _} -> false
    end.

%% The state letter of a thread's stat line, which follows the command name in parentheses (a name may hold
%% spaces and parentheses itself: the last `)' ends it).
-spec thread_state(file:filename()) -> char() | none.
thread_state(Stat) ->
    case file:read_file(Stat) of
        {ok, Line} ->
            case string:split(Line, <<")">>, trailing) of
                [_, <<" ", State, _/binary>>] -> State;
                _ -> none
            end;
        {error, _} ->
            none % a thread that ended meanwhile
    end.

-spec do_cnode() -> {atom(), node()}.
do_cnode() ->
    {Service, Node} = distribute_pool:default_cnode(),
    {Service, Node}.

-spec do_cnode_os_pid() -> non_neg_integer().
do_cnode_os_pid() ->
    {ok, OsPid} = distribute_pool_cnode:os_pid(),
    OsPid.

%% kill -9 of the embedded C-node, then waits (up to TimeoutMs) until the supervisor has a new one running; the
%% killed one's OS pid.
-spec do_kill_cnode(pos_integer()) -> non_neg_integer().
do_kill_cnode(TimeoutMs) ->
    OldPid = do_cnode_os_pid(),
    _ = os:cmd("kill -9 " ++ integer_to_list(OldPid)),
    do_wait_until(fun() ->
                          case distribute_pool_cnode:os_pid() of
                              {ok, P} -> P =/= OldPid;
                              _ -> false
                          end
                  end, TimeoutMs),
    OldPid.

-spec do_cnode_info({atom(), node()}) -> map().
do_cnode_info(Server) ->
    {ok, Info} = gen_server:call(Server, info, 5000),
    true = is_map(Info),
    Info.

%% The embedded C-node answers, and is still the same OS process.
-spec do_assert_cnode_alive(non_neg_integer()) -> ok.
do_assert_cnode_alive(OsPid) ->
    OsPid = do_cnode_os_pid(),
    true = do_os_alive(OsPid),
    _ = do_cnode_info(do_cnode()),
    ok.

-spec do_stats(distribute_pool:pool()) -> map().
do_stats(Pool) ->
    {ok, Stats} = distribute_pool:stats(Pool),
    Stats.

-spec do_pool_id(distribute_pool:pool()) -> non_neg_integer().
do_pool_id(Pool) ->
    maps:get(pool_id, do_stats(Pool)).

%% The node names of Pool's connections, as its stats list them.
-spec do_pool_node_names(distribute_pool:pool_ref()) -> [node()].
do_pool_node_names(Pool) ->
    [Node || #{node := Node} <- maps:get(connections, do_stats(Pool))].

%% Hidden nodes on Target that are connections of Pool.
-spec do_pool_nodes(node(), distribute_pool:pool_ref()) -> [node()].
do_pool_nodes(Target, Pool) ->
    do_hidden_among(Target, do_pool_node_names(Pool)).

%% Hidden nodes on Target whose names are in Names.
-spec do_hidden_among(node(), [node()]) -> [node()].
do_hidden_among(Target, Names) ->
    [N || N <- erpc:call(Target, erlang, nodes, [hidden]), lists:member(N, Names)].

%% Disconnects Client from the C-node Server on every lane it is connected to (a caller node has one
%% distribution connection per lane it uses); gives the lane nodes it was connected to, none of them still
%% connected.
-spec do_disconnect_cnode(node(), {atom(), node()}) -> [node()].
do_disconnect_cnode(Client, Server) ->
    Lanes = erpc:call(Client, distribute_pool_client, lane_nodes, [Server]),
    Connected = [N || N <- erpc:call(Client, erlang, nodes, [hidden]), lists:member(N, Lanes)],
    [true = erpc:call(Client, erlang, disconnect_node, [N]) || N <- Connected],
    [] = [N || N <- erpc:call(Client, erlang, nodes, [hidden]), lists:member(N, Lanes)],
    Connected.

%% Runs in its own process (possibly on a client peer): holds a lease until told to release it.
-spec do_hold_lease(distribute_pool:pool(), pid(), term()) -> ok.
do_hold_lease(Pool, ReplyTo, Tag) ->
    Result = distribute_pool:with_connection(
               Pool,
               fun(Conn) ->
                       ReplyTo ! {held, Tag, self(), distribute_pool:connection_info(Conn)},
                       receive {release, Tag} -> released end
               end,
               #{acquire_timeout_ms => 60000}),
    ReplyTo ! {done, Tag, Result},
    ok.

%% As do_hold_lease/3, and says which lane of the C-node Server this process uses:
%% {held, Tag, self(), LaneNode}.
-spec do_hold_lease_on_lane(distribute_pool:pool(), {atom(), node()}, pid(), term()) -> ok.
do_hold_lease_on_lane(Pool, Server, ReplyTo, Tag) ->
    Result = distribute_pool:with_connection(
               Pool,
               fun(Conn) ->
                       %% Held once the lease is granted (with_connection runs the fun before).
                       #{} = distribute_pool:connection_info(Conn),
                       {_, Lane} = distribute_pool_client:lane(Server),
                       ReplyTo ! {held, Tag, self(), Lane},
                       receive {release, Tag} -> released end
               end,
               #{acquire_timeout_ms => 60000}),
    ReplyTo ! {done, Tag, Result},
    ok.

%% Starts N holders on this node and waits until each holds a lease.
-spec do_hold_leases(distribute_pool:pool(), pos_integer(), term()) -> [{pid(), term()}].
do_hold_leases(Pool, N, Prefix) ->
    Self = self(),
    Holders = [begin
                   Tag = {Prefix, I},
                   {spawn(fun() -> do_hold_lease(Pool, Self, Tag) end), Tag}
               end || I <- lists:seq(1, N)],
    [receive {held, Tag, _, _} -> ok after 30000 -> ct:fail({no_lease, Tag}) end || {_, Tag} <- Holders],
    Holders.

-spec do_release([{pid(), term()}]) -> ok.
do_release(Holders) ->
    [Pid ! {release, Tag} || {Pid, Tag} <- Holders],
    [receive {done, Tag, {ok, released}} -> ok after 30000 -> ct:fail({not_released, Tag}) end
     || {_, Tag} <- Holders],
    ok.

%% Waits until no lease is out and nobody waits (a stats read sees returns already sent, but a holder killed
%% later, or a waiter whose exit is still on its way, takes a moment).
-spec do_wait_idle(distribute_pool:pool()) -> ok.
do_wait_idle(Pool) ->
    do_wait_until(fun() ->
                          #{in_use_connections := U, waiting := W} = do_stats(Pool),
                          U =:= 0 andalso W =:= 0
                  end, 10000).

%% Runs in its own process: Rounds leases, each with one request whose reply must be its own.
-spec do_echo_worker(distribute_pool:pool(), term(), term(), pos_integer(), pid(), term()) -> ok.
do_echo_worker(Pool, Dest, Id, Rounds, ReplyTo, Tag) ->
    Bad = lists:foldl(
            fun(I, Acc) ->
                    Unique = {Id, I, make_ref()},
                    case distribute_pool:with_connection(
                           Pool,
                           fun(Conn) -> distribute_pool:request(Conn, Dest, {echo, Unique}, 10000) end,
                           #{acquire_timeout_ms => 120000}) of
                        {ok, {ok, Unique}} -> Acc;
                        Other -> [{I, Other} | Acc]
                    end
            end, [], lists:seq(1, Rounds)),
    ReplyTo ! {Tag, Id, node(), lists:reverse(Bad)},
    ok.

%% Runs dpool_cnode to its exit; returns the exit status and everything it printed.
-spec do_run_exe([string()]) -> {integer(), string()}.
do_run_exe(Args) ->
    do_run_program(do_executable(), Args, [{"DISTRIBUTE_POOL_COOKIE", atom_to_list(erlang:get_cookie())}]).

%% Runs the program Exe with Args and Env to its exit (killed by its pid, and the case failed, after 20 s);
%% returns the exit status and everything it printed.
-spec do_run_program(file:filename(), [string()], [{string(), string()}]) -> {integer(), string()}.
do_run_program(Exe, Args, Env) ->
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, {env, Env}, binary, exit_status, use_stdio, stderr_to_stdout, hide]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    do_collect(Port, OsPid, []).

%% Everything a port program prints until it exits: {ExitStatus, Output}; kill -9 of it, and a failure of the
%% case, when it has not exited within 20 s.
-spec do_collect(port(), non_neg_integer(), [binary()]) -> {integer(), string()}.
do_collect(Port, OsPid, Acc) ->
    receive
        {Port, {data, Data}} ->
            do_collect(Port, OsPid, [Data | Acc]);
        {Port, {exit_status, Status}} ->
            {Status, unicode:characters_to_list(lists:reverse(Acc))}
    after 20000 ->
        catch erlang:port_close(Port),
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ct:fail({no_exit, unicode:characters_to_list(lists:reverse(Acc))})
    end.

%% Starts dpool_cnode by hand with Args (a name style and name first) and waits for its READY line.
-spec do_start_cnode_port([string()], string()) -> cnode_port().
do_start_cnode_port(Args, Cookie) ->
    do_start_cnode_port(Args, Cookie, []).

%% The same with more variables in its environment (its TLS settings: distribute_pool_env:tls_env/2).
-spec do_start_cnode_port([string()], string(), [{string(), string() | false}]) -> cnode_port().
do_start_cnode_port(Args, Cookie, Env) ->
    do_start_cnode_port([], Args, Cookie, Env).

%% The same, started through a launcher that execs its last argument with the arguments after it (Launcher:
%% the launcher's path and its own arguments, e.g. ["/usr/bin/prlimit", "--nofile=64:64", "--"]), so that the
%% port's OS pid is the C-node's.
-spec do_start_cnode_port([string()], [string()], string(), [{string(), string() | false}]) -> cnode_port().
do_start_cnode_port(Launcher, Args, Cookie, Env) ->
    {Executable, AllArgs} = case Launcher of
                                [] -> {do_executable(), Args ++ ["--exit-on-stdin-eof"]};
                                [Path | LauncherArgs] ->
                                    {Path, LauncherArgs ++ [do_executable() | Args] ++ ["--exit-on-stdin-eof"]}
                            end,
    Port = open_port({spawn_executable, Executable},
                     [{args, AllArgs}, {env, [{"DISTRIBUTE_POOL_COOKIE", Cookie} | Env]},
                      {line, 4096}, binary, exit_status, use_stdio, stderr_to_stdout, hide]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    do_wait_ready(Port, OsPid, []).

do_wait_ready(Port, OsPid, Output) ->
    receive
        {Port, {data, {eol, <<"READY ", Rest/binary>> = Line}}} ->
            [NodeName, _ListenPort] = binary:split(Rest, <<" ">>, [global, trim_all]),
            #{port => Port, os_pid => OsPid, node => binary_to_atom(NodeName, utf8),
              output => lists:reverse([Line | Output])};
        {Port, {data, {_, Line}}} ->
            do_wait_ready(Port, OsPid, [Line | Output]);
        {Port, {exit_status, Status}} ->
            ct:fail({cnode_exited_before_ready, Status, lists:reverse(Output)})
    after 15000 ->
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ct:fail({cnode_not_ready, lists:reverse(Output)})
    end.

%% Closes the port (the C-node exits on stdin EOF) and kills the process by its pid if it lingers.
-spec do_stop_cnode_port(cnode_port()) -> ok.
do_stop_cnode_port(#{port := Port, os_pid := OsPid}) ->
    %% What the C-node printed since it was ready (its log and how it exited) goes to the case's log, so that
    %% a failed case shows what the C-node saw.
    Lines = port_lines(Port, []),
    Lines =/= [] andalso ct:log("C-node ~p (os pid ~b), last lines of its output:~n~ts",
                                [Port, OsPid, lists:join("\n", lists:nthtail(max(0, length(Lines) - 100), Lines))]),
    catch erlang:port_close(Port),
    try
        do_wait_until(fun() -> not do_os_alive(OsPid) end, 5000)
    catch
        _:_ -> _ = os:cmd("kill -9 " ++ integer_to_list(OsPid))
    end,
    ok.

%% The lines the port sent to this process and nobody read, oldest first; an exit status as a line of its own.
port_lines(Port, Acc) ->
    receive
        {Port, {data, {_, Line}}} -> port_lines(Port, [Line | Acc]);
        {Port, {exit_status, Status}} -> port_lines(Port, [io_lib:format("(exited with status ~b)", [Status]) | Acc])
    after 0 ->
        lists:reverse(Acc)
    end.

%% Whether this run's C-node is the sanitizer stage's (scripts/sanitize_test.sh sets DPOOL_TEST_SANITIZER): an
%% ASan + UBSan build at -O0, several times slower, whose allocator holds freed memory back.
-spec do_sanitized() -> boolean().
do_sanitized() ->
    os:getenv("DPOOL_TEST_SANITIZER") =/= false.

%% do_scaled/2, unless the environment variable Env is set and not empty: then its value, a positive integer
%% (e.g. a longer soak by hand).
-spec do_scaled(pos_integer(), pos_integer(), string()) -> pos_integer().
do_scaled(Plain, Sanitized, Env) ->
    case os:getenv(Env, "") of
        "" ->
            do_scaled(Plain, Sanitized);
        Value ->
            try list_to_integer(Value) of
                N when N > 0 -> N;
                _ -> ct:fail({not_a_positive_integer, Env, Value})
            catch
                error:badarg -> ct:fail({not_a_positive_integer, Env, Value})
            end
    end.

%% A case's amount of work: Plain, or Sanitized against the sanitizer stage's C-node (do_sanitized/0), several
%% times slower, where a smaller amount still runs the same code (the "stated subset" of that stage).
-spec do_scaled(pos_integer(), pos_integer()) -> pos_integer().
do_scaled(Plain, Sanitized) ->
    case do_sanitized() of
        false -> Plain;
        true -> Sanitized
    end.

-spec do_os_alive(non_neg_integer()) -> boolean().
do_os_alive(OsPid) ->
    case file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/stat") of
        {ok, Stat} ->
            case string:split(Stat, <<")">>, trailing) of
                [_, <<" Z", _/binary>>] -> false;
                _ -> true
            end;
        {error, _} ->
            false
    end.
