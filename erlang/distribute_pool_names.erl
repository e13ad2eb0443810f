%% Named pools: what a pool name stands for on this node.
%%
%% A pool created with `name => Name' is registered under that name in its C-node (unique there), so any
%% process or node can use the name where a pool handle goes. Every operation of the library needs the pool's
%% id and acquire timeout (it bounds the caller's own wait), so a name is turned into a handle once and the
%% handle kept here, in an ETS table owned by the application's supervisor: one ETS read per operation, no
%% round trip and no process on the way. A name unknown here is asked of the default C-node (`whereis').
%% Names refer to the default C-node's pools, which is fixed while the table (and the application) lives.
%%
%% A handle kept here goes stale when its pool is destroyed and made again under the same name from another
%% node (or by a C-node call that bypasses this library). An operation that gets invalid_pool through a kept
%% handle forgets it; operations that did nothing when they got invalid_pool (a checkout, stats: with_pool/2)
%% ask the C-node again and run once more on the pool the name now stands for. Operations that may have acted
%% before a destroy answered them invalid_pool (a one-shot send, request or call, a cast batch, a destroy:
%% with_pool_once/2) are never run twice: they give invalid_pool, and the next call finds the new pool.
%%
%% The table also records which distribute_pool_owner process owns each name (child_spec/1), so that an
%% owner killed outright can be succeeded, and a pool someone else made is never taken over.
%%
%% Without the table (the application is not running on this node) every use of a name asks the C-node.
-module(distribute_pool_names).

-include("distribute_pool_internal.hrl").

-export([create_table/0]).
-export([with_pool/2]).
-export([with_pool_once/2]).
-export([remember/2]).
-export([forget/1]).
-export([claim_owner/2]).
-export([release_owner/2]).

-define(TABLE, distribute_pool_names).

%% Creates the table, owned by the calling process (the supervisor). Public: its owner is not its writer.
-spec create_table() -> ok.
create_table() ->
    distribute_pool_sup:create_table(?TABLE, [set, {read_concurrency, true}]).

%% Runs Fun with the handle of Pool (a handle, or a name of a pool on the default C-node); when Fun gives
%% invalid_pool through a kept handle of a name, once more with the handle the C-node gives for the name now.
%% Only for operations that did nothing when they were answered invalid_pool.
-spec with_pool(term(), fun((#dpool{}) -> Result)) -> Result | {error, invalid_pool | term()}.
with_pool(PoolOrName, Fun) ->
    run(PoolOrName, Fun, true).

%% The same, never running Fun twice: a stale kept handle is forgotten and its invalid_pool returned.
-spec with_pool_once(term(), fun((#dpool{}) -> Result)) -> Result | {error, invalid_pool | term()}.
with_pool_once(PoolOrName, Fun) ->
    run(PoolOrName, Fun, false).

-spec run(term(), fun((#dpool{}) -> Result), boolean()) -> Result | {error, invalid_pool | term()}.
run(#dpool{} = Pool, Fun, _Retry) ->
    Fun(Pool);
run(Name, Fun, Retry) when ?IS_POOL_NAME(Name) ->
    case kept(Name) of
        {ok, Pool} ->
            case Fun(Pool) of
                {error, invalid_pool} = Stale ->
                    ok = forget(Pool),
                    case Retry andalso whereis_name(Name) of
                        {ok, #dpool{id = Id} = Fresh} when Id =/= Pool#dpool.id -> Fun(Fresh);
                        {error, {connection_failed, _}} = Error -> Error;
                        _ -> Stale
                    end;
                Result ->
                    Result
            end;
        error ->
            case whereis_name(Name) of
                {ok, Pool} -> Fun(Pool);
                {error, _} = Error -> Error
            end
    end;
run(_Other, _Fun, _Retry) ->
    {error, invalid_pool}.

%% Keeps the handle of a named pool of the default C-node (after new/2 made it, or the C-node named it).
-spec remember(atom(), #dpool{}) -> ok.
remember(Name, Pool) ->
    _ = (catch ets:insert(?TABLE, {{name, Name}, Pool})),
    ok.

%% Forgets every name kept for the pool of Handle (destroyed, or found stale).
-spec forget(#dpool{}) -> ok.
forget(#dpool{server = Server, id = Id}) ->
    %% Kept handles of this pool whatever their acquire timeout: a match spec, as a #dpool{} pattern with
    %% '_' in it would be no #dpool{}.
    KeptHandle = [{{{name, '_'}, '$1'},
                   [{is_record, '$1', dpool, record_info(size, dpool)},
                    {'=:=', {element, #dpool.server, '$1'}, {const, Server}},
                    {'=:=', {element, #dpool.id, '$1'}, {const, Id}}],
                   [true]}],
    _ = (catch ets:select_delete(?TABLE, KeptHandle)),
    ok.

-spec kept(atom()) -> {ok, #dpool{}} | error.
kept(Name) ->
    try ets:lookup(?TABLE, {name, Name}) of
        [{_, Pool}] -> {ok, Pool};
        [] -> error
    catch
        error:badarg -> error % no table: the application is not running here
    end.

%% Asks the default C-node which pool Name is, and keeps the answer.
-spec whereis_name(atom()) -> {ok, #dpool{}} | {error, term()}.
whereis_name(Name) ->
    case distribute_pool:default_cnode() of
        {error, Why} ->
            distribute_pool_client:not_running(io_lib:format("no default C-node: ~0tp", [Why]));
        {Service, Node} ->
            Server = {Service, Node},
            Reply = distribute_pool_client:call(Server, distribute_pool_proto:whereis(Name), ?DPOOL_PROMPT_WAIT_MS),
            case distribute_pool_proto:whereis_reply(Reply) of
                {ok, Id, Ms} ->
                    Pool = #dpool{server = Server, id = Id, acquire_timeout_ms = Ms},
                    ok = remember(Name, Pool),
                    {ok, Pool};
                {error, {bad_reply, _}} ->
                    {error, invalid_pool};
                {error, _} = Error ->
                    Error
            end
    end.

%% Makes Owner (a distribute_pool_owner process of this node) the owner of the name Name, atomically: `fresh'
%% when nobody owned it, `succeeded' when its owner had died (its pool, if any, is Owner's to take over),
%% `taken' while another live process owns it.
-spec claim_owner(atom(), pid()) -> fresh | succeeded | taken.
claim_owner(Name, Owner) ->
    Key = {owner, Name},
    try ets:insert_new(?TABLE, {Key, Owner}) of
        true ->
            fresh;
        false ->
            case ets:lookup(?TABLE, Key) of
                [{_, Owner}] ->
                    succeeded;
                [{_, Old}] ->
                    Alive = is_process_alive(Old),
                    Swapped = not Alive andalso
                        ets:select_replace(?TABLE, [{{Key, Old}, [], [{const, {Key, Owner}}]}]) =:= 1,
                    if
                        Swapped -> succeeded;
                        Alive -> taken;
                        true -> claim_owner(Name, Owner) % another claimant was quicker: look again
                    end;
                [] ->
                    claim_owner(Name, Owner)
            end
    catch
        error:badarg -> fresh % no table: the application is not running here, and nobody records owners
    end.

%% Owner gives up the name (its pool is destroyed, or was never made).
-spec release_owner(atom(), pid()) -> ok.
release_owner(Name, Owner) ->
    _ = (catch ets:delete_object(?TABLE, {{owner, Name}, Owner})),
    ok.
