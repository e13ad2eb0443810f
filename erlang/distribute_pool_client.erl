%% The one way this library talks to a C-node: gen_server call/cast envelopes (docs/PROTOCOL.md), with the
%% difference from gen:call that every failure is returned, never raised, so no caller crashes because a
%% C-node is unreachable, died, or is slow.
%%
%% Lanes. A C-node started with --lanes N answers under N node names: its own (lane 0) and
%% <alive>_lane<k>@<host> (k = 1..N-1), each a distribution connection of its own from this node. A process
%% always talks to a given C-node over the same lane, so everything it sends there (checkouts, sends,
%% requests, checkins, casts, cancels) arrives in the order it was sent (what follows a pending call, as a
%% lease's first operation follows its checkout, goes over that call's lane: call_behind/4, call_on_lane/3,
%% cast_on_lane/2); different processes are spread over
%% the lanes round robin, in the order they first talk to that C-node, so that one process's big message does
%% not hold back another's requests (N busy processes get N different lanes while N =< lanes). The lane names
%% are asked once per C-node (the `lanes' request) and kept in persistent_term with the round-robin counter,
%% until the application starts its C-node again (forget_lanes/1: it may have other lanes) or a lane other
%% than its own name cannot be reached (lane_failed/2: one started outside the application may too); a process
%% remembers its ticket of the counter in its dictionary. A server() is still {Service, MainNode}: the lane is
%% picked here, on every call.
-module(distribute_pool_client).

-include("distribute_pool_internal.hrl").

-export([call/3]).
-export([call_tagged/3]).
-export([call_on_lane/3]).
-export([call_behind/4]).
-export([send_call/3]).
-export([await_call/2]).
-export([poll_call/1]).
-export([forget_call/1]).
-export([pending_tag/1]).
-export([pending_lane/1]).
-export([cast/2]).
-export([cast_on_lane/2]).
-export([lane/1]).
-export([lane_nodes/1]).
-export([forget_lanes/1]).
-export([known_cnode_nodes/0]).
-export([lane_failed/2]).
-export([deadline/1]).
-export([remaining/1]).
-export([unreachable/2]).
-export([not_running/1]).

-export_type([server/0]).
-export_type([wait/0]).
-export_type([unreachable/0]).
-export_type([pending/0]).
-export_type([deadline/0]).

-type server() :: {Service :: atom(), CNode :: node()}.
-type wait() :: non_neg_integer() | infinity.
%% The C-node could not be asked: {connection_failed, {cnode_not_running, Text}}.
-type unreachable() :: {connection_failed, {cnode_not_running, binary()}}.
%% A call sent and not yet answered (send_call/3): the address it went to, what watches that address while
%% the answer is awaited (a node monitor and an alias; a monitor by name, which is also the alias, for a
%% service on this node), and the tag the answer comes with.
-opaque pending() :: {remote, server(), reference(), distribute_pool_proto:tag()}
                   | {local, server(), reference(), distribute_pool_proto:tag()}.

%% How long a call to a C-node on another node waits before it also checks that the service is there.
-define(NAME_CHECK_MS, 100).
%% A bound on the wait for the nodedown message that follows a DOWN with noconnection (it always comes).
-define(NODEDOWN_WAIT_MS, 5000).
%% persistent_term: {LaneNodes :: tuple(), Counter :: atomics:atomics_ref()} | single.
-define(LANES_KEY(Server), {?MODULE, lanes, Server}).
%% Process dictionary: this process's ticket of the C-node's round-robin counter.
-define(TICKET_KEY(Server), {?MODULE, lane, Server}).

%% A call that maps a client-side timeout to {error, timeout}.
-spec call(server(), distribute_pool_proto:request(), wait()) -> term() | {error, unreachable() | timeout}.
call(Server, Request, Wait) ->
    untagged(call_tagged(Server, Request, Wait)).

%% The answer of a tagged call, a client-side timeout as {error, timeout}.
-spec untagged({reply, term()} | {timeout, term()} | {error, unreachable()}) ->
    term() | {error, unreachable() | timeout}.
untagged({reply, Reply}) -> Reply;
untagged({timeout, _Tag}) -> {error, timeout};
untagged({error, {connection_failed, _}} = Error) -> Error.

%% The error of a call whose C-node could not be asked, with why in words.
-spec unreachable(server(), noconnection | noproc | notalive | badarg | nodedown) -> {error, unreachable()}.
unreachable({Service, Node}, Why) ->
    Text = case Why of
               notalive -> "this node is not distributed: start it with -name or -sname";
               badarg -> io_lib:format("~0tp is no C-node address", [{Service, Node}]);
               noproc -> io_lib:format("~0tp has no process registered as ~0tp: is the C-node running?",
                                       [Node, Service]);
               _ -> no_connection_text(Node)
           end,
    not_running(Text).

%% Why a connection to the C-node's node failed, as far as its epmd tells: a name that epmd knows is a C-node
%% that runs and refused this node's handshake (its caller allow-list, another cookie, or TLS on one side
%% only); the C-node logs why.
-spec no_connection_text(node()) -> iodata().
no_connection_text(Node) ->
    case registered_in_epmd(Node) of
        true ->
            io_lib:format("the C-node ~0tp runs (its epmd knows it) but refused this node's connection: this node "
                          "is not in its caller allow-list (allowed_callers, --allow-caller, "
                          "--allow-caller-address), has another cookie, or runs plain distribution and the C-node "
                          "TLS (or the reverse: -proto_dist inet_tls, --tls); the C-node's log says which", [Node]);
        false ->
            io_lib:format("the C-node ~0tp cannot be reached: it is not running, or its node is down", [Node])
    end.

-spec registered_in_epmd(node()) -> boolean().
registered_in_epmd(Node) ->
    case string:split(atom_to_list(Node), "@") of
        [Alive, Host] ->
            try erl_epmd:port_please(Alive, Host, 2000) of
                {port, _, _} -> true;
                _ -> false
            catch
                _:_ -> false
            end;
        _ ->
            false
    end.

%% {error, {connection_failed, {cnode_not_running, Text}}}: no C-node could be asked, and Text says why.
-spec not_running(iodata()) -> {error, unreachable()}.
not_running(Text) ->
    {error, {connection_failed, {cnode_not_running, unicode:characters_to_binary(Text)}}}.

%% A call that gives the caller the tag of a request it stopped waiting for, so that it can be withdrawn
%% (the `cancel' cast of a checkout names it). It goes over this process's lane of the C-node.
-spec call_tagged(server(), distribute_pool_proto:request(), wait()) ->
    {reply, term()} | {timeout, term()} | {error, unreachable()}.
call_tagged(Server, Request, Wait) ->
    Lane = lane(Server, Wait),
    checked_lane(Server, Lane, call_at(Lane, Request, Wait)).

%% Result of a call over Lane of the C-node Server, after lane_failed/2 when it found no C-node there.
-spec checked_lane(server(), server(), Result) -> Result
          when Result :: {reply, term()} | {timeout, term()} | {error, unreachable()}.
checked_lane(Server, Lane, {error, _} = Unreachable) ->
    ok = lane_failed(Server, Lane),
    Unreachable;
checked_lane(_Server, _Lane, Result) ->
    Result.

%% A call over Lane of the C-node Server found no C-node there: the lanes learnt of it are forgotten when Lane
%% is not its own name, because a C-node started again under that name (outside the application, which
%% forgets them itself) may have fewer lanes; the next call asks it for its lanes again. The call that failed
%% is not sent again: the C-node it went to may have acted on it before it went.
-spec lane_failed(server(), server()) -> ok.
lane_failed(Server, Server) ->
    ok;
lane_failed(Server, _Lane) ->
    forget_lanes(Server).

%% A call to one given lane of a C-node ({Service, LaneNode}, as lane/1 gives it to the process that uses it),
%% whatever lane the calling process has: it is handled after everything this node sent over that lane before
%% (one connection is FIFO), e.g. the checkout of a process that used it and was killed since.
-spec call_on_lane(server(), distribute_pool_proto:request(), wait()) -> term() | {error, term()}.
call_on_lane(Lane, Request, Wait) ->
    untagged(call_at(Lane, Request, Wait)).

%% A call sent over this process's lane without waiting for its answer, which await_call/2 then waits for:
%% with_connection's checkout, followed at once by its first operation on the same lane, so that the C-node
%% sees the checkout first. Wait bounds the `lanes' request when the C-node's lanes are not known yet.
-spec send_call(server(), distribute_pool_proto:request(), wait()) -> {ok, pending()} | {error, unreachable()}.
send_call(Server, Request, Wait) ->
    send_at(lane(Server, Wait), Request).

%% A call sent right behind the pending call Pending (send_call/3), over its lane, so that the C-node sees it
%% after that one: the first operation of with_connection's fun behind its checkout. While Pending waits, its
%% watch on the C-node's node is on, and this call shares it rather than turning a second one on and off: a
%% nodedown it reads for a node that is gone is put back for Pending's wait. As call/3 otherwise.
-spec call_behind(server(), pending(), distribute_pool_proto:request(), wait()) ->
    term() | {error, unreachable() | timeout}.
call_behind(Server, {remote, {_, Node} = Lane, _, _}, Request, Wait) ->
    {Alias, Tag} = send_aliased(Lane, Request),
    Result = await_remote(Lane, Node, Tag, clamp(Wait), shared),
    erlang:unalias(Alias),
    untagged(checked_lane(Server, Lane, Result));
call_behind(Server, {local, Lane, _, _}, Request, Wait) ->
    %% A service on this node (a test's fake) is watched by a monitor per call.
    untagged(checked_lane(Server, Lane, call_at(Lane, Request, Wait))).

%% The answer of a call sent with send_call/3, as call_tagged/3 gives it; it ends the pending call (a later
%% answer is dropped by this node), so it is awaited once.
-spec await_call(pending(), wait()) -> {reply, term()} | {timeout, term()} | {error, unreachable()}.
await_call({remote, {_, Node} = Server, Alias, Tag}, Wait) ->
    Result = await_remote(Server, Node, Tag, clamp(Wait), own),
    erlang:unalias(Alias),
    Result;
await_call({local, Server, Mref, Tag}, Wait) ->
    receive
        {Tag, Reply} ->
            erlang:demonitor(Mref, [flush]),
            {reply, Reply};
        {'DOWN', Mref, _, _, _Reason} ->
            unreachable(Server, noproc)
    after clamp(Wait) ->
        erlang:demonitor(Mref, [flush]),
        {timeout, Tag}
    end.

%% The answer of a call sent with send_call/3 if it has come (it then ends the pending call, as await_call/2
%% does), without waiting.
-spec poll_call(pending()) -> {reply, term()} | none.
poll_call(Pending) ->
    Tag = pending_tag(Pending),
    receive
        {Tag, Reply} ->
            ok = end_call(Pending),
            {reply, Reply}
    after 0 ->
        none
    end.

%% Ends a pending call that is not to be answered (its result was learnt otherwise): an answer that came
%% meanwhile is dropped, a later one is dropped by this node.
-spec forget_call(pending()) -> ok.
forget_call(Pending) ->
    ok = end_call(Pending),
    Tag = pending_tag(Pending),
    receive {Tag, _} -> ok after 0 -> ok end.

%% What watches a pending call, undone: its alias (a late answer is dropped by this node) and the watch on the
%% C-node's node, or the monitor of a service on this node.
-spec end_call(pending()) -> ok.
end_call({remote, {_, Node}, Alias, _Tag}) ->
    erlang:unalias(Alias),
    true = erlang:monitor_node(Node, false),
    ok;
end_call({local, _Server, Mref, _Tag}) ->
    erlang:demonitor(Mref, [flush]),
    ok.

%% The tag a pending call was sent with (the C-node's answers, and a `cancel' of it, name it).
-spec pending_tag(pending()) -> distribute_pool_proto:tag().
pending_tag({_, _, _, Tag}) -> Tag.

%% The address ({Service, LaneNode}) a pending call went to: what is sent there later arrives after it.
-spec pending_lane(pending()) -> server().
pending_lane({_, Lane, _, _}) -> Lane.

%% One call to the address To ({Service, LaneNode}).
-spec call_at(server(), distribute_pool_proto:request(), wait()) ->
    {reply, term()} | {timeout, term()} | {error, unreachable()}.
call_at(To, Request, Wait) ->
    case send_at(To, Request) of
        {ok, Pending} -> await_call(Pending, Wait);
        {error, _} = Unreachable -> Unreachable
    end.

%% Sends a call to the address To.
%%
%% The tag is [alias | Alias], as gen_server's: the C-node answers to the alias, which is deactivated when the
%% answer has been awaited, so a reply that comes after a timeout is dropped by this node instead of landing in
%% the caller's mailbox. A C-node on another node is watched with monitor_node/2, which sends nothing over the
%% wire (a monitor on the service by name costs a MONITOR_P and a DEMONITOR_P packet per call, and the C-node a
%% wake-up for the second): it says at once that the C-node died, its connection broke or it cannot be reached.
%% A live node without the service is told from a slow answer by a monitor on the service by name, set only
%% when no answer came within ?NAME_CHECK_MS. A service on this node (tests run fakes so) is watched by a
%% monitor by name, which is local and says noproc at once.
-spec send_at(server(), distribute_pool_proto:request()) -> {ok, pending()} | {error, unreachable()}.
send_at({_Service, Node} = Server, Request) when Node =:= node() ->
    try erlang:monitor(process, Server, [{alias, demonitor}]) of
        Mref ->
            Tag = distribute_pool_proto:alias_tag(Mref),
            _ = (catch erlang:send(Server, distribute_pool_proto:call_msg(self(), Tag, Request))),
            {ok, {local, Server, Mref, Tag}}
    catch
        error:badarg -> unreachable(Server, badarg)
    end;
send_at({_Service, Node} = Server, Request) ->
    %% monitor_node/2 raises notalive when the local node is not alive (no way to reach any C-node), and
    %% badarg for a node that is no atom.
    try erlang:monitor_node(Node, true) of
        true ->
            {Alias, Tag} = send_aliased(Server, Request),
            {ok, {remote, Server, Alias, Tag}}
    catch
        error:notalive -> unreachable(Server, notalive);
        error:_ -> unreachable(Server, badarg)
    end.

%% Sends Request to the address To of a C-node on another node, answered to a new alias. A plain send: it
%% connects to the C-node's node if not yet connected (the watch on that node did already).
-spec send_aliased(server(), distribute_pool_proto:request()) -> {reference(), distribute_pool_proto:tag()}.
send_aliased(To, Request) ->
    Alias = erlang:alias(),
    Tag = distribute_pool_proto:alias_tag(Alias),
    _ = (catch erlang:send(To, distribute_pool_proto:call_msg(self(), Tag, Request))),
    {Alias, Tag}.

%% Waits for the answer while a watch on Node (monitor_node(Node, true)) is on: this call's own, off again when
%% this returns, or one it shares with a call it follows (call_behind/4), left on.
-spec await_remote(server(), node(), term(), wait(), own | shared) ->
    {reply, term()} | {timeout, term()} | {error, unreachable()}.
await_remote(Server, Node, Tag, Wait, Watch) ->
    First = case Wait of
                infinity -> ?NAME_CHECK_MS;
                _ -> min(Wait, ?NAME_CHECK_MS)
            end,
    Deadline = deadline(Wait),
    receive
        {Tag, Reply} ->
            unwatch(Node, Watch),
            {reply, Reply};
        {nodedown, Node} ->
            nodedown(Server, Node, Tag, Deadline, Watch)
    after First ->
        case Wait of
            First ->
                unwatch(Node, Watch),
                {timeout, Tag};
            _ ->
                await_named(Server, Node, Tag, Deadline, Watch)
        end
    end.

%% The answer is slow: is the service there at all? noproc (a live node without it) is connection_failed too.
%% Watch: how Node is watched meanwhile (own: this call's watch, off when this returns; shared: another
%% call's, left on; none).
-spec await_named(server(), node(), term(), deadline(), own | shared | none) ->
    {reply, term()} | {timeout, term()} | {error, unreachable()}.
await_named(Server, Node, Tag, Deadline, Watch) ->
    Mref = erlang:monitor(process, Server),
    receive
        {Tag, Reply} ->
            erlang:demonitor(Mref, [flush]),
            unwatch(Node, Watch),
            {reply, Reply};
        {nodedown, Down} when Down =:= Node, Watch =/= none ->
            erlang:demonitor(Mref, [flush]),
            nodedown(Server, Node, Tag, Deadline, Watch);
        {'DOWN', Mref, _, _, noconnection} when Watch =:= own ->
            %% The connection went: the node monitor fires too, and its message must not outlive the call.
            %% (A shared watch's message is the other call's.)
            receive {nodedown, Node} -> ok after ?NODEDOWN_WAIT_MS -> ok end,
            unreachable(Server, noconnection);
        {'DOWN', Mref, _, _, NoProcOrNoConnection} ->
            unwatch(Node, Watch),
            unreachable(Server, NoProcOrNoConnection)
    after remaining(Deadline) ->
        erlang:demonitor(Mref, [flush]),
        unwatch(Node, Watch),
        {timeout, Tag}
    end.

%% A {nodedown, Node} came while the watch on Node was on. The watch's, or one the caller had not read yet
%% (from a monitor_node/2 or net_kernel:monitor_nodes/1 of its own: they look the same). While Node is still
%% connected it cannot be the watch's: it is put back, the watch goes when it is this call's own (a shared
%% one stays, for the call that owns it), and the call waits on with a monitor on the service by name, whose
%% messages are its own. Once Node is gone, a shared watch's message is put back too, for the call that owns
%% the watch.
-spec nodedown(server(), node(), term(), deadline(), own | shared) ->
    {reply, term()} | {timeout, term()} | {error, unreachable()}.
nodedown(Server, Node, Tag, Deadline, Watch) ->
    case lists:member(Node, erlang:nodes(connected)) of
        false when Watch =:= shared ->
            self() ! {nodedown, Node},
            unreachable(Server, nodedown);
        false ->
            unreachable(Server, nodedown);
        true ->
            unwatch(Node, Watch),
            self() ! {nodedown, Node},
            await_named(Server, Node, Tag, Deadline, none)
    end.

-spec unwatch(node(), own | shared | none) -> ok.
unwatch(Node, own) ->
    true = erlang:monitor_node(Node, false),
    ok;
unwatch(_Node, _SharedOrNone) ->
    ok.

%% A point in erlang:monotonic_time(millisecond), or never.
-type deadline() :: integer() | infinity.

%% The deadline of a wait that starts now (the library's waits on the C-node count down from these).
-spec deadline(wait()) -> deadline().
deadline(infinity) -> infinity;
deadline(Wait) -> erlang:monotonic_time(millisecond) + Wait.

%% What is left of a wait until Deadline (0 once it has passed).
-spec remaining(deadline()) -> wait().
remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% A cast never waits: when the C-node's lanes are not known yet (it could not be asked), it goes to its own
%% name, where this process's earlier messages went too.
-spec cast(server(), distribute_pool_proto:cast()) -> ok.
cast(Server, Cast) ->
    cast_on_lane(lane(Server, 0), Cast).

%% A cast to one given lane of a C-node ({Service, LaneNode}), as call_on_lane/3.
-spec cast_on_lane(server(), distribute_pool_proto:cast()) -> ok.
cast_on_lane(Lane, Cast) ->
    _ = (catch erlang:send(Lane, distribute_pool_proto:cast_msg(Cast))),
    ok.

%% The address this process uses for the C-node Server: {Service, LaneNode}, the same on every call (Server
%% itself when the C-node has one lane, is an older one without lanes, or could not be asked yet).
-spec lane(server()) -> server().
lane(Server) ->
    lane(Server, ?DPOOL_PROMPT_WAIT_MS).

%% Wait bounds the `lanes' request when the C-node's lanes are not known yet (0: do not ask).
-spec lane(server(), wait()) -> server().
lane({Service, Node} = Server, Wait) when is_atom(Service), is_atom(Node) ->
    case lanes(Server, Wait) of
        {Nodes, Counter} ->
            Ticket = case get(?TICKET_KEY(Server)) of
                         undefined ->
                             New = atomics:add_get(Counter, 1, 1) - 1,
                             put(?TICKET_KEY(Server), New),
                             New;
                         Known ->
                             Known
                     end,
            {Service, element(Ticket rem tuple_size(Nodes) + 1, Nodes)};
        single ->
            Server
    end;
lane(Server, _Wait) ->
    Server.

%% Forgets the lanes known of Server: a C-node started again under its name may have other lanes (the
%% application calls this when it starts its C-node). Each process keeps its ticket, which picks a lane of
%% whatever lanes are learnt next.
-spec forget_lanes(server()) -> ok.
forget_lanes(Server) ->
    _ = persistent_term:erase(?LANES_KEY(Server)),
    ok.

%% Every node name of the C-node Server, lane 0 (its own name) first.
-spec lane_nodes(server()) -> [node()].
lane_nodes({_, Node} = Server) ->
    nodes_of(Node, lanes(Server, ?DPOOL_PROMPT_WAIT_MS)).

-spec nodes_of(node(), {tuple(), atomics:atomics_ref()} | single) -> [node()].
nodes_of(_Node, {Nodes, _Counter}) -> tuple_to_list(Nodes);
nodes_of(Node, single) -> [Node].

%% The node names of every C-node whose lanes are known here (distribute_pool_lane_writes sets up their
%% connections).
-spec known_cnode_nodes() -> [node()].
known_cnode_nodes() ->
    lists:append([nodes_of(Node, Lanes) || {?LANES_KEY({_, Node}), Lanes} <- persistent_term:get()]).

-spec lanes(server(), wait()) -> {tuple(), atomics:atomics_ref()} | single.
lanes(Server, Wait) ->
    case persistent_term:get(?LANES_KEY(Server), undefined) of
        undefined when Wait =:= 0 -> single;
        undefined -> learn_lanes(Server, min(Wait, ?DPOOL_PROMPT_WAIT_MS));
        Known -> Known
    end.

%% Asks the C-node (its own name) for its lanes, once: the answer is kept, since the names depend only on
%% the C-node's name and --lanes, which a restarted embedded C-node keeps. A C-node that does not know the
%% request (an older one) or gives an answer that is not its lane names is used under its own name only. A
%% C-node that cannot be asked now is used under its own name for this call, and asked again next time.
-spec learn_lanes(server(), wait()) -> {tuple(), atomics:atomics_ref()} | single.
learn_lanes({_Service, Node} = Server, Wait) ->
    case call_at(Server, distribute_pool_proto:lanes(), Wait) of
        {reply, Reply} ->
            case distribute_pool_proto:lanes_reply(Node, Reply) of
                {ok, [_, _ | _] = Names} ->
                    keep(Server, {list_to_tuple(lane_atoms(Node, Names)), atomics:new(1, [])});
                _ -> keep(Server, single)
            end;
        _Unreachable ->
            single
    end.

%% Stores the lanes of Server unless another process did meanwhile (its counter is then the one to share).
-spec keep(server(), {tuple(), atomics:atomics_ref()} | single) -> {tuple(), atomics:atomics_ref()} | single.
keep({_, Node} = Server, Lanes) ->
    case persistent_term:get(?LANES_KEY(Server), undefined) of
        undefined ->
            persistent_term:put(?LANES_KEY(Server), Lanes),
            ok = distribute_pool_lane_writes:cnode_nodes(nodes_of(Node, Lanes)),
            Lanes;
        Known ->
            Known
    end.

%% The lane names as atoms: distribute_pool_proto:lanes_reply/2 gave them only when they are the names the
%% C-node's main name implies (<alive>_lane<k>@<host>, k < 16), so they come from our own main node name and
%% a bounded k, never from the bytes of the answer: at most 15 atoms per C-node are ever made.
-spec lane_atoms(node(), [string(), ...]) -> [node(), ...].
lane_atoms(Main, [_Main | Lanes]) ->
    [Main | [list_to_atom(Name) || Name <- Lanes]].

-spec clamp(wait()) -> wait().
clamp(infinity) -> infinity;
clamp(Wait) when Wait > ?DPOOL_MAX_WAIT_MS -> ?DPOOL_MAX_WAIT_MS;
clamp(Wait) -> Wait.
