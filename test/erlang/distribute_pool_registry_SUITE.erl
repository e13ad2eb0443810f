%% The registry's record of group membership (distribute_pool_registry:record/3), driven through its own
%% callbacks: each case asks for add_target and remove_target jobs as callers would (handle_call), then hands
%% the registry the C-node's answers (its workers' worker_done messages) in one order, and checks what is
%% recorded (each member, and whether it is marked as on its way out) and that no bookkeeping is left. The
%% orders are the ones the C-node can give: each job goes over a lane of its own, so they can reach it, and
%% their answers come back, in any order. The suites restart_SUITE and group_SUITE make the same changes on a
%% real C-node; here every order is made on purpose.
%%
%% The registry's workers are real processes: the server named in the jobs is no process at all, so each
%% answers {error, {connection_failed, _}} at once, to this process, and is never handed to the registry
%% (the cases hand it the answers the C-node would give instead). The application is stopped meanwhile: the
%% record table is a named one.
-module(distribute_pool_registry_SUITE).

-export([all/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).
-export([an_add_and_a_removal_in_every_order/1]).
-export([two_adds_and_a_removal_in_every_order/1]).
-export([overlapping_refused_removals_leave_no_mark/1]).
-export([a_removal_without_an_answer_leaves_its_marks/1]).
-export([a_removal_that_took_another_member/1]).
-export([the_group_destroyed_before_the_removal_answered/1]).

-define(R, distribute_pool_registry).
-define(SERVER, {no_such_service, node()}).

-spec all() -> [atom()].
all() ->
    [an_add_and_a_removal_in_every_order,
     two_adds_and_a_removal_in_every_order,
     overlapping_refused_removals_leave_no_mark,
     a_removal_without_an_answer_leaves_its_marks,
     a_removal_that_took_another_member,
     the_group_destroyed_before_the_removal_answered].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    Running = lists:keymember(distribute_pool, 1, application:which_applications()),
    _ = application:stop(distribute_pool),
    [{was_running, Running} | Config].

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    case proplists:get_value(was_running, Config) of
        true -> {ok, _} = application:ensure_all_started(distribute_pool), ok;
        _ -> ok
    end.

-spec init_per_testcase(atom(), list()) -> list().
init_per_testcase(_Case, Config) ->
    process_flag(trap_exit, true), % the registry links its workers to the process that runs its callbacks
    Config.

-spec end_per_testcase(atom(), list()) -> ok.
end_per_testcase(_Case, _Config) ->
    case ets:whereis(?R) of
        undefined -> ok;
        _ -> ets:delete(?R)
    end,
    ok.

%% Cases. Groups are {GroupId, [{MemberId, Target}]}; targets are atoms of one letter and a host.

-spec an_add_and_a_removal_in_every_order(list()) -> ok.
an_add_and_a_removal_in_every_order(_Config) ->
    doc("add_target of c, then remove_target of c before the add answered (the removal finds no member): "
        "for each thing the C-node can have done, in both orders of the answers, the record is the C-node's "
        "membership and nothing is left marked or noted."),
    Outcomes =
        [%% The removal reached the C-node first: unknown_target; the add made member 13.
         {[{add, {ok, 13}}, {remove, {error, {invalid_config, {unknown_target, c}}}}], [{11, a}, {12, b}, {13, c}]},
         %% The add first, the removal took its member 13 once it joined.
         {[{add, {ok, 13}}, {remove, {ok, 13}}], [{11, a}, {12, b}]},
         %% The removal took member 13 while it was still connecting: the add is answered invalid_pool.
         {[{add, {error, invalid_pool}}, {remove, {ok, 13}}], [{11, a}, {12, b}]}],
    in_every_order([{10, [{11, a}, {12, b}]}], 10, [{add, {add, c}}, {remove, {remove, c}}], Outcomes).

-spec two_adds_and_a_removal_in_every_order(list()) -> ok.
two_adds_and_a_removal_in_every_order(_Config) ->
    doc("Two add_targets of c and its removal, all under way at once, with every outcome the C-node can give "
        "(one add refused as the group's second member of c; the removal before, between or after them) and "
        "every order of the answers: the record is the C-node's membership, nothing left marked or noted."),
    Unknown = {error, {invalid_config, {unknown_target, c}}},
    Duplicate = {error, {invalid_config, {duplicate_target, c}}},
    Outcomes =
        [%% add1 made 13, the removal took it, add2 made 14.
         {[{add1, {ok, 13}}, {remove, {ok, 13}}, {add2, {ok, 14}}], [{11, a}, {12, b}, {14, c}]},
         %% The removal took 13 while it connected (add1 invalid_pool), add2 made 14.
         {[{add1, {error, invalid_pool}}, {remove, {ok, 13}}, {add2, {ok, 14}}], [{11, a}, {12, b}, {14, c}]},
         %% add1 made 13, add2 refused, the removal took 13.
         {[{add1, {ok, 13}}, {add2, Duplicate}, {remove, {ok, 13}}], [{11, a}, {12, b}]},
         %% The removal first (unknown_target), add1 made 13, add2 refused.
         {[{add1, {ok, 13}}, {add2, Duplicate}, {remove, Unknown}], [{11, a}, {12, b}, {13, c}]}],
    in_every_order([{10, [{11, a}, {12, b}]}], 10, [{add1, {add, c}}, {add2, {add, c}}, {remove, {remove, c}}],
                   Outcomes).

-spec overlapping_refused_removals_leave_no_mark(list()) -> ok.
overlapping_refused_removals_leave_no_mark(_Config) ->
    doc("Two removals of a group's only target asked at once, both refused (last_target), in either order; and "
        "an add of c with two removals of c that both reached the C-node before it (unknown_target): the "
        "member stays, unmarked (a marked one would keep a restore from bringing the group back)."),
    Last = {error, {invalid_config, {last_target, a}}},
    ok = in_every_order([{20, [{21, a}]}], 20, [{r1, {remove, a}}, {r2, {remove, a}}],
                        [{[{r1, Last}, {r2, Last}], [{21, a}]}]),
    Unknown = {error, {invalid_config, {unknown_target, c}}},
    in_every_order([{10, [{11, a}]}], 10, [{a, {add, c}}, {r1, {remove, c}}, {r2, {remove, c}}],
                   [{[{a, {ok, 13}}, {r1, Unknown}, {r2, Unknown}], [{11, a}, {13, c}]}]).

-spec a_removal_without_an_answer_leaves_its_marks(list()) -> ok.
a_removal_without_an_answer_leaves_its_marks(_Config) ->
    doc("A removal that got no answer (timeout) may have taken its member: the member stays marked, as after a "
        "destroy that got none, and so does the member of an add of its target that was under way; asked "
        "again and answered unknown_target, the member is forgotten."),
    S0 = setup([{10, [{11, a}, {12, b}]}]),
    {R1, S1} = remove(10, b, S0),
    S2 = answer([{r, {error, timeout}}], #{r => R1}, S1),
    [{11, a, false}, {12, b, true}] = members(10),
    {R2, S3} = remove(10, b, S2),
    S4 = answer([{r, {error, {invalid_config, {unknown_target, b}}}}], #{r => R2}, S3),
    check(again, 10, [{11, a}], S4),
    %% No member of c when the removal began; it timed out; the add then answered.
    _ = [begin
             T0 = setup([{10, [{11, a}]}]),
             {A, T1} = add(10, c, T0),
             {R, T2} = remove(10, c, T1),
             Final = answer(Order, #{a => A, r => R}, T2),
             [{11, a, false}, {13, c, true}] = members(10),
             [] = leftovers(Final)
         end || Order <- perms([{a, {ok, 13}}, {r, {error, timeout}}])],
    ok.

-spec a_removal_that_took_another_member(list()) -> ok.
a_removal_that_took_another_member(_Config) ->
    doc("Member 12 of b stays marked after a removal that timed out (it drains on the C-node); b is added again "
        "(13) and removed again: the registry marks 12, its only record of b, but the C-node takes 13. In both "
        "orders of the answers 13 is not recorded and 12 stays marked (it was already going)."),
    _ = [begin
             S0 = setup([{10, [{11, a}, {12, b}]}]),
             {R1, S1} = remove(10, b, S0),
             S2 = answer([{r, {error, timeout}}], #{r => R1}, S1),
             {A, S3} = add(10, b, S2),
             {R2, S4} = remove(10, b, S3),
             Final = answer(Order, #{a => A, r => R2}, S4),
             [{11, a, false}, {12, b, true}] = members(10),
             [] = leftovers(Final)
         end || Order <- perms([{a, {error, invalid_pool}}, {r, {ok, 13}}])],
    ok.

-spec the_group_destroyed_before_the_removal_answered(list()) -> ok.
the_group_destroyed_before_the_removal_answered(_Config) ->
    doc("A group destroyed while a removal of one of its members (or an add and a removal that found no member) "
        "is under way, the destroy answered first: nothing of the group is left, no mark and no note."),
    S0 = setup([{10, [{11, a}, {12, b}]}]),
    {R, S1} = remove(10, b, S0),
    {D, S2} = destroy(10, S1),
    S3 = answer([{d, ok}, {r, {ok, 12}}], #{d => D, r => R}, S2),
    [] = ets:tab2list(?R) -- [{server, ?SERVER}, {max_id, 100}],
    [] = leftovers(S3),
    T0 = setup([{10, [{11, a}, {12, b}]}]),
    {A, T1} = add(10, c, T0),
    {R2, T2} = remove(10, c, T1),
    {D2, T3} = destroy(10, T2),
    T4 = answer([{a, {ok, 13}}, {d, ok}, {r, {ok, 13}}], #{a => A, d => D2, r => R2}, T3),
    [] = [Row || Row <- ets:tab2list(?R), element(1, Row) =/= server, element(1, Row) =/= max_id],
    [] = leftovers(T4),
    ok.

%% Helpers.

doc(Text) ->
    ct:comment("~ts", [Text]).

%% A fresh record table with Groups and max_id 100, and a fresh registry state.
setup(Groups) ->
    case ets:whereis(?R) of
        undefined -> ok;
        _ -> ets:delete(?R)
    end,
    ok = ?R:create_table(),
    true = ets:insert(?R, {server, ?SERVER}),
    true = ets:insert(?R, {max_id, 100}),
    _ = [true = ets:insert(?R, {{group, G}, [{Id, target(T), #{}} || {Id, T} <- Members], #{}, #{}})
         || {G, Members} <- Groups],
    {ok, State} = ?R:init([]),
    State.

target(Letter) ->
    list_to_atom(atom_to_list(Letter) ++ "@127.0.0.1").

%% A job asked as a caller asks it: {Worker, State}.
job(Request, State) ->
    {noreply, Next} = ?R:handle_call(Request, {self(), make_ref()}, State),
    [Worker] = maps:keys(workers(Next)) -- maps:keys(workers(State)),
    {Worker, Next}.

add(G, T, S) -> job({add_target, ?SERVER, G, target(T), #{}, 1000}, S).
remove(G, T, S) -> job({remove_target, ?SERVER, G, target(T), 0, 1000}, S).
destroy(Id, S) -> job({destroy, ?SERVER, Id, 0, 1000}, S).

%% For each outcome {Answers, Expected} and each order of its answers: a fresh record of Groups, the jobs Asks
%% ([{Name, {add | remove, Letter}}], on group G) asked in turn, the answers handed over in that order, and
%% group G's record checked against Expected.
in_every_order(Groups, G, Asks, Outcomes) ->
    _ = [begin
             Ask = fun({Name, {Kind, Letter}}, {Jobs, S}) ->
                           {Worker, Next} = case Kind of
                                                add -> add(G, Letter, S);
                                                remove -> remove(G, Letter, S)
                                            end,
                           {Jobs#{Name => Worker}, Next}
                   end,
             {Jobs, Asked} = lists:foldl(Ask, {#{}, setup(Groups)}, Asks),
             check(Order, G, Expected, answer(Order, Jobs, Asked))
         end || {Answers, Expected} <- Outcomes, Order <- perms(Answers)],
    ok.

%% The C-node's answers handed to the registry in Order ([{Name, Reply}]), as its workers would.
answer(Order, Jobs, State) ->
    lists:foldl(fun({Name, Reply}, S) ->
                        Worker = maps:get(Name, Jobs),
                        {_From, Job} = maps:get(Worker, workers(S)),
                        {noreply, Next} = ?R:handle_info({worker_done, Worker, Job, Reply}, S),
                        Next
                end, State, Order).

%% The registry state's fields, by position: workers, removed_ids, provisional, going.
workers(State) -> element(2, State).
leftovers(State) ->
    [{Field, element(Pos, State)} || {Field, Pos} <- [{removed_ids, 3}, {provisional, 4}, {going, 5}],
                                     map_size(element(Pos, State)) > 0].

%% Group G's recorded members: [{Id, Letter, Marked}].
members(G) ->
    [{Members, _, _}] = [{Ms, P, O} || {{group, Id}, Ms, P, O} <- ets:tab2list(?R), Id =:= G],
    [{Id, list_to_atom(hd(string:split(atom_to_list(T), "@"))), ets:member(?R, {destroying, Id})}
     || {Id, T, _} <- Members].

%% Group G's record is Expected ([{Id, Letter}], none of them marked), and nothing is left of the jobs.
check(Order, G, Expected, State) ->
    Want = [{Id, L, false} || {Id, L} <- Expected],
    case {members(G), leftovers(State), [Id || {{destroying, Id}} <- ets:tab2list(?R)]} of
        {Want, [], []} -> ok;
        Other -> ct:fail({Order, {expected, Expected}, {got, Other}})
    end,
    flush_worker_answers().

%% The real workers' own answers (connection_failed: no such server) come to this process; dropped.
flush_worker_answers() ->
    receive
        {worker_done, _, _, _} -> flush_worker_answers();
        {'EXIT', _, _} -> flush_worker_answers()
    after 0 -> ok
    end.

perms([]) -> [[]];
perms(L) -> [[H | T] || H <- L, T <- perms(L -- [H])].
