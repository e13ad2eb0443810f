%% The application environment of distribute_pool, read here and nowhere else: each key with its default
%% (the same as in distribute_pool.app.src, for a node that set the env before loading the application), and
%% the check the application makes of all of them when it starts.
-module(distribute_pool_env).

-include("distribute_pool_internal.hrl").

-define(IS_PORT(P), (is_integer(P) andalso P >= 0 andalso P =< 65535)).

-export([value/1]).
-export([is_sndbuf_bytes/1]).
-export([default/1]).
-export([keys/0]).
-export([embedded/0]).
-export([app_config/0]).
-export([check/1]).
-export([limit_args/1]).
-export([log_level_args/1]).
-export([metrics_args/1]).
-export([access_args/2]).
-export([tls_env/1]).
-export([tls_env/2]).
-export([starter_dist/0]).

-export_type([key/0]).
-export_type([lanes/0]).
-export_type([limits/0]).
-export_type([log_level/0]).
-export_type([metrics/0]).
-export_type([executable/0]).
-export_type([app_config/0]).
-export_type([access/0]).
-export_type([tls/0]).
-export_type([tls_mode/0]).
-export_type([starter_dist/0]).
-export_type([os_env/0]).

-type key() :: cnode | service | cnode_args | lanes | owner_grace_ms | limits | cnode_executable
             | allowed_callers | allowed_caller_addresses | allowed_targets | tls | cnode_log_level | metrics
             | delay_send_to_cnode | cnode_sndbuf.
%% The embedded C-node's Prometheus endpoint (README, "Prometheus"): none, a port (on 127.0.0.1; 0: any free
%% port, which info's metrics_port shows), or {Address, Port}.
-type metrics() :: none | inet:port_number() | {string(), inet:port_number()}.
%% The least level of the embedded C-node's lines that it writes (its --log-level; README, "Logs"): lines
%% below it are not even made. Each line reaches logger at its own level, where logger's filters apply.
-type log_level() :: debug | info | warning | error | none.
%% The send buffer of this node's connections to C-nodes (README, "Lanes"): the kernel's own sizing, or bytes.
-type sndbuf() :: default | ?DPOOL_MIN_SNDBUF..?DPOOL_MAX_SNDBUF.
%% The C-node's --lanes (docs/PROTOCOL.md, `lanes').
-type lanes() :: 1..?DPOOL_MAX_LANES.
%% Bounds of the embedded C-node (docs/PROTOCOL.md, "Limits"), each its command-line option of the same name
%% (max_output_queue_bytes is --max-output-queue-bytes); those not given keep the C-node's defaults.
-type limits() :: #{max_output_queue_bytes => pos_integer(), max_link_queue_bytes => pos_integer(),
                    max_caller_packet_bytes => pos_integer(), max_target_packet_bytes => pos_integer(),
                    max_pools_per_caller => pos_integer(), max_connections_per_caller => pos_integer(),
                    max_total_connections => pos_integer(), max_handshakes_per_lane => pos_integer(),
                    max_handshakes_per_address => pos_integer(), max_splice_pipes => non_neg_integer()}.
