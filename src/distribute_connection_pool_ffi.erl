%% The adapter between the Gleam module distribute/connection_pool and the Erlang library distribute_pool.
%% It holds no logic of its own and builds no Gleam record: it turns Gleam strings into the atoms the library
%% takes (registered names, option keys), and hands the library's own answers back as they are, or as plain
%% data ({ok, Value} | {error, Reason} for a Gleam Result, nil for Nil, binaries for text). The Gleam module
%% reads those answers by key with the accessors at the end of this file (field/2, as_int/1, ...) and builds
%% its records by label, so no code here depends on the order of a Gleam type's fields.
-module(distribute_connection_pool_ffi).

-export([new/2]).
-export([format_error/1]).
-export([tls_option/2]).
-export([with_connection/2]).
-export([stats/1]).
-export([destroy/2]).
-export([send_batch/3]).
-export([send_batch_parallel/3]).
-export([stress_test/3]).
-export([stress_test_reporting/4]).
-export([cast_batch/3]).
-export([cast_batch_by_key/4]).
-export([send/3]).
-export([send_async/3]).
-export([request/4]).
-export([call/5]).
-export([ping/1]).
-export([discard/1]).
-export([connection_info/1]).
-export([new_group/3]).
-export([keyed/2]).
-export([add_target/3]).
-export([remove_target/2]).
-export([identity/1]).
-export([inspect/1]).
%% Accessors for the Gleam decoders.
-export([field/2]).
-export([as_int/1]).
-export([as_name/1]).
-export([as_list/1]).
-export([atom_name/1]).
-export([pair/1]).

%% A Gleam Result: the library's {ok, _} | {error, Reason}, Reason as the library gives it.
-type gleam_result(T) :: {ok, T} | {error, term()}.
%% What an accessor gives: Gleam's Result(T, Nil).
-type found(T) :: {ok, T} | {error, nil}.

%% The longest atom Erlang makes; a longer name cannot be registered on the target.
-define(MAX_ATOM_CHARS, 255).

