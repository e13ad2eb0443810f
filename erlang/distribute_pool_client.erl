%% The one way this library talks to a C-node: gen_server call/cast envelopes (docs/PROTOCOL.md), with the
%% difference from gen:call that every failure is returned, never raised, so no caller crashes because a
%% C-node is unreachable, died, or is slow.
-module(distribute_pool_client).

-export([call/3]).
-export([call_tagged/3]).
-export([cast/2]).

-export_type([server/0]).
-export_type([wait/0]).

-type server() :: {Service :: atom(), CNode :: node()}.
-type wait() :: non_neg_integer() | infinity.

%% The largest timeout a receive accepts.
-define(MAX_WAIT, 4294967295).

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
-spec call_tagged(server(), term(), wait()) ->
    {reply, term()} | {timeout, reference()} | {error, connection_failed}.
call_tagged(Server, Request, Wait) ->
    %% monitor/2 raises badarg when the local node is not alive, so there is no way to reach any C-node.
    try erlang:monitor(process, Server) of
        Mref ->
            %% A plain send: it connects to the C-node's node if not yet connected. If it cannot, the
            %% monitor fires with noconnection.
            _ = (catch erlang:send(Server, {'$gen_call', {self(), Mref}, Request})),
            receive
                {Mref, Reply} ->
                    erlang:demonitor(Mref, [flush]),
                    {reply, Reply};
                {'DOWN', Mref, _, _, _Reason} ->
                    %% noconnection (C-node unreachable or gone) or noproc (no such service there).
                    {error, connection_failed}
            after clamp(Wait) ->
                erlang:demonitor(Mref, [flush]),
                {timeout, Mref}
            end
    catch
        error:badarg -> {error, connection_failed}
    end.

-spec cast(server(), term()) -> ok.
cast(Server, Request) ->
    _ = (catch erlang:send(Server, {'$gen_cast', Request})),
    ok.

-spec clamp(wait()) -> wait().
clamp(infinity) -> infinity;
clamp(Wait) when Wait > ?MAX_WAIT -> ?MAX_WAIT;
clamp(Wait) -> Wait.
