%% Test support for the Gleam suite, with no dependency (no gleeunit): runs the tests with EUnit, and
%% starts and stops real target nodes with OTP's peer module. Used by test/distribute_test.gleam and
%% test/distribute/test_support.gleam.
-module(distribute_test_ffi).

-export([main/0]).
-export([start_target/1]).
-export([stop_target/1]).
-export([start_sink/2]).
-export([sink_messages/2]).
-export([strays/3]).
-export([sleep/1]).
-export([self_node/0]).
-export([binary_to_term_atom/1]).
-export([spawn_and_kill_after/2]).
-export([int_to_float/1]).
-export([println/1]).
-export([contains/2]).
-export([process_count/0]).
-export([rescue/1]).
-export([first_attempt/1]).
-export([forget_attempts/0]).
-export([capture_output/1]).
-export([library_int/2]).
-export([library_name/2]).
-export([library_connections/1]).

%% Each test gets this long: the stress tests run thousands of round trips.
-define(TEST_TIMEOUT_S, 120).

-spec main() -> no_return().
main() ->
    ok = ensure_library(),
    ok = ensure_distributed(),
    {ok, _} = application:ensure_all_started(distribute_pool),
    Tests = [{timeout, ?TEST_TIMEOUT_S, {M, F}} || M <- test_modules(), F <- test_functions(M)],
    io:format("gleam tests: ~b tests in ~p~n", [length(Tests), test_modules()]),
    Result = eunit:test(Tests, [verbose]),
    _ = application:stop(distribute_pool),
    erlang:halt(case Result of ok -> 0; _ -> 1 end).

%% The Erlang library comes from rebar3's build (make build) when the runner did not put it on the path.
-spec ensure_library() -> ok.
ensure_library() ->
    case code:which(distribute_pool) of
        non_existing ->
            _ = [code:add_patha(Dir) || Dir <- filelib:wildcard("_build/default/lib/*/ebin")],
            case code:which(distribute_pool) of
                non_existing -> erlang:error({missing_library, "run `make build` first"});
                _ -> ok
            end;
        _ ->
            ok
    end.

-spec ensure_distributed() -> ok.
ensure_distributed() ->
    case is_alive() of
        true ->
            ok;
        false ->
            Name = list_to_atom("distribute_gleam_test_" ++ os:getpid() ++ "@127.0.0.1"),
            case net_kernel:start([Name, longnames]) of
                {ok, _} -> ok;
                {error, Reason} -> erlang:error({cannot_distribute, Reason, "is epmd running?"})
            end
    end.

%% Gleam test modules: test/**/*_test.gleam, named by path with / as @ (Gleam's rule).
-spec test_modules() -> [module()].
test_modules() ->
    Files = filelib:wildcard("test/**/*_test.gleam"),
    Names = [lists:flatten(string:replace(filename:rootname(string:prefix(F, "test/")), "/", "@", all))
             || F <- Files],
    lists:sort([list_to_atom(N) || N <- Names]) -- [distribute_test].

-spec test_functions(module()) -> [atom()].
test_functions(Module) ->
    {module, Module} = code:ensure_loaded(Module),
    [F || {F, 0} <- Module:module_info(exports), lists:suffix("_test", atom_to_list(F))].

%% A target node: longnames on 127.0.0.1, this node's cookie, nothing of ours on its code path. Linked to
%% the test process, so it goes away with the test even when the test fails.
-spec start_target(binary()) -> {pid(), binary()}.
start_target(Prefix) ->
    Args = ["-setcookie", atom_to_list(erlang:get_cookie())],
    {ok, Peer, Node} = peer:start_link(#{name => peer:random_name(binary_to_list(Prefix)),
                                         host => "127.0.0.1", longnames => true, args => Args}),
    {Peer, atom_to_binary(Node, utf8)}.

-spec stop_target(pid()) -> nil.
stop_target(Peer) ->
    _ = (catch peer:stop(Peer)),
    nil.

%% A process registered as Name on the target that keeps what it is sent (it only sleeps).
-spec start_sink(binary(), binary()) -> nil.
start_sink(Node, Name) ->
    N = binary_to_atom(Node, utf8),
    Sink = erpc:call(N, erlang, spawn, [timer, sleep, [infinity]]),
    true = erpc:call(N, erlang, register, [binary_to_atom(Name, utf8), Sink]),
    nil.

-spec sink_messages(binary(), binary()) -> [term()].
sink_messages(Node, Name) ->
    N = binary_to_atom(Node, utf8),
    Sink = erpc:call(N, erlang, whereis, [binary_to_atom(Name, utf8)]),
    {messages, Ms} = erpc:call(N, erlang, process_info, [Sink, messages]),
    Ms.

%% The messages that are not a tuple whose first element is an integer in From..To, in order.
-spec strays([term()], integer(), integer()) -> [term()].
strays(Messages, From, To) ->
    [M || M <- Messages, not (is_tuple(M) andalso tuple_size(M) > 0 andalso is_integer(element(1, M))
                              andalso element(1, M) >= From andalso element(1, M) =< To)].

