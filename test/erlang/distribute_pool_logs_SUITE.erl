%% The C-node's log lines as the application's logger sees them (README, "Logs"): each at its own level, with
%% what it is about as metadata, and a run of repeated failures collapsed: its first line, at most one summary
%% per interval, and its end once.
-module(distribute_pool_logs_SUITE).

-include_lib("common_test/include/ct.hrl").

-import(dpool_ct_helper, [doc/1, do_uniq/1, do_wait_until/2, do_wait_value/3, do_stats/1, do_stop_peer/1,
                          do_start_named_target/2]).

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([cnode_log_level_is_checked_and_passed/1,
         lines_are_parsed_into_level_metadata_and_text/1,
         a_target_outage_is_logged_collapsed/1]).
%% A logger handler (logger:add_handler/3): sends the C-node's events to the test process.
-export([log/2]).

%% The suite's C-node summarizes a run of failures at most this often.
-define(REPEAT_MS, 1000).
-define(HANDLER, dpool_logs_capture).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [cnode_log_level_is_checked_and_passed,
     lines_are_parsed_into_level_metadata_and_text,
     a_target_outage_is_logged_collapsed].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    _ = application:load(distribute_pool),
    ok = application:set_env(distribute_pool, cnode_args, ["--log-repeat-interval-ms", integer_to_list(?REPEAT_MS)]),
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    ok = dpool_ct_helper:do_end_suite(Config),
    ok = application:set_env(distribute_pool, cnode_args, []).

