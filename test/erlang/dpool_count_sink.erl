%% A sink loaded onto a target over erpc (code:load_binary) by the measuring cases: it counts what it
%% receives and keeps nothing, so a run of many messages costs the target no memory.
-module(dpool_count_sink).

-export([start/1]).
-export([count/1]).
-export([loop/1]).

%% Registers a counting process as Name on this node.
-spec start(atom()) -> pid().
start(Name) ->
    Pid = spawn(?MODULE, loop, [0]),
    true = register(Name, Pid),
    Pid.

%% How many messages the sink Name has received so far.
-spec count(atom()) -> non_neg_integer().
count(Name) ->
    Ref = make_ref(),
    Name ! {'$dpool_count', self(), Ref},
    receive {Ref, N} -> N after 5000 -> erlang:error(sink_not_answering) end.

-spec loop(non_neg_integer()) -> no_return().
loop(N) ->
    receive
        {'$dpool_count', From, Ref} ->
            From ! {Ref, N},
            loop(N);
        _ ->
            loop(N + 1)
    end.
