%% Remembers every pool and pool group created on the embedded C-node through distribute_pool:new/2 and
%% new_group/2, so that a C-node started to replace one that died gets them back under their old ids (the
%% `restore' call of docs/PROTOCOL.md) and the handles callers hold keep working.
%%
%% `new', `new_group', `add_target', `remove_target' and `destroy' for the embedded C-node go through here: a
%% worker process makes the C-node call and reports to this server, which records (or forgets) the pool or
%% member before it answers the caller. So a caller that dies half-way cannot leave a change unrecorded, and
%% this server never blocks on the C-node except for the restore itself. It never calls distribute_pool_cnode,
%% which calls it (restore/1) from its init.
%%
%% The records live in an ETS table that the application's supervisor owns (create_table/0, called from its
%% init), so a crash of this server loses nothing: its successor reads them back, with the C-node it serves
%% and the highest id seen, and new/2 keeps working.
%%
%% Pools created with an explicit `cnode' option, or on an external C-node, are not recorded.
-module(distribute_pool_registry).
-behaviour(gen_server).

-export([start_link/0]).
-export([create_table/0]).
-export([new/3]).
-export([new_group/4]).
-export([add_target/5]).
-export([remove_target/5]).
-export([destroy/4]).
-export([restore/1]).
-export([recorded/0]).
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).
-export([handle_info/2]).

-export_type([entry/0]).

%% {PoolId, Target, Options} as sent to the C-node's `new' (and `restore'); a group as its `restore' entry:
%% its members' ids, targets and own options (new_group's, then add_target's), its pool options and its own.
-type entry() :: distribute_pool_proto:restore_entry().

%% What is recorded lives in the table, not here, so that a successor has all of it.
-record(state, {
    %% Workers making a C-node call for a caller, and the job each makes.
    workers = #{} :: #{pid() => {gen_server:from(), job()}},
    %% Members a removal took out (the C-node's answer names them) before their add_target's answer came,
    %% with their {GroupId, target}: that answer records nothing; forgotten once no add of the target is
    %% under way.
    removed_ids = #{} :: #{non_neg_integer() => {non_neg_integer(), term()}},
    %% Members marked as on their way out while a removal of their target that had found no member to mark
    %% is under way (added meanwhile, or refused to a removal that overlapped it): the answer of the last
    %% such removal tells whether it took them, and otherwise unmarks them.
    provisional = #{} :: #{non_neg_integer() => {non_neg_integer(), term()}},
    %% Targets whose removal failed (no answer) while their add_target was on its way: that add's member is
    %% recorded as on its way out, as after a destroy that failed.
    going = #{} :: #{{non_neg_integer(), term()} => true}
}).

%% What a worker does for a caller: a C-node call (job_request/1), recorded by its answer. A removal names
%% the member it marked as on its way out (the one the C-node should take out), or `unrecorded' when its
%% target had none; the C-node's answer names the one it took out.
-type target() :: atom() | binary().
-type job() :: {new, target(), map()}
             | {destroy, non_neg_integer(), non_neg_integer()}
             | {new_group, [{target(), map()}], map(), map()}
             | {add_target, non_neg_integer(), target(), map()}
             | {remove_target, non_neg_integer(), target(), non_neg_integer() | unrecorded, non_neg_integer()}.

%% Rows: {server, Server} (the embedded C-node, known once it asked for its first restore), {max_id, Id}
%% (the highest pool id ever seen, destroyed pools and members included: fresh ids must stay above it),
%% {{pool, Id}, Target, Options} for each recorded pool, {{group, Id}, Members, PoolOptions, GroupOptions}
%% for each recorded group (Members: [{MemberId, Target, Options}], in the order they joined), and
%% {{destroying, Id}} for a pool, group or member whose destroy (or removal) has begun.
-define(TABLE, distribute_pool_registry).

%% How long the C-node gets to answer a restore (it answers at once: pools connect in the background).
-define(RESTORE_WAIT_MS, 10000).
%% Time the registry takes beyond the C-node's own bound before a caller stops waiting.
-define(MARGIN_MS, 5000).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% Creates the table the records are kept in, owned by the calling process (the supervisor, which outlives
%% this server). Public because its owner is not the process that writes it.
-spec create_table() -> ok.
create_table() ->
    distribute_pool_sup:create_table(?TABLE, [set]).

