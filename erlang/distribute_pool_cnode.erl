%% Owns the port of the embedded C-node (priv/dpool_cnode): starts it with a node name derived from the
%% local one, waits for its READY line, forwards its log lines to logger, and stops when it exits so that
%% the supervisor starts a new one. The cookie and the TLS settings (the key's password among them) go
%% through the environment, never the command line, where any local user could read them.
%%
%% Every C-node it starts awaits a restore (--await-restore): right after READY, and before init returns,
%% distribute_pool_registry sends it the pools recorded from the C-node it replaces (none at the first
%% start). Until then the C-node answers requests for unknown pools {error, {connection_failed,
%% {cnode_restarting, _}}}, so callers
%% holding handles never see invalid_pool for a pool that is about to come back.
-module(distribute_pool_cnode).
-behaviour(gen_server).

-include("distribute_pool_internal.hrl").

-export([start_link/1]).
-export([address/0]).
-export([os_pid/0]).
-export([executable/1]).
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).
-export([terminate/2]).

-export_type([args/0]).

%% lanes: the C-node's --lanes, unless args gives --lanes itself; log_level: its --log-level, likewise; limits: its --max-* options
%% (distribute_pool_env:limit_args/1), each unless args gives it itself; access: its allow-list options
%% (distribute_pool_env:access_args/2), added to any that args gives (default: none, anyone with the cookie);
%% executable: the binary (default priv); tls_env: its TLS variables (distribute_pool_env:tls_env/2, behind a
%% fun that keeps the password out of reports; default: none set here).
-type args() :: #{service := atom(), args := [string()], lanes => distribute_pool_env:lanes(),
                  limits => distribute_pool_env:limits(), access => [string()],
                  log_level => distribute_pool_env:log_level(), metrics => distribute_pool_env:metrics(),
                  executable => distribute_pool_env:executable(),
                  tls_env => fun(() -> distribute_pool_env:os_env())}.

-record(state, {
    port :: port() | undefined,
    os_pid :: non_neg_integer(),
    service :: atom(),
    node :: node(),
    partial = <<>> :: binary()
}).

-define(READY_TIMEOUT_MS, 15000).
-define(STOP_TIMEOUT_MS, 5000).
-define(MAX_LINE, 4096).
%% Output lines kept to explain a failed start.
-define(KEEP_LINES, 20).

-spec start_link(args()) -> {ok, pid()} | {error, term()}.
start_link(Args) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, Args, []).

%% {Service, CNodeNode}: where callers send their requests.
-spec address() -> {atom(), node()} | {error, cnode_not_running}.
address() ->
    safe_call(address).

%% The C-node's OS process id.
-spec os_pid() -> {ok, non_neg_integer()} | {error, cnode_not_running}.
os_pid() ->
    safe_call(os_pid).

-spec safe_call(address | os_pid) -> term().
safe_call(Request) ->
    try
        gen_server:call(?MODULE, Request, 5000)
    catch
        exit:_ -> {error, cnode_not_running}
    end.