-spec sleep(integer()) -> nil.
sleep(Ms) ->
    timer:sleep(Ms),
    nil.

-spec self_node() -> binary().
self_node() ->
    atom_to_binary(node(), utf8).

-spec binary_to_term_atom(binary()) -> atom().
binary_to_term_atom(Name) ->
    binary_to_atom(Name, utf8).

%% Runs Fun in a new process and kills that process after Ms; returns at once.
-spec spawn_and_kill_after(fun(() -> term()), integer()) -> nil.
spawn_and_kill_after(Fun, Ms) ->
    Pid = spawn(Fun),
    _ = timer:kill_after(Ms, Pid),
    nil.

-spec int_to_float(integer()) -> float().
int_to_float(N) ->
    float(N).

-spec println(binary()) -> nil.
println(Text) ->
    io:format("~ts~n", [Text]),
    nil.

-spec process_count() -> integer().
process_count() ->
    erlang:system_info(process_count).

%% Runs Fun; {ok, Result}, or {error, nil} when it raised (a Gleam panic is an Erlang error).
-spec rescue(fun(() -> T)) -> {ok, T} | {error, nil}.
rescue(Fun) ->
    try Fun() of
        Value -> {ok, Value}
    catch
        _:_ -> {error, nil}
    end.

%% True the first time it is asked about Id, from any process; forget_attempts/0 starts over.
-spec first_attempt(integer()) -> boolean().
first_attempt(Id) ->
    Key = {?MODULE, attempted, Id},
    case persistent_term:get(Key, false) of
        false -> persistent_term:put(Key, true), true;
        true -> false
    end.

-spec forget_attempts() -> nil.
forget_attempts() ->
    _ = [persistent_term:erase(K) || {{?MODULE, attempted, _} = K, _} <- persistent_term:get()],
    nil.

%% Runs Fun in a process whose group leader keeps what it prints; {Result, Text}.
-spec capture_output(fun(() -> T)) -> {T, binary()}.
capture_output(Fun) ->
    Capture = spawn_link(fun() -> capture([]) end),
    Self = self(),
    {Runner, Ref} = spawn_monitor(fun() ->
                                          group_leader(Capture, self()),
                                          Self ! {?MODULE, result, self(), Fun()}
                                  end),
    Result = receive
                 {?MODULE, result, Runner, R} -> R;
                 {'DOWN', Ref, process, Runner, Why} -> erlang:error({capture_output, Why})
             end,
    receive {'DOWN', Ref, process, Runner, _} -> ok end,
    Capture ! {text, self()},
    Text = receive {?MODULE, text, Capture, T} -> T end,
    unlink(Capture),
    exit(Capture, kill),
    {Result, Text}.

-spec capture([string()]) -> ok.
capture(Acc) ->
    receive
        {io_request, From, ReplyAs, {put_chars, Encoding, Chars}} ->
            From ! {io_reply, ReplyAs, ok},
            capture([unicode:characters_to_list(Chars, Encoding) | Acc]);
        {io_request, From, ReplyAs, {put_chars, Encoding, M, F, A}} ->
            From ! {io_reply, ReplyAs, ok},
            capture([unicode:characters_to_list(apply(M, F, A), Encoding) | Acc]);
        {io_request, From, ReplyAs, _Other} ->
            From ! {io_reply, ReplyAs, {error, enotsup}},
            capture(Acc);
        {text, From} ->
            From ! {?MODULE, text, self(), unicode:characters_to_binary(lists:reverse(Acc))},
            capture(Acc)
    end.

%% The Erlang library's own stats map of the pool with this id (from distribute_pool:pools/0), read by key:
%% what the Gleam module's decoded stats are checked against, field by field.
-spec library_stats(integer()) -> map().
library_stats(PoolId) ->
    {ok, Pools} = distribute_pool:pools(),
    [Stats] = [S || {_Pool, #{pool_id := Id} = S} <- Pools, Id =:= PoolId],
    Stats.

%% The integer under Keys (a path of keys as text: [<<"hits">>], [<<"connections_closed">>, <<"idle">>]).
-spec library_int(integer(), [binary()]) -> integer().
library_int(PoolId, Keys) ->
    Value = lists:foldl(fun(Key, Map) -> maps:get(binary_to_existing_atom(Key, utf8), Map) end,
                        library_stats(PoolId), Keys),
    true = is_integer(Value),
    Value.

%% An atom of the stats map (target, state) as text.
-spec library_name(integer(), binary()) -> binary().
library_name(PoolId, Key) ->
    atom_to_binary(maps:get(binary_to_existing_atom(Key, utf8), library_stats(PoolId)), utf8).

%% The pool's connections as {Id, Node, State}, in the library's order.
-spec library_connections(integer()) -> [{integer(), binary(), binary()}].
library_connections(PoolId) ->
    [{Id, atom_to_binary(Node, utf8), atom_to_binary(State, utf8)}
     || #{id := Id, node := Node, state := State} <- maps:get(connections, library_stats(PoolId))].

-spec contains(binary(), binary()) -> boolean().
contains(Text, Part) ->
    string:find(Text, Part) =/= nomatch.
