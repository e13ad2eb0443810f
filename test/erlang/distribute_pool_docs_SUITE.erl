%% Docs a user reaches: h(distribute_pool, F) has something to print for every exported function, and the
%% README's Erlang example runs as it is written.
-module(distribute_pool_docs_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([every_exported_function_has_its_doc/1]).
-export([readme_erlang_example_runs_verbatim/1]).
-export([demo_stats_tables_fit_in_100_columns/1]).
-export([app_env_defaults_are_the_code_defaults/1]).

-import(dpool_ct_helper, [doc/1, with_pool/3, with_nodes/2]).

-define(EXAMPLE_MARKER, "<!-- verbatim-test: erlang example").

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 2}}].

-spec all() -> [atom()].
all() ->
    [every_exported_function_has_its_doc,
     readme_erlang_example_runs_verbatim,
     demo_stats_tables_fit_in_100_columns,
     app_env_defaults_are_the_code_defaults].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec app_env_defaults_are_the_code_defaults(list()) -> ok.
app_env_defaults_are_the_code_defaults(_Config) ->
    doc("The application's env in distribute_pool.app (what a node that loads the application gets) names every "
        "key the library reads, each with the default the code falls back to without it (the README's): the "
        "two once disagreed, and the lanes were 4 where the README and the code said 8."),
    {ok, [{application, distribute_pool, Keys}]} = file:consult(code:where_is_file("distribute_pool.app")),
    Env = proplists:get_value(env, Keys),
    Known = distribute_pool_env:keys(),
    [] = [K || {K, _} <- Env, not lists:member(K, Known)],
    [] = [{K, V, distribute_pool_env:default(K)} || {K, V} <- Env, V =/= distribute_pool_env:default(K)],
    [] = [K || K <- Known, not lists:keymember(K, 1, Env)],
    8 = proplists:get_value(lanes, Env),
    ok.

-spec every_exported_function_has_its_doc(list()) -> ok.
every_exported_function_has_its_doc(_Config) ->
    doc("make build writes EDoc documentation chunks: code:get_doc/1 (what h/2 in erl and h/1 in iex read) "
        "finds one for distribute_pool, with a text for every exported function, and shell_docs renders it."),
    {ok, {docs_v1, _, erlang, _, #{<<"en">> := ModuleDoc}, _, Entries} = Docs} = code:get_doc(distribute_pool),
    true = byte_size(iolist_to_binary(io_lib:format("~p", [ModuleDoc]))) > 100,
    Exported = [FA || {F, _} = FA <- distribute_pool:module_info(exports), F =/= module_info],
    Undocumented = [{F, A} || {F, A} <- Exported,
                              not lists:any(fun({{function, N, Ar}, _, _, #{<<"en">> := D}, _}) ->
                                                    N =:= F andalso Ar =:= A andalso D =/= [];
                                               (_) -> false
                                            end, Entries)],
    [] = Undocumented,
    Text = unicode:characters_to_list(shell_docs:render(distribute_pool, new, Docs)),
    {match, _} = re:run(Text, "Creates a pool of connections to Target"),
    ct:log("h(distribute_pool, new):~n~ts", [Text]),
    ok.

-spec readme_erlang_example_runs_verbatim(list()) -> ok.
readme_erlang_example_runs_verbatim(_Config) ->
    doc("The README's Erlang example, taken from README.md and evaluated as it is, works against a plain node "
        "target@127.0.0.1 (none of our code on it)."),
    Example = readme_example(),
    ct:log("~ts", [Example]),
    {ok, Tokens, _} = erl_scan:string(Example),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    with_nodes([{named_target, "target"}], fun([{_, 'target@127.0.0.1'}]) ->
        {value, ok, _Bindings} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
        ok
    end).

-spec demo_stats_tables_fit_in_100_columns(list()) -> ok.
demo_stats_tables_fit_in_100_columns(_Config) ->
    doc("The admin view's tables of a named pool whose target is down, as make demo prints them: every line "
        "within 100 columns; the pool's row shows its name, target, connections by state and operations; the "
        "connections have a table of their own, one row each; each table ends with its row count."),
    Options = #{name => orders, max_connections => 3, min_connections => 0},
    Target = 'dpool_docs_nobody@127.0.0.1',
    with_pool(Target, Options, fun(Pool) ->
        {error, {connection_failed, _}} = distribute_pool:with_connection(Pool, fun(_) -> ok end,
                                                                          #{acquire_timeout_ms => 2000}),
        {ok, #{connections := Conns} = Stats} = distribute_pool:stats(Pool),
        Lines = string:split(unicode:characters_to_list(distribute_pool_demo:stats_tables(Pool, Stats)), "\n", all),
        ct:log("~ts", [lists:join("\n", Lines)]),
        [] = [L || L <- Lines, string:length(L) > 100],
        [Header, Rule, Row, "(1 row)" | _] = Lines,
        ["pool", "target", "connections", "waiting", "ops" | _] =
            [string:trim(C) || C <- string:split(Header, "|", all)],
        nomatch = string:find(Rule, " "),
        #{total_connections := Total, available_connections := Avail, in_use_connections := InUse,
          connecting_connections := Connecting, successful_operations := Ok, failed_operations := Failed} = Stats,
        ["orders", "dpool_docs_nobody@127.0.0.1", Counts, _Waiting, Ops | _] =
            [string:trim(C) || C <- string:split(Row, "|", all)],
        true = Counts =:= lists:flatten(io_lib:format("~b/~b/~b/~b", [Total, Avail, InUse, Connecting])),
        true = Ops =:= lists:flatten(io_lib:format("~b/~b", [Ok, Failed])),
        Rows = [L || L <- Lines, re:run(L, "[|] (connecting|available|in_use) *$") =/= nomatch],
        true = length(Rows) =:= length(Conns) andalso Conns =/= []
    end).

%% Helpers.

%% The code block that follows the marker in README.md (next to this repository's test/erlang/).
-spec readme_example() -> string().
readme_example() ->
    Source = proplists:get_value(source, ?MODULE:module_info(compile)),
    Readme = filename:join([filename:dirname(Source), "..", "..", "README.md"]),
    {ok, Bin} = file:read_file(Readme),
    [_, After] = string:split(unicode:characters_to_list(Bin), ?EXAMPLE_MARKER),
    [_, FromFence] = string:split(After, "```erlang\n"),
    [Code, _] = string:split(FromFence, "```"),
    Code.
