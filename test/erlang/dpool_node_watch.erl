%% Loaded onto a target over erpc (dpool_ct_helper:do_load_fixture/2): records, in order, every hidden node that
%% comes and goes, so a case can tell in what order the target saw pooled connections open and close.
-module(dpool_node_watch).

-export([start/0]).
-export([events/0]).
-export([stop/0]).

-type event() :: {up | down, node()}.
-export_type([event/0]).

-spec start() -> ok.
start() ->
    Self = self(),
    Pid = spawn(fun() ->
                        true = register(?MODULE, self()),
                        ok = net_kernel:monitor_nodes(true, [{node_type, hidden}]),
                        Self ! {?MODULE, started},
                        loop([])
                end),
    receive {?MODULE, started} -> ok after 5000 -> exit(Pid, kill), error(not_started) end.

-spec events() -> [event()].
events() ->
    Ref = make_ref(),
    ?MODULE ! {events, self(), Ref},
    receive {Ref, Events} -> Events after 5000 -> error(no_answer) end.

-spec stop() -> ok.
stop() ->
    case whereis(?MODULE) of
        undefined -> ok;
        Pid -> exit(Pid, kill), ok
    end.

-spec loop([event()]) -> no_return().
loop(Events) ->
    receive
        {nodeup, Node, _Info} -> loop([{up, Node} | Events]);
        {nodedown, Node, _Info} -> loop([{down, Node} | Events]);
        {events, From, Ref} -> From ! {Ref, lists:reverse(Events)}, loop(Events);
        _ -> loop(Events)
    end.
