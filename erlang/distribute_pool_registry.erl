%% Remembers every pool created on the embedded C-node through distribute_pool:new/2, so that a C-node
%% started to replace one that died gets them back under their old ids (the `restore' call of
%% docs/PROTOCOL.md) and the handles callers hold keep working.
%%
%% `new' and `destroy' for the embedded C-node go through here: a worker process makes the C-node call and
%% reports to this server, which records (or forgets) the pool before it answers the caller. So a caller
%% that dies half-way cannot leave a pool unrecorded, and this server never blocks on the C-node except for
%% the restore itself. It never calls distribute_pool_cnode, which calls it (restore/1) from its init.
%%
%% The records live in an ETS table that the application's supervisor owns (create_table/0, called from its
%% init), so a crash of this server loses nothing: its successor reads them back, with the C-node it serves
%% and the highest id seen, and new/2 keeps working.
%%
%% Pools created with an explicit `cnode' option, or on an external C-node, are not recorded.
-module(distribute_pool_registry).
-behaviour(gen_server).

-export([start_link/0]).
-export([create_table/0]).
-export([new/3]).
-export([destroy/4]).
-export([restore/1]).
-export([recorded/0]).
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-export_type([entry/0]).

%% {PoolId, Target, Options} as sent to the C-node's `new' (and `restore').
-type entry() :: {non_neg_integer(), atom() | binary(), map()}.

%% What is recorded lives in the table, not here, so that a successor has all of it.
-record(state, {
    %% Workers making a C-node call for a caller.
    workers = #{} :: #{pid() => gen_server:from()}
}).

%% What a worker does for a caller: the C-node's `new' or `destroy' (job_request/1), recorded by its answer.
-type job() :: {new, atom() | binary(), map()} | {destroy, non_neg_integer(), non_neg_integer()}.

%% Rows: {server, Server} (the embedded C-node, known once it asked for its first restore), {max_id, Id}
%% (the highest pool id ever seen, destroyed pools included: fresh ids must stay above it), and
%% {{pool, Id}, Target, Options} for each recorded pool.
-define(TABLE, distribute_pool_registry).

%% How long the C-node gets to answer a restore (it answers at once: pools connect in the background).
-define(RESTORE_WAIT_MS, 10000).
%% Time the registry takes beyond the C-node's own bound before a caller stops waiting.
-define(MARGIN_MS, 5000).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% Creates the table the records are kept in, owned by the calling process (the supervisor, which outlives
%% this server). Public because its owner is not the process that writes it.
-spec create_table() -> ok.
create_table() ->
    distribute_pool_sup:create_table(?TABLE, [set]).

%% The `new' call of docs/PROTOCOL.md on the embedded C-node; the pool is recorded before {ok, Id} returns.
%% Its owner is none unless Options say otherwise: the embedded C-node is this application's child, so its
%% pools already end with this node, and are brought back by this registry after a C-node restart; a caller
%% node's grace (README, "Pool owners") would only add a way to lose them, when this node's connections to
%% its own C-node drop for a while.
-spec new(atom() | binary(), map(), non_neg_integer()) ->
    {ok, non_neg_integer()} | {error, term()}.
