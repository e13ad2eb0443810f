%% The application environment of distribute_pool, read here and nowhere else: each key with its default
%% (the same as in distribute_pool.app.src, for a node that set the env before loading the application), and
%% the check the application makes of all of them when it starts.
-module(distribute_pool_env).

-include("distribute_pool_internal.hrl").

-export([value/1]).
-export([embedded/0]).
-export([app_config/0]).
-export([check/1]).

-export_type([key/0]).
-export_type([lanes/0]).
-export_type([executable/0]).
-export_type([app_config/0]).

-type key() :: cnode | service | cnode_args | lanes | owner_grace_ms | cnode_executable.
%% The C-node's --lanes (docs/PROTOCOL.md, `lanes').
-type lanes() :: 1..?DPOOL_MAX_LANES.
%% The binary of the embedded C-node: priv (the application's priv/dpool_cnode) or a path.
-type executable() :: priv | file:filename().
%% The environment, checked.
-type app_config() :: #{cnode := embedded | node(), service := atom(), cnode_args := [string()],
                        lanes := lanes(), owner_grace_ms := non_neg_integer(),
                        cnode_executable := executable()}.

%% The value of Key, or its default; unchecked (check/1 is what the application starts with).
-spec value(key()) -> term().
value(cnode) -> application:get_env(distribute_pool, cnode, embedded);
value(service) -> application:get_env(distribute_pool, service, distribute_pool);
value(cnode_args) -> application:get_env(distribute_pool, cnode_args, []);
value(lanes) -> application:get_env(distribute_pool, lanes, ?DPOOL_DEFAULT_LANES);
value(owner_grace_ms) -> application:get_env(distribute_pool, owner_grace_ms, ?DPOOL_DEFAULT_OWNER_GRACE_MS);
value(cnode_executable) -> application:get_env(distribute_pool, cnode_executable, priv).

%% Whether the application's default C-node is the embedded one (the env `cnode' is `embedded').
-spec embedded() -> boolean().
embedded() ->
    value(cnode) =:= embedded.

%% The whole environment, checked.
-spec app_config() -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
app_config() ->
    check(#{cnode => value(cnode), service => value(service), cnode_args => value(cnode_args),
            lanes => value(lanes), owner_grace_ms => value(owner_grace_ms),
            cnode_executable => value(cnode_executable)}).

%% Checks the values (owner_grace_ms and cnode_executable may be left out: their defaults then): the first
%% bad one is {bad_app_env, Key, Value}.
-spec check(#{key() => term()}) -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
check(#{cnode := CNode, service := Service, cnode_args := Args, lanes := Lanes} = Env) ->
    Grace = maps:get(owner_grace_ms, Env, ?DPOOL_DEFAULT_OWNER_GRACE_MS),
    Executable = maps:get(cnode_executable, Env, priv),
    if
        not is_atom(CNode) -> {error, {bad_app_env, cnode, CNode}};
        not is_atom(Service) -> {error, {bad_app_env, service, Service}};
        not (is_integer(Lanes) andalso Lanes >= 1 andalso Lanes =< ?DPOOL_MAX_LANES) ->
            {error, {bad_app_env, lanes, Lanes}};
        not (is_integer(Grace) andalso Grace >= 0 andalso Grace =< ?DPOOL_MAX_OWNER_GRACE_MS) ->
            {error, {bad_app_env, owner_grace_ms, Grace}};
        true ->
            case {is_string_list(Args), is_executable(Executable)} of
                {false, _} ->
                    {error, {bad_app_env, cnode_args, Args}};
                {true, false} ->
                    {error, {bad_app_env, cnode_executable, Executable}};
                {true, true} ->
                    {ok, #{cnode => CNode, service => Service, cnode_args => Args, lanes => Lanes,
                           owner_grace_ms => Grace, cnode_executable => Executable}}
            end
    end.

-spec is_executable(term()) -> boolean().
is_executable(priv) -> true;
is_executable([_ | _] = Path) -> io_lib:char_list(Path);
is_executable(_) -> false.

-spec is_string_list(term()) -> boolean().
is_string_list(L) when is_list(L) ->
    lists:all(fun(S) -> io_lib:char_list(S) end, L);
is_string_list(_) ->
    false.
