%% The code of a project that uses distribute_pool as a dependency (scripts/dep_test.sh). It uses the library as
%% any user would: the application started by application:ensure_all_started/1, which starts the C-node found in
%% code:priv_dir(distribute_pool), then a pool, a one-shot call and a call over a leased connection.
%% Besides, it checks that this priv dir lies in the build output of the project it is run from (the current
%% directory) and that the running C-node is the binary found there.
%%
%% erl -name N -setcookie C -pa $(rebar3 path) -noshell -run dep_consumer main Target
%% prints "dep_consumer: OK ..." and halts 0, or prints the failed step and halts 1.
-module(dep_consumer).

-export([main/1]).

-include_lib("kernel/include/file.hrl").

-spec main([string()]) -> no_return().
main([TargetName]) ->
    try run(list_to_atom(TargetName)) of
        Report ->
            io:format("dep_consumer: OK ~ts~n", [Report]),
            halt(0)
    catch
        throw:{step_failed, Step, Got} ->
            io:format("dep_consumer: FAILED at ~ts: ~p~n", [Step, Got]),
            halt(1);
        Class:Reason:Stack ->
            io:format("dep_consumer: FAILED: ~p:~p~n~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

-spec run(node()) -> iodata().
run(Target) ->
    step("application:ensure_all_started(distribute_pool)",
         fun() -> application:ensure_all_started(distribute_pool) end,
         fun({ok, _}) -> true; (_) -> false end),
    {ok, Cwd} = file:get_cwd(),
    Priv = code:priv_dir(distribute_pool),
    step("code:priv_dir(distribute_pool) is in this project's build output", fun() -> {Priv, Cwd} end,
         fun({P, C}) -> is_list(P) andalso lists:prefix(C ++ "/", P) end),
    Exe = filename:join(Priv, "dpool_cnode"),
    %% The C-node's OS pid, only to check that what runs is that binary (same file as /proc/<pid>/exe).
    {ok, OsPid} = distribute_pool_cnode:os_pid(),
    step("the running C-node is " ++ Exe, fun() -> {file_id(Exe), file_id(proc_exe(OsPid))} end,
         fun({{ok, Id}, {ok, Id}}) -> true; (_) -> false end),
    {ok, Pool} = step("distribute_pool:new(Target, 2)", fun() -> distribute_pool:new(Target, 2) end,
                      fun({ok, _}) -> true; (_) -> false end),
    step("distribute_pool:call(Pool, erlang, node, [])",
         fun() -> distribute_pool:call(Pool, erlang, node, []) end,
         fun(Got) -> Got =:= {ok, Target} end),
    step("with_connection + call(Conn, erlang, node, [])",
         fun() ->
                 distribute_pool:with_connection(Pool, fun(Conn) -> distribute_pool:call(Conn, erlang, node, []) end)
         end,
         fun(Got) -> Got =:= {ok, {ok, Target}} end),
    step("distribute_pool:destroy(Pool)", fun() -> distribute_pool:destroy(Pool) end, fun(Got) -> Got =:= ok end),
    step("application:stop(distribute_pool)", fun() -> application:stop(distribute_pool) end,
         fun(Got) -> Got =:= ok end),
    io_lib:format("target=~s priv_dir=~ts priv_link=~ts cnode_os_pid=~b",
                  [Target, Priv, link_target(Priv), OsPid]).

%% Runs Fun and returns its result when Check accepts it, else throws the step's name and the result.
-spec step(string(), fun(() -> Result), fun((Result) -> boolean())) -> Result.
step(Name, Fun, Check) ->
    Got = try Fun() catch Class:Reason -> {raised, Class, Reason} end,
    case Check(Got) of
        true -> Got;
        false -> throw({step_failed, Name, Got})
    end.

-spec proc_exe(non_neg_integer()) -> string().
proc_exe(OsPid) ->
    "/proc/" ++ integer_to_list(OsPid) ++ "/exe".

%% A file's identity (device and inode), following symbolic links.
-spec file_id(string()) -> {ok, {integer(), integer()}} | {error, term()}.
file_id(Path) ->
    case file:read_file_info(Path) of
        {ok, #file_info{major_device = Device, inode = Inode}} -> {ok, {Device, Inode}};
        {error, _} = Error -> Error
    end.

%% Where priv points when it is a symbolic link (rebar3 links a checkout's priv), else "(a directory)".
-spec link_target(string()) -> string().
link_target(Path) ->
    case file:read_link(Path) of
        {ok, Target} -> Target;
        {error, _} -> "(a directory)"
    end.
