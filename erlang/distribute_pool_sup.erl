%% Top supervisor. It supervises the process that sets up this node's connections to C-nodes
%% (distribute_pool_lane_writes) and, with the embedded C-node (the default), the pool registry and, started
%% after it, the process that owns the C-node's port. one_for_one: a C-node restart leaves the registry,
%% which holds the pools to restore, alone; a registry restart leaves the C-node and its pools alone, and
%% loses no record (the registry's table belongs to this supervisor).
-module(distribute_pool_sup).
-behaviour(supervisor).

-export([start_link/1]).
-export([init/1]).
-export([create_table/2]).

-spec start_link(distribute_pool_env:app_config()) -> {ok, pid()} | ignore | {error, term()}.
start_link(Config) ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, Config).

%% Creates a named public ETS table owned by the calling process (this supervisor, whose tables outlive the
%% processes that write them). A supervisor that just exited can leave its table for a moment (its deletion
%% is part of the exit): an application restarted at once waits for it, up to a second.
-spec create_table(atom(), [term()]) -> ok.
create_table(Name, Options) ->
    create_table(Name, Options, 100).

-spec create_table(atom(), [term()], non_neg_integer()) -> ok.
create_table(Name, Options, Tries) ->
    try ets:new(Name, [named_table, public | Options]) of
        _ -> ok
    catch
        error:badarg when Tries > 0 ->
            timer:sleep(10),
            create_table(Name, Options, Tries - 1)
    end.

-spec init(distribute_pool_env:app_config()) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init(#{cnode := CNode, service := Service, cnode_args := Args, lanes := Lanes} = Config) ->
    Flags = #{strategy => one_for_one, intensity => 5, period => 10},
    %% Handles of named pools, kept for every process of this node (distribute_pool_names); owned here so
    %% that they live as long as the application.
    ok = distribute_pool_names:create_table(),
    Children =
        case CNode of
            embedded ->
                %% Owned by this process, so the registry's records outlive a crash of the registry.
                ok = distribute_pool_registry:create_table(),
                [#{id => distribute_pool_registry,
                   start => {distribute_pool_registry, start_link, []},
                   restart => permanent,
                   shutdown => 5000,
                   type => worker,
                   modules => [distribute_pool_registry]},
                 #{id => distribute_pool_cnode,
                   start => {distribute_pool_cnode, start_link,
                             [#{service => Service, args => Args, lanes => Lanes,
                                limits => maps:get(limits, Config, #{}),
                                log_level => maps:get(cnode_log_level, Config, info),
                                metrics => maps:get(metrics, Config, none),
                                %% By default only this node may use it (README, "Access").
                                access => distribute_pool_env:access_args(maps:get(access, Config), node()),
                                executable => maps:get(cnode_executable, Config, priv),
                                tls_env => maps:get(tls_env, Config, fun() -> [] end)}]},
                   restart => permanent,
                   %% terminate/2 waits up to 5 s for the C-node to exit before it kills it.
                   shutdown => 10000,
                   type => worker,
                   modules => [distribute_pool_cnode]}];
            _External ->
                []
        end,
    %% Whichever C-node: the connections this node opens to it (distribute_pool_lane_writes).
    LaneWrites = #{id => distribute_pool_lane_writes,
                   start => {distribute_pool_lane_writes, start_link, []},
                   restart => permanent,
                   shutdown => 5000,
                   type => worker,
                   modules => [distribute_pool_lane_writes]},
    {ok, {Flags, [LaneWrites | Children]}}.

