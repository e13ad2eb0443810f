%% Turns the arguments of distribute_pool:new/2 into the `new' request of docs/PROTOCOL.md.
%% The C-node is the single judge of options and target names: this module only converts types the wire
%% cannot carry as they are (a keyword list becomes a map, a string target a binary, an integer
%% #{max_connections => N}), takes out the library-only keys, adds the app env's owner_grace_ms when the
%% options do not give one (and it is not the C-node's default), and works out how long the client may wait
%% for the answer. Its own refusals have the same shape as the C-node's: {invalid_config, Why}
%% (docs/PROTOCOL.md, "Errors"). It never creates atoms from what it is given.
-module(distribute_pool_config).

-include("distribute_pool_internal.hrl").

-export([prepare/2]).
-export([target/1]).
-export([wire_options/1]).
-export([wait/1]).
-export([acquire_timeout/1]).
-export([owner_grace/0]).
-export([cnode/1]).
-export([to_map/1]).
-export([loggable/1]).
-export([sealed/1]).
-export([unsealed/1]).

-export_type([prepared/0]).
-export_type([invalid_config/0]).

-type prepared() :: #{
    cnode := default | distribute_pool_client:server(),
    target := atom() | binary(),
    options := map(),
    acquire_timeout_ms := non_neg_integer(),
    wait := non_neg_integer()
}.
%% Why the options of new/2 were refused (the C-node's reasons, and this module's).
-type invalid_config() :: {invalid_config,
                           {bad_target, term()}
                           | {bad_options, term()}
                           | {unknown_option, term()}
                           | {unknown_option, term(), {did_you_mean, atom()}}
                           | {duplicate_option, term()}
                           | {bad_value, Key :: term(), Value :: term(), Allowed :: binary()}
                           | {missing_option, atom()}
                           | {target_is_self, term()}
                           | {target_not_allowed, term()}
                           | {tls_unusable, Text :: binary()}}.

%% The keys of a pool's `tls' map whose values are paths or the key's password.
-define(IS_TLS_TEXT_KEY(Key), (Key =:= certfile orelse Key =:= keyfile orelse Key =:= cacertfile
                               orelse Key =:= password)).
%% Keys that only the library reads; they are never sent to the C-node.
-define(LIBRARY_KEYS, [cnode]).
%% Time the C-node gets beyond its own connect deadlines before the client stops waiting.
-define(NEW_MARGIN_MS, 5000).

-spec prepare(Target :: term(), MaxOrOptions :: term()) -> {ok, prepared()} | {error, invalid_config()}.
prepare(Target, Max) when is_integer(Max) ->
    prepare(Target, #{max_connections => Max});
prepare(Target, Options) ->
    case {to_map(Options), target(Target)} of
        {{error, _} = Error, _} ->
            Error;
        {_, error} ->
            {error, {invalid_config, {bad_target, Target}}};
        {{ok, Map}, {ok, WireTarget}} ->
            case cnode(Map) of
                {ok, CNode} ->
                    WireOptions = maps:merge(owner_grace(), wire_options(Map)),
                    {ok, #{cnode => CNode,
                           target => WireTarget,
                           options => WireOptions,
                           acquire_timeout_ms => acquire_timeout(WireOptions),
                           wait => wait(WireOptions)}};
                {error, _} = Error ->
                    Error
            end
    end.

%% Options as the C-node takes them: the library's own keys out, strings of the cookie and TLS files as
%% binaries.
-spec wire_options(map()) -> map().
wire_options(Map) ->
    tls(cookie(maps:without(?LIBRARY_KEYS, Map))).

%% Options as a map: a map as it is, or a keyword (or any {Key, Value}) list, each key once, as Elixir
%% writes options (`max_connections: 4').
-spec to_map(term()) -> {ok, map()} | {error, invalid_config()}.
to_map(Options) when is_map(Options) ->
    {ok, Options};
to_map(Options) when is_list(Options) ->
    to_map(Options, Options, #{});
to_map(Options) ->
    {error, {invalid_config, {bad_options, Options}}}.

-spec to_map(list(), term(), map()) -> {ok, map()} | {error, invalid_config()}.
to_map([], _All, Map) ->
    {ok, Map};
to_map([{Key, Value} | Rest], All, Map) ->
    case is_map_key(Key, Map) of
        true -> {error, {invalid_config, {duplicate_option, Key}}};
        false -> to_map(Rest, All, Map#{Key => Value})
    end;
to_map(_NotAPair, All, _Map) ->
    {error, {invalid_config, {bad_options, loggable(All)}}}.

%% Atoms go as they are (the caller made them); strings become binaries. Whether the name is a valid
%% Alive@Host is the C-node's call.
-spec target(term()) -> {ok, atom() | binary()} | error.
target(Target) when is_atom(Target) ->
    {ok, Target};
target(Target) when is_binary(Target) ->
    {ok, Target};
target(Target) when is_list(Target) ->
    %% characters_to_binary raises on improper lists and returns a tuple for invalid code points.
    try unicode:characters_to_binary(Target) of
        Bin when is_binary(Bin) -> {ok, Bin};
        _ -> error
    catch
        error:_ -> error
    end;
target(_) ->
    error.

-spec cnode(map()) -> {ok, default | distribute_pool_client:server()} | {error, invalid_config()}.
cnode(#{cnode := Node}) when is_atom(Node) ->
    {ok, {distribute_pool_env:value(service), Node}};
cnode(#{cnode := {Service, Node}}) when is_atom(Service), is_atom(Node) ->
    {ok, {Service, Node}};
cnode(#{cnode := Other}) ->
    {error, {invalid_config, {bad_value, cnode, Other, <<"a node name, or {Service, Node}">>}}};
cnode(#{}) ->
    {ok, default}.

%% A pool's own cookie given as a string goes as a binary (atoms and binaries go as they are); the C-node
%% judges it, and never echoes one it refuses.
-spec cookie(map()) -> map().
cookie(#{cookie := Cookie} = Options) ->
    Options#{cookie := binary_if_string(Cookie)};
cookie(Options) ->
    Options.

%% The files and the key's password of a pool's `tls' map, given as strings, go as binaries; the mode, and
%% whether the values are any good, are the C-node's to judge (it never echoes the password).
-spec tls(map()) -> map().
tls(#{tls := #{} = Tls} = Options) ->
    Options#{tls := maps:map(fun(Key, Value) when ?IS_TLS_TEXT_KEY(Key) -> binary_if_string(Value);
                                (_Key, Value) -> Value
                             end, Tls)};
