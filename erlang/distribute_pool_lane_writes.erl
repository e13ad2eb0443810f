%% Sets the socket options of this node's distribution connections to C-nodes (each lane, and a C-node's own
%% name): `{delay_send, true}', unless the application env `delay_send_to_cnode' is false, and `sndbuf' when
%% the env `cnode_sndbuf' gives one.
%%
%% delay_send: what a process sends to a C-node in a row leaves in one write (the driver queues it and writes
%% once the socket is polled, by then usually behind the process's later messages too): with_connection's
%% checkin, the next checkout and that lease's first operation are three messages and were three writes, each
%% costing the sender the loopback TCP path (README, "Lanes"; docs/BENCHMARKS.md, "Lane writes").
%%
%% sndbuf: a write of a big message to a C-node takes at most about that much at once, so the scheduler that
%% writes (on loopback it runs the receiver's TCP path too) is back sooner for this node's other work; the
%% price is more writes per byte and less bulk throughput (docs/BENCHMARKS.md, "Send buffers of the callers'
%% lanes").
%%
%% These connections carry only the library's traffic, so no other connection of the node is touched. A
%% connection over TLS distribution (its controller is a process, not a port) is left as it is. Options are
%% only ever set: a connection keeps them when the env turns them off (a socket given a sndbuf is no longer
%% sized by the kernel), until it closes; connections made after that get none.
%%
%% The C-node names are those the library has learnt (distribute_pool_client tells them when it learns a
%% C-node's lanes); a connection is set up when it comes up (net_kernel's nodeup) or, when it is up already,
%% as its name is learnt.
-module(distribute_pool_lane_writes).
-behaviour(gen_server).

-export([start_link/0]).
-export([cnode_nodes/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-record(state, {nodes = #{} :: #{node() => true}, options :: [gen_tcp:option(), ...]}).

%% Runs when the application env asks for an option (read at each start, so that a restart of this child
%% applies a change; a value the application's start would have refused sets nothing).
-spec start_link() -> {ok, pid()} | ignore | {error, term()}.
start_link() ->
    case options() of
        [] -> ignore;
        Options -> gen_server:start_link({local, ?MODULE}, ?MODULE, Options, [])
    end.

%% The socket options the application env asks for.
-spec options() -> [gen_tcp:option()].
options() ->
    [{delay_send, true} || distribute_pool_env:value(delay_send_to_cnode) =:= true]
        ++ [{sndbuf, Bytes} || Bytes <- [distribute_pool_env:value(cnode_sndbuf)],
                               distribute_pool_env:is_sndbuf_bytes(Bytes)].

%% Nodes are names of a C-node (its lanes): their connections from this node get the options, now or when
%% they come up. Nothing happens when this server does not run (the env asks for no option, or the
%% application is not started).
-spec cnode_nodes([node()]) -> ok.
cnode_nodes(Nodes) ->
    gen_server:cast(?MODULE, {cnode_nodes, Nodes}).

-spec init([gen_tcp:option(), ...]) -> {ok, #state{}}.
init(Options) ->
    ok = net_kernel:monitor_nodes(true, [{node_type, all}]),
    Known = distribute_pool_client:known_cnode_nodes(),
    ok = set_up(Known, Options),
    {ok, #state{nodes = maps:from_keys(Known, true), options = Options}}.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, {error, unknown_call}, #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_call}, State}.

-spec handle_cast({cnode_nodes, [node()]} | term(), #state{}) -> {noreply, #state{}}.
handle_cast({cnode_nodes, Nodes}, #state{nodes = Known, options = Options} = State) ->
    New = [N || N <- Nodes, is_atom(N), not is_map_key(N, Known)],
    ok = set_up(New, Options),
    {noreply, State#state{nodes = maps:merge(Known, maps:from_keys(New, true))}};
handle_cast(_Other, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({nodeup, Node, _Info}, #state{nodes = Known, options = Options} = State)
  when is_map_key(Node, Known) ->
    ok = set_up([Node], Options),
    {noreply, State};
handle_info(_Other, State) ->
    {noreply, State}.

%% Options on the connection to each of Nodes that is up and has a port as its controller.
-spec set_up([node()], [gen_tcp:option(), ...]) -> ok.
set_up([], _Options) ->
    ok;
set_up(Nodes, Options) ->
    Wanted = maps:from_keys(Nodes, true),
    _ = [case inet:setopts(Port, Options) of
             ok ->
                 ok;
             {error, Reason} ->
                 %% Most often the connection closed meanwhile; it is set up again when it comes back.
                 logger:notice("distribute_pool: socket options ~0tp not set on the connection to ~0tp: ~0tp",
                               [Options, Node, Reason], #{domain => [distribute_pool]})
         end
         || {Node, Port} <- erlang:system_info(dist_ctrl), is_map_key(Node, Wanted), is_port(Port)],
    ok.