new(Target, Options, Wait) ->
    safe_call({new, Target, maps:merge(#{owner => none}, Options), Wait}, Wait + ?MARGIN_MS).

%% The `destroy' call; when Server is the embedded C-node the pool is forgotten once the C-node no longer
%% knows it. `direct' when Server is another C-node: the caller calls it itself.
-spec destroy(distribute_pool_client:server(), non_neg_integer(), non_neg_integer(), non_neg_integer()) ->
    ok | direct | {error, term()}.
destroy(Server, PoolId, DrainMs, Wait) ->
    safe_call({destroy, Server, PoolId, DrainMs, Wait}, Wait + ?MARGIN_MS).

%% Called by distribute_pool_cnode once a new embedded C-node (started with --await-restore) is ready:
%% re-creates every recorded pool on it. Pools the C-node refuses are logged and forgotten; the call returns
%% how many came back.
-spec restore(distribute_pool_client:server()) -> {ok, non_neg_integer()} | {error, term()}.
restore(Server) ->
    %% Each refused pool costs one more round trip; the bound is generous, the C-node answers at once.
    safe_call({restore, Server}, 4 * ?RESTORE_WAIT_MS).

%% The recorded pools, in id order.
-spec recorded() -> [entry()].
recorded() ->
    case safe_call(recorded, 5000) of
        Entries when is_list(Entries) -> Entries;
        {error, _} -> []
    end.

-spec safe_call(term(), non_neg_integer()) -> term().
safe_call(Request, Timeout) ->
    try
        gen_server:call(?MODULE, Request, Timeout)
    catch
        exit:Reason ->
            distribute_pool_client:not_running(io_lib:format("the pool registry did not answer: ~0tp", [Reason]))
    end.

-spec init([]) -> {ok, #state{}}.
init([]) ->
    process_flag(trap_exit, true),
    case ets:whereis(?TABLE) of
        undefined ->
            %% Started without the application's supervisor: the records then live as long as this server.
            create_table();
        _ ->
            case length(entries()) of
                0 -> ok;
                N -> logger:info("distribute_pool: pool registry restarted with ~b recorded pool(s)", [N])
            end
    end,
    {ok, #state{}}.

-spec lookup(server | max_id) -> term().
lookup(Key) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Value}] -> Value;
        [] -> undefined
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}} | {noreply, #state{}}.
handle_call({new, Target, Options, Wait}, From, State) ->
    case lookup(server) of
        undefined -> {reply, distribute_pool_client:not_running("the embedded C-node has not started yet"), State};
        Server -> {noreply, start_worker(From, {new, Target, Options}, Server, Wait, State)}
    end;
handle_call({destroy, Server, PoolId, DrainMs, Wait}, From, State) ->
    case lookup(server) of
        Server ->
            %% From now on the pool is on its way out: a C-node that dies meanwhile does not get it back (its
            %% name may already be a newer pool's).
            true = ets:insert(?TABLE, {{destroying, PoolId}}),
            {noreply, start_worker(From, {destroy, PoolId, DrainMs}, Server, Wait, State)};
        _ -> {reply, direct, State}
    end;
handle_call({restore, Server}, _From, State) ->
    true = ets:insert(?TABLE, {server, Server}),
    {reply, do_restore(Server), State};
handle_call(recorded, _From, State) ->
    {reply, entries(), State};
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Request, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({worker_done, Worker, Job, Reply}, #state{workers = Workers} = State) ->
    case maps:take(Worker, Workers) of
        {From, Rest} ->
            gen_server:reply(From, Reply),
            record(Job, Reply),
            {noreply, State#state{workers = Rest}};
        error ->
            {noreply, State}
    end;
handle_info({'EXIT', Worker, Reason}, #state{workers = Workers} = State) when Reason =/= normal ->
    %% A worker only makes a call that returns its errors; this is not expected, but answer the caller.
    case maps:take(Worker, Workers) of
        {From, Rest} ->
            Text = io_lib:format("the registry's worker exited: ~0tp", [Reason]),
            gen_server:reply(From, distribute_pool_client:not_running(Text)),
            {noreply, State#state{workers = Rest}};
        error ->
            {noreply, State}
    end;
handle_info(_Other, State) ->
    {noreply, State}.

-spec start_worker(gen_server:from(), job(), distribute_pool_client:server(), non_neg_integer(), #state{}) ->
    #state{}.
start_worker(From, Job, Server, Wait, #state{workers = Workers} = State) ->
    Registry = self(),
    Worker = spawn_link(fun() ->
                                Reply = distribute_pool_client:call(Server, job_request(Job), Wait),
                                Registry ! {worker_done, self(), Job, Reply}
                        end),
    State#state{workers = Workers#{Worker => From}}.

-spec job_request(job()) -> distribute_pool_proto:request().
job_request({new, Target, Options}) -> distribute_pool_proto:new(Target, Options);
job_request({destroy, PoolId, DrainMs}) -> distribute_pool_proto:destroy(PoolId, DrainMs).

-spec record(job(), term()) -> ok.
record({new, Target, Options}, Reply) ->
    case distribute_pool_proto:new_reply(Reply) of
        {ok, Id} ->
            true = ets:insert(?TABLE, {{pool, Id}, Target, Options}),
            seen(Id);
        _ ->
            ok
    end;
record({destroy, Id, _DrainMs}, Reply) when Reply =:= ok; Reply =:= {error, invalid_pool} ->
    true = ets:delete(?TABLE, {destroying, Id}),
    forget(Id);
record({destroy, _Id, _DrainMs}, _Failed) ->
    ok. % still marked: asked to go, it is not brought back by a restore (a later destroy clears the mark)

-spec forget(non_neg_integer()) -> ok.
forget(Id) ->
    true = ets:delete(?TABLE, {pool, Id}),
    ok.

-spec seen(non_neg_integer()) -> ok.
seen(Id) ->
    New = case lookup(max_id) of
              undefined -> Id;
              Max -> max(Id, Max)
          end,
    true = ets:insert(?TABLE, {max_id, New}),
    ok.

%% The recorded pools, in id order.
-spec entries() -> [entry()].
entries() ->
    lists:keysort(1, [{Id, Target, Options} || {{pool, Id}, Target, Options} <- ets:tab2list(?TABLE)]).

%% Sends every recorded pool; a pool the C-node refuses ({error, {Why, PoolId}}) is logged, forgotten, and
%% the others are sent again. Ends with a restore that succeeded (an empty one at worst), so the C-node
%% leaves its await-restore state.
-spec do_restore(distribute_pool_client:server()) -> {ok, non_neg_integer()} | {error, term()}.
do_restore(Server) ->
    Next = case lookup(max_id) of
               undefined -> 0;
               Max -> Max + 1
           end,
    %% Pools whose destroy had begun stay gone.
    {Destroying, Entries} = lists:partition(fun({Id, _, _}) -> ets:member(?TABLE, {destroying, Id}) end, entries()),
    [ok = forget(Id) || {Id, _, _} <- Destroying],
    [true = ets:delete(?TABLE, {destroying, Id}) || {Id, _, _} <- Destroying],
    Reply = distribute_pool_client:call(Server, distribute_pool_proto:restore(Entries, Next), ?RESTORE_WAIT_MS),
    case distribute_pool_proto:restore_reply(Reply) of
        {ok, N} ->
            case N of
                0 -> ok;
                _ -> logger:info("distribute_pool: restored ~b pool(s) on ~p", [N, Server])
            end,
            {ok, N};
        {refused, Why, Id} ->
            case lists:keyfind(Id, 1, Entries) of
                {Id, Target, Options} ->
                    %% The options without a pool's own cookie or TLS password.
                    logger:error("distribute_pool: pool ~b (target ~p, options ~p) cannot be restored: ~p; "
                                 "its handles now give {error, invalid_pool}",
                                 [Id, Target, distribute_pool_config:loggable(Options), Why]),
                    ok = forget(Id),
                    do_restore(Server);
                false ->
                    %% Not one we sent: do not loop.
                    logger:error("distribute_pool: restore refused: ~p", [{Why, Id}]),
                    {error, {Why, Id}}
            end;
        {error, {bad_reply, Other}} = Error ->
            logger:error("distribute_pool: unexpected answer to restore: ~p", [Other]),
            Error;
        {error, Reason} = Error ->
            %% Most likely the new C-node died as well: the supervisor starts another, which asks again.
            logger:error("distribute_pool: restoring ~b pool(s) on ~p failed: ~p", [length(Entries), Server, Reason]),
            Error
    end.
