%% TLS distribution (issue 15; README, "TLS distribution"): the embedded C-node's TLS settings from the
%% application env and the starter's ssl_dist_optfile, the pool option `tls', and real TLS clusters of OTP
%% nodes running inet_tls_dist with certificates made at test time (dpool_tls_certs): every operation in each
%% TLS mode, `verified' refusing another CA and a wrong host name, and plain and TLS ends that cannot talk
%% failing clearly within a bound.
%%
%% The test node itself runs plain distribution, so it cannot talk to a TLS node over distribution: the TLS
%% nodes are peers controlled over their stdio (peer's connection => standard_io), and what must run on a TLS
%% node (the library as a caller of its embedded C-node) runs there through peer:call/5, with this suite and
%% the library on the peer's code path.
%%
%% Group library: what holds without the C-node's TLS. Group cnode_tls: what needs the C-node to speak TLS
%% (and to know the pool option tls).
-module(distribute_pool_tls_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("kernel/include/net_address.hrl").

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_wait_value/3, do_stop_peer/1, do_uniq/1]).

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).
-export([tls_peers_form_a_cluster/1,
         tls_env_from_optfile/1,
         pool_tls_option_is_normalized/1,
         tls_starter_without_optfile_fails_start/1,
         embedded_cnode_gets_tls_through_its_environment/1,
         plain_cnode_to_tls_target/1,
         every_operation_over_tls_unverified/1,
         every_operation_over_tls_verified/1,
         encrypted_key_with_password/1,
         verified_refuses_other_ca/1,
         verified_refuses_wrong_host/1,
         tls_cnode_to_plain_target/1,
         plain_caller_to_tls_cnode/1,
         unusable_tls_option_is_invalid_config/1]).
%% Run on a TLS caller peer.
-export([do_every_operation/2]).
-export([big_message_to_a_tls_pool/1, do_start_keeper/1, do_kept/1]).

%% How long a failed connect may take beyond its connect timeout (a loaded 2-core machine).
-define(MARGIN_MS, 15000).
-define(CONNECT_MS, 3000).
-define(PEER_CALL_MS, 120000).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 5}}].

-spec all() -> list().
all() ->
    [{group, library}, {group, cnode_tls}].

-spec groups() -> list().
groups() ->
    [{library, [], [tls_peers_form_a_cluster,
                    tls_env_from_optfile,
                    pool_tls_option_is_normalized,
                    tls_starter_without_optfile_fails_start,
                    embedded_cnode_gets_tls_through_its_environment,
                    plain_cnode_to_tls_target,
                    big_message_to_a_tls_pool]},
     {cnode_tls, [], [every_operation_over_tls_unverified,
                      every_operation_over_tls_verified,
                      encrypted_key_with_password,
                      verified_refuses_other_ca,
                      verified_refuses_wrong_host,
                      tls_cnode_to_plain_target,
                      plain_caller_to_tls_cnode,
                      unusable_tls_option_is_invalid_config]}].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    Certs = dpool_tls_certs:generate(?config(priv_dir, Config)),
    ct:log("certificates and optfiles: ~p", [Certs]),
    [{certs, Certs} | dpool_ct_helper:do_init_suite(Config)].

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases: group library.

-spec tls_peers_form_a_cluster(list()) -> ok.
tls_peers_form_a_cluster(Config) ->
    doc("The certificates work with OTP's own inet_tls_dist: two nodes with CA a's certificates (verified) "
        "connect over TLS; a verifying node refuses CA b's certificate and the one for another host; an "
        "unverified node accepts the latter; the plain test node reaches none of them."),
    with_peers([tls(Config, "dpool_tls_a1", {a, verified}), tls(Config, "dpool_tls_a2", {a, verified}),
                tls(Config, "dpool_tls_b", {b, verified}), tls(Config, "dpool_tls_wrong", {wrong_host, unverified}),
                tls(Config, "dpool_tls_u", {a, unverified})],
               fun([{A1, N1}, {_, N2}, {_, B}, {_, Wrong}, {U, _}]) ->
        {ok, [["inet_tls"]]} = pcall(A1, init, get_argument, [proto_dist]),
        pong = pcall(A1, net_adm, ping, [N2]),
        tls = protocol(A1, N2),
        pang = pcall(A1, net_adm, ping, [B]),
        pang = pcall(A1, net_adm, ping, [Wrong]),
        pong = pcall(U, net_adm, ping, [Wrong]),
        pang = net_adm:ping(N1),
        ok
    end).

-spec tls_env_from_optfile(list()) -> ok.
tls_env_from_optfile(Config) ->
    doc("distribute_pool_env:tls_env/2: auto follows the starter (none when plain, its optfile when TLS); "
        "an optfile gives its server section's files, then the client's, and verified only when every "
        "section verifies the peer; unverified/verified take the starter's files; a map is taken as given; "
        "bad values, a TLS starter without an optfile, an unreadable optfile, missing files and a mode that "
        "would lock the starter out of its C-node are {bad_app_env, tls, {Value, Why}} with Why naming what "
        "to set, and never the password."),
    Dir = dir(Config),
    Plain = #{tls => false, optfile => none},
    TlsNoFile = #{tls => true, optfile => none},
    Starter = fun(Key) -> #{tls => true, optfile => optfile(Config, Key)} end,
    A = node_cert(Config, a),
    APass = node_cert(Config, a_password),
    {ok, None} = distribute_pool_env:tls_env(auto, Plain),
    None = vars(none, #{}),
    {ok, None} = distribute_pool_env:tls_env(none, Plain),
    {ok, None} = distribute_pool_env:tls_env(#{mode => none}, Plain),
    %% The test node runs plain distribution.
    {ok, None} = distribute_pool_env:tls_env(auto),
    {ok, Verified} = distribute_pool_env:tls_env(auto, Starter({a, verified})),
    Verified = vars(verified, maps:with([certfile, keyfile, cacertfile], A)),
    {ok, Unverified} = distribute_pool_env:tls_env(auto, Starter({a, unverified})),
    Unverified = vars(unverified, maps:with([certfile, keyfile, cacertfile], A)),
    {ok, WithPassword} = distribute_pool_env:tls_env(auto, Starter({a_password, verified})),
    WithPassword = vars(verified, APass),
    %% A mode with the starter's files, whatever its optfile's mode.
    {ok, Verified} = distribute_pool_env:tls_env(verified, Starter({a, unverified})),
    {ok, Unverified} = distribute_pool_env:tls_env(unverified, Starter({a, verified})),
    %% Another optfile, as a string or a binary, whatever the starter's.
    {ok, WithPassword} = distribute_pool_env:tls_env({optfile, optfile(Config, {a_password, verified})},
                                                     Starter({b, verified})),
    {ok, Unverified} = distribute_pool_env:tls_env({optfile, list_to_binary(optfile(Config, {a, unverified}))},
                                                   TlsNoFile),
    %% Server first, then client; verified only if every section says verify_peer.
    Mixed = dpool_tls_certs:write_optfile(filename:join(Dir, "mixed.conf"),
                                          [{server, [{certfile, "/s.pem"}, {keyfile, "/s.key"},
                                                     {verify, verify_peer}]},
                                           {client, [{certfile, "/c.pem"}, {cacertfile, "/c_ca.pem"},
                                                     {password, "client pass"}, {verify, verify_peer}]}]),
    {ok, MixedVars} = distribute_pool_env:tls_env({optfile, Mixed}, TlsNoFile),
    MixedVars = vars(verified, #{certfile => "/s.pem", keyfile => "/s.key", cacertfile => "/c_ca.pem",
                                 password => "client pass"}),
    HalfVerified = dpool_tls_certs:write_optfile(filename:join(Dir, "half.conf"),
                                                 [{server, [{certfile, "/s.pem"}, {keyfile, "/s.key"},
                                                            {cacertfile, "/ca.pem"}, {verify, verify_peer}]},
                                                  {client, [{verify, verify_none}]}]),
    {ok, HalfVars} = distribute_pool_env:tls_env({optfile, HalfVerified}, TlsNoFile),
    HalfVars = vars(unverified, #{certfile => "/s.pem", keyfile => "/s.key", cacertfile => "/ca.pem"}),
    ServerOnly = dpool_tls_certs:write_optfile(filename:join(Dir, "server_only.conf"),
                                               [{server, [{certfile, "/s.pem"}, {keyfile, "/s.key"},
                                                          {cacertfile, "/ca.pem"}, {verify, verify_peer}]}]),
    {ok, ServerOnlyVars} = distribute_pool_env:tls_env({optfile, ServerOnly}, TlsNoFile),
    ServerOnlyVars = vars(verified, #{certfile => "/s.pem", keyfile => "/s.key", cacertfile => "/ca.pem"}),
    %% A map as given, strings or binaries.
    Map = #{mode => verified, certfile => "/m.pem", keyfile => <<"/m.key">>, cacertfile => "/m_ca.pem",
            password => <<"map pass">>},
    {ok, MapVars} = distribute_pool_env:tls_env(Map, TlsNoFile),
    MapVars = vars(verified, #{certfile => "/m.pem", keyfile => "/m.key", cacertfile => "/m_ca.pem",
                               password => "map pass"}),
    {ok, _} = distribute_pool_env:tls_env(maps:remove(cacertfile, Map#{mode := unverified}), TlsNoFile),
    %% The key may be in the certificate's file.
    {ok, _} = distribute_pool_env:tls_env(maps:remove(keyfile, Map), TlsNoFile),
    %% Refusals, each saying what to set.
    Refusals =
        [{auto, TlsNoFile, "-ssl_dist_optfile"},
         {verified, TlsNoFile, "needs certfile, cacertfile"},
         {{optfile, filename:join(Dir, "missing.conf")}, TlsNoFile, "cannot read the ssl_dist_optfile"},
         {auto, #{tls => true, optfile => filename:join(Dir, "missing.conf")}, "cannot read"},
         {{optfile, write(Dir, "two_terms.conf", "[]. [].\n")}, TlsNoFile, "is not one list"},
         {{optfile, write(Dir, "no_sections.conf", "[{other, []}].\n")}, TlsNoFile, "neither a server nor"},
         {{optfile, write(Dir, "syntax.conf", "[{server, [}.\n")}, TlsNoFile, "cannot read"},
         {none, Starter({a, verified}), "must take TLS"},
         {#{mode => none}, Starter({a, verified}), "must take TLS"},
         {verified, Plain, "-proto_dist inet_tls"},
         {{optfile, optfile(Config, {a, verified})}, Plain, "-proto_dist inet_tls"},
         {Map#{mode := secure}, TlsNoFile, "tls must be"},
         {maps:remove(cacertfile, Map), TlsNoFile, "needs cacertfile"},
         {maps:remove(certfile, Map#{mode := unverified}), TlsNoFile, "needs certfile"},
         {Map#{certfile := 42}, TlsNoFile, "certfile must be"},
         {Map#{certfile := ""}, TlsNoFile, "certfile must be"},
         {Map#{keyfile := [$a, 0]}, TlsNoFile, "keyfile must be"},
         {Map#{verify => verify_peer}, TlsNoFile, "unknown key verify"},
         {{optfile, 42}, TlsNoFile, "Path must be"},
         {"verified", TlsNoFile, "tls must be"}],
    [begin
         {error, {bad_app_env, tls, {Shown, Why}}} = Error = distribute_pool_env:tls_env(Value, StarterDist),
         ct:log("~0tp: ~ts", [Shown, Why]),
         case string:find(Why, Expected) of
             nomatch -> ct:fail({why_does_not_say, Expected, Why});
             _ -> ok
         end,
         nomatch = binary:match(term_to_binary(Error), <<"map pass">>)
     end || {Value, StarterDist, Expected} <- Refusals],
    {error, {bad_app_env, tls, {#{password := hidden}, _}}} =
        distribute_pool_env:tls_env(maps:remove(cacertfile, Map), TlsNoFile),
    %% Through check/1, as the application starts.
    Base = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 1},
    {ok, #{tls_env := Default}} = distribute_pool_env:check(Base),
    None = Default(),
    {error, {bad_app_env, tls, {verified, _}}} = distribute_pool_env:check(Base#{tls => verified}),
    ok.

-spec pool_tls_option_is_normalized(list()) -> ok.
pool_tls_option_is_normalized(_Config) ->
    doc("The pool option tls: a mode goes as it is; in a map, paths and the password given as strings go as "
        "binaries, the rest as it is; the password (like the pool cookie) is hidden in the library's errors and "
        "log form, and new/2 with one gives an error that does not contain it."),
    Secret = "s3cret tls pass",
    {ok, #{options := #{tls := verified}}} = distribute_pool_config:prepare('t@127.0.0.1', #{max_connections => 1,
                                                                                           tls => verified}),
    {ok, #{options := #{tls := Wire}}} =
        distribute_pool_config:prepare('t@127.0.0.1',
                                       [{max_connections, 1},
                                        {tls, #{mode => verified, certfile => "/c.pem", keyfile => <<"/c.key">>,
                                                cacertfile => "/ca.pem", password => Secret, other => "x"}}]),
    #{mode := verified, certfile := <<"/c.pem">>, keyfile := <<"/c.key">>, cacertfile := <<"/ca.pem">>,
      other := "x"} = Wire,
    SecretBin = list_to_binary(Secret),
    #{password := SecretBin} = Wire,
    #{tls := #{password := hidden, certfile := <<"/c.pem">>}, cookie := hidden, max_connections := 1} =
        distribute_pool_config:loggable(#{tls => Wire, cookie => <<"c00kie">>, max_connections => 1}),
    {error, {invalid_config, {bad_options, Shown}}} =
        distribute_pool_config:prepare('t@127.0.0.1', [{tls, #{mode => verified, password => Secret}}, oops | tail]),
    [{tls, #{password := hidden}}, oops | tail] = Shown,
    %% Whatever the C-node makes of it (it may not know the option yet, or the files do not exist).
    {error, Why} = distribute_pool:new('dpool_nobody@127.0.0.1',
                                       #{max_connections => 1, connect_timeout_ms => ?CONNECT_MS,
                                         tls => #{mode => verified, certfile => "/nonexistent/dpool.pem",
                                                  keyfile => "/nonexistent/dpool.key", password => Secret}}),
    Text = distribute_pool:format_error(Why),
    ct:log("~0tp: ~ts", [Why, Text]),
    nomatch = binary:match(term_to_binary({Why, Text}), SecretBin),
    nomatch = string:find(Text, Secret),
    ok.

-spec tls_starter_without_optfile_fails_start(list()) -> ok.
tls_starter_without_optfile_fails_start(Config) ->
    doc("A node on inet_tls configured with -ssl_dist_opt (no optfile) cannot start the application with tls "
        "auto: the error is {bad_app_env, tls, {auto, Why}}, Why naming -ssl_dist_optfile and the tls "
        "variable; tls none on a TLS node fails too; tls {optfile, Path} starts it."),
    #{certfile := Cert, keyfile := Key, cacertfile := Ca} = node_cert(Config, a),
    DistOpts = ["-proto_dist", "inet_tls", "-ssl_dist_opt", "server_certfile", Cert, "server_keyfile", Key,
                "server_cacertfile", Ca, "client_certfile", Cert, "client_keyfile", Key, "client_cacertfile", Ca],
    with_peers([{"dpool_tls_opts", DistOpts, dpool_tls_certs:code_path_args()}], fun([{Peer, _}]) ->
        ok = pcall(Peer, application, set_env, [distribute_pool, cnode_executable, dpool_ct_helper:do_executable()]),
        {error, AutoError} = pcall(Peer, application, ensure_all_started, [distribute_pool]),
        ct:log("tls auto: ~p", [AutoError]),
        {bad_app_env, tls, {auto, Why}} = find_bad_app_env(AutoError),
        {match, _} = re:run(Why, "without -ssl_dist_optfile.*set tls to \\{optfile, Path\\}"),
        ok = pcall(Peer, application, set_env, [distribute_pool, tls, none]),
        {error, NoneError} = pcall(Peer, application, ensure_all_started, [distribute_pool]),
        {bad_app_env, tls, {none, _}} = find_bad_app_env(NoneError),
        ok = pcall(Peer, application, set_env, [distribute_pool, tls, {optfile, optfile(Config, {a, verified})}]),
        try
            {ok, _} = pcall(Peer, application, ensure_all_started, [distribute_pool])
        after
            pcall(Peer, application, stop, [distribute_pool])
        end,
        ok
    end).

-spec embedded_cnode_gets_tls_through_its_environment(list()) -> ok.
embedded_cnode_gets_tls_through_its_environment(Config) ->
    doc("The embedded C-node of a TLS node (tls auto, an optfile with an encrypted key and its password) gets "
        "the mode, the files and the password in its environment (/proc/PID/environ) and none of them on its "
        "command line (/proc/PID/cmdline); the plain test node's C-node gets mode none and no files."),
    Cert = node_cert(Config, a_password),
    with_peers([caller(Config, "dpool_tls_env", {a_password, verified})], fun([{Caller, _}]) ->
        with_library(Caller, fun(_CNode) ->
            {ok, OsPid} = pcall(Caller, distribute_pool_cnode, os_pid, []),
            Env = proc_strings(OsPid, "environ"),
            Expected = maps:to_list(vars_map(vars(verified, Cert))),
            [] = [{Var, Value} || {Var, Value} <- Expected, not lists:member(Var ++ "=" ++ Value, Env)],
            CommandLine = proc_strings(OsPid, "cmdline"),
            ct:log("C-node command line: ~p", [CommandLine]),
            [] = [Arg || Arg <- CommandLine, Value <- maps:values(Cert), string:find(Arg, Value) =/= nomatch],
            [] = [Arg || Arg <- CommandLine, lists:prefix("--tls", Arg)]
        end)
    end),
    Own = proc_strings(dpool_ct_helper:do_cnode_os_pid(), "environ"),
    true = lists:member("DISTRIBUTE_POOL_TLS=none", Own),
    [] = [V || V <- Own, lists:prefix("DISTRIBUTE_POOL_TLS_", V)],
    ok.

-spec plain_cnode_to_tls_target(list()) -> ok.
plain_cnode_to_tls_target(Config) ->
    doc("A plain C-node (the test node's) cannot open a pool to a TLS target: new/2 gives {error, "
        "{connection_failed, _}} within the connect timeout and a margin, never hangs; it still serves a plain "
        "target afterwards."),
    with_peers([tls(Config, "dpool_tls_target", {a, unverified}), plain("dpool_plain_target")],
               fun([{_, T}, {_, Plain}]) ->
        {Elapsed, Result} = timed(fun() -> distribute_pool:new(T, #{max_connections => 1,
                                                                    connect_timeout_ms => ?CONNECT_MS}) end),
        ct:log("~b ms: ~p", [Elapsed, Result]),
        {error, {connection_failed, {_Kind, _Text}}} = Result,
        true = Elapsed < ?CONNECT_MS + ?MARGIN_MS,
        {ok, Pool} = distribute_pool:new(Plain, #{max_connections => 1}),
        {ok, Plain} = distribute_pool:call(Pool, erlang, node, []),
        ok = distribute_pool:destroy(Pool)
    end).

-spec big_message_to_a_tls_pool(list()) -> ok.
big_message_to_a_tls_pool(Config) ->
    doc("A plain caller's big messages ({tag, Bin} of 2 MiB and a bare 3 MiB binary, whose tails come into the "
        "C-node through pipes) sent on a lease of a pool over TLS arrive intact: the tails are read into memory "
        "and encrypted (info: splice fallbacks), never spliced into the TLS socket under the encryption."),
    Cert = node_cert(Config, a),
    with_peers([caller(Config, "dpool_tls_target", {a, unverified})], fun([{Peer, T}]) ->
        CNode = dpool_ct_helper:do_cnode(),
        #{splice := Before} = dpool_ct_helper:do_cnode_info(CNode),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1,
                                              tls => #{mode => unverified,
                                                       certfile => maps:get(certfile, Cert),
                                                       keyfile => maps:get(keyfile, Cert)}}),
        ok = pcall(Peer, ?MODULE, do_start_keeper, [dpool_big_keeper]),
        Messages = [{tag, rand:bytes(2 * 1024 * 1024)}, rand:bytes(3 * 1024 * 1024), small],
        {ok, Sent} = distribute_pool:with_connection(
                       Pool, fun(C) -> [distribute_pool:send(C, dpool_big_keeper, M) || M <- Messages] end),
        [ok, ok, ok] = Sent,
        Digests = [erlang:md5(term_to_binary(M)) || M <- Messages],
        do_wait_until(fun() -> pcall(Peer, ?MODULE, do_kept, [dpool_big_keeper]) =:= Digests end, 60000),
        #{splice := After} = dpool_ct_helper:do_cnode_info(CNode),
        ct:log("splice before ~p~nafter ~p", [Before, After]),
        2 = maps:get(packets, After) - maps:get(packets, Before),
        2 = maps:get(fallbacks, After) - maps:get(fallbacks, Before),
        {ok, T} = distribute_pool:call(Pool, erlang, node, []),
        ok = distribute_pool:destroy(Pool)
    end).

%% On a target peer (called over its control connection): a process registered as Name that keeps a digest of
%% each message it receives, in order.
-spec do_start_keeper(atom()) -> ok.
do_start_keeper(Name) ->
    Parent = self(),
    Pid = spawn(fun() -> register(Name, self()), Parent ! registered, keep([]) end),
    receive registered -> ok after 10000 -> error({keeper_not_started, Pid}) end.

-spec do_kept(atom()) -> [binary()].
do_kept(Name) ->
    Name ! {kept, self()},
    receive {kept, Digests} -> Digests after 10000 -> error(keeper_silent) end.

keep(Digests) ->
    receive
        {kept, From} -> From ! {kept, lists:reverse(Digests)}, keep(Digests);
        Message -> keep([erlang:md5(term_to_binary(Message)) | Digests])
    end.

%% Cases: group cnode_tls.

-spec every_operation_over_tls_unverified(list()) -> ok.
every_operation_over_tls_unverified(Config) ->
    doc("A TLS cluster in mode unverified (caller, its embedded C-node, target): every operation works, and "
        "the target sees the pool's connections over TLS."),
    every_operation(Config, unverified).

-spec every_operation_over_tls_verified(list()) -> ok.
every_operation_over_tls_verified(Config) ->
    doc("A TLS cluster in mode verified (caller, its embedded C-node, target): every operation works, and "
        "the target sees the pool's connections over TLS."),
    every_operation(Config, verified).

-spec encrypted_key_with_password(list()) -> ok.
encrypted_key_with_password(Config) ->
    doc("A caller whose optfile has an encrypted key and its password: its embedded C-node (tls auto) "
        "decrypts the key with the password from its environment, takes the caller, and reaches a verified "
        "TLS target."),
    with_peers([caller(Config, "dpool_tls_pw", {a_password, verified}), tls(Config, "dpool_tls_t", {a, verified})],
               fun([{Caller, _}, {_, T}]) ->
        with_library(Caller, fun(_CNode) ->
            reaches(Caller, T, 1)
        end)
    end).

-spec verified_refuses_other_ca(list()) -> ok.
verified_refuses_other_ca(Config) ->
    doc("A verified pool refuses a target whose certificate another CA signed: {error, {connection_failed, "
        "{tls_failed, Text}}}, Text about the certificate; the same target with tls unverified works."),
    refuses(Config, b, "certif|verif|unknown.ca|issuer").

-spec verified_refuses_wrong_host(list()) -> ok.
verified_refuses_wrong_host(Config) ->
    doc("A verified pool refuses a target whose certificate (from the right CA) is for another host: {error, "
        "{connection_failed, {tls_failed, Text}}}, Text about the host name; with tls unverified it works."),
    refuses(Config, wrong_host, "host|name").

-spec tls_cnode_to_plain_target(list()) -> ok.
tls_cnode_to_plain_target(Config) ->
    doc("A C-node in TLS mode cannot open a pool to a plain target by default: {error, {connection_failed, _}} "
        "within the connect timeout and a margin, never a hang; the pool option tls => none reaches it."),
    with_peers([caller(Config, "dpool_tls_caller", {a, verified}), plain("dpool_plain_target")],
               fun([{Caller, _}, {_, Plain}]) ->
        with_library(Caller, fun(_CNode) ->
            Options = #{max_connections => 1, connect_timeout_ms => ?CONNECT_MS},
            {Elapsed, Result} = timed(fun() -> pcall(Caller, distribute_pool, new, [Plain, Options]) end),
            ct:log("~b ms: ~p", [Elapsed, Result]),
            {error, {connection_failed, {_Kind, _Text}}} = Result,
            true = Elapsed < ?CONNECT_MS + ?MARGIN_MS,
            reaches(Caller, Plain, Options#{tls => none})
        end)
    end).

-spec plain_caller_to_tls_cnode(list()) -> ok.
plain_caller_to_tls_cnode(Config) ->
    doc("A plain node cannot use a C-node in TLS mode: net_kernel:connect_node/1 gives false and new/2 "
        "{error, {connection_failed, {cnode_not_running, _}}}, each within a bound; a TLS node connects to "
        "the same C-node."),
    {ok, TlsEnv} = distribute_pool_env:tls_env({optfile, optfile(Config, {a, verified})},
                                               #{tls => true, optfile => none}),
    Alive = do_uniq("dpool_tls_cnode"),
    CNodePort = dpool_ct_helper:do_start_cnode_port(["--name", Alive ++ "@127.0.0.1", "--lanes", "1"],
                                                    atom_to_list(erlang:get_cookie()), TlsEnv),
    try
        #{node := CNode} = CNodePort,
        with_peers([tls(Config, "dpool_tls_peer", {a, verified})], fun([{Peer, T}]) ->
            {ConnectMs, false} = timed(fun() -> net_kernel:connect_node(CNode) end),
            {NewMs, {error, {connection_failed, {cnode_not_running, Text}}}} =
                timed(fun() -> distribute_pool:new(T, #{max_connections => 1, cnode => CNode}) end),
            ct:log("connect_node: ~b ms; new/2: ~b ms, ~ts", [ConnectMs, NewMs, Text]),
            {match, _} = re:run(Text, "runs plain distribution and the C-node TLS"),
            %% net_setuptime (7 s) bounds a handshake that stalls.
            true = ConnectMs < 7000 + ?MARGIN_MS,
            true = NewMs < 7000 + ?MARGIN_MS,
            true = pcall(Peer, net_kernel, connect_node, [CNode]),
            tls = protocol(Peer, CNode)
        end)
    after
        dpool_ct_helper:do_stop_cnode_port(CNodePort)
    end.

-spec unusable_tls_option_is_invalid_config(list()) -> ok.
unusable_tls_option_is_invalid_config(Config) ->
    doc("The C-node judges the pool option tls: a value of the wrong shape is {bad_value, tls, Value, Allowed} "
        "(hidden when it holds a password), files it cannot use are {tls_unusable, Text} naming the file, and "
        "the password shows in neither; a mode with files that work is taken (the test node's plain C-node)."),
    Secret = "s3cret tls pass",
    SecretBin = list_to_binary(Secret),
    Target = 'dpool_nobody@127.0.0.1',
    Base = #{max_connections => 1, connect_timeout_ms => ?CONNECT_MS},
    Missing = filename:join(dir(Config), "no_such_cert.pem"),
    CaA = maps:get(a, maps:get(ca, certs(Config))),
    Refusals =
        [{secure, {bad_value, tls, secure}},
         {#{mode => verified, certfile => 42}, {bad_value, tls}},
         {#{certfile => Missing}, {bad_value, tls}},
         {#{mode => verified, certfile => 42, password => Secret}, {bad_value, tls, hidden}},
         %% A misspelt key may hold the password too: a refused map is always hidden.
         {#{mode => verified, passwd => Secret}, {bad_value, tls, hidden}},
         {#{mode => verified, certfile => Missing, cacertfile => CaA, password => Secret}, {tls_unusable, Missing}},
         {#{mode => verified, certfile => maps:get(certfile, node_cert(Config, a)), cacertfile => CaA,
            keyfile => maps:get(keyfile, node_cert(Config, b))}, {tls_unusable, "keyfile"}},
         %% The test node's C-node has no CA file of its own.
         {#{mode => verified, certfile => maps:get(certfile, node_cert(Config, a))}, {tls_unusable, "cacertfile"}}],
    [begin
         {error, {invalid_config, Why}} = distribute_pool:new(Target, Base#{tls => Tls}),
         Text = distribute_pool:format_error({invalid_config, Why}),
         ct:log("~0tp: ~ts", [Why, Text]),
         nomatch = binary:match(term_to_binary(Why), SecretBin),
         nomatch = string:find(Text, Secret),
         case Expected of
             {bad_value, tls, Shown} -> {bad_value, tls, Shown, _} = Why;
             {bad_value, tls} -> {bad_value, tls, _, _} = Why;
             {tls_unusable, Says} -> {tls_unusable, WhyText} = Why,
                                     {_, _} = binary:match(WhyText, list_to_binary(Says))
         end
     end || {Tls, Expected} <- Refusals],
    %% Files that work get past the option's check: the target, unknown to epmd, is what fails.
    {error, {connection_failed, {not_registered, _}}} =
        distribute_pool:new(Target, Base#{tls => (maps:with([certfile, keyfile, cacertfile],
                                                            node_cert(Config, a)))#{mode => verified}}),
    ok.

%% Run on a TLS caller peer with the library started: every operation of the library on a pool to T, over
%% TLS; fails (raises) at the first one that does not give what it should. The fixture server on T reports
%% to this process. Gives what the target saw of the connections' protocols and the pool's tls in its stats.
-spec do_every_operation(node(), node()) -> map().
do_every_operation(T, CNode) ->
    {Module, Bin, File} = code:get_object_code(dpool_fixture_server),
    {module, Module} = erpc:call(T, code, load_binary, [Module, File, Bin]),
    {ok, FxPid} = erpc:call(T, dpool_fixture_server, start, [dpool_fx, self()]),
    {ok, Pool} = distribute_pool:new(T, #{max_connections => 2}),
    Stats = ok_value(distribute_pool:stats(Pool)),
    PoolNodes = [N || #{node := N} <- maps:get(connections, Stats)],
    2 = length(PoolNodes),
    %% Each of the pool's connections, as the target sees it, and this node's lanes to the C-node.
    Protocols = lists:usort([do_wait_value(fun() -> protocol_info(erpc:call(T, net_kernel, node_info, [N])) end,
                                           fun(P) -> P =/= not_connected end, 10000)
                             || N <- PoolNodes]
                            ++ [protocol_info(net_kernel:node_info(Lane))
                                || Lane <- distribute_pool_client:lane_nodes({distribute_pool, CNode}),
                                   lists:member(Lane, nodes(hidden))]),
    [tls] = Protocols,
    {ok, Results} =
        distribute_pool:with_connection(
          Pool,
          fun(C) ->
                  [distribute_pool:ping(C),
                   distribute_pool:call(C, erlang, node, []),
                   distribute_pool:call(C, lists, reverse, [[1, 2, 3]], 5000),
                   distribute_pool:request(C, dpool_fx, {echo, over_tls}),
                   distribute_pool:request(C, dpool_fx, whoami, 5000),
                   distribute_pool:send(C, dpool_fx, {by_name, 1}),
                   distribute_pool:send(C, FxPid, {by_pid, 2}),
                   distribute_pool:send(C, {dpool_fx, T}, {by_name_at_node, 3}),
                   distribute_pool:send_async(C, dpool_fx, {async, 4}),
                   distribute_pool:connection_info(C)]
          end),
    [pong, {ok, T}, {ok, [3, 2, 1]}, {ok, over_tls}, {ok, ConnNode}, ok, ok, ok, ok, #{node := ConnNode}] = Results,
    true = lists:member(ConnNode, PoolNodes),
    [fixture_message(M) || M <- [{by_name, 1}, {by_pid, 2}, {by_name_at_node, 3}, {async, 4}]],
    %% One-shot forms.
    {ok, T} = distribute_pool:call(Pool, erlang, node, []),
    {ok, one_shot} = distribute_pool:request(Pool, dpool_fx, {echo, one_shot}),
    ok = distribute_pool:send(Pool, dpool_fx, {one_shot, 5}),
    fixture_message({one_shot, 5}),
    %% Batches.
    Seq = lists:seq(1, 20),
    {ok, Seq} = distribute_pool:send_batch(Pool, Seq, fun(C, I) -> ok = distribute_pool:send(C, dpool_fx, {batch, I}),
                                                                   I
                                                       end),
    [fixture_message({batch, I}) || I <- Seq],
    {ok, #{successful := Seq, failed := []}} =
        distribute_pool:send_batch_parallel(Pool, Seq, fun(C, I) ->
                                                               {ok, {I}} = distribute_pool:request(C, dpool_fx, {echo, {I}}),
                                                               I
                                                       end),
    {ok, 20} = distribute_pool:cast_batch(Pool, dpool_fx, [{cast, I} || I <- Seq]),
    [fixture_message({cast, I}) || I <- Seq],
    {ok, #{total_connections := 2, failed_operations := 0}} = distribute_pool:stats(Pool),
    {ok, #{failed_operations := 0, successful_operations := Done}} =
        distribute_pool:stress_test(Pool, 50, 4, #{progress => false}),
    true = Done >= 200,
    ok = distribute_pool:destroy(Pool),
    {error, invalid_pool} = distribute_pool:stats(Pool),
    do_wait_until(fun() -> [] =:= [N || N <- erpc:call(T, erlang, nodes, [hidden]), lists:member(N, PoolNodes)] end,
                  15000),
    #{pool_nodes => PoolNodes, protocols => Protocols, stats_tls => maps:get(tls, Stats, missing)}.

%% The protocol (tcp, tls) of a connection, from net_kernel:node_info/1; not_connected.
-spec protocol_info({ok, list()} | {error, term()}) -> atom().
protocol_info({ok, Info}) ->
    {address, #net_address{protocol = Protocol}} = lists:keyfind(address, 1, Info),
    Protocol;
protocol_info({error, _}) ->
    not_connected.

%% Helpers.

every_operation(Config, Mode) ->
    with_peers([caller(Config, "dpool_tls_caller", {a, Mode}), tls(Config, "dpool_tls_target", {a, Mode})],
               fun([{Caller, _}, {_, T}]) ->
        with_library(Caller, fun(CNode) ->
            #{stats_tls := StatsTls} = Seen = pcall(Caller, ?MODULE, do_every_operation, [T, CNode]),
            ct:log("~p", [Seen]),
            %% The pool's mode in its stats: the C-node's (tls auto: the caller's optfile).
            true = lists:member(StatsTls, [Mode, atom_to_binary(Mode)])
        end)
    end).

%% A verified pool from a verified caller's C-node to a target with certificate Cert (signed by another CA,
%% or for another host; the target itself verifies nothing) is refused with Text matching Pattern; an
%% unverified one is not.
refuses(Config, Cert, Pattern) ->
    CaA = maps:get(a, maps:get(ca, certs(Config))),
    with_peers([caller(Config, "dpool_tls_caller", {a, verified}), tls(Config, "dpool_tls_target", {Cert, unverified})],
               fun([{Caller, _}, {_, T}]) ->
        with_library(Caller, fun(_CNode) ->
            Options = #{max_connections => 1, connect_timeout_ms => ?CONNECT_MS},
            %% The C-node's own mode (verified), and the pool's, with the CA file given as a string.
            [begin
                 {Elapsed, Result} = timed(fun() -> pcall(Caller, distribute_pool, new, [T, O]) end),
                 ct:log("~0p: ~b ms, ~p", [maps:get(tls, O, cnode_default), Elapsed, Result]),
                 {error, {connection_failed, {tls_failed, Text}}} = Result,
                 {match, _} = re:run(Text, Pattern, [caseless]),
                 true = Elapsed < ?CONNECT_MS + ?MARGIN_MS
             end || O <- [Options, Options#{tls => #{mode => verified, cacertfile => CaA}}]],
            reaches(Caller, T, Options#{tls => unverified})
        end)
    end).

%% A pool made on Caller with Options reaches T (a call there) and is destroyed.
reaches(Caller, T, Options) ->
    {ok, Pool} = pcall(Caller, distribute_pool, new, [T, Options]),
    {ok, T} = pcall(Caller, distribute_pool, call, [Pool, erlang, node, []]),
    ok = pcall(Caller, distribute_pool, destroy, [Pool]).

%% The protocol of Peer's connection to Node.
protocol(Peer, Node) ->
    protocol_info(pcall(Peer, net_kernel, node_info, [Node])).

%% Peer specs for with_peers/2: {Prefix, TlsArgs, Extra}.
tls(Config, Prefix, Optfile) ->
    {Prefix, dpool_tls_certs:peer_args(optfile(Config, Optfile)), []}.

caller(Config, Prefix, Optfile) ->
    {Prefix, dpool_tls_certs:peer_args(optfile(Config, Optfile)), dpool_tls_certs:code_path_args()}.

plain(Prefix) ->
    {Prefix, [], []}.

%% Starts the peers of Specs (controlled over stdio), runs Fun with [{Peer, Node}], and stops each peer by its
%% pid, also when Fun fails, and those started before one that could not be.
with_peers(Specs, Fun) ->
    with_peers(Specs, [], Fun).

with_peers([], Started, Fun) ->
    Fun(lists:reverse(Started));
with_peers([{Prefix, TlsArgs, Extra} | Specs], Started, Fun) ->
    {Peer, _} = This = dpool_tls_certs:start_peer(Prefix, TlsArgs, Extra),
    try
        with_peers(Specs, [This | Started], Fun)
    after
        do_stop_peer(Peer)
    end.

%% Starts the library on Peer (its embedded C-node, tls auto, allowed_callers the starter), runs Fun with the
%% C-node's name, and stops the library (and with it the C-node) afterwards.
with_library(Peer, Fun) ->
    ok = pcall(Peer, application, set_env, [distribute_pool, cnode_executable, dpool_ct_helper:do_executable()]),
    {ok, _} = pcall(Peer, application, ensure_all_started, [distribute_pool]),
    try
        {distribute_pool, CNode} = pcall(Peer, distribute_pool_cnode, address, []),
        Fun(CNode)
    after
        _ = (catch pcall(Peer, application, stop, [distribute_pool]))
    end.

pcall(Peer, M, F, A) ->
    peer:call(Peer, M, F, A, ?PEER_CALL_MS).

timed(Fun) ->
    Start = erlang:monotonic_time(millisecond),
    Result = Fun(),
    {erlang:monotonic_time(millisecond) - Start, Result}.

fixture_message(Msg) ->
    receive
        {fixture, dpool_fx, Msg} -> ok
    after 15000 ->
        error({no_fixture_message, Msg})
    end.

ok_value({ok, Value}) -> Value.

certs(Config) ->
    ?config(certs, Config).

dir(Config) ->
    maps:get(dir, certs(Config)).

optfile(Config, Key) ->
    maps:get(Key, maps:get(optfile, certs(Config))).

node_cert(Config, Name) ->
    maps:get(Name, maps:get(node, certs(Config))).

write(Dir, Name, Text) ->
    Path = filename:join(Dir, Name),
    ok = file:write_file(Path, Text),
    Path.

%% What tls_env/2 gives for Mode and the settings of Files (certfile, keyfile, cacertfile, password).
vars(Mode, Files) ->
    [{"DISTRIBUTE_POOL_TLS", atom_to_list(Mode)},
     {"DISTRIBUTE_POOL_TLS_CERTFILE", maps:get(certfile, Files, false)},
     {"DISTRIBUTE_POOL_TLS_KEYFILE", maps:get(keyfile, Files, false)},
     {"DISTRIBUTE_POOL_TLS_CACERTFILE", maps:get(cacertfile, Files, false)},
     {"DISTRIBUTE_POOL_TLS_PASSWORD", maps:get(password, Files, false)}].

%% The variables that are set.
vars_map(Vars) ->
    maps:from_list([{Var, Value} || {Var, Value} <- Vars, Value =/= false]).

%% The NUL-separated strings of /proc/PID/File.
proc_strings(OsPid, File) ->
    {ok, Bin} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/" ++ File),
    [binary_to_list(S) || S <- binary:split(Bin, <<0>>, [global, trim_all])].

%% The {bad_app_env, tls, _} inside what application:ensure_all_started/1 gave.
find_bad_app_env({bad_app_env, tls, _} = Found) ->
    Found;
find_bad_app_env(Tuple) when is_tuple(Tuple) ->
    find_bad_app_env(tuple_to_list(Tuple));
find_bad_app_env([First | Rest]) ->
    case find_bad_app_env(First) of
        not_found -> find_bad_app_env(Rest);
        Found -> Found
    end;
find_bad_app_env(_) ->
    not_found.
