%% The C-node's log lines, as the application's logger events: each at its own level, with what it is about
%% as metadata (README, "Logs").
%%
%% A line reads `[dpool_cnode] <level>: [pool=P target=T connection=C caller=N] <text>' (c_src/util/log.hpp:
%% the bracket and each of its fields only where they apply, values with %XX escapes). Values stay binaries:
%% the C-node's output is no source of atoms.
-module(distribute_pool_cnode_log).

-export([log/2]).
-export([parse/1]).

-export_type([parsed/0]).

-type level() :: debug | info | notice | warning | error | critical.
-type parsed() :: {level(), #{pool | target | connection | caller => binary()}, binary()}.

%% Logs one line of the C-node whose OS pid is OsPid; a connection event (its --events) goes to telemetry
%% instead (distribute_pool_telemetry).
-spec log(non_neg_integer(), binary()) -> ok.
log(_OsPid, <<"[dpool_event] ", Event/binary>>) ->
    case event(Event) of
        {ok, Name, Meta} ->
            distribute_pool_telemetry:execute([distribute_pool, connection, Name], #{count => 1}, Meta);
        error -> ok
    end;
log(OsPid, Line) ->
    {Level, About, Text} = parse(Line),
    Meta = maps:merge(#{domain => [distribute_pool, cnode], cnode_os_pid => OsPid}, About),
    logger:log(Level, "dpool_cnode[~b]: ~ts", [OsPid, Text], Meta).

%% A line's level, what it is about, and its text (with the bracket, so that a formatter that shows no
%% metadata still shows it). A line of another form (a usage error before logging started) is a notice.
-spec parse(binary()) -> parsed().
parse(<<"[dpool_cnode] ", Rest/binary>> = Line) ->
    case binary:split(Rest, <<": ">>) of
        [Name, Text] ->
            case level(Name) of
                {ok, Level} -> {Level, about(Text), printable(Text)};
                error -> {notice, #{}, printable(Line)}
            end;
        _ ->
            {notice, #{}, printable(Line)}
    end;
parse(Line) ->
    {notice, #{}, printable(Line)}.

%% `connection_up|connection_down <pool id> [pool=... target=... connection=...] <reason>'.
-spec event(binary()) -> {ok, up | down, map()} | error.
event(Event) ->
    case binary:split(Event, <<" ">>) of
        [Kind, Rest] when Kind =:= <<"connection_up">>; Kind =:= <<"connection_down">> ->
            case binary:split(Rest, <<" ">>) of
                [Id, AboutAndReason] ->
                    try binary_to_integer(Id) of
                        PoolId ->
                            About = about(AboutAndReason),
                            Meta = About#{pool_id => PoolId},
                            case Kind of
                                <<"connection_up">> -> {ok, up, Meta};
                                <<"connection_down">> -> {ok, down, Meta#{reason => reason(AboutAndReason)}}
                            end
                    catch
                        error:badarg -> error
                    end;
                _ ->
                    error
            end;
        _ ->
            error
    end.

%% The text after the bracket of what a line is about.
-spec reason(binary()) -> binary().
reason(<<"[", _/binary>> = Text) ->
    case binary:split(Text, <<"] ">>) of
        [_, Reason] -> printable(Reason);
        _ -> printable(Text)
    end;
reason(Text) ->
    printable(Text).

-spec level(binary()) -> {ok, level()} | error.
level(<<"trace">>) -> {ok, debug};
level(<<"debug">>) -> {ok, debug};
level(<<"info">>) -> {ok, info};
level(<<"warning">>) -> {ok, warning};
level(<<"error">>) -> {ok, error};
level(<<"critical">>) -> {ok, critical};
level(_) -> error.

-spec about(binary()) -> #{pool | target | connection | caller => binary()}.
about(<<"[", Rest/binary>>) ->
    case binary:split(Rest, <<"] ">>) of
        [Fields, _Text] ->
            maps:from_list([Pair || Field <- binary:split(Fields, <<" ">>, [global]),
                                    Pair <- field(Field)]);
        _ ->
            #{}
    end;
about(_) ->
    #{}.

-spec field(binary()) -> [{pool | target | connection | caller, binary()}].
field(Field) ->
    case binary:split(Field, <<"=">>) of
        [<<"pool">>, V] -> unescaped(pool, V);
        [<<"target">>, V] -> unescaped(target, V);
        [<<"connection">>, V] -> unescaped(connection, V);
        [<<"caller">>, V] -> unescaped(caller, V);
        _ -> []
    end.

-spec unescaped(Key, binary()) -> [{Key, binary()}] when Key :: pool | target | connection | caller.
unescaped(Key, Value) ->
    %% percent_decode/1 returns an error for some bad escapes and raises for others.
    try uri_string:percent_decode(Value) of
        Decoded when is_binary(Decoded) -> [{Key, Decoded}];
        _ -> []
    catch
        _:_ -> []
    end.

-spec printable(binary()) -> binary().
printable(Bin) ->
    case unicode:characters_to_binary(Bin) of
        Text when is_binary(Text) -> Text;
        _ -> iolist_to_binary(io_lib:format("~p", [Bin]))
    end.