%% The binary of the embedded C-node: priv (the application's priv/dpool_cnode) or a path.
-type executable() :: priv | file:filename().
%% Who may use the embedded C-node and where its pools may connect (README, "Access"): allowed_callers is
%% starter (only this node, the default), any (any node with the cookie), or patterns of node names this node
%% is added to (`"app_*@10.0.0.*"', `'ops@host'', `<<"*@host">>'); allowed_caller_addresses is any or IPv4
%% addresses and CIDR ranges (`"10.0.0.0/8"'); allowed_targets is any or patterns of targets.
-type pattern() :: string() | binary() | atom().
-type access() :: #{allowed_callers := starter | any | [pattern()], allowed_caller_addresses := any | [pattern()],
                    allowed_targets := any | [pattern()]}.
%% The embedded C-node's TLS distribution (README, "TLS distribution"): auto (the default: as this node runs
%% distribution, with its -ssl_dist_optfile), a mode with the files of this node's -ssl_dist_optfile, the
%% files of another optfile, or everything given.
-type tls_mode() :: none | unverified | verified.
-type path() :: string() | binary().
-type tls() :: auto | tls_mode() | {optfile, path()}
             | #{mode := tls_mode(), certfile => path(), keyfile => path(), cacertfile => path(),
                 password => path()}.
%% How the node that starts the embedded C-node runs distribution: over TLS or not, and its
%% -ssl_dist_optfile.
-type starter_dist() :: #{tls := boolean(), optfile := none | file:filename()}.
%% Variables of the C-node's environment (open_port's {env, _}; false: unset).
-type os_env() :: [{string(), string() | false}].
%% The environment, checked. tls_env gives the embedded C-node's TLS variables: a fun, so that the key's
%% password shows in no report that prints the arguments of the supervisor's children.
-type app_config() :: #{cnode := embedded | node(), service := atom(), cnode_args := [string()],
                        lanes := lanes(), owner_grace_ms := non_neg_integer(), limits := limits(),
                        cnode_executable := executable(), access := access(), tls_env := fun(() -> os_env()),
                        cnode_log_level := log_level(), metrics := metrics(),
                        delay_send_to_cnode := boolean(), cnode_sndbuf := sndbuf()}.

%% The keys of a TLS setting with a file or a secret, and the C-node's environment variable of each.
-define(TLS_VARS, [{certfile, "DISTRIBUTE_POOL_TLS_CERTFILE"}, {keyfile, "DISTRIBUTE_POOL_TLS_KEYFILE"},
                   {cacertfile, "DISTRIBUTE_POOL_TLS_CACERTFILE"}, {password, "DISTRIBUTE_POOL_TLS_PASSWORD"}]).
-define(LIMIT_KEYS, [max_output_queue_bytes, max_link_queue_bytes, max_caller_packet_bytes,
                     max_target_packet_bytes, max_pools_per_caller, max_connections_per_caller,
                     max_total_connections, max_handshakes_per_lane, max_handshakes_per_address,
                     max_splice_pipes]).

%% The value of Key, or its default; unchecked (check/1 is what the application starts with).
-spec value(key()) -> term().
value(Key) ->
    application:get_env(distribute_pool, Key, default(Key)).

%% What Key is when the environment does not give it: the same as distribute_pool.app.src says (a test,
%% distribute_pool_docs_SUITE, holds the two together), for a node that set the env before loading the
%% application.
-spec default(key()) -> term().
default(cnode) -> embedded;
default(service) -> distribute_pool;
default(cnode_args) -> [];
default(lanes) -> ?DPOOL_DEFAULT_LANES;
default(owner_grace_ms) -> ?DPOOL_DEFAULT_OWNER_GRACE_MS;
default(limits) -> #{};
default(cnode_executable) -> priv;
default(allowed_callers) -> starter;
default(allowed_caller_addresses) -> any;
default(allowed_targets) -> any;
default(tls) -> auto;
default(cnode_log_level) -> info;
default(metrics) -> none;
default(delay_send_to_cnode) -> true;
default(cnode_sndbuf) -> ?DPOOL_DEFAULT_SNDBUF.

%% Whether Value is a size the env cnode_sndbuf may give (it may also be `default').
-spec is_sndbuf_bytes(term()) -> boolean().
is_sndbuf_bytes(Value) ->
    is_integer(Value) andalso Value >= ?DPOOL_MIN_SNDBUF andalso Value =< ?DPOOL_MAX_SNDBUF.

%% Whether the application's default C-node is the embedded one (the env `cnode' is `embedded').
-spec embedded() -> boolean().
embedded() ->
    value(cnode) =:= embedded.

%% Every key of the environment.
-spec keys() -> [key(), ...].
keys() ->
    [cnode, service, cnode_args, lanes, owner_grace_ms, limits, cnode_executable, allowed_callers,
     allowed_caller_addresses, allowed_targets, tls, cnode_log_level, metrics, delay_send_to_cnode,
     cnode_sndbuf].

%% The whole environment, checked.
-spec app_config() -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
app_config() ->
    check(maps:from_list([{Key, value(Key)} || Key <- keys()])).

%% Checks the values: the first bad one is {bad_app_env, Key, Value} ({bad_app_env, tls, {Value, Why}} for
%% tls, see tls_env/2). Every key but cnode, service, cnode_args and lanes may be left out (its default/1
%% then). The limits' ranges, the patterns' syntax and the TLS files are the C-node's to check: one it refuses
%% stops it at its start (exit status 2).
-spec check(#{key() => term()}) -> {ok, app_config()} | {error, {bad_app_env, key(), term()}}.
check(#{cnode := CNode, service := Service, cnode_args := Args, lanes := Lanes} = Env) ->
    Grace = given(owner_grace_ms, Env),
    Limits = given(limits, Env),
    Executable = given(cnode_executable, Env),
    LogLevel = given(cnode_log_level, Env),
    Metrics = given(metrics, Env),
    MetricsOk = is_metrics(Metrics),
    DelaySend = given(delay_send_to_cnode, Env),
    Sndbuf = given(cnode_sndbuf, Env),
    SndbufOk = Sndbuf =:= default orelse is_sndbuf_bytes(Sndbuf),
    if
        not is_atom(CNode) -> {error, {bad_app_env, cnode, CNode}};
        not is_atom(Service) -> {error, {bad_app_env, service, Service}};
        not (is_integer(Lanes) andalso Lanes >= 1 andalso Lanes =< ?DPOOL_MAX_LANES) ->
            {error, {bad_app_env, lanes, Lanes}};
        not (is_integer(Grace) andalso Grace >= 0 andalso Grace =< ?DPOOL_MAX_OWNER_GRACE_MS) ->
            {error, {bad_app_env, owner_grace_ms, Grace}};
        not (LogLevel =:= debug orelse LogLevel =:= info orelse LogLevel =:= warning orelse LogLevel =:= error
             orelse LogLevel =:= none) ->
            {error, {bad_app_env, cnode_log_level, LogLevel}};
        not MetricsOk ->
            {error, {bad_app_env, metrics, Metrics}};
        not is_boolean(DelaySend) ->
            {error, {bad_app_env, delay_send_to_cnode, DelaySend}};
        not SndbufOk ->
            {error, {bad_app_env, cnode_sndbuf, Sndbuf}};
        true ->
            case {is_string_list(Args), is_limits(Limits), is_executable(Executable)} of
                {false, _, _} ->
                    {error, {bad_app_env, cnode_args, Args}};
                {true, false, _} ->
                    {error, {bad_app_env, limits, Limits}};
                {true, true, false} ->
                    {error, {bad_app_env, cnode_executable, Executable}};
                {true, true, true} ->
                    case {check_access(Env), tls_env(given(tls, Env))} of
                        {{ok, Access}, {ok, TlsEnv}} ->
                            {ok, #{cnode => CNode, service => Service, cnode_args => Args, lanes => Lanes,
                                   owner_grace_ms => Grace, limits => Limits, cnode_executable => Executable,
                                   access => Access, tls_env => fun() -> TlsEnv end,
                                   cnode_log_level => LogLevel, metrics => Metrics,
                                   delay_send_to_cnode => DelaySend, cnode_sndbuf => Sndbuf}};
                        {{error, _} = Error, _} ->
                            Error;
                        {_, {error, _} = Error} ->
                            Error
                    end
            end
    end.

%% Key's value in Env, or its default when Env leaves it out.
-spec given(key(), map()) -> term().
given(Key, Env) ->
    maps:get(Key, Env, default(Key)).

-spec check_access(map()) -> {ok, access()} | {error, {bad_app_env, key(), term()}}.
check_access(Env) ->
    Callers = given(allowed_callers, Env),
    Addresses = given(allowed_caller_addresses, Env),
    Targets = given(allowed_targets, Env),
    case {Callers =:= starter orelse is_patterns(Callers), is_patterns(Addresses), is_patterns(Targets)} of
        {false, _, _} -> {error, {bad_app_env, allowed_callers, Callers}};
        {true, false, _} -> {error, {bad_app_env, allowed_caller_addresses, Addresses}};
        {true, true, false} -> {error, {bad_app_env, allowed_targets, Targets}};
        {true, true, true} ->
            {ok, #{allowed_callers => Callers, allowed_caller_addresses => Addresses, allowed_targets => Targets}}
    end.

-spec is_metrics(term()) -> boolean().
is_metrics(none) -> true;
is_metrics(Port) when ?IS_PORT(Port) -> true;
is_metrics({[_ | _] = Address, Port}) when ?IS_PORT(Port) ->
    %% An address, as the C-node takes it: a host name would stop it at its start.
    case inet:parse_address(Address) of
        {ok, _} -> true;
        {error, _} -> false
    end;
is_metrics(_) -> false.

%% The C-node's options for the env `metrics'.
-spec metrics_args(metrics()) -> [string()].
metrics_args(none) -> [];
metrics_args(Port) when is_integer(Port) -> ["--metrics-port", integer_to_list(Port)];
metrics_args({Address, Port}) -> ["--metrics-port", integer_to_list(Port), "--metrics-address", Address].

%% The C-node's --log-level for a cnode_log_level.
-spec log_level_args(log_level()) -> [string()].
log_level_args(debug) -> ["--log-level", "debug"];
log_level_args(info) -> ["--log-level", "info"];
log_level_args(warning) -> ["--log-level", "warn"];
log_level_args(error) -> ["--log-level", "error"];
log_level_args(none) -> ["--log-level", "off"].

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
    lists:all(fun({Key, Value}) ->
                      lists:member(Key, ?LIMIT_KEYS) andalso is_integer(Value) andalso Value >= least_limit(Key)
              end,
              maps:to_list(Limits));
is_limits(_) ->
    false.

%% Every bound is at least 1, but the splice pipes: 0 turns them off.
-spec least_limit(atom()) -> 0 | 1.
least_limit(max_splice_pipes) -> 0;
least_limit(_) -> 1.

-spec is_executable(term()) -> boolean().
is_executable(priv) -> true;
is_executable([_ | _] = Path) -> io_lib:char_list(Path);
is_executable(_) -> false.

-spec is_string_list(term()) -> boolean().
is_string_list(L) when is_list(L) ->
    lists:all(fun(S) -> io_lib:char_list(S) end, L);
is_string_list(_) ->
    false.

%% TLS of the embedded C-node.

%% tls_env/2 for this node (starter_dist/0).
-spec tls_env(term()) -> {ok, os_env()} | {error, {bad_app_env, tls, {Shown :: term(), Why :: string()}}}.
tls_env(Tls) ->
    tls_env(Tls, starter_dist()).

%% The embedded C-node's TLS variables (README, "TLS distribution") for the app env value Tls, started by a
%% node that runs distribution as Starter says: DISTRIBUTE_POOL_TLS (the mode) and DISTRIBUTE_POOL_TLS_CERTFILE, _KEYFILE,
%% _CACERTFILE and _PASSWORD, each set or unset (false), so that none comes from this node's own environment.
%% - auto: none on a node that runs plain distribution; on a TLS node (-proto_dist inet_tls) what its
%%   -ssl_dist_optfile says, as {optfile, Path} reads it;
%% - none; unverified and verified: with the files of the starter's -ssl_dist_optfile;
%% - {optfile, Path}: an ssl_dist_optfile, `[{server, Opts}, {client, Opts}]': certfile, keyfile, cacertfile
%%   and password from the server section, those it lacks from the client section; verified when every
%%   section it has says {verify, verify_peer}, unverified otherwise;
%% - #{mode := Mode, certfile => Path, ...}: as given.
%% unverified and verified need a certfile (the key may be in it, as OTP allows), verified a cacertfile too;
%% and the mode must be none exactly when the starter runs plain distribution, since the starter uses the
%% C-node itself and a C-node in a TLS mode takes TLS callers only. Otherwise {error, {bad_app_env, tls,
%% {Shown, Why}}}: Shown is Tls without its password, Why says what to set.
-spec tls_env(term(), starter_dist()) ->
    {ok, os_env()} | {error, {bad_app_env, tls, {Shown :: term(), Why :: string()}}}.
tls_env(Tls, Starter) ->
    case tls_settings(Tls, Starter) of
        {ok, #{mode := Mode} = Settings} ->
            case {Mode, Starter} of
                {none, #{tls := true}} ->
                    tls_error(Tls, "this node runs TLS distribution (-proto_dist inet_tls) and uses its embedded "
                                   "C-node itself, so the C-node's lanes must take TLS: set tls to auto, "
                                   "unverified, verified, {optfile, Path} or a map whose mode is not none");
                {_, #{tls := false}} when Mode =/= none ->
                    tls_error(Tls, "a C-node in a TLS mode takes TLS callers only, and this node runs plain "
                                   "distribution: start it with -proto_dist inet_tls, or set tls to none (a "
                                   "pool can still reach a TLS target with its own tls option)");
                _ ->
                    case missing_tls_files(Settings) of
                        [] ->
                            {ok, [{"DISTRIBUTE_POOL_TLS", atom_to_list(Mode)}
                                  | [{Var, maps:get(Key, Settings, false)} || {Key, Var} <- ?TLS_VARS]]};
                        Missing ->
                            tls_error(Tls, lists:flatten(
                                             io_lib:format("mode ~s needs ~s: give them in a map or an optfile "
                                                           "({optfile, Path}), or start this node with an "
                                                           "-ssl_dist_optfile that has them",
                                                           [Mode, lists:join(", ", Missing)])))
                    end
            end;
        {error, Why} ->
            tls_error(Tls, Why)
    end.

%% How this node runs distribution: over TLS (-proto_dist inet_tls or inet6_tls) or not, and its
%% -ssl_dist_optfile (given once, as OTP reads it).
-spec starter_dist() -> starter_dist().
starter_dist() ->
    Protos = case init:get_argument(proto_dist) of
                 {ok, Lists} -> lists:append(Lists);
                 error -> []
             end,
    #{tls => lists:any(fun(P) -> lists:member(P, ["inet_tls", "inet6_tls"]) end, Protos),
      optfile => case init:get_argument(ssl_dist_optfile) of
                     {ok, [[File]]} -> File;
                     _ -> none
                 end}.

%% Settings: the mode and the files, paths and password as strings.
-type tls_settings() :: #{mode := tls_mode(), certfile => string(), keyfile => string(),
                          cacertfile => string(), password => string()}.

-spec tls_settings(term(), starter_dist()) -> {ok, tls_settings()} | {error, string()}.
tls_settings(auto, #{tls := false}) ->
    {ok, #{mode => none}};
tls_settings(auto, #{tls := true, optfile := none}) ->
    {error, "this node runs TLS distribution without -ssl_dist_optfile (-ssl_dist_opt is not read): start it "
            "with -ssl_dist_optfile, or set tls to {optfile, Path} or #{mode => verified, certfile => _, "
            "keyfile => _, cacertfile => _}"};
tls_settings(auto, #{optfile := Optfile}) ->
    optfile_settings(Optfile);
tls_settings(none, _Starter) ->
    {ok, #{mode => none}};
tls_settings(Mode, #{optfile := none}) when Mode =:= unverified; Mode =:= verified ->
    {ok, #{mode => Mode}};
tls_settings(Mode, #{optfile := Optfile}) when Mode =:= unverified; Mode =:= verified ->
    case optfile_settings(Optfile) of
        {ok, Settings} -> {ok, Settings#{mode := Mode}};
        {error, _} = Error -> Error
    end;
tls_settings({optfile, Path}, _Starter) ->
    case tls_text(Path) of
        {ok, Optfile} -> optfile_settings(Optfile);
        error -> {error, "{optfile, Path}: Path must be a file name (a string or a binary)"}
    end;
tls_settings(#{mode := Mode} = Map, _Starter) when Mode =:= none; Mode =:= unverified; Mode =:= verified ->
    map_settings(maps:to_list(maps:remove(mode, Map)), #{mode => Mode});
tls_settings(_Other, _Starter) ->
    {error, "tls must be auto, none, unverified, verified, {optfile, Path} or #{mode := none | unverified | "
            "verified, certfile => Path, keyfile => Path, cacertfile => Path, password => String}"}.

-spec map_settings([{term(), term()}], tls_settings()) -> {ok, tls_settings()} | {error, string()}.
map_settings([], Settings) ->
    {ok, Settings};
map_settings([{Key, Value} | Rest], Settings) ->
    case {lists:keymember(Key, 1, ?TLS_VARS), tls_text(Value)} of
        {true, {ok, Text}} ->
            map_settings(Rest, Settings#{Key => Text});
        {true, error} ->
            {error, lists:flatten(io_lib:format("~p must be a non-empty string or binary", [Key]))};
        {false, _} ->
            {error, lists:flatten(io_lib:format("unknown key ~0tp: the keys are mode, certfile, keyfile, "
                                                "cacertfile and password", [Key]))}
    end.

%% What an ssl_dist_optfile gives (see tls_env/2).
-spec optfile_settings(file:filename()) -> {ok, tls_settings()} | {error, string()}.
optfile_settings(Optfile) ->
    case file:consult(Optfile) of
        {ok, [Options]} when is_list(Options) ->
            Sections = [Section || {Side, Section} <- Options, Side =:= server orelse Side =:= client,
                                   is_list(Section)],
            Server = section(server, Options),
            Client = section(client, Options),
            Verified = Sections =/= [] andalso
                lists:all(fun(Section) -> proplists:get_value(verify, Section) =:= verify_peer end, Sections),
            Files = [{Key, Value} || {Key, _} <- ?TLS_VARS,
                                     {ok, Value} <- [tls_text(proplists:get_value(Key, Server ++ Client))]],
            case Sections of
                [] -> {error, "the ssl_dist_optfile " ++ Optfile ++ " has neither a server nor a client section"};
                _ -> {ok, maps:from_list([{mode, if Verified -> verified; true -> unverified end} | Files])}
            end;
        {ok, _} ->
            {error, "the ssl_dist_optfile " ++ Optfile ++ " is not one list [{server, Opts}, {client, Opts}]"};
        {error, Reason} ->
            {error, "cannot read the ssl_dist_optfile " ++ Optfile ++ ": " ++ file:format_error(Reason)}
    end.

-spec section(server | client, list()) -> list().
section(Side, Options) ->
    case lists:keyfind(Side, 1, Options) of
        {Side, Section} when is_list(Section) -> Section;
        _ -> []
    end.

%% The files a mode needs and Settings lacks.
-spec missing_tls_files(tls_settings()) -> [string()].
missing_tls_files(#{mode := none}) ->
    [];
missing_tls_files(#{mode := Mode} = Settings) ->
    Needed = case Mode of
                 verified -> [certfile, cacertfile];
                 unverified -> [certfile]
             end,
    [atom_to_list(Key) || Key <- Needed, not is_map_key(Key, Settings)].

%% A path or password as the environment takes it: a non-empty string without NUL.
-spec tls_text(term()) -> {ok, string()} | error.
tls_text(Value) when is_binary(Value); is_list(Value) ->
    try unicode:characters_to_list(Value) of
        [_ | _] = Text ->
            case lists:member(0, Text) of
                true -> error;
                false -> {ok, Text}
            end;
        _ ->
            error
    catch
        error:_ -> error
    end;
tls_text(_) ->
    error.

-spec tls_error(term(), string()) -> {error, {bad_app_env, tls, {term(), string()}}}.
tls_error(Tls, Why) ->
    Shown = case Tls of
                #{password := _} -> Tls#{password := hidden};
                _ -> Tls
            end,
    {error, {bad_app_env, tls, {Shown, Why}}}.
