%% The messages between this library and the C-node (docs/PROTOCOL.md), in one place: every request and cast
%% the library sends is built here, and every reply whose shape the library relies on is read here. This
%% module is the Erlang reference of the protocol; docs/PROTOCOL.md says what each message means.
%%
%% Builders are plain tuple constructors, nothing more: a request costs one remote call more than writing its
%% tuple inline did (the compiler inlines only within a module), a few nanoseconds.
%% Readers take a reply as the C-node sent it and give it in a shape the caller can match without knowing the
%% wire: a reply whose shape is wrong (a C-node of another version, a forged answer) is
%% `{error, {bad_reply, Reply}}', never a crash. Errors the client itself adds ({error, timeout} and
%% {error, {connection_failed, {cnode_not_running, _}}}) have the same shape as the C-node's and pass
%% through the readers unchanged.
%%
%% The answer to a call is `{Tag, Reply}', sent to the tag's alias; distribute_pool_client matches it in its
%% receive, where no function can be called.
-module(distribute_pool_proto).

-include("distribute_pool_internal.hrl").

%% Envelopes.
-export([call_msg/3]).
-export([cast_msg/1]).
-export([alias_tag/1]).
%% Calls.
-export([new/2]).
-export([whereis/1]).
-export([checkout/2]).
-export([checkout_quiet/2]).
-export([lease_of/2]).
-export([discard/3]).
-export([send/5]).
-export([send_many/4]).
-export([request/6]).
-export([call/7]).
-export([pooled_send/3]).
-export([pooled_request/4]).
-export([pooled_call/5]).
-export([cast_batch/3]).
-export([cast_batch_keyed/3]).
-export([stats/1]).
-export([destroy/2]).
-export([pools/0]).
-export([restore/2]).
-export([info/0]).
-export([ping/0]).
-export([lanes/0]).
-export([new_group/3]).
-export([add_target/3]).
-export([remove_target/3]).
-export([remove_target_naming_member/3]).
-export([keyed/2]).
%% Casts.
-export([checkin/3]).
-export([cancel/3]).
%% Replies.
-export([new_reply/1]).
-export([removed_reply/1]).
-export([ok_reply/1]).
-export([whereis_reply/1]).
-export([checkout_reply/1]).
-export([call_reply/1]).
-export([send_many_reply/1]).
-export([stats_reply/1]).
-export([pools_reply/1]).
-export([restore_reply/1]).
-export([lanes_reply/2]).
-export([lane_names/2]).

-export_type([pool_id/0]).
-export_type([conn_id/0]).
-export_type([lease_id/0]).
-export_type([lease_conn/0]).
-export_type([lease_ref/0]).
-export_type([acquire/0]).
-export_type([op_timeout/0]).
-export_type([tag/0]).
-export_type([request/0]).
-export_type([cast/0]).
-export_type([restore_entry/0]).
-export_type([connection_failure/0]).
-export_type([bad_reply/0]).

