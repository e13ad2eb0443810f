%% A gen_server loaded onto a target over erpc (code:load_binary) by the cases that need one.
%% whoami answers the node of the caller's pid: for a request made through a pool, the pooled connection.
%% {sleep_echo, Ms, Term} answers Term after Ms milliseconds; {late_echo, Ms, Term} too, and then sends
%% {fixture, Name, {answered, Term}} to the process given at start (from the process that answered, so that the
%% answer reaches the caller's process first); never answers never.
%% Every plain message it receives is forwarded to the process given at start, tagged with its own name.
-module(dpool_fixture_server).
-behaviour(gen_server).

-export([start/2]).
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-spec start(atom(), pid()) -> {ok, pid()}.
start(Name, Forward) ->
    gen_server:start({local, Name}, ?MODULE, {Name, Forward}, []).

-spec init({atom(), pid()}) -> {ok, {atom(), pid()}}.
init(State) ->
    {ok, State}.

-spec handle_call(term(), gen_server:from(), State) -> {reply, term(), State} | {noreply, State}.
handle_call(whoami, {Pid, _Tag}, State) ->
    {reply, node(Pid), State};
handle_call({echo, Term}, _From, State) ->
    {reply, Term, State};
handle_call({sleep_echo, Ms, Term}, From, State) ->
    _ = spawn(fun() -> timer:sleep(Ms), gen_server:reply(From, Term) end),
    {noreply, State};
handle_call({late_echo, Ms, Term}, From, {Name, Forward} = State) ->
    _ = spawn(fun() -> timer:sleep(Ms), gen_server:reply(From, Term), Forward ! {fixture, Name, {answered, Term}} end),
    {noreply, State};
handle_call(never, _From, State) ->
    {noreply, State};
handle_call(crash, _From, _State) ->
    erlang:error(fixture_crash);
handle_call(_Other, _From, State) ->
    %% As a C-node answers what it does not know (the client's `lanes` question among them).
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), State) -> {noreply, State}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), State) -> {noreply, State} when State :: {atom(), pid()}.
handle_info(Msg, {Name, Forward} = State) ->
    Forward ! {fixture, Name, Msg},
    {noreply, State}.
