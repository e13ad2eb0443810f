%% A sink loaded onto a target over erpc (code:load_binary) by distribute_pool_lanes_SUITE. It keeps, in
%% arrival order, every message it receives, except that a big one ({big, Tag, Pieces}) is kept as
%% {big, Tag, Bytes} without its payload; and it tells Watcher ({sink_big, Tag}) as soon as a big one arrived.
-module(dpool_order_sink).

-export([start/2]).
-export([dump/1]).
-export([loop/2]).

%% Registers the sink as Name on this node.
-spec start(atom(), pid()) -> pid().
start(Name, Watcher) ->
    Pid = spawn(?MODULE, loop, [Watcher, []]),
    true = register(Name, Pid),
    Pid.

%% What the sink Name received so far, oldest first.
-spec dump(atom()) -> [term()].
dump(Name) ->
    Ref = make_ref(),
    Name ! {'$dpool_dump', self(), Ref},
    receive {Ref, Received} -> Received after 30000 -> erlang:error(sink_not_answering) end.

-spec loop(pid(), [term()]) -> no_return().
loop(Watcher, Acc) ->
    receive
        {'$dpool_dump', From, Ref} ->
            From ! {Ref, lists:reverse(Acc)},
            loop(Watcher, Acc);
        {big, Tag, Pieces} ->
            Watcher ! {sink_big, Tag},
            loop(Watcher, [{big, Tag, iolist_size(Pieces)} | Acc]);
        Other ->
            loop(Watcher, [Other | Acc])
    end.
