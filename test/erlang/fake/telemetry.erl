%% Test-only: a stand-in for the telemetry library (hex is out of reach here) with the part of its documented
%% API the tests use: attach/4, attach_many/4, detach/1, execute/3. Handlers live in an ETS table owned by
%% whoever called attach first; distribute_pool_telemetry_SUITE compiles and loads this module, and unloads
%% it, itself.
-module(telemetry).

-export([attach/4, attach_many/4, detach/1, execute/3]).

-define(TABLE, fake_telemetry_handlers).

-spec attach(term(), [atom()], fun(([atom()], map(), map(), term()) -> any()), term()) -> ok | {error, already_exists}.
attach(Id, Event, Fun, Config) ->
    attach_many(Id, [Event], Fun, Config).

-spec attach_many(term(), [[atom()]], fun(([atom()], map(), map(), term()) -> any()), term()) ->
    ok | {error, already_exists}.
attach_many(Id, Events, Fun, Config) ->
    ensure_table(),
    case ets:insert_new(?TABLE, {Id, Events, Fun, Config}) of
        true -> ok;
        false -> {error, already_exists}
    end.

-spec detach(term()) -> ok | {error, not_found}.
detach(Id) ->
    case ets:whereis(?TABLE) =/= undefined andalso ets:take(?TABLE, Id) of
        [_] -> ok;
        _ -> {error, not_found}
    end.

%% As telemetry does: every handler attached to Event is called in the caller's process; one that raises is
%% detached.
-spec execute([atom()], map(), map()) -> ok.
execute(Event, Measurements, Metadata) when is_map(Measurements), is_map(Metadata) ->
    Handlers = case ets:whereis(?TABLE) of
                   undefined -> [];
                   _ -> ets:tab2list(?TABLE)
               end,
    [try Fun(Event, Measurements, Metadata, Config)
     catch _:_ -> detach(Id)
     end || {Id, Events, Fun, Config} <- Handlers, lists:member(Event, Events)],
    ok.

ensure_table() ->
    case ets:whereis(?TABLE) of
        undefined -> ets:new(?TABLE, [named_table, public, set, {heir, whereis(init), none}]);
        _ -> ok
    end.