-spec init(args()) -> {ok, #state{}} | {stop, term()}.
init(#{service := Service, args := ExtraArgs} = Args) ->
    process_flag(trap_exit, true),
    Defaults = ["--lanes", integer_to_list(maps:get(lanes, Args, ?DPOOL_DEFAULT_LANES))
                | distribute_pool_env:log_level_args(maps:get(log_level, Args, info))
                ++ distribute_pool_env:limit_args(maps:get(limits, Args, #{}))
                ++ distribute_pool_env:metrics_args(maps:get(metrics, Args, none))],
    case executable(maps:get(executable, Args, priv)) of
        {ok, Exe} ->
            TlsEnv = maps:get(tls_env, Args, fun() -> [] end),
            start(Exe, Service, unless_given(Defaults, ExtraArgs) ++ maps:get(access, Args, []) ++ ExtraArgs,
                  TlsEnv);
        {error, Reason} ->
            {stop, Reason}
    end.

%% The option-value pairs of Defaults whose option ExtraArgs does not give itself.
-spec unless_given([string()], [string()]) -> [string()].
unless_given([Option, Value | Rest], ExtraArgs) ->
    case lists:any(fun(A) -> lists:prefix(Option, A) end, ExtraArgs) of
        true -> unless_given(Rest, ExtraArgs);
        false -> [Option, Value | unless_given(Rest, ExtraArgs)]
    end;
unless_given([], _ExtraArgs) ->
    [].

%% The C-node binary the application env cnode_executable names: priv is the application's
%% priv/dpool_cnode.
-spec executable(distribute_pool_env:executable()) -> {ok, file:filename()} | {error, term()}.
executable(priv) ->
    case code:priv_dir(distribute_pool) of
        {error, _} -> {error, {cnode_executable_missing, "no priv dir for distribute_pool"}};
        Priv -> executable(filename:join(Priv, "dpool_cnode"))
    end;
executable(Exe) ->
    case filelib:is_regular(Exe) of
        true -> {ok, Exe};
        false -> {error, {cnode_executable_missing, Exe}}
    end.

-spec start(file:filename(), atom(), [string()], fun(() -> distribute_pool_env:os_env())) ->
    {ok, #state{}} | {stop, term()}.
start(Exe, Service, ExtraArgs, TlsEnv) ->
    NameFlag = case net_kernel:longnames() of
                   true -> "--name";
                   _ -> "--sname"
               end,
    [Alive, Host] = string:split(atom_to_list(node()), "@"),
    Args = [NameFlag, Alive ++ "_dpool@" ++ Host, "--exit-on-stdin-eof", "--await-restore", "--events",
            "--service", atom_to_list(Service)]
        ++ ExtraArgs,
    Env = [{"DISTRIBUTE_POOL_COOKIE", atom_to_list(erlang:get_cookie())} | TlsEnv()],
    try open_port({spawn_executable, Exe},
                  [{args, Args}, {env, Env}, {line, ?MAX_LINE}, binary, exit_status, use_stdio,
                   stderr_to_stdout, hide]) of
        Port ->
            {os_pid, OsPid} = erlang:port_info(Port, os_pid),
            Deadline = erlang:monotonic_time(millisecond) + ?READY_TIMEOUT_MS,
            case wait_ready(Port, OsPid, Deadline, <<>>, []) of
                {ok, Node} ->
                    logger:info("distribute_pool: C-node ~s is ready (os pid ~b)", [Node, OsPid]),
                    %% Its lanes are learnt again: this one may have been started with others.
                    ok = distribute_pool_client:forget_lanes({Service, Node}),
                    %% A failed restore is logged by the registry; the C-node still serves new pools.
                    _ = distribute_pool_registry:restore({Service, Node}),
                    {ok, #state{port = Port, os_pid = OsPid, service = Service, node = Node}};
                {error, Reason} ->
                    stop_cnode(Port, OsPid),
                    {stop, Reason}
            end
    catch
        error:Reason ->
            {stop, {cnode_start_failed, #{executable => Exe, reason => Reason}}}
    end.

-spec wait_ready(port(), non_neg_integer(), integer(), binary(), [binary()]) -> {ok, node()} | {error, term()}.
wait_ready(Port, OsPid, Deadline, Partial, Seen) ->
    Left = max(0, Deadline - erlang:monotonic_time(millisecond)),
    receive
        {Port, {data, {noeol, Part}}} ->
            wait_ready(Port, OsPid, Deadline, cap(<<Partial/binary, Part/binary>>), Seen);
        {Port, {data, {eol, Part}}} ->
            Line = <<Partial/binary, Part/binary>>,
            case parse_ready(Line) of
                {ok, Node} ->
                    {ok, Node};
                error ->
                    distribute_pool_cnode_log:log(OsPid, Line),
                    wait_ready(Port, OsPid, Deadline, <<>>, lists:sublist([Line | Seen], ?KEEP_LINES))
            end;
        {Port, {exit_status, Status}} ->
            {error, {cnode_start_failed, #{exit_status => Status,
                                           meaning => exit_meaning(Status),
                                           output => lists:reverse(Seen)}}};
        {'EXIT', Port, Reason} ->
            {error, {cnode_start_failed, #{port_exit => Reason, output => lists:reverse(Seen)}}}
    after Left ->
        {error, {cnode_not_ready, #{waited_ms => ?READY_TIMEOUT_MS, output => lists:reverse(Seen)}}}
    end.

%% "READY <nodename> <port>"
-spec parse_ready(binary()) -> {ok, node()} | error.
parse_ready(<<"READY ", Rest/binary>>) ->
    case binary:split(string:trim(Rest), <<" ">>, [global, trim_all]) of
        [NodeName, PortText] ->
            try binary_to_integer(PortText) of
                _ListenPort when byte_size(NodeName) < 256 ->
                    %% The C-node's own name, which this process asked for: one atom per start.
                    {ok, binary_to_atom(NodeName, utf8)};
                _ ->
                    error
            catch
                error:badarg -> error
            end;
        _ ->
            error
    end;
parse_ready(_) ->
    error.

-spec exit_meaning(integer()) -> string().
exit_meaning(0) -> "exited normally before it was ready";
exit_meaning(1) -> "startup failure (is epmd running? is the node name already in use?)";
exit_meaning(2) -> "bad usage (check the cnode_args, limits, allowed_* and tls application variables, and that "
                   "the TLS files exist and are readable)";
exit_meaning(S) when S > 128 -> "killed by signal " ++ integer_to_list(S - 128);
exit_meaning(S) -> "exit status " ++ integer_to_list(S).

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(address, _From, #state{service = Service, node = Node} = State) ->
    {reply, {Service, Node}, State};
handle_call(os_pid, _From, #state{os_pid = OsPid} = State) ->
    {reply, {ok, OsPid}, State};
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Request, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({Port, {data, {noeol, Part}}}, #state{port = Port, partial = Partial} = State) ->
    {noreply, State#state{partial = cap(<<Partial/binary, Part/binary>>)}};
handle_info({Port, {data, {eol, Part}}}, #state{port = Port, partial = Partial, os_pid = OsPid} = State) ->
    distribute_pool_cnode_log:log(OsPid, <<Partial/binary, Part/binary>>),
    {noreply, State#state{partial = <<>>}};
handle_info({Port, {exit_status, Status}}, #state{port = Port, os_pid = OsPid} = State) ->
    logger:error("distribute_pool: C-node (os pid ~b) exited with status ~b: ~s",
                 [OsPid, Status, exit_meaning(Status)]),
    {stop, {cnode_exited, Status}, State#state{port = undefined}};
handle_info({'EXIT', Port, Reason}, #state{port = Port} = State) ->
    %% The port went away without an exit status (closed by someone else): the C-node may still run.
    {stop, {cnode_port_closed, Reason}, State};
handle_info(_Other, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{port = undefined}) ->
    ok;
terminate(_Reason, #state{port = Port, os_pid = OsPid}) ->
    stop_cnode(Port, OsPid).

%% Closing the port closes the C-node's stdin, on which it exits (--exit-on-stdin-eof). After port_close
%% no exit_status message can come, so the OS process itself is watched; one that lingers is killed by pid.
-spec stop_cnode(port(), non_neg_integer()) -> ok.
stop_cnode(Port, OsPid) ->
    catch erlang:port_close(Port),
    Deadline = erlang:monotonic_time(millisecond) + ?STOP_TIMEOUT_MS,
    case wait_os_exit(OsPid, Deadline) of
        true ->
            ok;
        false ->
            logger:warning("distribute_pool: C-node (os pid ~b) did not exit within ~b ms; killing it",
                           [OsPid, ?STOP_TIMEOUT_MS]),
            _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
            ok
    end.

-spec wait_os_exit(non_neg_integer(), integer()) -> boolean().
wait_os_exit(OsPid, Deadline) ->
    case os_alive(OsPid) of
        false ->
            true;
        true ->
            case erlang:monotonic_time(millisecond) >= Deadline of
                true ->
                    false;
                false ->
                    receive after 50 -> ok end,
                    wait_os_exit(OsPid, Deadline)
            end
    end.

-spec os_alive(non_neg_integer()) -> boolean().
os_alive(OsPid) ->
    Pid = integer_to_list(OsPid),
    case file:read_file("/proc/" ++ Pid ++ "/stat") of
        {ok, Stat} ->
            %% "pid (comm) State ...": a zombie (Z) has exited already.
            case string:split(Stat, <<")">>, trailing) of
                [_, <<" Z", _/binary>>] -> false;
                _ -> true
            end;
        {error, enoent} ->
            false;
        {error, _} ->
            os:cmd("kill -0 " ++ Pid ++ " 2>/dev/null && echo alive") =:= "alive\n"
    end.

%% A line longer than the port's line buffer arrives in pieces; keep a bounded amount of it.
-spec cap(binary()) -> binary().
cap(Bin) when byte_size(Bin) > 4 * ?MAX_LINE -> binary:part(Bin, 0, 4 * ?MAX_LINE);
cap(Bin) -> Bin.
