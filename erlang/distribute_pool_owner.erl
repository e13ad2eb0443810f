%% The process behind distribute_pool:child_spec/1: it owns one named pool under the user's supervisor. It
%% creates the pool in init (so the supervisor learns at once whether it could be made) and destroys it in
%% terminate, which runs when the supervisor stops the child (it traps exits for that). A restart of the
%% child makes the pool again. It holds no other state and never calls out after init, so a pool operation
%% never waits for it: callers use the pool's name.
%%
%% An owner killed outright (no terminate) leaves its pool behind; the owner the supervisor starts next
%% finds the name taken by a pool whose owner is dead and takes that pool over instead of failing. Owners are
%% recorded per name in distribute_pool_names' table, claimed before the pool is made: a name whose owner
%% still lives is already_started, and a pool of that name that no owner of this node made (new/2 from
%% elsewhere) is never taken over: the child fails to start with already_started.
-module(distribute_pool_owner).
-behaviour(gen_server).

-include("distribute_pool_internal.hrl").

-export([child_spec/1]).
-export([start_link/1]).
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([terminate/2]).

%% Keys of child_spec/1 that are not options of new/2 (new_group/2 for `targets').
-define(OWNER_KEYS, [target, targets, drain_timeout_ms]).
%% How much longer than the drain the supervisor waits for terminate/2 before it kills the process.
-define(SHUTDOWN_MARGIN_MS, 15000).

-record(state, {name :: atom(), pool :: distribute_pool:pool(), drain_ms :: non_neg_integer()}).

-spec child_spec(term()) -> {ok, supervisor:child_spec()} | {error, distribute_pool:invalid_config()}.
child_spec(Options) ->
    case checked(Options) of
        {ok, #{name := Name} = Map, Drain} ->
            {ok, #{id => {distribute_pool, Name},
                   %% Sealed: supervisor reports print these arguments, and a pool's secrets must not show.
                   start => {distribute_pool, start_link, [distribute_pool_config:sealed(Map)]},
                   restart => permanent,
                   shutdown => Drain + ?SHUTDOWN_MARGIN_MS,
                   type => worker,
                   modules => [?MODULE]}};
        {error, _} = Error ->
            Error
    end.

-spec start_link(term()) -> {ok, pid()} | {error, term()}.
start_link(Options) ->
    case checked(distribute_pool_config:unsealed(Options)) of
        {ok, Map, Drain} ->
            %% A pool group for `targets', a pool for `target'.
            Make = case Map of
                       #{targets := Targets} -> {group, Targets};
                       #{target := Target} -> {pool, Target}
                   end,
            gen_server:start_link(?MODULE, {Make, maps:without(?OWNER_KEYS, Map), Drain}, []);
        {error, _} = Error ->
            Error
    end.

%% What child_spec/1 and start_link/1 need besides the options of new/2 (which new/2 checks): a name, a target
%% (or the targets of a group, which new_group/2 checks) and a drain timeout.
-spec checked(term()) -> {ok, map(), non_neg_integer()} | {error, distribute_pool:invalid_config()}.
checked(Options) ->
    case distribute_pool_config:to_map(Options) of
        {ok, #{name := Name}} when not ?IS_POOL_NAME(Name) ->
            {error, {invalid_config, {bad_value, name, Name, <<"a non-empty UTF-8 atom other than undefined">>}}};
        {ok, #{target := _, targets := Targets}} ->
            {error, {invalid_config, {bad_value, targets, Targets, <<"target (a pool) or targets (a group), not both">>}}};
        {ok, #{name := _} = Map} when is_map_key(target, Map); is_map_key(targets, Map) ->
            case maps:get(drain_timeout_ms, Map, ?DPOOL_DEFAULT_DRAIN_MS) of
                Drain when is_integer(Drain), Drain >= 0, Drain =< ?DPOOL_MAX_DRAIN_MS ->
                    {ok, Map, Drain};
                Bad ->
                    Allowed = <<"an integer in 0..", (integer_to_binary(?DPOOL_MAX_DRAIN_MS))/binary>>,
                    {error, {invalid_config, {bad_value, drain_timeout_ms, Bad, Allowed}}}
            end;
        {ok, #{name := _}} ->
            {error, {invalid_config, {missing_option, target}}};
        {ok, _} ->
            {error, {invalid_config, {missing_option, name}}};
        {error, _} = Error ->
            Error
    end.

-spec init({{pool, distribute_pool:target()} | {group, list()}, #{name := atom(), _ => _}, non_neg_integer()}) ->
    {ok, #state{}} | {stop, term()}.
init({Make, #{name := Name} = Options, Drain}) ->
    process_flag(trap_exit, true),
    %% The name is claimed before the pool is made, so that an owner killed at any moment leaves a record
    %% its successor can follow.
    case distribute_pool_names:claim_owner(Name, self()) of
        taken ->
            {stop, {already_started, handle_of(Name)}};
        Claim ->
            Made = case Make of
                       {pool, Target} -> distribute_pool:new(Target, Options);
                       {group, Targets} -> distribute_pool:new_group(Targets, Options)
                   end,
            case Made of
                {ok, Pool} ->
                    {ok, #state{name = Name, pool = Pool, drain_ms = Drain}};
                {error, {already_started, Pool}} when Claim =:= succeeded ->
                    %% Left behind by the owner this one succeeds.
                    {ok, #state{name = Name, pool = Pool, drain_ms = Drain}};
                {error, Reason} ->
                    ok = distribute_pool_names:release_owner(Name, self()),
                    {stop, Reason}
            end
    end.

%% The handle of the pool named Name, for the already_started of a name a live owner holds (the name itself
%% when that owner has not made its pool yet).
-spec handle_of(atom()) -> distribute_pool:pool() | atom().
handle_of(Name) ->
    case distribute_pool_names:with_pool_once(Name, fun(Pool) -> {ok, Pool} end) of
        {ok, Pool} -> Pool;
        {error, _} -> Name
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, {error, badarg}, #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Request, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{name = Name, pool = Pool, drain_ms = Drain}) ->
    case distribute_pool:destroy(Pool, #{drain_timeout_ms => Drain}) of
        ok -> ok;
        {error, invalid_pool} -> ok; % destroyed by someone else already
        {error, Reason} -> logger:warning("distribute_pool: destroying pool ~0tp failed: ~ts",
                                          [Name, distribute_pool:format_error(Reason)])
    end,
    distribute_pool_names:release_owner(Name, self()).
