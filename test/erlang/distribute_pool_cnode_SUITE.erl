%% The C-node as a process: its command line, its names in epmd, who may connect to it, and the
%% application that owns it (embedded) or points at one (external).
-module(distribute_pool_cnode_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("kernel/include/file.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([embedded_cnode_published_in_epmd/1]).
-export([embedded_cnode_accepts_our_node/1]).
-export([embedded_cnode_uses_local_name_style/1]).
-export([cookie_not_on_command_line/1]).
-export([cnode_refuses_wrong_cookie/1]).
-export([help_prints_usage_and_exits_zero/1]).
-export([bad_usage_exits_two/1]).
-export([name_in_use_exits_one/1]).
-export([sname_style_starts/1]).
-export([external_cnode_via_option/1]).
-export([application_fails_when_not_distributed/1]).
-export([application_stop_stops_cnode/1]).
-export([application_start_fails_when_cnode_fails/1]).
-export([cnode_executable_app_env/1]).
-export([embedded_cnode_restarted_after_exit/1]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_uniq/1, do_cnode/0, do_cnode_os_pid/0, do_cnode_info/1,
                          do_run_exe/1, do_os_alive/1, do_pool_id/1, do_pool_nodes/2, with_target_pool/3,
                          with_nodes/2]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [embedded_cnode_published_in_epmd,
     embedded_cnode_accepts_our_node,
     embedded_cnode_uses_local_name_style,
     cookie_not_on_command_line,
     cnode_refuses_wrong_cookie,
     help_prints_usage_and_exits_zero,
     bad_usage_exits_two,
     name_in_use_exits_one,
     sname_style_starts,
     external_cnode_via_option,
     application_fails_when_not_distributed,
     application_stop_stops_cnode,
     application_start_fails_when_cnode_fails,
     cnode_executable_app_env,
     %% Last: it kills the embedded C-node.
     embedded_cnode_restarted_after_exit].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec embedded_cnode_published_in_epmd(list()) -> ok.
embedded_cnode_published_in_epmd(_Config) ->
    doc("The embedded C-node is registered in epmd under the name the application reports."),
    {_, CNode} = do_cnode(),
    [Alive, _Host] = string:split(atom_to_list(CNode), "@"),
    {ok, Names} = net_adm:names("127.0.0.1"),
    {Alive, EpmdPort} = lists:keyfind(Alive, 1, Names),
    true = is_integer(EpmdPort) andalso EpmdPort > 0,
    ok.

-spec embedded_cnode_accepts_our_node(list()) -> ok.
embedded_cnode_accepts_our_node(_Config) ->
    doc("Our node (same cookie) connects to the C-node, which answers info and ping as a hidden node."),
    {Service, CNode} = Server = do_cnode(),
    Info = do_cnode_info(Server),
    pong = gen_server:call(Server, ping, 5000),
    pong = distribute_pool_client:call(Server, ping, 5000),
    {error, badarg} = gen_server:call(Server, {ping, 1}, 5000),
    true = lists:member(CNode, nodes(hidden)),
    true = do_same_name(CNode, maps:get(node, Info)),
    true = do_same_name(Service, maps:get(service, Info)),
    {ok, Pools} = gen_server:call(Server, pools, 5000),
    true = is_list(Pools),
    ok.

-spec embedded_cnode_uses_local_name_style(list()) -> ok.
embedded_cnode_uses_local_name_style(_Config) ->
    doc("The embedded C-node takes a long name, <alive>_dpool@<host>, because this node has one."),
    true = net_kernel:longnames(),
    {_, CNode} = do_cnode(),
    [Alive, Host] = string:split(atom_to_list(node()), "@"),
    Expected = Alive ++ "_dpool@" ++ Host,
    Expected = atom_to_list(CNode),
    ok.

-spec cookie_not_on_command_line(list()) -> ok.
cookie_not_on_command_line(_Config) ->
    doc("The cookie reaches the C-node through its environment, not its command line."),
    OsPid = do_cnode_os_pid(),
    {ok, CmdLine} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/cmdline"),
    true = byte_size(CmdLine) > 0,
    Cookie = atom_to_binary(erlang:get_cookie(), utf8),
    nomatch = binary:match(CmdLine, Cookie),
    {ok, Environ} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/environ"),
    {_, _} = binary:match(Environ, <<"DISTRIBUTE_POOL_COOKIE=", Cookie/binary, 0>>),
    ok.

-spec cnode_refuses_wrong_cookie(list()) -> ok.
cnode_refuses_wrong_cookie(_Config) ->
    doc("A node with another cookie cannot connect to the C-node; one with ours, started the same way, can."),
    {Service, CNode} = Server = do_cnode(),
    with_nodes([{isolated, "dpool_goodcookie", atom_to_list(erlang:get_cookie())},
                {isolated, "dpool_badcookie", "not_the_dpool_cookie"}], fun([{Good, _}, {Bad, _}]) ->
        true = peer:call(Good, net_kernel, connect_node, [CNode]),
        {ok, _} = peer:call(Good, gen_server, call, [{Service, CNode}, info, 5000]),
        false = peer:call(Bad, net_kernel, connect_node, [CNode]),
        {'EXIT', _} = (catch peer:call(Bad, gen_server, call, [{Service, CNode}, info, 2000])),
        false = lists:member(CNode, peer:call(Bad, erlang, nodes, [hidden])),
        %% The refusal did not hurt the C-node.
        _ = do_cnode_info(Server),
        ok
    end).

-spec help_prints_usage_and_exits_zero(list()) -> ok.
help_prints_usage_and_exits_zero(_Config) ->
    doc("dpool_cnode --help prints its usage, naming --name and --sname, and exits 0."),
    {0, Output} = do_run_exe(["--help"]),
    Lower = string:lowercase(Output),
    true = string:find(Lower, "usage") =/= nomatch,
    true = string:find(Output, "--name") =/= nomatch,
    true = string:find(Output, "--sname") =/= nomatch,
    ok.

-spec bad_usage_exits_two(list()) -> ok.
bad_usage_exits_two(_Config) ->
    doc("An unknown option is bad usage: exit status 2."),
    {2, _} = do_run_exe(["--no-such-option-dpool"]),
    ok.

-spec name_in_use_exits_one(list()) -> ok.
name_in_use_exits_one(_Config) ->
    doc("Starting a second C-node under a name already in epmd is a startup failure: exit status 1."),
    {_, CNode} = do_cnode(),
    OsPid = do_cnode_os_pid(),
    {1, _} = do_run_exe(["--name", atom_to_list(CNode), "--exit-on-stdin-eof"]),
    %% The running one is untouched.
    OsPid = do_cnode_os_pid(),
    _ = do_cnode_info(do_cnode()),
    ok.

-spec sname_style_starts(list()) -> ok.
sname_style_starts(_Config) ->
    doc("A C-node started with --sname reaches READY and is registered in epmd."),
    {ok, Host} = inet:gethostname(),
    ShortHost = hd(string:split(Host, ".")),
    Alive = do_uniq("dpool_sname"),
    C = with_nodes([{cnode, ["--sname", Alive ++ "@" ++ ShortHost]}], fun([Started]) ->
        Expected = Alive ++ "@" ++ ShortHost,
        Expected = atom_to_list(maps:get(node, Started)),
        {ok, Names} = net_adm:names("127.0.0.1"),
        {Alive, _} = lists:keyfind(Alive, 1, Names),
        Started
    end),
    false = do_os_alive(maps:get(os_pid, C)),
    do_wait_until(fun() ->
                          {ok, Names2} = net_adm:names("127.0.0.1"),
                          not lists:keymember(Alive, 1, Names2)
                  end, 5000).

-spec external_cnode_via_option(list()) -> ok.
external_cnode_via_option(_Config) ->
    doc("The `cnode` option points the library at a C-node the test started; its pool lives there."),
    Alive = do_uniq("dpool_ext"),
    Nodes = [{cnode, ["--name", Alive ++ "@127.0.0.1"]}, {target, "dpool_ext_target"}],
    with_nodes(Nodes, fun([C, {_, Target}]) ->
        ExtNode = maps:get(node, C),
        {_, Embedded} = do_cnode(),
        true = ExtNode =/= Embedded,
        {ok, Pool} = distribute_pool:new(Target, #{max_connections => 2, cnode => ExtNode}),
        {ok, {ok, Target}} =
            distribute_pool:with_connection(Pool, fun(Conn) -> distribute_pool:call(Conn, erlang, node, []) end),
        PoolId = do_pool_id(Pool),
        {ok, ExtPools} = gen_server:call({distribute_pool, ExtNode}, pools, 5000),
        true = lists:member(PoolId, ExtPools),
        %% The connections carry the external C-node's name.
        do_wait_until(fun() -> length(do_pool_nodes(Target, Pool)) =:= 2 end, 10000),
        [ExtAlive, _] = string:split(atom_to_list(ExtNode), "@"),
        true = lists:all(fun(N) -> lists:prefix(ExtAlive ++ "_", atom_to_list(N)) end, do_pool_nodes(Target, Pool)),
        %% The {Service, Node} form of the option reaches the same C-node.
        {ok, Pool2} = distribute_pool:new(atom_to_binary(Target, utf8),
                                          #{max_connections => 1, cnode => {distribute_pool, ExtNode}}),
        {ok, ExtPools2} = gen_server:call({distribute_pool, ExtNode}, pools, 5000),
        true = lists:member(do_pool_id(Pool2), ExtPools2),
        ok = distribute_pool:destroy(Pool2),
        ok = distribute_pool:destroy(Pool)
    end).

-spec application_fails_when_not_distributed(list()) -> ok.
application_fails_when_not_distributed(_Config) ->
    doc("On a node that is not distributed the application does not start, and says why."),
    LibEbin = filename:dirname(code:which(distribute_pool)),
    with_nodes([{not_distributed, ["-pa", LibEbin]}], fun([{Peer, nonode@nohost}]) ->
        nonode@nohost = peer:call(Peer, erlang, node, []),
        {error, Reason} = peer:call(Peer, application, ensure_all_started, [distribute_pool]),
        Text = lists:flatten(io_lib:format("~p", [Reason])),
        true = string:find(Text, "not_distributed") =/= nomatch,
        undefined = peer:call(Peer, erlang, whereis, [distribute_pool_sup]),
        {error, not_started} = peer:call(Peer, distribute_pool, default_cnode, [])
    end).

-spec application_stop_stops_cnode(list()) -> ok.
application_stop_stops_cnode(_Config) ->
    doc("Stopping the application ends the embedded C-node process and its epmd registration; starting it "
        "again brings up a new one."),
    OsPid = do_cnode_os_pid(),
    {_, CNode} = do_cnode(),
    [Alive, _] = string:split(atom_to_list(CNode), "@"),
    ok = application:stop(distribute_pool),
    false = do_os_alive(OsPid),
    {ok, Names} = net_adm:names("127.0.0.1"),
    false = lists:keymember(Alive, 1, Names),
    {ok, _} = application:ensure_all_started(distribute_pool),
    true = do_cnode_os_pid() =/= OsPid,
    _ = do_cnode_info(do_cnode()),
    ok.

-spec application_start_fails_when_cnode_fails(list()) -> ok.
application_start_fails_when_cnode_fails(_Config) ->
    doc("When the C-node cannot start (here: bad cnode_args), the application start fails with a reason "
        "that says so, and no C-node is left running."),
    ok = application:stop(distribute_pool),
    try
        ok = application:set_env(distribute_pool, cnode_args, ["--no-such-option-dpool"]),
        {error, Reason} = application:ensure_all_started(distribute_pool),
        Text = lists:flatten(io_lib:format("~p", [Reason])),
        ct:log("start failed: ~ts", [Text]),
        true = string:find(Text, "cnode_start_failed") =/= nomatch,
        undefined = whereis(distribute_pool_sup),
        ok = application:set_env(distribute_pool, cnode_args, [not_a_string]),
        {error, {distribute_pool, {{bad_app_env, cnode_args, _}, _}}} =
            application:ensure_all_started(distribute_pool)
    after
        ok = application:set_env(distribute_pool, cnode_args, []),
        {ok, _} = application:ensure_all_started(distribute_pool)
    end,
    _ = do_cnode_info(do_cnode()),
    ok.

-spec cnode_executable_app_env(list()) -> ok.
cnode_executable_app_env(_Config) ->
    doc("The embedded C-node runs the binary the application env cnode_executable names (priv/dpool_cnode by "
        "default; the sanitizer build in scripts/sanitize_test.sh); a path to no file, or a value that is no "
        "path, fails the application start with a reason that names it."),
    %% The same file (device and inode): the configured path may go through symbolic links.
    Identity = fun(Path) ->
                       {ok, #file_info{major_device = Device, inode = Inode}} = file:read_file_info(Path),
                       {Device, Inode}
               end,
    Running = Identity("/proc/" ++ integer_to_list(do_cnode_os_pid()) ++ "/exe"),
    Running = Identity(dpool_ct_helper:do_executable()),
    Missing = filename:join(["/nonexistent", do_uniq("dpool"), "dpool_cnode"]),
    Before = application:get_env(distribute_pool, cnode_executable),
    ok = application:stop(distribute_pool),
    try
        ok = application:set_env(distribute_pool, cnode_executable, Missing),
        {error, {distribute_pool, {{shutdown, {failed_to_start_child, distribute_pool_cnode,
                                               {cnode_executable_missing, Missing}}}, _}}} =
            application:ensure_all_started(distribute_pool),
        undefined = whereis(distribute_pool_sup),
        ok = application:set_env(distribute_pool, cnode_executable, not_a_path),
        {error, {distribute_pool, {{bad_app_env, cnode_executable, not_a_path}, _}}} =
            application:ensure_all_started(distribute_pool)
    after
        ok = dpool_ct_helper:do_set_env(cnode_executable, Before),
        {ok, _} = application:ensure_all_started(distribute_pool)
    end,
    _ = do_cnode_info(do_cnode()),
    ok.

-spec embedded_cnode_restarted_after_exit(list()) -> ok.
embedded_cnode_restarted_after_exit(_Config) ->
    doc("When the embedded C-node dies, the supervisor starts a new one under the same name, which works."),
    {_, OldNode} = do_cnode(),
    OldPid = dpool_ct_helper:do_kill_cnode(30000),
    false = do_os_alive(OldPid),
    {_, OldNode} = do_cnode(),
    _ = do_cnode_info(do_cnode()),
    with_target_pool("dpool_restart_target", 1, fun(_Target, Pool) ->
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1)
    end).

%% Helpers.

-spec do_same_name(atom(), term()) -> boolean().
do_same_name(Atom, Atom) -> true;
do_same_name(Atom, Bin) when is_binary(Bin) -> atom_to_binary(Atom, utf8) =:= Bin;
do_same_name(Atom, List) when is_list(List) -> atom_to_list(Atom) =:= List;
do_same_name(_, _) -> false.