-spec log(logger:log_event(), logger:handler_config()) -> ok.
log(#{meta := #{domain := [distribute_pool, cnode]}} = Event, #{config := #{pid := Pid}}) ->
    Pid ! {?HANDLER, Event},
    ok;
log(_Event, _Config) ->
    ok.

%% Cases.

-spec cnode_log_level_is_checked_and_passed(list()) -> ok.
cnode_log_level_is_checked_and_passed(_Config) ->
    doc("The app env cnode_log_level: a value other than debug, info, warning, error or none stops the "
        "application's start with bad_app_env; each becomes the C-node's --log-level, which a C-node takes "
        "(its --help names the levels)."),
    Base = #{cnode => embedded, service => distribute_pool, cnode_args => [], lanes => 1},
    {error, {bad_app_env, cnode_log_level, loud}} = distribute_pool_env:check(Base#{cnode_log_level => loud}),
    {ok, #{cnode_log_level := info}} = distribute_pool_env:check(Base),
    Levels = [debug, info, warning, error, none],
    [{ok, #{cnode_log_level := L}} = distribute_pool_env:check(Base#{cnode_log_level => L}) || L <- Levels],
    Args = [distribute_pool_env:log_level_args(L) || L <- Levels],
    [["--log-level", "debug"], ["--log-level", "info"], ["--log-level", "warn"], ["--log-level", "error"],
     ["--log-level", "off"]] = Args,
    %% The C-node takes each: with a level it did not know it would stop at once with exit status 2.
    [{ok, _} = run_cnode_briefly(A) || A <- Args],
    ok.

%% Starts the C-node binary with Args and a name, and stops it as soon as it says READY: {ok, Line}, or
%% {exit, Status, Output} when it stops first.
-spec run_cnode_briefly([string()]) -> {ok, binary()} | {exit, integer(), binary()}.
run_cnode_briefly(Args) ->
    Port = open_port({spawn_executable, dpool_ct_helper:do_executable()},
                     [{args, ["--name", do_uniq("dpool_logs_lvl") ++ "@127.0.0.1", "--lanes", "1" | Args]},
                      {env, [{"DISTRIBUTE_POOL_COOKIE", atom_to_list(erlang:get_cookie())}]},
                      {line, 4096}, binary, exit_status, stderr_to_stdout]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    Result = wait_ready(Port, <<>>),
    _ = os:cmd("kill " ++ integer_to_list(OsPid)),
    _ = (catch port_close(Port)),
    Result.

-spec wait_ready(port(), binary()) -> {ok, binary()} | {exit, integer(), binary()}.
wait_ready(Port, Seen) ->
    receive
        {Port, {data, {eol, <<"READY ", _/binary>> = Line}}} -> {ok, Line};
        {Port, {data, {_, Line}}} -> wait_ready(Port, <<Seen/binary, Line/binary, "\n">>);
        {Port, {exit_status, Status}} -> {exit, Status, Seen}
    after 20000 -> ct:fail({no_ready, Seen})
    end.

-spec lines_are_parsed_into_level_metadata_and_text(list()) -> ok.
lines_are_parsed_into_level_metadata_and_text(_Config) ->
    doc("Each level of the C-node's lines maps to logger's; the fields in front of the text become metadata, "
        "%XX escapes undone; a line of another form is a notice with no metadata."),
    {warning, #{pool := <<"orders eu">>, target := <<"t@127.0.0.1">>, connection := <<"c_1@127.0.0.1">>},
     <<"[pool=orders%20eu target=t@127.0.0.1 connection=c_1@127.0.0.1] lost">>} =
        distribute_pool_cnode_log:parse(<<"[dpool_cnode] warning: [pool=orders%20eu target=t@127.0.0.1 "
                                          "connection=c_1@127.0.0.1] lost">>),
    {info, #{caller := <<"a@h">>}, <<"[caller=a@h] caller connected to lane 2">>} =
        distribute_pool_cnode_log:parse(<<"[dpool_cnode] info: [caller=a@h] caller connected to lane 2">>),
    [{Level, #{}, <<"x">>} = distribute_pool_cnode_log:parse(<<"[dpool_cnode] ", Name/binary, ": x">>)
     || {Name, Level} <- [{<<"trace">>, debug}, {<<"debug">>, debug}, {<<"info">>, info},
                          {<<"warning">>, warning}, {<<"error">>, error}, {<<"critical">>, critical}]],
    {notice, Empty, <<"TLS: no such file">>} = distribute_pool_cnode_log:parse(<<"TLS: no such file">>),
    0 = map_size(Empty),
    %% Fields it does not know, and escapes that are no escapes, are left out.
    {info, #{pool := <<"p">>} = Some, _} =
        distribute_pool_cnode_log:parse(<<"[dpool_cnode] info: [pool=p color=red target=%zz] x">>),
    1 = map_size(Some),
    ok.

-spec a_target_outage_is_logged_collapsed(list()) -> ok.
a_target_outage_is_logged_collapsed(_Config) ->
    doc("A named pool whose target goes away: the lost connections and the failed reconnects each give one "
        "warning with the pool's name and target as metadata, then at most one summary per interval while "
        "they go on (not one line per connection per backoff step), and the end of the run once, at info, when "
        "the target is back."),
    Alive = do_uniq("dpool_logs_t"),
    {Peer, T} = do_start_named_target(Alive, false),
    TargetBin = atom_to_binary(T),
    Name = dpool_logs_pool,
    ok = logger:add_handler(?HANDLER, ?MODULE, #{config => #{pid => self()}, level => all}),
    %% The recovery is an info event: logger's primary level (notice here) would drop it before any handler.
    #{level := Primary} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, info),
    try
        {ok, Pool} = distribute_pool:new(T, #{name => Name, max_connections => 4, min_connections => 4,
                                              backoff_min_ms => 50, backoff_max_ms => 200}),
        do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 4 end, 10000),
        _ = flush(),
        Down = erlang:monotonic_time(millisecond),
        ok = do_stop_peer(Peer),
        %% Reconnects fail every 50..200 ms on each of 4 connections: dozens of failures in 3 intervals.
        do_wait_until(fun() -> maps:get(reconnect_attempts, do_stats(Pool)) >= 40 end, 30000),
        Summaries = do_wait_value(fun() -> [E || E <- collected(), text_has(E, <<"more times in">>)] end,
                                  fun(S) -> S =/= [] end, 10000),
        Outage = collected(),
        Seconds = (erlang:monotonic_time(millisecond) - Down) / 1000,
        ct:log("~b events in ~.1f s of outage (~b reconnect attempts):~n~s",
               [length(Outage), Seconds, maps:get(reconnect_attempts, do_stats(Pool)), texts(Outage)]),
        [First | _] = [E || E <- Outage, text_has(E, <<"connecting to ", TargetBin/binary, " failed: ">>)],
        #{level := warning, meta := #{pool := <<"dpool_logs_pool">>, target := TargetBin}} = First,
        [Lost | _] = [E || E <- Outage, text_has(E, <<"connections to ", TargetBin/binary, " failed: ">>)],
        #{level := warning, meta := #{pool := <<"dpool_logs_pool">>, target := TargetBin, connection := _}} = Lost,
        [#{level := warning, meta := #{pool := <<"dpool_logs_pool">>}} | _] = Summaries,
        %% Collapsed: per run, its first line and one summary per interval at most (plus one for rounding).
        Failures = [E || E <- Outage, text_has(E, <<"failed">>)],
        true = length(Failures) =< 2 * (2 + ceil(Seconds * 1000 / ?REPEAT_MS)),
        %% The target back: the run of failed connects ends with one line.
        {Peer2, T} = do_start_named_target(Alive, false),
        try
            do_wait_until(fun() -> maps:get(available_connections, do_stats(Pool)) =:= 4 end, 30000),
            Recovered = do_wait_value(fun() -> [E || E <- collected(), text_has(E, <<"works again after">>)] end,
                                      fun(R) -> R =/= [] end, 10000),
            %% A warning, as the failures it ends: seen at the level they were seen.
            [#{level := warning, meta := #{pool := <<"dpool_logs_pool">>, target := TargetBin}} | _] = Recovered,
            ok = distribute_pool:destroy(Pool)
        after
            do_stop_peer(Peer2)
        end
    after
        ok = logger:set_primary_config(level, Primary),
        _ = logger:remove_handler(?HANDLER),
        do_stop_peer(Peer)
    end.

%% Helpers.

%% The events the handler sent since the last call (kept in the process dictionary across calls).
-spec collected() -> [logger:log_event()].
collected() ->
    All = get_collected() ++ flush(),
    put(collected, All),
    All.

-spec get_collected() -> [logger:log_event()].
get_collected() ->
    case get(collected) of
        undefined -> [];
        Events -> Events
    end.

-spec flush() -> [logger:log_event()].
flush() ->
    receive
        {?HANDLER, Event} -> [Event | flush()]
    after 0 -> []
    end.

-spec text(logger:log_event()) -> binary().
text(#{msg := {string, String}}) ->
    unicode:characters_to_binary(String);
text(#{msg := {Format, Args}}) when is_list(Args) ->
    unicode:characters_to_binary(io_lib:format(Format, Args));
text(_) ->
    <<>>.

-spec text_has(logger:log_event(), binary()) -> boolean().
text_has(Event, Part) ->
    binary:match(text(Event), Part) =/= nomatch.

-spec texts([logger:log_event()]) -> iolist().
texts(Events) ->
    [io_lib:format("  ~p ~ts~n", [L, text(E)]) || #{level := L} = E <- Events].
