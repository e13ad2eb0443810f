%% Deadlines fire on time, also while other deadlines (health checks, holder watches) come due and schedule
%% far ones of their own: every timed answer of the C-node arrives within [T, T + 100 ms].
-module(distribute_pool_deadline_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([acquire_timeouts_on_time_during_health_checks/1]).
-export([long_acquire_timeout_on_time_across_a_health_round/1]).
-export([nested_checkout_on_time/1]).
-export([request_timeouts_on_time_during_health_checks/1]).

-import(dpool_ct_helper, [doc/1, do_hold_leases/3, do_release/1, with_target/2, with_target_pool/3]).

%% How late a timed answer may be: the C-node's timer coalescing (2 ms), a round trip and a busy 2-core machine.
-define(SLACK_MS, 100).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [acquire_timeouts_on_time_during_health_checks,
     long_acquire_timeout_on_time_across_a_health_round,
     nested_checkout_on_time,
     request_timeouts_on_time_during_health_checks].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec acquire_timeouts_on_time_during_health_checks(list()) -> ok.
acquire_timeouts_on_time_during_health_checks(_Config) ->
    doc("With the only connection held and health checks every 300 ms, ten checkouts with a 700 ms acquire "
        "timeout each get pool_exhausted within [700, 800] ms (it was ~900 ms: each health round re-armed "
        "the C-node's timer for the next round, past the waiter's deadline)."),
    with_held_pool(#{max_connections => 1, health_check_interval_ms => 300, acquire_timeout_ms => 700},
                   fun(Pool) ->
                           Times = [timed(fun() -> distribute_pool:with_connection(Pool, fun(_) -> ok end) end,
                                          {error, pool_exhausted})
                                    || _ <- lists:seq(1, 10)],
                           ct:log("pool_exhausted after ~p ms", [Times]),
                           assert_on_time(700, Times)
                   end).

-spec long_acquire_timeout_on_time_across_a_health_round(list()) -> ok.
long_acquire_timeout_on_time_across_a_health_round(_Config) ->
    doc("Health checks every 3000 ms, acquire timeout 2500 ms: waits that span a health round end on time too "
        "(every other one took 3500 ms)."),
    with_held_pool(#{max_connections => 1, health_check_interval_ms => 3000, acquire_timeout_ms => 2500},
                   fun(Pool) ->
                           Times = [timed(fun() -> distribute_pool:with_connection(Pool, fun(_) -> ok end) end,
                                          {error, pool_exhausted})
                                    || _ <- lists:seq(1, 3)],
                           ct:log("pool_exhausted after ~p ms", [Times]),
                           assert_on_time(2500, Times)
                   end).

-spec nested_checkout_on_time(list()) -> ok.
nested_checkout_on_time(_Config) ->
    doc("A with_connection nested in another on a pool of one, with the default acquire timeout (5000 ms), "
        "gets pool_exhausted within [5000, 5100] ms (it took 8 s)."),
    Options = #{max_connections => 1, health_check_interval_ms => 1000},
    with_target_pool("dpool_deadline_nested", Options, fun(_T, Pool) ->
        {ok, Ms} = distribute_pool:with_connection(
                     Pool,
                     fun(_Outer) ->
                             timed(fun() -> distribute_pool:with_connection(Pool, fun(_) -> inner end) end,
                                   {error, pool_exhausted})
                     end),
        ct:log("nested checkout: pool_exhausted after ~p ms", [Ms]),
        assert_on_time(5000, [Ms])
    end).

-spec request_timeouts_on_time_during_health_checks(list()) -> ok.
request_timeouts_on_time_during_health_checks(_Config) ->
    doc("Requests to a process that never answers, with health checks of the idle connections every 300 ms: "
        "each gets {error, timeout} within [T, T + 100] ms, on a lease and one-shot."),
    with_target("dpool_deadline_request", fun(T) ->
        %% A process that takes every message and never answers (the target has no code of ours).
        Silent = erpc:call(T, erlang, spawn, [timer, sleep, [infinity]]),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 2, health_check_interval_ms => 300}),
        OnLease = [begin
                       {ok, Ms} = distribute_pool:with_connection(
                                    Pool,
                                    fun(C) -> timed(fun() -> distribute_pool:request(C, Silent, hi, 700) end,
                                                    {error, timeout})
                                    end),
                       Ms
                   end || _ <- lists:seq(1, 5)],
        OneShot = [timed(fun() -> distribute_pool:request(Pool, Silent, hi, 650) end, {error, timeout})
                   || _ <- lists:seq(1, 5)],
        ct:log("on a lease: ~p ms; one-shot: ~p ms", [OnLease, OneShot]),
        assert_on_time(700, OnLease),
        assert_on_time(650, OneShot),
        ok = distribute_pool:destroy(Pool)
    end).

%% Helpers.

%% A pool to a fresh target whose every connection is held by another process while Fun runs.
-spec with_held_pool(map(), fun((distribute_pool:pool()) -> ok)) -> ok.
with_held_pool(Options, Fun) ->
    with_target_pool("dpool_deadline", Options, fun(_T, Pool) ->
        Holders = do_hold_leases(Pool, maps:get(max_connections, Options), deadline_holder),
        ok = Fun(Pool),
        ok = do_release(Holders)
    end).

%% Runs Fun, checks that it returned Expected, and gives how long it took in milliseconds.
-spec timed(fun(() -> term()), term()) -> non_neg_integer().
timed(Fun, Expected) ->
    Start = erlang:monotonic_time(millisecond),
    Expected = Fun(),
    erlang:monotonic_time(millisecond) - Start.

-spec assert_on_time(non_neg_integer(), [non_neg_integer()]) -> ok.
assert_on_time(T, Times) ->
    case [Ms || Ms <- Times, Ms < T orelse Ms > T + ?SLACK_MS] of
        [] -> ok;
        Late -> ct:fail({not_within, T, T + ?SLACK_MS, Late, Times})
    end.
