%% The one way this library talks to a C-node: gen_server call/cast envelopes (docs/PROTOCOL.md), with the
%% difference from gen:call that every failure is returned, never raised, so no caller crashes because a
%% C-node is unreachable, died, or is slow.
-module(distribute_pool_client).

-export([call/3]).
-export([call_tagged/3]).
-export([cast/2]).

%% Tags are [alias | Alias], an improper list on purpose: the form of gen_server's alias tags.
-dialyzer({no_improper_lists, [call_tagged/3, call_local/3]}).

-export_type([server/0]).
-export_type([wait/0]).

-type server() :: {Service :: atom(), CNode :: node()}.
-type wait() :: non_neg_integer() | infinity.

%% The largest timeout a receive accepts.
-define(MAX_WAIT, 4294967295).
%% How long a call to a C-node on another node waits before it also checks that the service is there.
-define(NAME_CHECK_MS, 100).
%% A bound on the wait for the nodedown message that follows a DOWN with noconnection (it always comes).
-define(NODEDOWN_WAIT_MS, 5000).

%% A call that maps a client-side timeout to {error, timeout}.
-spec call(server(), term(), wait()) -> term() | {error, connection_failed | timeout}.
call(Server, Request, Wait) ->
    case call_tagged(Server, Request, Wait) of
        {reply, Reply} -> Reply;
        {timeout, _Tag} -> {error, timeout};
        {error, connection_failed} = Error -> Error
    end.

%% A call that gives the caller the tag of a request it stopped waiting for, so that it can be withdrawn
%% (the `cancel` cast of a checkout names it).
%%
%% The tag is [alias | Alias], as gen_server's: the C-node answers to the alias, which is deactivated when the
%% call returns, so a reply that comes after a timeout is dropped by this node instead of landing in the
%% caller's mailbox. A C-node on another node is watched with monitor_node/2, which sends nothing over the wire
%% (a monitor on the service by name costs a MONITOR_P and a DEMONITOR_P packet per call, and the C-node a
%% wake-up for the second): it says at once that the C-node died, its connection broke or it cannot be reached.
%% A live node without the service is told from a slow answer by a monitor on the service by name, set only
%% when no answer came within ?NAME_CHECK_MS.
-spec call_tagged(server(), term(), wait()) ->
    {reply, term()} | {timeout, term()} | {error, connection_failed}.
call_tagged({_Service, Node} = Server, Request, Wait) when Node =:= node() ->
    call_local(Server, Request, Wait);
call_tagged({_Service, Node} = Server, Request, Wait) ->
    %% monitor_node/2 raises notalive when the local node is not alive (no way to reach any C-node), and
    %% badarg for a node that is no atom.
    try erlang:monitor_node(Node, true) of
        true ->
            Alias = erlang:alias(),
            Tag = [alias | Alias],
            %% A plain send: it connects to the C-node's node if not yet connected (monitor_node/2 did).
            _ = (catch erlang:send(Server, {'$gen_call', {self(), Tag}, Request})),
            Result = await_remote(Server, Node, Tag, clamp(Wait)),
            erlang:unalias(Alias),
            Result
    catch
        error:_ -> {error, connection_failed}
    end.

%% A service on this node (tests run fakes so): a monitor by name is local, and says noproc at once.
-spec call_local(server(), term(), wait()) ->
    {reply, term()} | {timeout, term()} | {error, connection_failed}.
call_local(Server, Request, Wait) ->
    try erlang:monitor(process, Server, [{alias, demonitor}]) of
        Mref ->
            Tag = [alias | Mref],
            _ = (catch erlang:send(Server, {'$gen_call', {self(), Tag}, Request})),
            receive
                {Tag, Reply} ->
                    erlang:demonitor(Mref, [flush]),
                    {reply, Reply};
                {'DOWN', Mref, _, _, _Reason} ->
                    {error, connection_failed}
            after clamp(Wait) ->
                erlang:demonitor(Mref, [flush]),
                {timeout, Tag}
            end
    catch
        error:badarg -> {error, connection_failed}
    end.

