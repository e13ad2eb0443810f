%% Application callback: checks the node and the application environment, then starts the supervisor.
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
            case config() of
                {ok, Config} -> distribute_pool_sup:start_link(Config);
                {error, _} = Error -> Error
            end
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    ok.

-spec config() -> {ok, distribute_pool_sup:config()} | {error, {bad_app_env, atom(), term()}}.
config() ->
    CNode = application:get_env(distribute_pool, cnode, embedded),
    Service = application:get_env(distribute_pool, service, distribute_pool),
    Args = application:get_env(distribute_pool, cnode_args, []),
    Lanes = application:get_env(distribute_pool, lanes, 4),
    if
        not is_atom(CNode) -> {error, {bad_app_env, cnode, CNode}};
        not is_atom(Service) -> {error, {bad_app_env, service, Service}};
        not (is_integer(Lanes) andalso Lanes >= 1 andalso Lanes =< 16) -> {error, {bad_app_env, lanes, Lanes}};
        true ->
            case is_string_list(Args) of
                true -> {ok, #{cnode => CNode, service => Service, cnode_args => Args, lanes => Lanes}};
                false -> {error, {bad_app_env, cnode_args, Args}}
            end
    end.

-spec is_string_list(term()) -> boolean().
is_string_list(L) when is_list(L) ->
    lists:all(fun(S) -> io_lib:char_list(S) end, L);
is_string_list(_) ->
    false.
