%% Named pools: what a pool name stands for on this node.
%%
%% A pool created with `name => Name' is registered under that name in its C-node (unique there), so any
%% process or node can use the name where a pool handle goes. Every operation of the library needs the pool's
%% id and acquire timeout (it bounds the caller's own wait), so a name is turned into a handle once and the
%% handle kept here, in an ETS table owned by the application's supervisor: one ETS read per operation, not a
%% round trip to the C-node. A name unknown here is asked of the default C-node (`whereis'). A handle kept
%% here can go stale only when the pool is destroyed and made again from another node; an operation that gets
%% invalid_pool through a kept handle asks the C-node again and, if the name now stands for another pool,
%% runs once more (invalid_pool means the C-node did nothing). Names refer to the default C-node's pools.
%%
%% Without the table (the application is not running on this node) every use of a name asks the C-node.
-module(distribute_pool_names).

-include("distribute_pool_internal.hrl").

-export([create_table/0]).
-export([with_pool/2]).
-export([remember/2]).
-export([forget/1]).
-export([set_owner/2]).
-export([claim_owner/2]).

-define(TABLE, distribute_pool_names).
%% Bound on the `whereis' request (the C-node answers at once).
-define(WHEREIS_WAIT_MS, 5000).

%% Creates the table, owned by the calling process (the supervisor). Public: its owner is not its writer.
-spec create_table() -> ok.
create_table() ->
    distribute_pool_sup:create_table(?TABLE, [set, {read_concurrency, true}]).

%% Runs Fun with the handle of Pool (a handle, or a name of a pool on the default C-node).
-spec with_pool(term(), fun((#dpool{}) -> Result)) -> Result | {error, invalid_pool | term()}.
with_pool(#dpool{} = Pool, Fun) ->
    Fun(Pool);
with_pool(Name, Fun) when is_atom(Name), Name =/= undefined ->
    case kept(Name) of
        {ok, Pool} ->
            case Fun(Pool) of
                {error, invalid_pool} -> retry(Name, Pool, Fun);
                Result -> Result
            end;
        error ->
            case whereis_name(Name) of
                {ok, Pool} -> Fun(Pool);
                {error, _} = Error -> Error
            end
    end;
with_pool(_Other, _Fun) ->
    {error, invalid_pool}.

%% A kept handle was refused: the name may stand for a newer pool now.
-spec retry(atom(), #dpool{}, fun((#dpool{}) -> Result)) -> Result | {error, term()}.
retry(Name, Stale, Fun) ->
    ok = forget(Stale),
    case whereis_name(Name) of
        {ok, #dpool{id = Id}} when Id =:= Stale#dpool.id -> {error, invalid_pool};
        {ok, Fresh} -> Fun(Fresh);
        {error, _} = Error -> Error
    end.

%% Keeps the handle of a named pool (after new/2 made it, or the C-node named it).
-spec remember(atom(), #dpool{}) -> ok.
remember(Name, #dpool{server = Server} = Pool) ->
    _ = (catch ets:insert(?TABLE, {{Server, Name}, Pool})),
    ok.

%% Forgets every name kept for the pool of Handle (destroyed, or found stale).
-spec forget(#dpool{}) -> ok.
forget(#dpool{server = Server, id = Id}) ->
    _ = (catch ets:match_delete(?TABLE, {{Server, '_'}, #dpool{server = Server, id = Id, _ = '_'}})),
    ok.

-spec kept(atom()) -> {ok, #dpool{}} | error.
kept(Name) ->
    case distribute_pool:default_cnode() of
        {error, _} ->
            error;
        {Service, Node} ->
            try ets:lookup(?TABLE, {{Service, Node}, Name}) of
                [{_, Pool}] -> {ok, Pool};
                [] -> error
            catch
                error:badarg -> error % no table: the application is not running here
            end
    end.

%% Asks the default C-node which pool Name is, and keeps the answer.
-spec whereis_name(atom()) -> {ok, #dpool{}} | {error, term()}.
whereis_name(Name) ->
    case distribute_pool:default_cnode() of
        {error, _} ->
            {error, {connection_failed, {cnode_not_running,
                                         <<"the distribute_pool application is not running on this node">>}}};
        {Service, Node} ->
            Server = {Service, Node},
            case distribute_pool_client:call(Server, {whereis, Name}, ?WHEREIS_WAIT_MS) of
                {ok, Id, Ms} when is_integer(Id), Id >= 0, is_integer(Ms), Ms >= 0, Ms =< ?DPOOL_MAX_ACQUIRE_MS ->
                    Pool = #dpool{server = Server, id = Id, acquire_timeout_ms = Ms},
                    ok = remember(Name, Pool),
                    {ok, Pool};
                {error, _} = Error ->
                    Error;
                _Other ->
                    {error, invalid_pool}
            end
    end.

%% Records Owner (a distribute_pool_owner process of this node) as the owner of the pool named Name.
-spec set_owner(atom(), pid()) -> ok.
set_owner(Name, Owner) ->
    _ = (catch ets:insert(?TABLE, {{owner, Name}, Owner})),
    ok.

%% Whether Claimant may take over the pool named Name: yes unless a live owner holds it.
-spec claim_owner(atom(), pid()) -> ok | taken.
claim_owner(Name, Claimant) ->
    try ets:lookup(?TABLE, {owner, Name}) of
        [{_, Owner}] when Owner =/= Claimant ->
            case is_process_alive(Owner) of
                true -> taken;
                false -> ok
            end;
        _ ->
            ok
    catch
        error:badarg -> ok
    end.
