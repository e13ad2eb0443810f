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
-export([access_args/2]).

-export_type([key/0]).
-export_type([lanes/0]).
-export_type([limits/0]).
-export_type([executable/0]).
-export_type([app_config/0]).
-export_type([access/0]).

-type key() :: cnode | service | cnode_args | lanes | owner_grace_ms | limits | cnode_executable
             | allowed_callers | allowed_caller_addresses | allowed_targets.
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
%% Who may use the embedded C-node and where its pools may connect (README, "Access"): allowed_callers is
%% starter (only this node, the default), any (any node with the cookie), or patterns of node names this node
%% is added to (`"app_*@10.0.0.*"', `'ops@host'', `<<"*@host">>'); allowed_caller_addresses is any or IPv4
%% addresses and CIDR ranges (`"10.0.0.0/8"'); allowed_targets is any or patterns of targets.
-type pattern() :: string() | binary() | atom().
-type access() :: #{allowed_callers := starter | any | [pattern()], allowed_caller_addresses := any | [pattern()],
                    allowed_targets := any | [pattern()]}.
%% The environment, checked.
-type app_config() :: #{cnode := embedded | node(), service := atom(), cnode_args := [string()],
                        lanes := lanes(), owner_grace_ms := non_neg_integer(), limits := limits(),
                        cnode_executable := executable(), access := access()}.

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
value(cnode_executable) -> application:get_env(distribute_pool, cnode_executable, priv);
value(allowed_callers) -> application:get_env(distribute_pool, allowed_callers, starter);
value(allowed_caller_addresses) -> application:get_env(distribute_pool, allowed_caller_addresses, any);
value(allowed_targets) -> application:get_env(distribute_pool, allowed_targets, any).

%% Whether the application's default C-node is the embedded one (the env `cnode' is `embedded').
-spec embedded() -> boolean().
embedded() ->
    value(cnode) =:= embedded.

%% The whole environment, checked.
-spec app_config() -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
app_config() ->
    check(#{cnode => value(cnode), service => value(service), cnode_args => value(cnode_args),
            lanes => value(lanes), owner_grace_ms => value(owner_grace_ms), limits => value(limits),
            cnode_executable => value(cnode_executable), allowed_callers => value(allowed_callers),
            allowed_caller_addresses => value(allowed_caller_addresses),
            allowed_targets => value(allowed_targets)}).

%% Checks the values: the first bad one is {bad_app_env, Key, Value}. owner_grace_ms, `limits',
%% cnode_executable and the allow-lists may be left out (their defaults then: no limits given, priv, starter,
%% any, any). The limits' ranges and the patterns' syntax are the C-node's to check: one it refuses stops it
%% at its start (exit status 2).
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
                    case check_access(Env) of
                        {ok, Access} ->
                            {ok, #{cnode => CNode, service => Service, cnode_args => Args, lanes => Lanes,
                                   owner_grace_ms => Grace, limits => Limits, cnode_executable => Executable,
                                   access => Access}};
                        {error, _} = Error ->
                            Error
                    end
            end
    end.

-spec check_access(map()) -> {ok, access()} | {error, {bad_app_env, key(), term()}}.
check_access(Env) ->
    Callers = maps:get(allowed_callers, Env, starter),
    Addresses = maps:get(allowed_caller_addresses, Env, any),
    Targets = maps:get(allowed_targets, Env, any),
    case {Callers =:= starter orelse is_patterns(Callers), is_patterns(Addresses), is_patterns(Targets)} of
        {false, _, _} -> {error, {bad_app_env, allowed_callers, Callers}};
        {true, false, _} -> {error, {bad_app_env, allowed_caller_addresses, Addresses}};
        {true, true, false} -> {error, {bad_app_env, allowed_targets, Targets}};
        {true, true, true} ->
            {ok, #{allowed_callers => Callers, allowed_caller_addresses => Addresses, allowed_targets => Targets}}
    end.

%% The embedded C-node's allow-list options for Access, started by Starter (this node): --allow-caller
%% Starter unless allowed_callers is any, and one option per pattern. The starter is always in: the
%% application's own processes (the registry, named pools) use the C-node from it.
-spec access_args(access(), node()) -> [string()].
access_args(#{allowed_callers := Callers, allowed_caller_addresses := Addresses, allowed_targets := Targets},
            Starter) ->
    CallerPatterns = case Callers of
                         any -> [];
                         starter -> [Starter];
                         List -> [Starter | List]
                     end,
    options("--allow-caller", CallerPatterns) ++ options("--allow-caller-address", listed(Addresses))
        ++ options("--allow-target", listed(Targets)).

-spec listed(any | [pattern()]) -> [pattern()].
listed(any) -> [];
listed(List) -> List.

-spec options(string(), [pattern()]) -> [string()].
options(Option, Patterns) ->
    lists:append([[Option, text(P)] || P <- Patterns]).

-spec text(pattern()) -> string().
text(P) when is_atom(P) -> atom_to_list(P);
text(P) when is_binary(P) -> binary_to_list(P);
text(P) -> P.

%% any, or a list of atoms, strings and binaries of printable ASCII without commas (the C-node's separator)
%% or spaces; their syntax is the C-node's to judge.
-spec is_patterns(term()) -> boolean().
is_patterns(any) ->
    true;
is_patterns(List) when is_list(List) ->
    lists:all(fun is_pattern/1, List);
is_patterns(_) ->
    false.

-spec is_pattern(term()) -> boolean().
is_pattern(P) when is_atom(P) -> is_pattern(atom_to_list(P));
is_pattern(P) when is_binary(P) -> is_pattern(binary_to_list(P));
is_pattern([_ | _] = P) -> lists:all(fun(C) -> is_integer(C) andalso C > $\s andalso C < 127 andalso C =/= $, end, P);
is_pattern(_) -> false.

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