tls(Options) ->
    Options.

%% A string (a list of Unicode code points) as a UTF-8 binary; anything else as it is.
-spec binary_if_string(term()) -> term().
binary_if_string(Value) when is_list(Value) ->
    try unicode:characters_to_binary(Value) of
        Bin when is_binary(Bin) -> Bin;
        _ -> Value
    catch
        error:_ -> Value
    end;
binary_if_string(Value) ->
    Value.

%% Options (a map or a list) as they may go into a log or an error: a pool's own cookie and the password of
%% its `tls' map never do (each becomes `hidden').
-spec loggable(term()) -> term().
loggable(Options) ->
    with_secrets(fun(_Secret) -> hidden end, Options).

%% Options whose secrets (as loggable/1) are sealed in funs, for a term that must carry them where reports
%% print it: a child spec's start arguments (supervisor reports); unsealed/1 gives them back.
-spec sealed(term()) -> term().
sealed(Options) ->
    with_secrets(fun(Secret) -> {sealed, fun() -> Secret end} end, Options).

-spec unsealed(term()) -> term().
unsealed(Options) ->
    with_secrets(fun({sealed, Secret}) when is_function(Secret, 0) -> Secret();
                    (Plain) -> Plain
                 end, Options).

-spec with_secrets(fun((term()) -> term()), term()) -> term().
with_secrets(Replace, #{} = Options) ->
    maps:map(fun(Key, Value) -> secret(Replace, Key, Value) end, Options);
with_secrets(Replace, [{Key, Value} | Rest]) ->
    [{Key, secret(Replace, Key, Value)} | with_secrets(Replace, Rest)];
with_secrets(Replace, [Other | Rest]) ->
    [Other | with_secrets(Replace, Rest)];
with_secrets(_Replace, Other) ->
    %% [], or the tail of an improper list.
    Other.

-spec target_secrets(fun((term()) -> term()), term()) -> term().
target_secrets(Replace, [{Target, Options} | Rest]) ->
    [{Target, with_secrets(Replace, Options)} | target_secrets(Replace, Rest)];
target_secrets(Replace, [Other | Rest]) ->
    [Other | target_secrets(Replace, Rest)];
target_secrets(_Replace, Other) ->
    Other.

-spec secret(fun((term()) -> term()), term(), term()) -> term().
secret(Replace, cookie, Cookie) -> Replace(Cookie);
%% A pool group's targets (child_spec/1's `targets'): each target's own options may hold secrets too.
secret(Replace, targets, Targets) -> target_secrets(Replace, Targets);
secret(Replace, tls, #{password := Password} = Tls) -> Tls#{password := Replace(Password)};
secret(_Replace, _Key, Value) -> Value.

%% The app env's owner_grace_ms as an option, when it is not the C-node's own default (sending that would
%% change nothing).
-spec owner_grace() -> map().
owner_grace() ->
    case distribute_pool_env:value(owner_grace_ms) of
        ?DPOOL_DEFAULT_OWNER_GRACE_MS -> #{};
        Ms -> #{owner_grace_ms => Ms}
    end.

%% Only used to bound the client's waits; a value the C-node will refuse never reaches a pool handle.
-spec acquire_timeout(map()) -> non_neg_integer().
acquire_timeout(#{acquire_timeout_ms := Ms}) when is_integer(Ms), Ms >= 0, Ms =< ?DPOOL_MAX_ACQUIRE_MS ->
    Ms;
acquire_timeout(_) ->
    ?DPOOL_DEFAULT_ACQUIRE_MS.

%% The C-node answers `new' once its first connections are up or have failed. Assume the worst case, one
%% connect deadline after another for every initial connection, so that a slow but working C-node is never
%% cut off; the bound only matters when the C-node stops answering.
-spec wait(map()) -> non_neg_integer().
wait(Options) ->
    Connect = in_range(maps:get(connect_timeout_ms, Options, undefined), 1, ?DPOOL_MAX_CONNECT_MS,
                       ?DPOOL_DEFAULT_CONNECT_MS),
    Max = in_range(maps:get(max_connections, Options, undefined), 1, ?DPOOL_MAX_CONNECTIONS, 1),
    Initial = in_range(maps:get(min_connections, Options, undefined), 0, Max, Max),
    Connect * max(1, Initial) + ?NEW_MARGIN_MS.

-spec in_range(term(), integer(), integer(), integer()) -> integer().
in_range(V, Lo, Hi, _Default) when is_integer(V), V >= Lo, V =< Hi -> V;
in_range(_, _Lo, _Hi, Default) -> Default.
