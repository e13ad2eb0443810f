%% The admin view (README, "Admin view"): a C-node's pools, a pool's connections and the caller nodes, as
%% aligned tables in the style of PgBouncer's SHOW commands, for a shell (distribute_pool:info/0,1) and for
%% scripts/dpool_admin.
-module(distribute_pool_admin).

-export([print/1]).
-export([print_connections/1]).
-export([pools_table/1]).
-export([connections_table/1]).
-export([callers_table/1]).
-export([table/2]).

-include("distribute_pool_internal.hrl").

%% Prints the pools and the caller nodes of the C-node Server; ok, or why it could not be asked.
-spec print(distribute_pool_client:server()) -> ok | {error, term()}.
print(Server) ->
    case distribute_pool:pools(Server) of
        {ok, Pools} ->
            case distribute_pool_client:call(Server, distribute_pool_proto:info(), ?DPOOL_PROMPT_WAIT_MS) of
                {ok, #{} = Info} ->
                    io:put_chars([pools_table(Pools), "\n", callers_table(Info)]);
                {error, _} = Error ->
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

%% Prints the connections of one pool.
-spec print_connections(distribute_pool:pool_ref()) -> ok | {error, term()}.
print_connections(Pool) ->
    case distribute_pool:stats(Pool) of
        {ok, Stats} -> io:put_chars(connections_table(Stats));
        {error, _} = Error -> Error
    end.

%% One row per pool: its name (or id), target (a group: how many of its targets are up), connections
%% (total/available/in use/connecting), waiting callers, operations (ok/failed), and the p99 of its acquire
%% wait and of its requests' round trip.
-spec pools_table([{distribute_pool:pool(), distribute_pool:stats()}]) -> iolist().
pools_table(Pools) ->
    [table(["pool", "target", "connections", "waiting", "ops", "wait p99", "rtt p99"],
           [[pool_label(S), text(target_label(S)),
             {num, slashed([total_connections, available_connections, in_use_connections,
                            connecting_connections], S)},
             num(maps:get(waiting, S, 0)),
             {num, slashed([successful_operations, failed_operations], S)},
             micros(maps:get(acquire_wait_p99_us, S, 0)), micros(maps:get(request_rtt_p99_us, S, 0))]
            || {_Pool, S} <- Pools]),
     "connections: total/available/in use/connecting; ops: ok/failed\n"
     "wait: from checkout to lease; rtt: request round trip\n"].

%% A pool's target; for a group, how many targets it has and how many are up.
-spec target_label(map()) -> iodata().
target_label(#{targets := Targets, up_targets := Up}) when is_integer(Targets), is_integer(Up) ->
    lists:flatten(io_lib:format("group: ~b of ~b targets up", [Up, Targets]));
target_label(S) ->
    maps:get(target, S, "").

-spec slashed([atom()], map()) -> string().
slashed(Keys, Stats) ->
    lists:flatten(lists:join("/", [integer_to_list(maps:get(K, Stats, 0)) || K <- Keys])).

%% One row per connection of a pool: its id, its node name on the target and its state.
-spec connections_table(distribute_pool:stats()) -> iolist().
connections_table(Stats) ->
    table(["pool", "id", "node", "state"],
          [[pool_label(Stats), num(Id), text(Node), text(State)]
           || #{id := Id, node := Node, state := State} <- maps:get(connections, Stats, [])]).

%% One row per caller connection: the caller node and the lane it came in on.
-spec callers_table(map()) -> iolist().
callers_table(Info) ->
    table(["caller", "lane"], [[text(Node), num(Lane)] || #{node := Node, lane := Lane} <- maps:get(callers, Info, [])]).

%% An aligned table: a header, a rule, a row per entry; numbers right-aligned, text left-aligned, each
%% column as wide as its widest cell; then "(N rows)".
-spec table([string()], [[string() | {num, string()}]]) -> iolist().
table(Header, Rows) ->
    Cells = [[cell_text(C) || C <- Row] || Row <- Rows],
    Widths = [lists:max([string:length(lists:nth(I, R)) || R <- [Header | Cells]])
              || I <- lists:seq(1, length(Header))],
    Line = fun(Row) ->
                   [lists:join("|", [[" ", pad(C, W), " "] || {C, W} <- lists:zip(Row, Widths)]), "\n"]
           end,
    Rule = [lists:join("+", [lists:duplicate(W + 2, $-) || W <- Widths]), "\n"],
    [Line([{left, H} || H <- Header]), Rule, [Line(Row) || Row <- Rows],
     io_lib:format("(~b ~s)~n", [length(Rows), case length(Rows) of 1 -> "row"; _ -> "rows" end])].

-spec cell_text(string() | {num, string()}) -> string().
cell_text({num, S}) -> S;
cell_text(S) -> S.

-spec pad(string() | {num, string()} | {left, string()}, non_neg_integer()) -> string().
pad({num, S}, W) -> string:pad(S, W, leading);
pad({left, S}, W) -> string:pad(S, W);
pad(S, W) -> string:pad(S, W).

-spec pool_label(map()) -> string().
pool_label(#{name := Name}) when Name =/= undefined -> text(Name);
pool_label(Stats) -> integer_to_list(maps:get(pool_id, Stats, 0)).

-spec num(integer()) -> {num, string()}.
num(N) when is_integer(N) -> {num, integer_to_list(N)};
num(Other) -> {num, text(Other)}.

-spec micros(integer()) -> {num, string()}.
micros(Us) when is_integer(Us), Us >= 10000 -> {num, lists:flatten(io_lib:format("~.1f ms", [Us / 1000]))};
micros(Us) when is_integer(Us) -> {num, integer_to_list(Us) ++ " us"};
micros(Other) -> num(Other).

-spec text(term()) -> string().
text(V) when is_atom(V) -> atom_to_list(V);
text(V) when is_binary(V) -> unicode:characters_to_list(V);
text(V) when is_list(V) -> V;
text(V) -> lists:flatten(io_lib:format("~0tp", [V])).