%% Waits for the answer while monitor_node(Node, true) is on; it is off again when this returns.
-spec await_remote(server(), node(), term(), wait()) ->
    {reply, term()} | {timeout, term()} | {error, connection_failed}.
await_remote(Server, Node, Tag, Wait) ->
    First = case Wait of
                infinity -> ?NAME_CHECK_MS;
                _ -> min(Wait, ?NAME_CHECK_MS)
            end,
    Deadline = deadline(Wait),
    receive
        {Tag, Reply} ->
            true = erlang:monitor_node(Node, false),
            {reply, Reply};
        {nodedown, Node} ->
            nodedown(Server, Node, Tag, Deadline)
    after First ->
        case Wait of
            First ->
                true = erlang:monitor_node(Node, false),
                {timeout, Tag};
            _ ->
                await_named(Server, Node, Tag, Deadline, true)
        end
    end.

%% The answer is slow: is the service there at all? noproc (a live node without it) is connection_failed too.
%% WatchNode: monitor_node(Node, true) of this call is still on (then it is off when this returns).
-spec await_named(server(), node(), term(), deadline(), boolean()) ->
    {reply, term()} | {timeout, term()} | {error, connection_failed}.
await_named(Server, Node, Tag, Deadline, WatchNode) ->
    Mref = erlang:monitor(process, Server),
    receive
        {Tag, Reply} ->
            erlang:demonitor(Mref, [flush]),
            unwatch(Node, WatchNode),
            {reply, Reply};
        {nodedown, Down} when Down =:= Node, WatchNode ->
            erlang:demonitor(Mref, [flush]),
            nodedown(Server, Node, Tag, Deadline);
        {'DOWN', Mref, _, _, noconnection} when WatchNode ->
            %% The connection went: the node monitor fires too, and its message must not outlive the call.
            receive {nodedown, Node} -> ok after ?NODEDOWN_WAIT_MS -> ok end,
            {error, connection_failed};
        {'DOWN', Mref, _, _, _NoProcOrNoConnection} ->
            unwatch(Node, WatchNode),
            {error, connection_failed}
    after remaining(Deadline) ->
        erlang:demonitor(Mref, [flush]),
        unwatch(Node, WatchNode),
        {timeout, Tag}
    end.

%% A {nodedown, Node} came while this call's node monitor was on. Its own, or one the caller had not read yet
%% (from a monitor_node/2 or net_kernel:monitor_nodes/1 of its own: they look the same). While Node is still
%% connected it cannot be this call's: it is put back, this call's node monitor goes, and the call waits on
%% with a monitor on the service by name, whose messages are its own.
-spec nodedown(server(), node(), term(), deadline()) ->
    {reply, term()} | {timeout, term()} | {error, connection_failed}.
nodedown(Server, Node, Tag, Deadline) ->
    case lists:member(Node, erlang:nodes(connected)) of
        false ->
            {error, connection_failed};
        true ->
            true = erlang:monitor_node(Node, false),
            self() ! {nodedown, Node},
            await_named(Server, Node, Tag, Deadline, false)
    end.

-spec unwatch(node(), boolean()) -> ok.
unwatch(Node, true) ->
    true = erlang:monitor_node(Node, false),
    ok;
unwatch(_Node, false) ->
    ok.

-type deadline() :: integer() | infinity.

-spec deadline(wait()) -> deadline().
deadline(infinity) -> infinity;
deadline(Wait) -> erlang:monotonic_time(millisecond) + Wait.

-spec remaining(deadline()) -> wait().
remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

-spec cast(server(), term()) -> ok.
cast(Server, Request) ->
    _ = (catch erlang:send(Server, {'$gen_cast', Request})),
    ok.

-spec clamp(wait()) -> wait().
clamp(infinity) -> infinity;
clamp(Wait) when Wait > ?MAX_WAIT -> ?MAX_WAIT;
clamp(Wait) -> Wait.