%% distribute_pool:new/2 starts the application (and its C-node) when it is not running. Options come from
%% the Gleam module as [{Key, Value}], keys as text (each a key of the library's options): they are passed as
%% a keyword list, so a key given twice is the library's {duplicate_option, Key}.
-spec new(binary(), [{binary(), term()}]) -> gleam_result(distribute_pool:pool()).
new(Target, Options) ->
    distribute_pool:new(Target, keywords(Options)).

-spec keywords([{binary(), term()}]) -> [{atom(), term()}].
keywords(Options) ->
    [{binary_to_atom(Key, utf8), Value} || {Key, Value} <- Options].

%% distribute_pool:new_group/2: each target with its own options (none: the group's), the options of every
%% member as new/1's, and the strategy's name.
-spec new_group([{binary(), [{binary(), term()}]}], [{binary(), term()}], binary()) ->
    gleam_result(distribute_pool:pool()).
new_group(Targets, Options, Strategy) ->
    distribute_pool:new_group([{Node, keywords(Own)} || {Node, Own} <- Targets],
                              [{strategy, strategy(Strategy)} | keywords(Options)]).

-spec strategy(binary()) -> round_robin | least_in_use.
strategy(<<"round_robin">>) -> round_robin;
strategy(<<"least_in_use">>) -> least_in_use.

%% A handle is always keyed (only a name could name nothing).
-spec keyed(distribute_pool:pool(), term()) -> distribute_pool:pool().
keyed(Pool, Key) ->
    distribute_pool:keyed(Pool, Key).

-spec add_target(distribute_pool:pool(), binary(), [{binary(), term()}]) -> gleam_result(nil).
add_target(Pool, Node, Options) ->
    nil_result(distribute_pool:add_target(Pool, {Node, keywords(Options)})).

-spec remove_target(distribute_pool:pool(), binary()) -> gleam_result(nil).
remove_target(Pool, Node) ->
    nil_result(distribute_pool:remove_target(Pool, Node)).

%% The library's `tls' option from the Gleam module's mode name and files (keys as text, each one of the
%% option's keys, values the strings given). No mode for <<>> (the C-node's): files without a mode, which
%% the C-node refuses.
-spec tls_option(binary(), [{binary(), binary()}]) -> map().
tls_option(Mode, Files) ->
    maps:from_list([{mode, tls_mode(Mode)} || Mode =/= <<>>] ++ [{tls_key(Key), Value} || {Key, Value} <- Files]).

-spec tls_mode(binary()) -> none | unverified | verified.
tls_mode(<<"none">>) -> none;
tls_mode(<<"unverified">>) -> unverified;
tls_mode(<<"verified">>) -> verified.

-spec tls_key(binary()) -> certfile | keyfile | cacertfile | password.
tls_key(<<"certfile">>) -> certfile;
tls_key(<<"keyfile">>) -> keyfile;
tls_key(<<"cacertfile">>) -> cacertfile;
tls_key(<<"password">>) -> password.

%% A reason of the library in words, as distribute_pool:format_error/1 writes it.
-spec format_error(term()) -> binary().
format_error(Reason) ->
    unicode:characters_to_binary(distribute_pool:format_error(Reason)).

-spec with_connection(distribute_pool:pool(), fun((distribute_pool:conn()) -> A)) -> gleam_result(A).
with_connection(Pool, Fun) ->
    distribute_pool:with_connection(Pool, Fun).

%% The library's stats map.
-spec stats(distribute_pool:pool()) -> gleam_result(map()).
stats(Pool) ->
    distribute_pool:stats(Pool).

%% A drain timeout out of range is the library's badarg (InvalidConfig in Gleam).
-spec destroy(distribute_pool:pool(), integer()) -> gleam_result(nil).
destroy(Pool, DrainMs) ->
    nil_result(distribute_pool:destroy(Pool, #{drain_timeout_ms => DrainMs})).

-spec send_batch(distribute_pool:pool(), [M], fun((distribute_pool:conn(), M) -> R)) -> gleam_result([R]).
send_batch(Pool, Messages, SendFun) ->
    distribute_pool:send_batch(Pool, Messages, SendFun).

%% The library's #{successful => [R], failed => [{Index, Reason}]}.
-spec send_batch_parallel(distribute_pool:pool(), [M], fun((distribute_pool:conn(), M) -> term())) ->
    gleam_result(map()).
send_batch_parallel(Pool, Messages, SendFun) ->
    distribute_pool:send_batch_parallel(Pool, Messages, SendFun).

%% The library's stats map after the run.
-spec stress_test(distribute_pool:pool(), integer(), integer()) -> gleam_result(map()).
stress_test(Pool, OpsPerWorker, Workers) ->
    distribute_pool:stress_test(Pool, OpsPerWorker, Workers).

%% stress_test/3 whose progress lines go to Report (a Gleam fn(String) -> Nil).
-spec stress_test_reporting(distribute_pool:pool(), integer(), integer(), fun((binary()) -> nil)) ->
    gleam_result(map()).
stress_test_reporting(Pool, OpsPerWorker, Workers, Report) ->
    OnProgress = fun(Progress) ->
                         Report(unicode:characters_to_binary(distribute_pool_batch:format_progress(Progress)))
                 end,
    distribute_pool:stress_test(Pool, OpsPerWorker, Workers, #{on_progress => OnProgress}).

%% A name that cannot be an atom is the library's badarg, as for a bad destination.
-spec cast_batch(distribute_pool:pool(), binary(), [term()]) -> gleam_result(non_neg_integer()).
cast_batch(Pool, Name, Messages) ->
    case registered_name(Name) of
        {ok, Atom} -> distribute_pool:cast_batch(Pool, Atom, Messages);
        error -> {error, badarg}
    end.

-spec cast_batch_by_key(distribute_pool:pool(), binary(), [M], fun((M) -> term())) ->
    gleam_result(non_neg_integer()).
cast_batch_by_key(Pool, Name, Messages, Key) ->
    case registered_name(Name) of
        {ok, Atom} -> distribute_pool:cast_batch(Pool, Atom, Messages, #{key => Key});
        error -> {error, badarg}
    end.

-spec send(distribute_pool:conn(), binary(), term()) -> gleam_result(nil).
send(Conn, Name, Message) ->
    send_with(fun distribute_pool:send/3, Conn, Name, Message).

-spec send_async(distribute_pool:conn(), binary(), term()) -> gleam_result(nil).
send_async(Conn, Name, Message) ->
    send_with(fun distribute_pool:send_async/3, Conn, Name, Message).

-spec send_with(fun((distribute_pool:conn(), atom(), term()) -> ok | {error, term()}), distribute_pool:conn(),
                binary(), term()) -> gleam_result(nil).
send_with(Send, Conn, Name, Message) ->
    case registered_name(Name) of
        {ok, Atom} -> nil_result(Send(Conn, Atom, Message));
        error -> {error, badarg}
    end.

-spec request(distribute_pool:conn(), binary(), term(), integer()) -> gleam_result(term()).
request(Conn, Name, Request, TimeoutMs) ->
    case registered_name(Name) of
        {ok, Atom} -> distribute_pool:request(Conn, Atom, Request, TimeoutMs);
        error -> {error, badarg}
    end.

%% A module or function name that cannot be an atom is a failed remote call, as the target would say it.
-spec call(distribute_pool:conn(), binary(), binary(), [term()], integer()) -> gleam_result(term()).
call(Conn, Module, Function, Args, TimeoutMs) ->
    case {registered_name(Module), registered_name(Function)} of
        {{ok, M}, {ok, F}} -> distribute_pool:call(Conn, M, F, Args, TimeoutMs);
        _ -> {error, {badrpc, {bad_name, Module, Function}}}
    end.

-spec ping(distribute_pool:conn()) -> boolean().
ping(Conn) ->
    distribute_pool:ping(Conn) =:= pong.

-spec discard(distribute_pool:conn()) -> gleam_result(nil).
discard(Conn) ->
    nil_result(distribute_pool:discard(Conn)).

%% The library's #{id, node, ...} of a lease, or its {error, Reason}.
-spec connection_info(distribute_pool:conn()) -> map() | {error, term()}.
connection_info(Conn) ->
    distribute_pool:connection_info(Conn).

-spec identity(T) -> T.
identity(Term) ->
    Term.

-spec inspect(term()) -> binary().
inspect(Term) ->
    unicode:characters_to_binary(io_lib:format("~tp", [Term])).

%% Accessors: each takes any term and says whether it has the shape asked for ({error, nil} when not).

%% The value under the atom named Key in a map.
-spec field(term(), binary()) -> found(term()).
field(Map, Key) when is_map(Map), is_binary(Key) ->
    %% A key whose atom does not exist is in no map.
    try binary_to_existing_atom(Key, utf8) of
        Atom ->
            case Map of
                #{Atom := Value} -> {ok, Value};
                #{} -> {error, nil}
            end
    catch
        error:badarg -> {error, nil}
    end;
field(_, _) ->
    {error, nil}.

-spec as_int(term()) -> found(integer()).
as_int(Value) when is_integer(Value) -> {ok, Value};
as_int(_) -> {error, nil}.

%% A name as text: an atom (a node name, a state) or a binary.
-spec as_name(term()) -> found(binary()).
as_name(Value) when is_atom(Value) -> {ok, atom_to_binary(Value, utf8)};
as_name(Value) when is_binary(Value) -> {ok, Value};
as_name(_) -> {error, nil}.

-spec as_list(term()) -> found(list()).
as_list(Value) when is_list(Value) -> {ok, Value};
as_list(_) -> {error, nil}.

%% An atom's name; {error, nil} for anything else.
-spec atom_name(term()) -> found(binary()).
atom_name(Value) when is_atom(Value) -> {ok, atom_to_binary(Value, utf8)};
atom_name(_) -> {error, nil}.

%% The two elements of a 2-tuple (a tagged reason such as {down, Why}, an {Index, Reason}).
-spec pair(term()) -> found({term(), term()}).
pair({First, Second}) -> {ok, {First, Second}};
pair(_) -> {error, nil}.

%% Conversions.

-spec nil_result(ok | {error, term()}) -> gleam_result(nil).
nil_result(ok) -> {ok, nil};
nil_result({error, Reason}) -> {error, Reason}.

%% A name for an atom: at most 255 characters (what Erlang allows), never empty.
-spec registered_name(binary()) -> {ok, atom()} | error.
registered_name(Name) when is_binary(Name), Name =/= <<>> ->
    case string:length(Name) =< ?MAX_ATOM_CHARS of
        true -> {ok, binary_to_atom(Name, utf8)};
        false -> error
    end;
registered_name(_) ->
    error.
