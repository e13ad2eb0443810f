%% Application callback: checks the node and the application environment (distribute_pool_env), then starts
%% the supervisor.
-module(distribute_pool_app).
-behaviour(application).

-export([start/2]).
-export([stop/1]).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case is_alive() of
        false ->
            {error, {not_distributed,
                     "distribute_pool needs a distributed node: start it with -name or -sname "
                     "(or call net_kernel:start/2) before starting the application"}};
        true ->
            case distribute_pool_env:app_config() of
                {ok, Config} -> distribute_pool_sup:start_link(Config);
                {error, _} = Error -> Error
            end
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.