%% The `new' call of docs/PROTOCOL.md on the embedded C-node; the pool is recorded before {ok, Id} returns.
%% Its owner is none unless Options say otherwise: the embedded C-node is this application's child, so its
%% pools already end with this node, and are brought back by this registry after a C-node restart; a caller
%% node's grace (README, "Pool owners") would only add a way to lose them, when this node's connections to
%% its own C-node drop for a while.
-spec new(atom() | binary(), map(), non_neg_integer()) ->
    {ok, non_neg_integer()} | {error, term()}.
new(Target, Options, Wait) ->
    safe_call({new, Target, maps:merge(#{owner => none}, Options), Wait}, Wait + ?MARGIN_MS).

%% The `new_group' call on the embedded C-node (owner none unless GroupOptions say otherwise, as new/3); the
%% group is recorded, with its members' ids (the group's + 1, + 2, ... in the order of Members), before
%% {ok, Id} returns.
-spec new_group([{target(), map()}], map(), map(), non_neg_integer()) -> {ok, non_neg_integer()} | {error, term()}.
new_group(Members, PoolOptions, GroupOptions, Wait) ->
    safe_call({new_group, Members, PoolOptions, maps:merge(#{owner => none}, GroupOptions), Wait}, Wait + ?MARGIN_MS).

%% The `add_target' call for a recorded group of the embedded C-node ({ok, MemberId}, the member recorded
%% first); `direct' for any other group: the caller calls Server itself.
-spec add_target(distribute_pool_client:server(), non_neg_integer(), target(), map(), non_neg_integer()) ->
    {ok, non_neg_integer()} | direct | {error, term()}.
add_target(Server, GroupId, Target, Options, Wait) ->
    safe_call({add_target, Server, GroupId, Target, Options, Wait}, Wait + ?MARGIN_MS).

%% The `remove_target' call, as add_target/5: the member is forgotten once removed.
-spec remove_target(distribute_pool_client:server(), non_neg_integer(), target(), non_neg_integer(),
                    non_neg_integer()) -> ok | direct | {error, term()}.
remove_target(Server, GroupId, Target, DrainMs, Wait) ->
    safe_call({remove_target, Server, GroupId, Target, DrainMs, Wait}, Wait + ?MARGIN_MS).

%% The `destroy' call; when Server is the embedded C-node the pool is forgotten once the C-node no longer
%% knows it. `direct' when Server is another C-node: the caller calls it itself.
-spec destroy(distribute_pool_client:server(), non_neg_integer(), non_neg_integer(), non_neg_integer()) ->
    ok | direct | {error, term()}.
destroy(Server, PoolId, DrainMs, Wait) ->
    safe_call({destroy, Server, PoolId, DrainMs, Wait}, Wait + ?MARGIN_MS).

%% Called by distribute_pool_cnode once a new embedded C-node (started with --await-restore) is ready:
%% re-creates every recorded pool and group on it. Those the C-node refuses are logged and forgotten; the
%% call returns how many came back.
-spec restore(distribute_pool_client:server()) -> {ok, non_neg_integer()} | {error, term()}.
restore(Server) ->
    %% Each refused pool costs one more round trip; the bound is generous, the C-node answers at once.
    safe_call({restore, Server}, 4 * ?RESTORE_WAIT_MS).

%% The recorded pools, in id order, then the recorded groups, in id order.
-spec recorded() -> [entry()].
recorded() ->
    case safe_call(recorded, 5000) of
        Entries when is_list(Entries) -> Entries;
        {error, _} -> []
    end.

-spec safe_call(term(), non_neg_integer()) -> term().
safe_call(Request, Timeout) ->
    try
        gen_server:call(?MODULE, Request, Timeout)
    catch
        exit:Reason ->
            distribute_pool_client:not_running(io_lib:format("the pool registry did not answer: ~0tp", [Reason]))
    end.

-spec init([]) -> {ok, #state{}}.
init([]) ->
    process_flag(trap_exit, true),
    case ets:whereis(?TABLE) of
        undefined ->
            %% Started without the application's supervisor: the records then live as long as this server.
            create_table();
        _ ->
            case length(entries()) of
                0 -> ok;
                N -> logger:info("distribute_pool: pool registry restarted with ~b recorded pool(s)", [N])
            end
    end,
    {ok, #state{}}.

-spec lookup(server | max_id) -> term().
lookup(Key) ->
    case ets:lookup(?TABLE, Key) of
        [{Key, Value}] -> Value;
        [] -> undefined
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}} | {noreply, #state{}}.
handle_call({new, Target, Options, Wait}, From, State) ->
    on_embedded(From, {new, Target, Options}, Wait, State);
handle_call({new_group, Members, PoolOptions, GroupOptions, Wait}, From, State) ->
    on_embedded(From, {new_group, Members, PoolOptions, GroupOptions}, Wait, State);
handle_call({add_target, Server, GroupId, Target, Options, Wait}, From, State) ->
    case lookup(server) =:= Server andalso ets:member(?TABLE, {group, GroupId}) of
        true -> {noreply, start_worker(From, {add_target, GroupId, Target, Options}, Server, Wait, State)};
        false -> {reply, direct, State}
    end;
handle_call({remove_target, Server, GroupId, Target, DrainMs, Wait}, From, State) ->
    case lookup(server) =:= Server andalso ets:lookup(?TABLE, {group, GroupId}) of
        [{_, Members, _, _}] ->
            %% From now on the member is on its way out, as a pool being destroyed. A member of Target whose
            %% removal is under way is not it (the C-node has taken it out of the group, and Target may have
            %% been added again since); one marked by a removal that failed may be, when nothing else is.
            Ids = [Id || {Id, T, _} <- Members, same_node(T, Target)],
            {Going, Staying} = lists:partition(fun destroying/1, Ids),
            MemberId = case Staying ++ [Id || Id <- Going, not being_removed(Id, State)] of
                           [Id | _] -> true = ets:insert(?TABLE, {{destroying, Id}}), Id;
                           [] -> unrecorded
                       end,
            {noreply, start_worker(From, {remove_target, GroupId, Target, MemberId, DrainMs}, Server, Wait, State)};
        _ ->
            {reply, direct, State}
    end;
handle_call({destroy, Server, PoolId, DrainMs, Wait}, From, State) ->
    case lookup(server) of
        Server ->
            %% From now on the pool is on its way out: a C-node that dies meanwhile does not get it back (its
            %% name may already be a newer pool's).
            true = ets:insert(?TABLE, {{destroying, PoolId}}),
            {noreply, start_worker(From, {destroy, PoolId, DrainMs}, Server, Wait, State)};
        _ -> {reply, direct, State}
    end;
handle_call({restore, Server}, _From, State) ->
    true = ets:insert(?TABLE, {server, Server}),
    {reply, do_restore(Server), State};
handle_call(recorded, _From, State) ->
    {reply, entries(), State};
handle_call(_Request, _From, State) ->
    {reply, {error, badarg}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Request, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({worker_done, Worker, Job, Reply}, #state{workers = Workers} = State) ->
    case maps:take(Worker, Workers) of
        {{From, Job}, Rest} ->
            gen_server:reply(From, caller_reply(Job, Reply)),
            {noreply, record(Job, Reply, State#state{workers = Rest})};
        error ->
            {noreply, State}
    end;
handle_info({'EXIT', Worker, Reason}, #state{workers = Workers} = State) when Reason =/= normal ->
    %% A worker only makes a call that returns its errors; this is not expected, but answer the caller.
    case maps:take(Worker, Workers) of
        {{From, Job}, Rest} ->
            Text = io_lib:format("the registry's worker exited: ~0tp", [Reason]),
            Reply = distribute_pool_client:not_running(Text),
            gen_server:reply(From, Reply),
            {noreply, record(Job, Reply, State#state{workers = Rest})};
        error ->
            {noreply, State}
    end;
handle_info(_Other, State) ->
    {noreply, State}.

%% A job (new, new_group) for the embedded C-node, which is known once it asked for its first restore.
-spec on_embedded(gen_server:from(), job(), non_neg_integer(), #state{}) ->
    {reply, term(), #state{}} | {noreply, #state{}}.
on_embedded(From, Job, Wait, State) ->
    case lookup(server) of
        undefined -> {reply, distribute_pool_client:not_running("the embedded C-node has not started yet"), State};
        Server -> {noreply, start_worker(From, Job, Server, Wait, State)}
    end.

-spec start_worker(gen_server:from(), job(), distribute_pool_client:server(), non_neg_integer(), #state{}) ->
    #state{}.
start_worker(From, Job, Server, Wait, #state{workers = Workers} = State) ->
    Registry = self(),
    Worker = spawn_link(fun() ->
                                Reply = distribute_pool_client:call(Server, job_request(Job), Wait),
                                Registry ! {worker_done, self(), Job, Reply}
                        end),
    State#state{workers = Workers#{Worker => {From, Job}}}.

-spec job_request(job()) -> distribute_pool_proto:request().
job_request({new, Target, Options}) -> distribute_pool_proto:new(Target, Options);
job_request({destroy, PoolId, DrainMs}) -> distribute_pool_proto:destroy(PoolId, DrainMs);
job_request({new_group, Members, PoolOptions, GroupOptions}) ->
    distribute_pool_proto:new_group(Members, PoolOptions, GroupOptions);
job_request({add_target, GroupId, Target, Options}) -> distribute_pool_proto:add_target(GroupId, Target, Options);
job_request({remove_target, GroupId, Target, _MemberId, DrainMs}) ->
    distribute_pool_proto:remove_target_naming_member(GroupId, Target, DrainMs).

%% A job's answer as its caller expects it: a removal's `ok' without the member's id.
-spec caller_reply(job(), term()) -> term().
caller_reply({remove_target, _, _, _, _}, Reply) ->
    case distribute_pool_proto:removed_reply(Reply) of
        {ok, _MemberId} -> ok;
        {error, _} = Error -> Error
    end;
caller_reply(_Job, Reply) ->
    Reply.

%% Records what a job's answer changed. The changes of one group's members are not ordered: each worker has a
%% lane of its own, so an add_target and a removal of the same target asked one after the other can reach the
%% C-node in either order, and their answers come back in either order. A removal is recorded by the member
%% the C-node says it took out: forgotten if recorded, else its add's answer, still to come, records nothing.
%% Meanwhile a member is marked as on its way out from the start of a removal that should take it (or, when
%% the removal found none, from its add's answer), so that a restore does not bring it back.
-spec record(job(), term(), #state{}) -> #state{}.
record({add_target, GroupId, Target, Options}, Reply,
       #state{removed_ids = RemovedIds, provisional = Provisional, going = Going} = State) ->
    Key = {GroupId, node_key(Target)},
    Added = distribute_pool_proto:new_reply(Reply),
    State1 = case {Added, ets:lookup(?TABLE, {group, GroupId})} of
                 {{ok, MemberId}, _} when is_map_key(MemberId, RemovedIds) ->
                     ok = seen(MemberId), % added, then taken out by the removal that answered first
                     State#state{removed_ids = maps:remove(MemberId, RemovedIds)};
                 {{ok, MemberId}, [{Row, Members, PoolOptions, GroupOptions}]} ->
                     true = ets:insert(?TABLE, {Row, Members ++ [{MemberId, Target, Options}], PoolOptions,
                                                GroupOptions}),
                     ok = seen(MemberId),
                     case {is_map_key(Key, Going), removal_under_way(GroupId, Target, State)} of
                         {true, _} ->
                             true = ets:insert(?TABLE, {{destroying, MemberId}}),
                             State;
                         {false, true} ->
                             true = ets:insert(?TABLE, {{destroying, MemberId}}),
                             State#state{provisional = Provisional#{MemberId => Key}};
                         {false, false} ->
                             State
                     end;
                 {{ok, MemberId}, []} ->
                     ok = seen(MemberId), % its group was destroyed meanwhile
                     State;
                 _ ->
                     State
             end,
    %% The notes about Target's adds end with the last of them: with two under way, a failed removal's
    %% `going' marks both (it cannot tell which it hit).
    case adding(GroupId, Target, State1) of
        false ->
            State1#state{removed_ids = maps:filter(fun(_, K) -> K =/= Key end, State1#state.removed_ids),
                         going = maps:remove(Key, State1#state.going)};
        true ->
            State1
    end;
record({remove_target, GroupId, Target, Marked, _DrainMs}, Reply, State) ->
    Members = [Id || {_, Ms, _, _} <- ets:lookup(?TABLE, {group, GroupId}), {Id, T, _} <- Ms, same_node(T, Target)],
    {Taken, State1} =
        case distribute_pool_proto:removed_reply(Reply) of
            {ok, RemovedId} ->
                ok = forget_destroyed(RemovedId),
                case lists:member(RemovedId, Members) of
                    true -> {RemovedId, State};
                    false -> {RemovedId, remember_removed(RemovedId, GroupId, Target, State)} % not recorded (yet)
                end;
            {error, invalid_pool} when is_integer(Marked) ->
                ok = forget_destroyed(Marked), % the group is gone
                {Marked, State};
            {error, invalid_pool} ->
                {none, State}; % the group is gone, and its members' records with it
            {error, {invalid_config, {unknown_target, _}}} when is_integer(Marked) ->
                %% The C-node has no such member (it went with a removal whose answer was lost, or is going):
                %% not one to bring back.
                ok = forget_destroyed(Marked),
                {Marked, State};
            {error, {invalid_config, _}} ->
                {none, State}; % refused (its last target, say): what this removal marked stays
            {error, _} when Marked =:= unrecorded ->
                %% Failed, no answer: an add of Target still on its way records its member as going.
                {failed, case adding(GroupId, Target, State) of
                             true -> State#state{going = (State#state.going)#{{GroupId, node_key(Target)} => true}};
                             false -> State
                         end};
            {error, _} ->
                {failed, State} % as a destroy that failed: what this removal marked stays marked
        end,
    unmark_untaken(GroupId, Target, Marked, Members, Taken, State1);
record(Job, Reply, State) ->
    ok = record(Job, Reply),
    State.

%% After a removal's answer, the marks it leaves: the provisional ones of its target (and its own, when it was
%% refused) that it did not take out are unmarked, unless another removal of the target that found no member
%% is still under way (they wait for that one's answer) or this one failed (they stay, as after a destroy
%% that failed). Its own mark on a member it did not take stays when it took another: that member was not the
%% target's live one, so it is on its way out already (a removal that timed out before, say).
-spec unmark_untaken(non_neg_integer(), target(), non_neg_integer() | unrecorded, [non_neg_integer()],
                     non_neg_integer() | none | failed, #state{}) -> #state{}.
unmark_untaken(GroupId, Target, Marked, Members, Taken, #state{provisional = Provisional} = State) ->
    Key = {GroupId, node_key(Target)},
    Ours = [Id || {Id, K} <- maps:to_list(Provisional), K =:= Key],
    Candidates = [Id || Id <- lists:usort(Ours ++ [Marked || is_integer(Marked), Taken =:= none]),
                        Id =/= Taken, lists:member(Id, Members)],
    Pending = removal_under_way(GroupId, Target, State),
    case {Taken, Pending} of
        {failed, _} ->
            State#state{provisional = maps:without(Ours, Provisional)};
        {_, true} ->
            State#state{provisional = maps:merge(Provisional, maps:from_list([{Id, Key} || Id <- Candidates]))};
        {_, false} ->
            _ = [true = ets:delete(?TABLE, {destroying, Id}) || Id <- Candidates, not being_removed(Id, State)],
            State#state{provisional = maps:without(Ours, Provisional)}
    end.

%% A member the C-node took out before the registry recorded it: its add's answer (when one is on its way)
%% records nothing.
-spec remember_removed(non_neg_integer(), non_neg_integer(), target(), #state{}) -> #state{}.
remember_removed(MemberId, GroupId, Target, #state{removed_ids = RemovedIds} = State) ->
    case adding(GroupId, Target, State) of
        true -> State#state{removed_ids = RemovedIds#{MemberId => {GroupId, node_key(Target)}}};
        false -> State
    end.

%% Whether a removal of Target from GroupId that found no member to mark is under way.
-spec removal_under_way(non_neg_integer(), target(), #state{}) -> boolean().
removal_under_way(GroupId, Target, #state{workers = Workers}) ->
    lists:any(fun({_, {remove_target, G, T, unrecorded, _}}) -> G =:= GroupId andalso same_node(T, Target);
                 (_) -> false
              end, maps:values(Workers)).

%% Whether a removal or destroy of the member or pool Id is under way.
-spec being_removed(non_neg_integer(), #state{}) -> boolean().
being_removed(Id, #state{workers = Workers}) ->
    lists:any(fun({_, {remove_target, _, _, MemberId, _}}) -> MemberId =:= Id;
                 ({_, {destroy, PoolId, _}}) -> PoolId =:= Id;
                 (_) -> false
              end, maps:values(Workers)).

%% Whether an add_target of Target to GroupId is under way.
-spec adding(non_neg_integer(), target(), #state{}) -> boolean().
adding(GroupId, Target, #state{workers = Workers}) ->
    lists:any(fun({_, {add_target, G, T, _}}) -> G =:= GroupId andalso same_node(T, Target);
                 (_) -> false
              end, maps:values(Workers)).

-spec record(job(), term()) -> ok.
record({new, Target, Options}, Reply) ->
    case distribute_pool_proto:new_reply(Reply) of
        {ok, Id} ->
            true = ets:insert(?TABLE, {{pool, Id}, Target, Options}),
            seen(Id);
        _ ->
            ok
    end;
record({destroy, Id, _DrainMs}, Reply) when Reply =:= ok; Reply =:= {error, invalid_pool} ->
    %% A group's members' marks go with it.
    _ = [true = ets:delete(?TABLE, {destroying, M}) || {_, Ms, _, _} <- ets:lookup(?TABLE, {group, Id}),
                                                       {M, _, _} <- Ms],
    forget_destroyed(Id);
record({destroy, _Id, _DrainMs}, _Failed) ->
    ok; % still marked: asked to go, it is not brought back by a restore (a later destroy clears the mark)
record({new_group, Members, PoolOptions, GroupOptions}, Reply) ->
    case distribute_pool_proto:new_reply(Reply) of
        {ok, Id} ->
            Ids = lists:seq(Id + 1, Id + length(Members)),
            Recorded = [{MemberId, Target, Options} || {MemberId, {Target, Options}} <- lists:zip(Ids, Members)],
            true = ets:insert(?TABLE, {{group, Id}, Recorded, PoolOptions, GroupOptions}),
            seen(lists:max([Id | Ids]));
        _ ->
            ok
    end.

%% Forgets the pool, group or group member Id.
-spec forget(non_neg_integer()) -> ok.
forget(Id) ->
    true = ets:delete(?TABLE, {pool, Id}),
    true = ets:delete(?TABLE, {group, Id}),
    _ = [true = ets:insert(?TABLE, {Key, [M || {MemberId, _, _} = M <- Members, MemberId =/= Id], PoolOptions,
                                     GroupOptions})
         || {{group, _} = Key, Members, PoolOptions, GroupOptions} <- ets:tab2list(?TABLE),
            lists:keymember(Id, 1, Members)],
    ok.

%% Whether two targets name the same node, as the C-node compares them (the host without regard to ASCII
%% case).
-spec same_node(target(), target()) -> boolean().
same_node(A, B) ->
    node_key(A) =:= node_key(B).

-spec node_key(target()) -> {binary(), binary()} | binary().
node_key(Target) when is_atom(Target) ->
    node_key(atom_to_binary(Target, utf8));
node_key(Target) ->
    case binary:split(Target, <<"@">>) of
        [Alive, Host] -> {Alive, << <<(ascii_lower(C))>> || <<C>> <= Host >>};
        _ -> Target
    end.

-spec ascii_lower(byte()) -> byte().
ascii_lower(C) when C >= $A, C =< $Z -> C + 32;
ascii_lower(C) -> C.

-spec seen(non_neg_integer()) -> ok.
seen(Id) ->
    New = case lookup(max_id) of
              undefined -> Id;
              Max -> max(Id, Max)
          end,
    true = ets:insert(?TABLE, {max_id, New}),
    ok.

%% The recorded pools, in id order, then the recorded groups, in id order.
-spec entries() -> [entry()].
entries() ->
    Rows = ets:tab2list(?TABLE),
    lists:keysort(1, [{Id, Target, Options} || {{pool, Id}, Target, Options} <- Rows]) ++
        lists:keysort(2, [{group, Id, Members, PoolOptions, GroupOptions}
                          || {{group, Id}, Members, PoolOptions, GroupOptions} <- Rows]).

-spec entry_id(entry()) -> non_neg_integer().
entry_id({group, Id, _, _, _}) -> Id;
entry_id({Id, _, _}) -> Id.

%% Sends every recorded pool and group; one the C-node refuses ({error, {Why, Id}}) is logged, forgotten,
%% and the others are sent again. Ends with a restore that succeeded (an empty one at worst), so the C-node
%% leaves its await-restore state.
-spec do_restore(distribute_pool_client:server()) -> {ok, non_neg_integer()} | {error, term()}.
do_restore(Server) ->
    Next = case lookup(max_id) of
               undefined -> 0;
               Max -> Max + 1
           end,
    %% Pools, groups and members whose destroy (or removal) had begun stay gone.
    {Destroying, Kept} = lists:partition(fun(Entry) -> destroying(entry_id(Entry)) end, entries()),
    [ok = forget_destroyed(entry_id(Entry)) || Entry <- Destroying],
    Entries = lists:filtermap(fun without_members_going/1, Kept),
    Reply = distribute_pool_client:call(Server, distribute_pool_proto:restore(Entries, Next), ?RESTORE_WAIT_MS),
    case distribute_pool_proto:restore_reply(Reply) of
        {ok, N} ->
            case N of
                0 -> ok;
                _ -> logger:info("distribute_pool: restored ~b pool(s) and group(s) on ~p", [N, Server])
            end,
            {ok, N};
        {refused, Why, Id} ->
            case [Entry || Entry <- Entries, entry_id(Entry) =:= Id] of
                [{Id, Target, Options}] ->
                    %% The options without a pool's own cookie or TLS password.
                    logger:error("distribute_pool: pool ~b (target ~p, options ~p) cannot be restored: ~p; "
                                 "its handles now give {error, invalid_pool}",
                                 [Id, Target, distribute_pool_config:loggable(Options), Why]),
                    ok = forget(Id),
                    do_restore(Server);
                [{group, Id, Members, _, _}] ->
                    logger:error("distribute_pool: group ~b (targets ~p) cannot be restored: ~p; its handles now "
                                 "give {error, invalid_pool}", [Id, [T || {_, T, _} <- Members], Why]),
                    ok = forget(Id),
                    do_restore(Server);
                [] ->
                    %% Not one we sent: do not loop.
                    logger:error("distribute_pool: restore refused: ~p", [{Why, Id}]),
                    {error, {Why, Id}}
            end;
        {error, {bad_reply, Other}} = Error ->
            logger:error("distribute_pool: unexpected answer to restore: ~p", [Other]),
            Error;
        {error, Reason} = Error ->
            %% Most likely the new C-node died as well: the supervisor starts another, which asks again.
            logger:error("distribute_pool: restoring ~b pool(s) and group(s) on ~p failed: ~p",
                         [length(Entries), Server, Reason]),
            Error
    end.

-spec destroying(non_neg_integer()) -> boolean().
destroying(Id) ->
    ets:member(?TABLE, {destroying, Id}).

-spec forget_destroyed(non_neg_integer()) -> ok.
forget_destroyed(Id) ->
    true = ets:delete(?TABLE, {destroying, Id}),
    forget(Id).

%% A group without the members whose removal had begun (forgotten now); false (the group forgotten) when
%% none is left.
-spec without_members_going(entry()) -> {true, entry()} | false.
without_members_going({group, Id, Members, PoolOptions, GroupOptions}) ->
    {Going, Staying} = lists:partition(fun({MemberId, _, _}) -> destroying(MemberId) end, Members),
    [ok = forget_destroyed(MemberId) || {MemberId, _, _} <- Going],
    case Staying of
        [] ->
            logger:warning("distribute_pool: group ~b is not restored: every member's removal had begun", [Id]),
            forget(Id),
            false;
        _ ->
            {true, {group, Id, Staying, PoolOptions, GroupOptions}}
    end;
without_members_going(Pool) ->
    {true, Pool}.
