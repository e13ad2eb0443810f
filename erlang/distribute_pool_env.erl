%% The application environment of distribute_pool, read here and nowhere else: each key with its default
%% (the same as in distribute_pool.app.src, for a node that set the env before loading the application), and
%% the check the application makes of all of them when it starts.
-module(distribute_pool_env).

-include("distribute_pool_internal.hrl").

-export([value/1]).
-export([embedded/0]).
-export([app_config/0]).
-export([check/1]).
-export([limit_args/1]).

-export_type([key/0]).
-export_type([lanes/0]).
-export_type([limits/0]).
-export_type([executable/0]).
-export_type([app_config/0]).

-type key() :: cnode | service | cnode_args | lanes | owner_grace_ms | limits | cnode_executable.
%% The C-node's --lanes (docs/PROTOCOL.md, `lanes').
-type lanes() :: 1..?DPOOL_MAX_LANES.
%% Bounds of the embedded C-node (docs/PROTOCOL.md, "Limits"), each its command-line option of the same name
%% (max_output_queue_bytes is --max-output-queue-bytes); those not given keep the C-node's defaults.
-type limits() :: #{max_output_queue_bytes => pos_integer(), max_link_queue_bytes => pos_integer(),
                    max_caller_packet_bytes => pos_integer(), max_target_packet_bytes => pos_integer(),
                    max_pools_per_caller => pos_integer(), max_connections_per_caller => pos_integer(),
                    max_total_connections => pos_integer(), max_handshakes_per_lane => pos_integer(),
                    max_handshakes_per_address => pos_integer()}.
%% The binary of the embedded C-node: priv (the application's priv/dpool_cnode) or a path.
-type executable() :: priv | file:filename().
%% The environment, checked.
-type app_config() :: #{cnode := embedded | node(), service := atom(), cnode_args := [string()],
                        lanes := lanes(), owner_grace_ms := non_neg_integer(), limits := limits(),
                        cnode_executable := executable()}.

-define(LIMIT_KEYS, [max_output_queue_bytes, max_link_queue_bytes, max_caller_packet_bytes,
                     max_target_packet_bytes, max_pools_per_caller, max_connections_per_caller,
                     max_total_connections, max_handshakes_per_lane, max_handshakes_per_address]).

%% The value of Key, or its default; unchecked (check/1 is what the application starts with).
-spec value(key()) -> term().
value(cnode) -> application:get_env(distribute_pool, cnode, embedded);
value(service) -> application:get_env(distribute_pool, service, distribute_pool);
value(cnode_args) -> application:get_env(distribute_pool, cnode_args, []);
value(lanes) -> application:get_env(distribute_pool, lanes, ?DPOOL_DEFAULT_LANES);
value(owner_grace_ms) -> application:get_env(distribute_pool, owner_grace_ms, ?DPOOL_DEFAULT_OWNER_GRACE_MS);
value(limits) -> application:get_env(distribute_pool, limits, #{});
value(cnode_executable) -> application:get_env(distribute_pool, cnode_executable, priv).

%% Whether the application's default C-node is the embedded one (the env `cnode' is `embedded').
-spec embedded() -> boolean().
embedded() ->
    value(cnode) =:= embedded.

%% The whole environment, checked.
-spec app_config() -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
app_config() ->
    check(#{cnode => value(cnode), service => value(service), cnode_args => value(cnode_args),
            lanes => value(lanes), owner_grace_ms => value(owner_grace_ms), limits => value(limits),
            cnode_executable => value(cnode_executable)}).

%% Checks the values: the first bad one is {bad_app_env, Key, Value}. owner_grace_ms, `limits' and
%% cnode_executable may be left out (their defaults then: no limits given, priv). The limits' ranges are the
%% C-node's to check: one it refuses stops it at its start (exit status 2).
-spec check(#{key() => term()}) -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
check(#{cnode := CNode, service := Service, cnode_args := Args, lanes := Lanes} = Env) ->
    Grace = maps:get(owner_grace_ms, Env, ?DPOOL_DEFAULT_OWNER_GRACE_MS),
    Limits = maps:get(limits, Env, #{}),
    Executable = maps:get(cnode_executable, Env, priv),
    if
        not is_atom(CNode) -> {error, {bad_app_env, cnode, CNode}};
        not is_atom(Service) -> {error, {bad_app_env, service, Service}};
        not (is_integer(Lanes) andalso Lanes >= 1 andalso Lanes =< ?DPOOL_MAX_LANES) ->
            {error, {bad_app_env, lanes, Lanes}};
        not (is_integer(Grace) andalso Grace >= 0 andalso Grace =< ?DPOOL_MAX_OWNER_GRACE_MS) ->
            {error, {bad_app_env, owner_grace_ms, Grace}};
        true ->
            case {is_string_list(Args), is_limits(Limits), is_executable(Executable)} of
                {false, _, _} ->
                    {error, {bad_app_env, cnode_args, Args}};
                {true, false, _} ->
                    {error, {bad_app_env, limits, Limits}};
                {true, true, false} ->
                    {error, {bad_app_env, cnode_executable, Executable}};
                {true, true, true} ->
                    {ok, #{cnode => CNode, service => Service, cnode_args => Args, lanes => Lanes,
                           owner_grace_ms => Grace, limits => Limits, cnode_executable => Executable}}
            end
    end.

%% The C-node's command-line options for Limits, in the order of their names: ["--max-pools-per-caller",
%% "10", ...].
-spec limit_args(limits()) -> [string()].
limit_args(Limits) ->
    lists:append([["--" ++ lists:flatten(string:replace(atom_to_list(Key), "_", "-", all)),
                   integer_to_list(Value)]
                  || {Key, Value} <- lists:sort(maps:to_list(Limits))]).

-spec is_limits(term()) -> boolean().
is_limits(Limits) when is_map(Limits) ->
    lists:all(fun({Key, Value}) -> lists:member(Key, ?LIMIT_KEYS) andalso is_integer(Value) andalso Value > 0 end,
              maps:to_list(Limits));
is_limits(_) ->
    false.

-spec is_executable(term()) -> boolean().
is_executable(priv) -> true;
is_executable([_ | _] = Path) -> io_lib:char_list(Path);
is_executable(_) -> false.

-spec is_string_list(term()) -> boolean().
is_string_list(L) when is_list(L) ->
    lists:all(fun(S) -> io_lib:char_list(S) end, L);
is_string_list(_) ->
    false.