%% Ids are chosen by the C-node.
-type pool_id() :: non_neg_integer().
-type conn_id() :: non_neg_integer().
-type lease_id() :: non_neg_integer().
%% A lease in an operation: its ids, or the atom `checkout' and the tag of the checkout that took it (a
%% pipelined lease: the operation follows its checkout before the ids have come back).
-type lease_conn() :: conn_id() | checkout.
-type lease_ref() :: lease_id() | tag().
%% The acquire timeout of a checkout or a one-shot operation: the pool's own (default), or milliseconds.
-type acquire() :: default | non_neg_integer().
%% The timeout of a request or call on the target, counted from when it is sent.
-type op_timeout() :: non_neg_integer() | infinity.
%% gen_server's alias tag: the C-node answers to the alias (ALIAS_SEND), docs/PROTOCOL.md "Envelopes".
-type tag() :: nonempty_improper_list(alias, reference()).
-type target() :: atom() | binary().
-type dest() :: atom() | pid() | {atom(), node()}.
%% {PoolId, Target, Options} of a pool to restore, as its `new' was sent; a group, with its members' ids,
%% targets and own options, its pool options and its own (as its `new_group' was sent, and its add_target).
-type restore_entry() :: {pool_id(), target(), map()}
                       | {group, pool_id(), [{pool_id(), target(), map()}], map(), map()}.
%% The 63-bit digest of a pool group's key (distribute_pool_group:key_digest/1).
-type key_digest() :: 0..?DPOOL_MAX_KEY_DIGEST.

-type request() :: {new, target(), map()}
                 | {whereis, atom()}
                 | {checkout, pool_id(), acquire()}
                 | {checkout, pool_id(), acquire(), quiet}
                 | {lease_of, pool_id(), tag()}
                 | {discard, pool_id(), lease_conn(), lease_ref()}
                 | {send, pool_id(), lease_conn(), lease_ref(), dest(), term()}
                 | {send_many, pool_id(), conn_id(), lease_id(), [{dest(), term()}]}
                 | {request, pool_id(), lease_conn(), lease_ref(), dest(), op_timeout(), term()}
                 | {call, pool_id(), lease_conn(), lease_ref(), module(), atom(), [term()], op_timeout()}
                 | {pooled_send, pool_id(), dest(), term()}
                 | {pooled_request, pool_id(), dest(), op_timeout(), term()}
                 | {pooled_call, pool_id(), module(), atom(), [term()], op_timeout()}
                 | {cast_batch, pool_id(), dest(), [term()]}
                 | {cast_batch_keyed, pool_id(), dest(), [{0..?DPOOL_MAX_KEY_HASH, term()}]}
                 | {stats, pool_id()}
                 | {destroy, pool_id(), 0..?DPOOL_MAX_DRAIN_MS}
                 | pools
                 | {restore, [restore_entry()], non_neg_integer()}
                 | info
                 | ping
                 | lanes
                 | {new_group, [{target(), map()}], map(), map()}
                 | {add_target, pool_id(), target(), map()}
                 | {remove_target, pool_id(), target(), 0..?DPOOL_MAX_DRAIN_MS}
                 | {remove_target, pool_id(), target(), 0..?DPOOL_MAX_DRAIN_MS, member_id}
                 | {keyed, key_digest(), request()}.
-type cast() :: {checkin, pool_id(), conn_id(), lease_id()}
              | {cancel, pool_id(), pid(), tag()}.

%% Why a connection could not be made or was lost (docs/PROTOCOL.md, "Errors"): Kind and a text.
-type connection_failure() :: {connection_failed, {atom(), binary()}}.
%% A reply of a shape the protocol does not have.
-type bad_reply() :: {bad_reply, term()}.

%% --- envelopes ----------------------------------------------------------------------------------------

%% A gen_server call: the C-node answers From's Tag ({Tag, Reply}, to the alias when Tag is alias_tag/1's).
-spec call_msg(pid(), tag(), request()) -> {'$gen_call', {pid(), tag()}, request()}.
call_msg(From, Tag, Request) ->
    {'$gen_call', {From, Tag}, Request}.

-spec cast_msg(cast()) -> {'$gen_cast', cast()}.
cast_msg(Cast) ->
    {'$gen_cast', Cast}.

%% [alias | Alias], an improper list on purpose: the form of gen_server's alias tags since OTP 24, which the
%% C-node recognises (docs/PROTOCOL.md, "Envelopes").
-dialyzer({no_improper_lists, [alias_tag/1]}).
-spec alias_tag(reference()) -> tag().
alias_tag(Alias) ->
    [alias | Alias].

%% --- calls --------------------------------------------------------------------------------------------

%% Reply: new_reply/1.
-spec new(target(), map()) -> request().
new(Target, Options) ->
    {new, Target, Options}.

%% Reply: whereis_reply/1.
-spec whereis(atom()) -> request().
whereis(Name) ->
    {whereis, Name}.

%% Reply: checkout_reply/1.
-spec checkout(pool_id(), acquire()) -> request().
checkout(PoolId, Acquire) ->
    {checkout, PoolId, Acquire}.

%% A checkout whose lease, when granted at once, is not answered: the first operation naming it by this call's
%% tag is answered {leased, {ConnId, LeaseId, ConnNode}, Answer} instead (docs/PROTOCOL.md, "Pipelined leases").
%% Otherwise answered as checkout/2.
-spec checkout_quiet(pool_id(), acquire()) -> request().
checkout_quiet(PoolId, Acquire) ->
    {checkout, PoolId, Acquire, quiet}.

%% Reply: checkout_reply/1 (the ids of the lease that the checkout sent with Tag got), or
%% {error, lease_pending} while that checkout waits in line.
-spec lease_of(pool_id(), tag()) -> request().
lease_of(PoolId, Tag) ->
    {lease_of, PoolId, Tag}.

%% As a call: ok | {error, invalid_connection}, or another error of the pool (passed on as it is).
-spec discard(pool_id(), lease_conn(), lease_ref()) -> request().
discard(PoolId, ConnId, LeaseId) ->
    {discard, PoolId, ConnId, LeaseId}.

%% Reply: ok | {error, Reason}, passed on as it is.
-spec send(pool_id(), lease_conn(), lease_ref(), dest(), term()) -> request().
send(PoolId, ConnId, LeaseId, Dest, Msg) ->
    {send, PoolId, ConnId, LeaseId, Dest, Msg}.

%% Reply: send_many_reply/1.
-spec send_many(pool_id(), conn_id(), lease_id(), [{dest(), term()}]) -> request().
send_many(PoolId, ConnId, LeaseId, Pairs) ->
    {send_many, PoolId, ConnId, LeaseId, Pairs}.

%% Reply: {ok, Reply} | {error, Reason}, passed on as it is.
-spec request(pool_id(), lease_conn(), lease_ref(), dest(), op_timeout(), term()) -> request().
request(PoolId, ConnId, LeaseId, Dest, Timeout, Request) ->
    {request, PoolId, ConnId, LeaseId, Dest, Timeout, Request}.

%% Reply: call_reply/1.
-spec call(pool_id(), lease_conn(), lease_ref(), module(), atom(), [term()], op_timeout()) -> request().
call(PoolId, ConnId, LeaseId, M, F, A, Timeout) ->
    {call, PoolId, ConnId, LeaseId, M, F, A, Timeout}.

%% One-shot operations, with the pool's acquire timeout (the C-node also takes one of the caller's, which the
%% library never sends). Replies as send/5, request/6 and call_reply/1.
-spec pooled_send(pool_id(), dest(), term()) -> request().
pooled_send(PoolId, Dest, Msg) ->
    {pooled_send, PoolId, Dest, Msg}.

-spec pooled_request(pool_id(), dest(), op_timeout(), term()) -> request().
pooled_request(PoolId, Dest, Timeout, Request) ->
    {pooled_request, PoolId, Dest, Timeout, Request}.

-spec pooled_call(pool_id(), module(), atom(), [term()], op_timeout()) -> request().
pooled_call(PoolId, M, F, A, Timeout) ->
    {pooled_call, PoolId, M, F, A, Timeout}.

%% Reply: {ok, N} | {error, Reason}, passed on as it is.
-spec cast_batch(pool_id(), dest(), [term()]) -> request().
cast_batch(PoolId, Dest, Messages) ->
    {cast_batch, PoolId, Dest, Messages}.

%% Each message with its key's hash, erlang:phash2(Key, ?DPOOL_KEY_HASH_RANGE).
-spec cast_batch_keyed(pool_id(), dest(), [{0..?DPOOL_MAX_KEY_HASH, term()}]) -> request().
cast_batch_keyed(PoolId, Dest, Keyed) ->
    {cast_batch_keyed, PoolId, Dest, Keyed}.

%% Reply: stats_reply/1 (stats/1 of the library passes it on as it is).
-spec stats(pool_id()) -> request().
stats(PoolId) ->
    {stats, PoolId}.

%% Reply: ok | {error, Reason}, passed on as it is. The library always sends the drain timeout.
-spec destroy(pool_id(), 0..?DPOOL_MAX_DRAIN_MS) -> request().
destroy(PoolId, DrainMs) ->
    {destroy, PoolId, DrainMs}.

%% Reply: pools_reply/1.
-spec pools() -> request().
pools() ->
    pools.

%% Reply: restore_reply/1.
-spec restore([restore_entry()], non_neg_integer()) -> request().
restore(Entries, NextPoolId) ->
    {restore, Entries, NextPoolId}.

%% Reply: {ok, InfoMap}.
-spec info() -> request().
info() ->
    info.

%% Reply: pong, from the C-node's event loop.
-spec ping() -> request().
ping() ->
    ping.

%% Reply: lanes_reply/2.
-spec lanes() -> request().
lanes() ->
    lanes.

%% A pool group (docs/PROTOCOL.md, "Pool groups"): one member per {Target, Options}, each member's Options
%% over PoolOptions (which add_target/3's go over too), and the group's own options (strategy, name, owner,
%% owner_grace_ms). Reply: new_reply/1, as for new/2.
-spec new_group([{target(), map()}], map(), map()) -> request().
new_group(Members, PoolOptions, GroupOptions) ->
    {new_group, Members, PoolOptions, GroupOptions}.

%% Reply: new_reply/1: {ok, MemberId}, the new member's pool id.
-spec add_target(pool_id(), target(), map()) -> request().
add_target(GroupId, Target, Options) ->
    {add_target, GroupId, Target, Options}.

%% Reply: ok_reply/1, once the member has drained.
-spec remove_target(pool_id(), target(), 0..?DPOOL_MAX_DRAIN_MS) -> request().
remove_target(GroupId, Target, DrainMs) ->
    {remove_target, GroupId, Target, DrainMs}.

%% remove_target/3 answered with the id of the member taken out. Reply: removed_reply/1.
-spec remove_target_naming_member(pool_id(), target(), 0..?DPOOL_MAX_DRAIN_MS) -> request().
remove_target_naming_member(GroupId, Target, DrainMs) ->
    {remove_target, GroupId, Target, DrainMs, member_id}.

%% Request (a checkout, one-shot operation or cast batch) with the key that picks a group's member for it.
%% Reply: Request's.
-spec keyed(key_digest(), request()) -> request().
keyed(Digest, Request) ->
    {keyed, Digest, Request}.

%% --- casts --------------------------------------------------------------------------------------------

-spec checkin(pool_id(), conn_id(), lease_id()) -> cast().
checkin(PoolId, ConnId, LeaseId) ->
    {checkin, PoolId, ConnId, LeaseId}.

%% Withdraws the checkout or one-shot operation that Pid sent with Tag.
-spec cancel(pool_id(), pid(), tag()) -> cast().
cancel(PoolId, Pid, Tag) ->
    {cancel, PoolId, Pid, Tag}.

%% --- replies ------------------------------------------------------------------------------------------

%% The answer to new/2: the pool's id; or, for a name a pool has already, that pool's id and acquire timeout.
-spec new_reply(term()) ->
    {ok, pool_id()} | {already_started, pool_id(), non_neg_integer()} | {error, term()}.
new_reply({ok, PoolId} = Reply) when is_integer(PoolId), PoolId >= 0 ->
    Reply;
new_reply({error, {already_started, PoolId, AcquireMs}}) when is_integer(PoolId), PoolId >= 0 ->
    case is_acquire_ms(AcquireMs) of
        true -> {already_started, PoolId, AcquireMs};
        false -> {error, {already_started, PoolId, AcquireMs}}
    end;
new_reply({error, _} = Error) ->
    Error;
new_reply(Other) ->
    {error, {bad_reply, Other}}.

%% An answer that is ok or an error.
-spec ok_reply(term()) -> ok | {error, term()}.
ok_reply(ok) -> ok;
ok_reply({error, _} = Error) -> Error;
ok_reply(Other) -> {error, {bad_reply, Other}}.

%% The answer to remove_target_naming_member/3: the id of the member taken out.
-spec removed_reply(term()) -> {ok, pool_id()} | {error, term()}.
removed_reply({ok, MemberId} = Reply) when is_integer(MemberId), MemberId >= 0 -> Reply;
removed_reply({error, _} = Error) -> Error;
removed_reply(Other) -> {error, {bad_reply, Other}}.

%% The answer to whereis/1: the named pool's id and acquire timeout.
-spec whereis_reply(term()) -> {ok, pool_id(), non_neg_integer()} | {error, term()}.
whereis_reply({ok, PoolId, AcquireMs} = Reply) when is_integer(PoolId), PoolId >= 0 ->
    case is_acquire_ms(AcquireMs) of
        true -> Reply;
        false -> {error, {bad_reply, Reply}}
    end;
whereis_reply({error, _} = Error) ->
    Error;
whereis_reply(Other) ->
    {error, {bad_reply, Other}}.

%% The answer to checkout/2: the lease, or why there is none.
-spec checkout_reply(term()) ->
    {ok, conn_id(), lease_id(), node()}
    | {error, pool_exhausted | invalid_pool | connection_failure() | bad_reply() | term()}.
checkout_reply({ok, {ConnId, LeaseId, ConnNode}})
  when is_integer(ConnId), ConnId >= 0, is_integer(LeaseId), LeaseId >= 0, is_atom(ConnNode) ->
    {ok, ConnId, LeaseId, ConnNode};
checkout_reply({error, _} = Error) ->
    Error;
checkout_reply(Other) ->
    {error, {bad_reply, Other}}.

%% The answer to call/7 and pooled_call/5, as rpc:call gives it: a function that returned {badrpc, Reason}
%% cannot be told from a failed call (rex's rule), so both are errors. Anything else is passed on.
-spec call_reply(term()) -> term().
call_reply({ok, {badrpc, Reason}}) -> {error, {badrpc, Reason}};
call_reply(Other) -> Other.

%% The answer to send_many/4: ok once every message is queued and the connection is under its busy limit.
-spec send_many_reply(term()) -> ok | {error, term()}.
send_many_reply(ok) -> ok;
send_many_reply({error, _} = Error) -> Error;
send_many_reply(Other) -> {error, {bad_reply, Other}}.

%% The answer to stats/1, with the pool's acquire timeout taken out of it (what a pool handle holds).
-spec stats_reply(term()) -> {ok, map(), non_neg_integer()} | {error, term()}.
stats_reply({ok, #{acquire_timeout_ms := AcquireMs} = Stats} = Reply) ->
    case is_acquire_ms(AcquireMs) of
        true -> {ok, Stats, AcquireMs};
        false -> {error, {bad_reply, Reply}}
    end;
stats_reply({error, _} = Error) ->
    Error;
stats_reply(Other) ->
    {error, {bad_reply, Other}}.

%% The answer to pools/0: the ids of the C-node's pools (each checked by whoever uses it).
-spec pools_reply(term()) -> {ok, [term()]} | {error, term()}.
pools_reply({ok, Ids} = Reply) when is_list(Ids) -> Reply;
pools_reply({error, _} = Error) -> Error;
pools_reply(Other) -> {error, {bad_reply, Other}}.

%% The answer to restore/2: how many pools came back, or the pool of the list that was refused and why
%% (the restore is all or nothing), or why the whole restore was.
-spec restore_reply(term()) -> {ok, term()} | {refused, term(), integer()} | {error, term()}.
restore_reply({ok, _N} = Reply) -> Reply;
restore_reply({error, {Why, PoolId}}) when is_integer(PoolId) -> {refused, Why, PoolId};
restore_reply({error, _} = Error) -> Error;
restore_reply(Other) -> {error, {bad_reply, Other}}.

%% The answer to lanes/0 from the C-node whose own node is Main: its node names, lane 0 first, when they are
%% exactly the names Main implies (lane_names/2); `error' for anything else, an older C-node's
%% {error, badarg} among it.
-spec lanes_reply(node(), term()) -> {ok, [string(), ...]} | error.
lanes_reply(Main, {ok, Names}) when is_list(Names), Names =/= [], length(Names) =< ?DPOOL_MAX_LANES ->
    case lane_names(Main, length(Names)) of
        {ok, Expected} ->
            case [unicode:characters_to_binary(E) || E <- Expected] =:= Names of
                true -> {ok, Expected};
                false -> error
            end;
        error ->
            error
    end;
lanes_reply(_Main, _Reply) ->
    error.

%% The node names of the Count lanes of the C-node whose own node is Main (docs/PROTOCOL.md, `lanes'): Main
%% itself, then <alive>_lane<k>@<host> for k = 1..Count-1. Strings: whoever needs atoms makes them from our
%% own names, never from the C-node's answer.
-spec lane_names(node(), 1..?DPOOL_MAX_LANES) -> {ok, [string(), ...]} | error.
lane_names(Main, Count) ->
    case string:split(atom_to_list(Main), "@") of
        [Alive, Host] ->
            {ok, [atom_to_list(Main)
                  | [Alive ++ "_lane" ++ integer_to_list(K) ++ "@" ++ Host || K <- lists:seq(1, Count - 1)]]};
        _ ->
            error
    end.

-spec is_acquire_ms(term()) -> boolean().
is_acquire_ms(Ms) ->
    is_integer(Ms) andalso Ms >= 0 andalso Ms =< ?DPOOL_MAX_ACQUIRE_MS.
