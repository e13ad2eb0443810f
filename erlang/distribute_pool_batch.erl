%% Batch operations over a pool, built on the public lease API of distribute_pool:
%% - send_batch/3: one lease for the whole batch, elements in order, results in order;
%% - send_batch_parallel/3: one worker per pooled connection (at most the pool's max_connections), each with
%%   its own lease, results in input order, failures reported per element;
%% - stress_test/3,4: concurrent workers doing leases with a real round trip each, reporting progress (to
%%   logger at info level, or to a callback; nothing is printed by the library itself).
%%
%% The parallel forms run their workers under a coordinator process that monitors the caller: if the caller
%% dies, the coordinator kills the workers at once (also those still waiting for a lease), and the C-node,
%% which monitors every lease holder, takes their leases back. The caller only waits for the coordinator's
%% answer, and returns once every worker has ended, so nothing outlives the call and no stray message is
%% left in the caller's mailbox.
%%
%% Leases are back when a batch returns. A worker that ends normally has cast its checkin, and the C-node's
%% return barrier makes that count for any request sent after the batch returned (docs/PROTOCOL.md, "Returns
%% before a request"). A worker killed while it waited for its lease (or one that died holding it) returns
%% nothing itself: its checkout may still be on its way to the C-node, and a lease granted to it comes back
%% only when the C-node finds the holder gone. So before it answers, the coordinator asks for the pool's stats
%% over the lane of each such worker: that request is handled after the worker's checkout (one lane is one
%% connection, FIFO), and the C-node's stats read first takes back the leases of holders that exited.
-module(distribute_pool_batch).

-include("distribute_pool_internal.hrl").

-export([send_batch/3]).
-export([send_batch_parallel/3]).
-export([stress_test/3]).
-export([stress_test/4]).
-export([format_progress/1]).

-export_type([element_failure/0]).
-export_type([batch_result/0]).
-export_type([stress_options/0]).
-export_type([progress_report/0]).

%% Why one element of a parallel batch failed.
-type element_failure() :: pool_exhausted | distribute_pool:connection_failure() | invalid_pool
                         | distribute_pool:limit_reached()
                         | {raised, error | exit | throw, Reason :: term()}
                         | {worker_down, Reason :: term()}.
%% `failed' holds {Index, Failure} sorted by index; indices count from 0, as in the Gleam face.
-type batch_result() :: #{successful := [term()], failed := [{non_neg_integer(), element_failure()}]}.
-type stress_options() :: #{progress => boolean(), progress_interval_ms => pos_integer(),
                            on_progress => fun((progress_report()) -> term())} | [{atom(), term()}].
%% What a progress report says; `phase' is `running' every interval, then `done' once.
-type progress_report() :: #{phase := running | done, done := non_neg_integer(), total := non_neg_integer(),
                             failed := non_neg_integer(), ops_per_s := non_neg_integer(),
                             elapsed_ms := non_neg_integer()}.

-define(MAX_STRESS_WORKERS, 100000).
-define(MAX_STRESS_OPS, 1000000000).
-define(DEFAULT_PROGRESS_MS, 1000).

%% Runs SendFun(Conn, Msg) for every message, in order, over one leased connection.
%% An exception raised by SendFun leaves, unchanged, after the lease has been returned.
-spec send_batch(distribute_pool:pool_ref(), [Msg], fun((distribute_pool:conn(), Msg) -> Result)) ->
    {ok, [Result]}
    | {error, pool_exhausted | distribute_pool:connection_failure() | invalid_pool | badarg
       | distribute_pool:limit_reached()}.
send_batch(Pool, Messages, SendFun) ->
    case is_proper_list(Messages) andalso is_function(SendFun, 2) of
        true ->
            distribute_pool:with_connection(Pool, fun(Conn) ->
                                                          ok = await_lease(Conn),
                                                          [SendFun(Conn, M) || M <- Messages]
                                                  end);
        false ->
            {error, badarg}
    end.

%% Runs SendFun(Conn, Msg) for every message on up to max_connections workers at once, each holding its
%% own lease. Successful results come in input order; an element whose SendFun raised, or whose worker
%% died, is in `failed' with its index. {error, Reason} when no worker could lease a connection at all.
-spec send_batch_parallel(distribute_pool:pool_ref(), [Msg], fun((distribute_pool:conn(), Msg) -> term())) ->
    {ok, batch_result()}
    | {error, pool_exhausted | distribute_pool:connection_failure() | invalid_pool | badarg | timeout
       | distribute_pool:limit_reached()}.
send_batch_parallel(Pool, Messages, SendFun) ->
    case is_proper_list(Messages) andalso is_function(SendFun, 2) of
        true ->
            case distribute_pool:stats(Pool) of
                {ok, #{max_connections := Max}} when Messages =:= [] ->
                    _ = Max,
                    {ok, #{successful => [], failed => []}};
                {ok, #{max_connections := Max}} ->
                    Width = min(Max, length(Messages)),
                    run_coordinated(fun(Caller, Tag) ->
                                            parallel_init(Caller, Tag, Pool, Messages, SendFun, Width)
                                    end);
                {error, _} = Error ->
                    Error
            end;
        false ->
            {error, badarg}
    end.

%% Workers concurrent processes, each doing OpsPerWorker leases with a ping (a round trip to the target's
%% net_kernel over the leased connection) inside. Reports progress every second; returns the pool's stats.
-spec stress_test(distribute_pool:pool_ref(), non_neg_integer(), pos_integer()) ->
    {ok, map()} | {error, distribute_pool:invalid_config() | invalid_pool | distribute_pool:connection_failure()
                   | timeout}.
stress_test(Pool, OpsPerWorker, Workers) ->
    stress_test(Pool, OpsPerWorker, Workers, #{}).

-spec stress_test(distribute_pool:pool_ref(), non_neg_integer(), pos_integer(), stress_options()) ->
    {ok, map()} | {error, distribute_pool:invalid_config() | invalid_pool | distribute_pool:connection_failure()
                   | timeout}.
stress_test(_Pool, OpsPerWorker, _Workers, _Options)
  when not is_integer(OpsPerWorker); OpsPerWorker < 0; OpsPerWorker > ?MAX_STRESS_OPS ->
    {error, {invalid_config, {bad_value, ops_per_worker, OpsPerWorker, <<"an integer in 0..1000000000">>}}};
stress_test(_Pool, _OpsPerWorker, Workers, _Options)
  when not is_integer(Workers); Workers < 1; Workers > ?MAX_STRESS_WORKERS ->
    {error, {invalid_config, {bad_value, workers, Workers, <<"an integer in 1..100000">>}}};
stress_test(Pool, OpsPerWorker, Workers, Options) ->
    case stress_options(Options) of
        {ok, Progress} ->
            case distribute_pool:stats(Pool) of
                {ok, _} ->
                    case run_coordinated(fun(Caller, Tag) ->
                                                 stress_init(Caller, Tag, Pool, OpsPerWorker, Workers, Progress)
                                         end) of
                        {ok, done} -> distribute_pool:stats(Pool);
                        {error, _} = Error -> Error
                    end;
                {error, _} = Error ->
                    Error
            end;
        {error, _} = Error ->
            Error
    end.

%% How progress is reported: every Interval ms, to a callback or logger; none: not at all.
-type progress() :: {pos_integer(), fun((progress_report()) -> term())} | none.

-spec stress_options(term()) -> {ok, progress()} | {error, distribute_pool:invalid_config()}.
stress_options(Options) ->
    case distribute_pool_config:to_map(Options) of
        {ok, Map} ->
            Progress = maps:get(progress, Map, true),
            Interval = maps:get(progress_interval_ms, Map, ?DEFAULT_PROGRESS_MS),
            Report = maps:get(on_progress, Map, fun log_progress/1),
            Bad = fun(Key, Value, Allowed) -> {error, {invalid_config, {bad_value, Key, Value, Allowed}}} end,
            case maps:keys(maps:without([progress, progress_interval_ms, on_progress], Map)) of
                [Unknown | _] -> {error, {invalid_config, {unknown_option, Unknown}}};
                [] when not is_boolean(Progress) -> Bad(progress, Progress, <<"true or false">>);
                [] when not is_integer(Interval); Interval < 1; Interval > 3600000 ->
                    Bad(progress_interval_ms, Interval, <<"an integer in 1..3600000">>);
                [] when not is_function(Report, 1) -> Bad(on_progress, Report, <<"a fun of one argument">>);
                [] when Progress -> {ok, {Interval, Report}};
                [] -> {ok, none}
            end;
        {error, _} = Error ->
            Error
    end.

%% --- the coordinator ----------------------------------------------------------------------------------

%% Runs Init(Caller, Tag) in a new coordinator process and waits for its one answer, {Tag, Answer}. Init
%% returns once the coordinator's work is done (every worker has ended), which ends the coordinator.
-spec run_coordinated(fun((pid(), reference()) -> ok)) -> term().
run_coordinated(Init) ->
    Caller = self(),
    Tag = make_ref(),
    {Coordinator, Mref} = spawn_monitor(fun() -> Init(Caller, Tag) end),
    receive
        {Tag, Answer} ->
            %% The coordinator sends its answer as its last act; wait for it to end so that nothing outlives
            %% the call.
            receive {'DOWN', Mref, process, Coordinator, _} -> ok end,
            Answer;
        {'DOWN', Mref, process, Coordinator, Reason} ->
            {error, {coordinator_down, Reason}}
    end.

-record(par, {
    caller :: pid(),
    caller_mref :: reference(),
    tag :: reference(),
    pool :: distribute_pool:pool(),
    send_fun :: fun((distribute_pool:conn(), term()) -> term()),
    pending :: [{non_neg_integer(), term()}],
    %% worker pid => waiting (for its lease) | idle | {busy, Index} | stopping
    workers = #{} :: #{pid() => waiting | idle | {busy, non_neg_integer()} | stopping},
    results = #{} :: #{non_neg_integer() => {ok, term()} | {failed, element_failure()}},
    lease_error = undefined :: undefined | atom(),
    %% The lane each worker talks to the C-node over, and the id of the pool it leases from (a pool given by
    %% name is resolved by each worker), told by the worker before its checkout.
    lanes = #{} :: #{pid() => {distribute_pool_client:server(), non_neg_integer()}},
    %% Workers that ended other than normally (killed while waiting, or died holding a lease).
    died = [] :: [pid()]
}).

-spec parallel_init(pid(), reference(), distribute_pool:pool(), [term()], fun(), pos_integer()) -> ok.
parallel_init(Caller, Tag, Pool, Messages, SendFun, Width) ->
    CallerMref = erlang:monitor(process, Caller),
    Indexed = lists:zip(lists:seq(0, length(Messages) - 1), Messages),
    State0 = #par{caller = Caller, caller_mref = CallerMref, tag = Tag, pool = Pool, send_fun = SendFun,
                  pending = Indexed},
    State = lists:foldl(fun(_, S) -> spawn_worker(S) end, State0, lists:seq(1, Width)),
    parallel_loop(State).

-spec spawn_worker(#par{}) -> #par{}.
spawn_worker(#par{tag = Tag, pool = Pool, send_fun = SendFun, workers = Workers} = State) ->
    Coordinator = self(),
    {Pid, _Mref} = spawn_monitor(fun() -> worker(Coordinator, Tag, Pool, SendFun) end),
    State#par{workers = Workers#{Pid => waiting}}.

-spec parallel_loop(#par{}) -> ok.
parallel_loop(#par{tag = Tag, caller_mref = CallerMref, workers = Workers, results = Results} = State) ->
    receive
        {Tag, ready, Worker} ->
            parallel_step(dispatch(Worker, State));
        {Tag, done, Worker, Index, Result} ->
            parallel_step(dispatch(Worker, State#par{results = Results#{Index => Result}}));
        {Tag, lane, Worker, {_, _} = LaneAndPool} ->
            parallel_loop(State#par{lanes = (State#par.lanes)#{Worker => LaneAndPool}});
        {Tag, lane, _Worker, undefined} ->
            %% A name that is no pool now: the worker's checkout fails without a lease.
            parallel_loop(State);
        {Tag, no_lease, _Worker, Error} ->
            %% The worker ends next; its 'DOWN' removes it.
            parallel_step(State#par{lease_error = first_defined(State#par.lease_error, Error)});
        {'DOWN', _, process, Worker, Reason} when is_map_key(Worker, Workers) ->
            parallel_step(worker_down(Worker, Reason, State));
        {'DOWN', CallerMref, process, _, _} ->
            kill_workers(State)
    end.

%% Gives an idle worker the next element, or tells it to stop when none is left.
-spec dispatch(pid(), #par{}) -> #par{}.
dispatch(Worker, #par{tag = Tag, pending = [{Index, Msg} | Rest], workers = Workers} = State) ->
    Worker ! {Tag, item, Index, Msg},
    State#par{pending = Rest, workers = Workers#{Worker => {busy, Index}}};
dispatch(Worker, #par{tag = Tag, pending = [], workers = Workers} = State) ->
    Worker ! {Tag, stop},
    State#par{workers = Workers#{Worker => stopping}}.

-spec worker_down(pid(), term(), #par{}) -> #par{}.
worker_down(Worker, Reason, #par{workers = Workers, results = Results, pending = Pending} = State) ->
    Died = case Reason of
               normal -> State#par.died;
               _ -> [Worker | State#par.died]
           end,
    State1 = State#par{workers = maps:remove(Worker, Workers), died = Died},
    case maps:get(Worker, Workers) of
        {busy, Index} ->
            %% The element killed its worker (exit(self(), kill), say). Its lease goes back to the pool by
            %% the C-node's monitor; a fresh worker takes over what is left.
            State2 = State1#par{results = Results#{Index => {failed, {worker_down, Reason}}}},
            case Pending of
                [] -> State2;
                _ -> spawn_worker(State2)
            end;
        _ ->
            State1
    end.

%% Once no element is left or running, workers still waiting for a lease are not needed: they are killed
%% rather than left waiting out the acquire timeout. Once no worker is left, the caller gets its answer.
-spec parallel_step(#par{}) -> ok.
parallel_step(#par{workers = Workers} = State) when map_size(Workers) =:= 0 ->
    parallel_finish(State);
parallel_step(#par{pending = [], workers = Workers} = State) ->
    case lists:any(fun({busy, _}) -> true; (_) -> false end, maps:values(Workers)) of
        true ->
            parallel_loop(State);
        false ->
            Waiting = [W || {W, waiting} <- maps:to_list(Workers)],
            _ = [exit(W, kill) || W <- Waiting],
            Stopping = maps:from_keys(Waiting, stopping),
            parallel_loop(State#par{workers = maps:merge(Workers, Stopping)})
    end;
parallel_step(State) ->
    parallel_loop(State).

-spec parallel_finish(#par{}) -> ok.
parallel_finish(#par{caller = Caller, tag = Tag, pending = Pending, results = Results, lease_error = LeaseError}
                = State) ->
    settle_leases(State),
    Answer =
        case {Pending, maps:size(Results)} of
            {[_ | _], 0} ->
                %% No worker ever got a connection: the batch as a whole failed.
                {error, LeaseError};
            _ ->
                Left = maps:from_list([{I, {failed, LeaseError}} || {I, _} <- Pending]),
                All = lists:sort(maps:to_list(maps:merge(Results, Left))),
                {ok, #{successful => [R || {_, {ok, R}} <- All],
                       failed => [{I, F} || {I, {failed, F}} <- All]}}
        end,
    Caller ! {Tag, Answer},
    ok.

%% The leases of workers that died are back before the batch returns (see the module comment). A worker's
%% lane message comes before its 'DOWN', so every dead worker that could have sent a checkout is known here.
-spec settle_leases(#par{}) -> ok.
settle_leases(#par{lanes = Lanes, died = Died}) ->
    Dirty = lists:usort([LaneAndPool || W <- Died, {ok, LaneAndPool} <- [maps:find(W, Lanes)]]),
    _ = [distribute_pool_client:call_on_lane(Lane, distribute_pool_proto:stats(PoolId), ?DPOOL_PROMPT_WAIT_MS)
         || {Lane, PoolId} <- Dirty],
    ok.

-spec kill_workers(#par{}) -> ok.
kill_workers(#par{workers = Workers}) ->
    _ = [exit(W, kill) || W <- maps:keys(Workers)],
    ok.

%% A parallel worker: leases one connection, then runs elements the coordinator hands it until told to
%% stop. It also ends if the coordinator goes away.
-spec worker(pid(), reference(), distribute_pool:pool(), fun()) -> ok.
worker(Coordinator, Tag, Pool, SendFun) ->
    Cref = erlang:monitor(process, Coordinator),
    Coordinator ! {Tag, lane, self(), lane_and_pool(Pool)},
    Serve = fun(Conn) ->
                    ok = await_lease(Conn),
                    Coordinator ! {Tag, ready, self()},
                    serve(Coordinator, Cref, Tag, Conn, SendFun)
            end,
    case distribute_pool:with_connection(Pool, Serve) of
        {ok, ok} -> ok;
        {error, Error} -> Coordinator ! {Tag, no_lease, self(), lease_failure(Error)}, ok
    end.

%% In with_connection's fun (which runs before its checkout is answered): returns once the lease is granted,
%% so that no SendFun runs without one. With none, connection_info/1 ends the fun and with_connection gives
%% the checkout's error.
-spec await_lease(distribute_pool:conn()) -> ok.
await_lease(Conn) ->
    #{} = distribute_pool:connection_info(Conn),
    ok.

-spec serve(pid(), reference(), reference(), distribute_pool:conn(), fun()) -> ok.
serve(Coordinator, Cref, Tag, Conn, SendFun) ->
    receive
        {Tag, item, Index, Msg} ->
            Result = try {ok, SendFun(Conn, Msg)}
                     catch Class:Reason -> {failed, {raised, Class, Reason}}
                     end,
            Coordinator ! {Tag, done, self(), Index, Result},
            serve(Coordinator, Cref, Tag, Conn, SendFun);
        {Tag, stop} ->
            ok;
        {'DOWN', Cref, process, _, _} ->
            ok
    end.

%% This process's lane of the C-node of Pool (a handle or a name), with the pool's id; undefined for a name
%% that is no pool now.
-spec lane_and_pool(distribute_pool:pool_ref()) -> {distribute_pool_client:server(), non_neg_integer()} | undefined.
lane_and_pool(Pool) ->
    case distribute_pool_names:with_pool(Pool, fun(#dpool{server = Server, id = Id}) ->
                                                       {ok, {distribute_pool_client:lane(Server), Id}}
                                               end) of
        {ok, LaneAndPool} -> LaneAndPool;
        _ -> undefined
    end.

-spec lease_failure(term()) -> element_failure().
lease_failure(pool_exhausted) -> pool_exhausted;
lease_failure(invalid_pool) -> invalid_pool;
lease_failure({connection_failed, {Kind, Text}} = Failure) when is_atom(Kind), is_binary(Text) -> Failure;
lease_failure(Other) ->
    Text = io_lib:format("the lease failed: ~0tp", [Other]),
    {connection_failed, {connection_lost, unicode:characters_to_binary(Text)}}.

-spec first_defined(undefined | atom(), atom()) -> atom().
first_defined(undefined, New) -> New;
first_defined(Old, _New) -> Old.

%% --- stress test ------------------------------------------------------------------------------------------

-record(stress, {
    caller_mref :: reference(),
    counters :: counters:counters_ref(),
    total :: non_neg_integer(),
    workers :: #{pid() => true},
    progress :: progress(),
    started :: integer()
}).

-define(OK_OPS, 1).
-define(FAILED_OPS, 2).

-spec stress_init(pid(), reference(), distribute_pool:pool_ref(), non_neg_integer(), pos_integer(), progress()) ->
    ok.
stress_init(Caller, Tag, Pool, OpsPerWorker, Workers, Progress) ->
    CallerMref = erlang:monitor(process, Caller),
    Counters = counters:new(2, [write_concurrency]),
    Coordinator = self(),
    Pids = [begin
                {Pid, _} = spawn_monitor(fun() -> stress_worker(Coordinator, Pool, OpsPerWorker, Counters) end),
                Pid
            end || _ <- lists:seq(1, Workers)],
    State = #stress{caller_mref = CallerMref, counters = Counters, total = OpsPerWorker * Workers,
                    workers = maps:from_keys(Pids, true), progress = Progress,
                    started = erlang:monotonic_time(millisecond)},
    schedule_progress(Progress),
    stress_loop(Caller, Tag, State).

-spec stress_loop(pid(), reference(), #stress{}) -> ok.
stress_loop(Caller, Tag, #stress{workers = Workers, caller_mref = CallerMref} = State) when map_size(Workers) =:= 0 ->
    erlang:demonitor(CallerMref, [flush]),
    report_progress(done, State),
    Caller ! {Tag, {ok, done}},
    ok;
stress_loop(Caller, Tag, #stress{workers = Workers, caller_mref = CallerMref, progress = Progress} = State) ->
    receive
        progress ->
            report_progress(running, State),
            schedule_progress(Progress),
            stress_loop(Caller, Tag, State);
        {'DOWN', CallerMref, process, _, _} ->
            _ = [exit(W, kill) || W <- maps:keys(Workers)],
            ok;
        {'DOWN', _, process, Worker, _} ->
            stress_loop(Caller, Tag, State#stress{workers = maps:remove(Worker, Workers)})
    end.

-spec schedule_progress(progress()) -> ok.
schedule_progress(none) -> ok;
schedule_progress({Interval, _}) -> _ = erlang:send_after(Interval, self(), progress), ok.

%% Runs in the coordinator: a callback that raises does not stop the run.
-spec report_progress(running | done, #stress{}) -> ok.
report_progress(_, #stress{progress = none}) ->
    ok;
report_progress(Phase, #stress{counters = Counters, total = Total, started = Started, progress = {_, Report}}) ->
    Ok = counters:get(Counters, ?OK_OPS),
    Failed = counters:get(Counters, ?FAILED_OPS),
    Done = Ok + Failed,
    ElapsedMs = max(1, erlang:monotonic_time(millisecond) - Started),
    _ = (catch Report(#{phase => Phase, done => Done, total => Total, failed => Failed,
                        ops_per_s => Done * 1000 div ElapsedMs, elapsed_ms => ElapsedMs})),
    ok.

%% The default report: one line at info level (shown when logger's level lets info through).
-spec log_progress(progress_report()) -> ok.
log_progress(Report) ->
    logger:info("~ts", [format_progress(Report)], #{domain => [distribute_pool, stress_test]}).

%% "stress_test: 1200/5000 ops (24%), 0 failed, 6000 ops/s, 0.2 s", as the Gleam suite and the demo print it.
-spec format_progress(progress_report()) -> string().
format_progress(#{phase := Phase, done := Done, total := Total, failed := Failed, ops_per_s := Rate,
                  elapsed_ms := ElapsedMs}) ->
    Percent = case Total of 0 -> 100; _ -> Done * 100 div Total end,
    Label = case Phase of running -> "stress_test:"; done -> "stress_test: done," end,
    lists:flatten(io_lib:format("~s ~b/~b ops (~b%), ~b failed, ~b ops/s, ~.1f s",
                                [Label, Done, Total, Percent, Failed, Rate, ElapsedMs / 1000])).

%% One stress worker: OpsPerWorker leases, each with a round trip over the leased connection.
-spec stress_worker(pid(), distribute_pool:pool(), non_neg_integer(), counters:counters_ref()) -> ok.
stress_worker(_Coordinator, _Pool, 0, _Counters) ->
    ok;
stress_worker(Coordinator, Pool, Left, Counters) ->
    Outcome = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
    counters:add(Counters, case Outcome of {ok, pong} -> ?OK_OPS; _ -> ?FAILED_OPS end, 1),
    stress_worker(Coordinator, Pool, Left - 1, Counters).

-spec is_proper_list(term()) -> boolean().
is_proper_list([]) -> true;
is_proper_list([_ | T]) -> is_proper_list(T);
is_proper_list(_) -> false.
