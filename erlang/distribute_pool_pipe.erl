%% The process behind send_async/3: one per sending process and lease, on the sender's node. The sender hands
%% it messages with a local send, which costs no system call; the pipe takes whatever has piled up meanwhile
%% and hands it to the C-node as one {send_many, ...} call, so a distribution message (and a write) carries
%% many messages instead of one. A lone message goes out at once: the pipe never waits for more.
%%
%% Order: the pipe forwards in the order it receives, and only one process (its owner) sends to it, so the
%% owner's messages keep their order. Back-pressure and errors: the owner calls sync/1 at the end of each of
%% its windows (distribute_pool:send_async/3); the answer comes once everything before it was queued by the
%% C-node and the connection was under its busy limit, and is the first error of a batch since the previous
%% sync, or ok. The pipe ends with its owner, or when told to (stop/1).
-module(distribute_pool_pipe).

-include("distribute_pool_internal.hrl").

-export([start/4]).
-export([send/3]).
-export([sync/1]).
-export([stop/1]).
-export([init/5]).

%% At most this many messages go in one send_many call (the owner's window keeps batches smaller anyway).
-define(MAX_BATCH, 1024).

%% A pipe for the calling process, to the lease ConnId/LeaseId of pool PoolId on the C-node Server.
-spec start(distribute_pool_client:server(), non_neg_integer(), non_neg_integer(), non_neg_integer()) -> pid().
start(Server, PoolId, ConnId, LeaseId) ->
    spawn(?MODULE, init, [self(), Server, PoolId, ConnId, LeaseId]).

-spec send(pid(), term(), term()) -> ok.
send(Pipe, Dest, Msg) ->
    Pipe ! {send, Dest, Msg},
    ok.

%% Waits until everything sent to the pipe before is queued on the connection (or failed): ok, or the first
%% error since the previous sync. A pipe that is gone gives {error, {connection_failed, {connection_lost, _}}}.
-spec sync(pid()) -> ok | {error, term()}.
sync(Pipe) ->
    Ref = erlang:monitor(process, Pipe),
    Pipe ! {sync, self(), Ref},
    receive
        {Ref, Result} ->
            erlang:demonitor(Ref, [flush]),
            Result;
        {'DOWN', Ref, process, Pipe, Reason} ->
            Text = io_lib:format("the send_async pipe of this lease exited: ~0tp", [Reason]),
            {error, {connection_failed, {connection_lost, unicode:characters_to_binary(Text)}}}
    end.

-spec stop(pid()) -> ok.
stop(Pipe) ->
    Pipe ! stop,
    ok.

%% The pipe process.

-record(pipe, {owner :: reference(), server :: distribute_pool_client:server(), pool :: non_neg_integer(),
               conn :: non_neg_integer(), lease :: non_neg_integer()}).

-spec init(pid(), distribute_pool_client:server(), non_neg_integer(), non_neg_integer(), non_neg_integer()) -> ok.
init(Owner, Server, PoolId, ConnId, LeaseId) ->
    loop(#pipe{owner = erlang:monitor(process, Owner), server = Server, pool = PoolId, conn = ConnId,
               lease = LeaseId}, ok).

-spec loop(#pipe{}, ok | {error, term()}) -> ok.
loop(#pipe{owner = Owner} = P, Error) ->
    receive
        {send, Dest, Msg} ->
            batch(P, [{Dest, Msg}], 1, Error);
        {sync, From, Tag} ->
            From ! {Tag, Error},
            loop(P, ok);
        stop ->
            ok;
        {'DOWN', Owner, process, _, _} ->
            ok
    end.

%% Takes the messages already waiting, up to a sync (which ends the batch and is answered after it).
-spec batch(#pipe{}, [{term(), term()}], pos_integer(), ok | {error, term()}) -> ok.
batch(P, Acc, N, Error) when N >= ?MAX_BATCH ->
    flush(P, Acc, none, Error);
batch(P, Acc, N, Error) ->
    receive
        {send, Dest, Msg} ->
            batch(P, [{Dest, Msg} | Acc], N + 1, Error);
        {sync, From, Tag} ->
            flush(P, Acc, {From, Tag}, Error)
    after 0 ->
        flush(P, Acc, none, Error)
    end.

-spec flush(#pipe{}, [{term(), term()}], none | {pid(), reference()}, ok | {error, term()}) -> ok.
flush(#pipe{server = Server, pool = PoolId, conn = ConnId, lease = LeaseId} = P, Acc, Sync, Error) ->
    Request = distribute_pool_proto:send_many(PoolId, ConnId, LeaseId, lists:reverse(Acc)),
    Result = distribute_pool_proto:send_many_reply(distribute_pool_client:call(Server, Request, ?DPOOL_SEND_WAIT_MS)),
    Error1 = case Error of
                 {error, _} -> Error;
                 ok -> Result
             end,
    case Sync of
        none ->
            loop(P, Error1);
        {From, Tag} ->
            From ! {Tag, Error1},
            loop(P, ok)
    end.
