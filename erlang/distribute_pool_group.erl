%% Pool groups: one handle over one pool per target, in the C-node (docs/PROTOCOL.md and README, "Pool
%% groups"). What only groups need lives here: new_group/2's targets and options checked and split (the
%% group's own options, the pool options of every member, each target's own options over those), the
%% `add_target' and `remove_target' requests, and keys (keyed/2: the digest that picks a member, sent with
%% each checkout, one-shot operation and cast batch through a keyed handle). Everything else a group does is
%% what a pool does: its handle is a pool handle, and distribute_pool's operations take it as one.
%%
%% Like distribute_pool_config, this module converts what the wire cannot carry and leaves the judgement of
%% pool options and target names to the C-node; it refuses itself only what the C-node would have no way to
%% tell apart (a group option given for one target) or what it checks cheaply with the same answer (the list
%% of targets, the strategy, a target given twice). It never creates atoms from what it is given.
-module(distribute_pool_group).

-include("distribute_pool_internal.hrl").

-export([prepare/2]).
-export([add_target/2]).
-export([remove_target/3]).
-export([keyed/2]).
-export([key_digest/1]).
-export([routed/2]).

-export_type([prepared/0]).
-export_type([target_spec/0]).

%% A target of a group, alone or with options of its own (over the group's pool options).
-type target_spec() :: distribute_pool:target() | {distribute_pool:target(), distribute_pool:options()}.
-type prepared() :: #{
    cnode := default | distribute_pool_client:server(),
    %% The `new_group' request's parts (distribute_pool_proto:new_group/3).
    members := [{atom() | binary(), map()}],
    pool_options := map(),
    group_options := map(),
    name := atom(),
    %% Each target as sent and as given, so that an error naming one names it as the caller wrote it.
    targets := [{atom() | binary(), term()}],
    acquire_timeout_ms := non_neg_integer(),
    wait := non_neg_integer()
}.

%% Options of new_group/2 that are the group's own; the others are pool options of every member.
-define(GROUP_KEYS, [strategy, name, owner, owner_grace_ms, cnode]).
%% How long add_target/2 waits for the C-node, which answers once the new member's first connection is up or
%% failed: its connect timeout (which may come from the group's options, unknown here) at most.
-define(ADD_TARGET_WAIT_MS, (?DPOOL_MAX_CONNECT_MS + 5000)).

%% new_group/2's arguments as the parts of the `new_group' request, and what the client needs around it.
-spec prepare(term(), term()) -> {ok, prepared()} | {error, distribute_pool:invalid_config()}.
prepare(Targets, Max) when is_integer(Max) ->
    prepare(Targets, #{max_connections => Max});
prepare(Targets, Options) ->
    case distribute_pool_config:to_map(Options) of
        {ok, Map} ->
            {Group, Pool} = maps:fold(fun(Key, Value, {G, P}) ->
                                              case lists:member(Key, ?GROUP_KEYS) of
                                                  true -> {G#{Key => Value}, P};
                                                  false -> {G, P#{Key => Value}}
                                              end
                                      end, {#{}, #{}}, Map),
            case {strategy(Group), distribute_pool_config:cnode(Group), members(Targets, Pool)} of
                {ok, {ok, CNode}, {ok, Members}} ->
                    GroupWire = maps:merge(distribute_pool_config:owner_grace(), maps:without([cnode], Group)),
                    Merged = [M || {_, _, M} <- Members],
                    {ok, #{cnode => CNode,
                           members => [{Target, Own} || {Target, Own, _} <- Members],
                           pool_options => distribute_pool_config:wire_options(Pool),
                           group_options => GroupWire,
                           name => maps:get(name, Group, undefined),
                           targets => lists:zip([T || {T, _, _} <- Members], [target_of(S) || S <- Targets]),
                           acquire_timeout_ms => lists:max([distribute_pool_config:acquire_timeout(M)
                                                            || M <- Merged]),
                           %% Members connect at the same time: the slowest one's bound.
                           wait => lists:max([distribute_pool_config:wait(M) || M <- Merged])}};
                {{error, _} = Error, _, _} -> Error;
                {_, {error, _} = Error, _} -> Error;
                {_, _, {error, _} = Error} -> Error
            end;
        {error, _} = Error ->
            Error
    end.

-spec strategy(map()) -> ok | {error, distribute_pool:invalid_config()}.
strategy(#{strategy := S}) when S =:= round_robin; S =:= least_in_use -> ok;
strategy(#{strategy := S}) -> {error, {invalid_config, {bad_value, strategy, S, <<"round_robin or least_in_use">>}}};
strategy(#{}) -> ok.

%% Each target's wire form, its own options (wire form) and, for the client's bounds, its options merged over
%% the group's pool options.
-spec members(term(), map()) -> {ok, [{atom() | binary(), map(), map()}]} | {error, distribute_pool:invalid_config()}.
members(Targets, Pool) ->
    case is_list(Targets) andalso proper_length(Targets) of
        N when is_integer(N), N >= 1, N =< ?DPOOL_MAX_GROUP_MEMBERS ->
            members(Targets, Pool, [], #{});
        _ ->
            Allowed = iolist_to_binary(io_lib:format("a list of 1..~b targets, each Target or {Target, Options}",
                                                     [?DPOOL_MAX_GROUP_MEMBERS])),
            {error, {invalid_config, {bad_value, targets, Targets, Allowed}}}
    end.

-spec members(list(), map(), list(), map()) ->
    {ok, [{atom() | binary(), map(), map()}]} | {error, distribute_pool:invalid_config()}.
members([], _Pool, Acc, _Seen) ->
    {ok, lists:reverse(Acc)};
members([Spec | Rest], Pool, Acc, Seen) ->
    case member(Spec, Pool) of
        {ok, {Target, _, _} = Member} ->
            Key = case Target of
                      Atom when is_atom(Atom) -> atom_to_binary(Atom, utf8);
                      Bin -> Bin
                  end,
            case is_map_key(Key, Seen) of
                true -> {error, {invalid_config, {duplicate_target, target_of(Spec)}}};
                false -> members(Rest, Pool, [Member | Acc], Seen#{Key => true})
            end;
        {error, _} = Error ->
            Error
    end.

%% One target of a group: its wire form, its own options as sent, and those over Pool.
-spec member(term(), map()) -> {ok, {atom() | binary(), map(), map()}} | {error, distribute_pool:invalid_config()}.
member({Target, Options}, Pool) when not is_integer(Target) ->
    case distribute_pool_config:to_map(Options) of
        {ok, Own} ->
            case [Key || Key <- ?GROUP_KEYS, is_map_key(Key, Own)] of
                [] ->
                    member(Target, Own, Pool);
                [Key | _] ->
                    {error, {invalid_config, {bad_value, Key, maps:get(Key, distribute_pool_config:loggable(Own)),
                                              <<"an option of the whole group, not of one target">>}}}
            end;
        {error, _} = Error ->
            Error
    end;
member(Target, Pool) ->
    member(Target, #{}, Pool).

-spec member(term(), map(), map()) ->
    {ok, {atom() | binary(), map(), map()}} | {error, distribute_pool:invalid_config()}.
member(Target, Own, Pool) ->
    case distribute_pool_config:target(Target) of
        {ok, Wire} -> {ok, {Wire, distribute_pool_config:wire_options(Own), maps:merge(Pool, Own)}};
        error -> {error, {invalid_config, {bad_target, Target}}}
    end.

-spec target_of(term()) -> term().
target_of({Target, _Options}) -> Target;
target_of(Target) -> Target.

-spec proper_length(list()) -> non_neg_integer() | improper.
proper_length(List) ->
    try length(List) catch error:badarg -> improper end.

%% Adds a target (alone, or with options of its own over the group's pool options) to a running group.
%% A group of the embedded C-node changes through the registry, which records it for a restart.
-spec add_target(#dpool{}, term()) -> ok | {error, term()}.
add_target(#dpool{server = Server, id = Id}, Spec) ->
    case member(Spec, #{}) of
        {ok, {Target, Own, _}} ->
            Reply = case distribute_pool_registry:add_target(Server, Id, Target, Own, ?ADD_TARGET_WAIT_MS) of
                        direct ->
                            distribute_pool_client:call(Server, distribute_pool_proto:add_target(Id, Target, Own),
                                                        ?ADD_TARGET_WAIT_MS);
                        Recorded ->
                            Recorded
                    end,
            %% The C-node answers the new member's id, which only the registry needs.
            case distribute_pool_proto:new_reply(Reply) of
                {ok, _MemberId} -> ok;
                {error, _} = Error -> Error;
                _Other -> {error, {bad_reply, Reply}}
            end;
        {error, _} = Error ->
            Error
    end.

%% Removes a target from a running group: ok once its member has drained (leases out for up to DrainMs).
-spec remove_target(#dpool{}, term(), non_neg_integer()) -> ok | {error, term()}.
remove_target(#dpool{server = Server, id = Id}, Target, DrainMs) ->
    case distribute_pool_config:target(Target) of
        {ok, Wire} ->
            Wait = DrainMs + ?DPOOL_DESTROY_MARGIN_MS,
            distribute_pool_proto:ok_reply(
              case distribute_pool_registry:remove_target(Server, Id, Wire, DrainMs, Wait) of
                  direct ->
                      distribute_pool_client:call(Server, distribute_pool_proto:remove_target(Id, Wire, DrainMs),
                                                  Wait);
                  Recorded ->
                      Recorded
              end);
        error ->
            {error, {invalid_config, {bad_target, Target}}}
    end.

%% The handle with Key's digest: its checkouts, one-shot operations and cast batches pick their member by it.
-spec keyed(#dpool{}, term()) -> #dpool{}.
keyed(Pool, Key) ->
    Pool#dpool{key = key_digest(Key)}.

%% A key of any term as 63 bits, the same on every node and OTP version (erlang:phash2/2 is portable), so
%% that a key picks the same target from every caller.
-spec key_digest(term()) -> 0..?DPOOL_MAX_KEY_DIGEST.
key_digest(Key) ->
    (erlang:phash2(Key, 1 bsl 31) bsl 32) bor erlang:phash2({?MODULE, Key}, 1 bsl 32).

%% Request (a checkout, one-shot operation or cast batch of Pool) with Pool's key, if it has one.
-spec routed(#dpool{}, distribute_pool_proto:request()) -> distribute_pool_proto:request().
routed(#dpool{key = undefined}, Request) -> Request;
routed(#dpool{key = Digest}, Request) -> distribute_pool_proto:keyed(Digest, Request).
