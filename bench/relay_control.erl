%% A control for call_floor_ratio (docs/BENCHMARKS.md, `call_floor_ratio`), run by hand, not by `make bench`:
%% the same quotient with a plain BEAM node R as the relay in place of the C-node. A call goes caller -> R ->
%% target (erpc:call) -> R -> caller; its floor is R's ping (caller -> R -> caller) plus R's own erpc:call to
%% the target, timed inside R as the C-node times its request_rtt. No code of the pool is involved, so what
%% the call pays over its two parts here is what any relay pays on this machine.
%%
%%   erlc -o /tmp bench/relay_control.erl
%%   scripts/with_epmd.sh erl -noshell -name relay_control@127.0.0.1 -setcookie relay_$RANDOM -pa /tmp \
%%       -run relay_control main
%%
%% RELAY_ARGS (e.g. "+sbwt very_long") adds emulator flags to R. Prints one line: the p50s (median of 5
%% repetitions of 1,000 of each side, the sides taking turns every 100, after 200 of each), the means, and both
%% quotients.
-module(relay_control).
-export([main/0, relay_loop/1]).

-define(REPS, 5).
-define(ROUNDS, 10).
-define(TURN, 100).
-define(WARMUP, 200).

-spec main() -> no_return().
main() ->
    %% Hidden nodes with names of their own: no global name service between the three, none left from a run
    %% before.
    Args = ["-setcookie", atom_to_list(erlang:get_cookie()), "-hidden"],
    Extra = string:lexemes(os:getenv("RELAY_ARGS", ""), " "),
    {ok, TargetPeer, Target} = peer:start(#{name => peer:random_name("relay_control_t"), host => "127.0.0.1",
                                            longnames => true, args => Args}),
    {ok, RelayPeer, RelayNode} = peer:start(#{name => peer:random_name("relay_control_r"), host => "127.0.0.1",
                                              longnames => true, args => Args ++ Extra}),
    try
        {module, ?MODULE} = erpc:call(RelayNode, code, load_binary, [?MODULE, "relay_control.erl", object_code()]),
        Relay = erpc:call(RelayNode, erlang, spawn, [?MODULE, relay_loop, [Target]]),
        Ping = fun() -> Ref = make_ref(), Relay ! {ping, self(), Ref}, receive {Ref, pong} -> 0 end end,
        Call = fun() -> Ref = make_ref(), Relay ! {call, self(), Ref}, receive {Ref, Target, Inner} -> Inner end end,
        _ = [{timed(Ping), timed(Call)} || _ <- lists:seq(1, ?WARMUP)],
        Reps = [repetition(Ping, Call) || _ <- lists:seq(1, ?REPS)],
        [PingP50, CallP50, InnerP50, PingMean, CallMean, InnerMean] =
            [median([element(K, Rep) || Rep <- Reps]) || K <- lists:seq(1, 6)],
        io:format("relay_control ~p: ping p50 ~.1f us, R -> target p50 ~.1f us, call p50 ~.1f us: ratio ~.3f; "
                  "by means ~.1f / (~.1f + ~.1f) = ~.3f~n",
                  [Extra, PingP50, InnerP50, CallP50, CallP50 / (PingP50 + InnerP50), CallMean, PingMean, InnerMean,
                   CallMean / (PingMean + InnerMean)])
    after
        peer:stop(RelayPeer),
        peer:stop(TargetPeer)
    end,
    erlang:halt(0).

%% The relay: answers a ping at once, makes a call to the target and answers it with the time it took.
-spec relay_loop(node()) -> no_return().
relay_loop(Target) ->
    receive
        {ping, From, Ref} ->
            From ! {Ref, pong};
        {call, From, Ref} ->
            Start = erlang:monotonic_time(nanosecond),
            Node = erpc:call(Target, erlang, node, []),
            From ! {Ref, Node, erlang:monotonic_time(nanosecond) - Start}
    end,
    relay_loop(Target).

-spec object_code() -> binary().
object_code() ->
    {?MODULE, Binary, _} = code:get_object_code(?MODULE),
    Binary.

%% One repetition: p50s and means of the ping, the call and the call's inner time, in microseconds.
-spec repetition(fun(() -> integer()), fun(() -> integer())) -> {float(), float(), float(), float(), float(), float()}.
repetition(Ping, Call) ->
    Rounds = [{[timed(Ping) || _ <- lists:seq(1, ?TURN)], [timed(Call) || _ <- lists:seq(1, ?TURN)]}
              || _ <- lists:seq(1, ?ROUNDS)],
    Pings = [Us || {Ps, _} <- Rounds, {Us, _} <- Ps],
    Calls = [Us || {_, Cs} <- Rounds, {Us, _} <- Cs],
    Inners = [Inner || {_, Cs} <- Rounds, {_, Inner} <- Cs],
    {median(Pings), median(Calls), median(Inners), mean(Pings), mean(Calls), mean(Inners)}.

%% F's round trip and what it returned (nanoseconds), both in microseconds.
-spec timed(fun(() -> integer())) -> {float(), float()}.
timed(F) ->
    Start = erlang:monotonic_time(nanosecond),
    Inner = F(),
    {(erlang:monotonic_time(nanosecond) - Start) / 1000, Inner / 1000}.

-spec median([number()]) -> number().
median(Values) ->
    lists:nth((length(Values) + 1) div 2, lists:sort(Values)).

-spec mean([number()]) -> float().
mean(Values) ->
    lists:sum(Values) / length(Values).
