%% A message collector loaded onto a target over erpc (code:load_binary) by distribute_pool_faults_SUITE
%% and distribute_pool_async_SUITE. It receives {seq, Sender, Run, ConnId, Seq} messages (or the same with a
%% padding element last, to make them bigger), where Run numbers one lease of Sender, and checks that within
%% one run the sequence numbers arrive consecutive and increasing (the order of one sender through one
%% lease). {marker, ConnId} messages, sent last on every pooled connection, tell it that
%% everything sent before on that connection has arrived. verdict/3 answers once the expected markers are in.
-module(dpool_seq_collector).

-export([start/0]).
-export([verdict/3]).
-export([stop/1]).

%% Per {Sender, Run}: the interval being extended, the closed intervals before it, and the connection.
-record(run, {first :: integer(), last :: integer(), conn :: term(), closed = [] :: [{integer(), integer()}]}).

-spec start() -> {ok, pid()}.
start() ->
    Parent = self(),
    Ref = make_ref(),
    Pid = spawn(fun() ->
                        Parent ! {Ref, ready},
                        loop(#{total => 0, order_violations => 0, gaps => 0, conn_mismatch => 0,
                               markers => #{}, waiting => undefined})
                end),
    receive {Ref, ready} -> {ok, Pid} after 10000 -> erlang:error(collector_not_ready) end.

%% Waits until markers from ExpectedMarkers distinct connections arrived (or TimeoutMs), then the summary.
-spec verdict(pid(), pos_integer(), non_neg_integer()) -> {complete | incomplete, map()}.
verdict(Pid, ExpectedMarkers, TimeoutMs) ->
    Ref = make_ref(),
    Pid ! {verdict, self(), Ref, ExpectedMarkers},
    receive
        {Ref, Summary} -> {complete, Summary}
    after TimeoutMs ->
        Pid ! {report, self(), Ref},
        receive {Ref, Summary} -> {incomplete, Summary} after 30000 -> {incomplete, #{}} end
    end.

-spec stop(pid()) -> ok.
stop(Pid) ->
    exit(Pid, kill),
    ok.

loop(State) ->
    receive
        {seq, Sender, Run, Conn, Seq} ->
            loop(seq(Sender, Run, Conn, Seq, State));
        {seq, Sender, Run, Conn, Seq, _Padding} ->
            loop(seq(Sender, Run, Conn, Seq, State));
        {marker, Conn} ->
            #{markers := Markers} = State,
            loop(maybe_answer(State#{markers := Markers#{Conn => true}}));
        {verdict, From, Ref, Expected} ->
            loop(maybe_answer(State#{waiting := {From, Ref, Expected}}));
        {report, From, Ref} ->
            From ! {Ref, summary(State)},
            loop(State#{waiting := undefined})
    end.

seq(Sender, Run, Conn, Seq, #{total := Total} = State) ->
    Key = {Sender, Run},
    State1 = State#{total := Total + 1},
    case get(Key) of
        undefined ->
            put(Key, #run{first = Seq, last = Seq, conn = Conn}),
            State1;
        #run{last = Last, conn = C0} = R ->
            State2 = case C0 of
                         Conn -> State1;
                         _ -> bump(conn_mismatch, State1)
                     end,
            if
                Seq =:= Last + 1 ->
                    put(Key, R#run{last = Seq}),
                    State2;
                Seq =< Last ->
                    %% Not after the previous one: a duplicate or an overtaken message.
                    put(Key, R#run{closed = [{Seq, Seq} | R#run.closed]}),
                    bump(order_violations, State2);
                true ->
                    %% A hole in a run: a message lost, or still to come out of order.
                    put(Key, R#run{first = Seq, last = Seq,
                                   closed = [{R#run.first, Last} | R#run.closed]}),
                    bump(gaps, State2)
            end
    end.

bump(Key, State) ->
    State#{Key := maps:get(Key, State) + 1}.

maybe_answer(#{waiting := {From, Ref, Expected}, markers := Markers} = State)
  when map_size(Markers) >= Expected ->
    From ! {Ref, summary(State)},
    State#{waiting := undefined};
maybe_answer(State) ->
    State.

%% Per sender: the union of every interval received, so that distinct = received once or more, and
%% duplicates = total - distinct.
summary(#{total := Total, order_violations := Order, gaps := Gaps, conn_mismatch := Mismatch,
          markers := Markers}) ->
    Runs = [{Sender, Run, R} || {{Sender, Run}, #run{} = R} <- get()],
    BySender = lists:foldl(fun({Sender, _Run, #run{first = F, last = L, closed = Closed}}, Acc) ->
                                   maps:update_with(Sender, fun(Is) -> [{F, L} | Closed] ++ Is end,
                                                    [{F, L} | Closed], Acc)
                           end, #{}, Runs),
    PerSender = maps:map(fun(_, Intervals) -> merge(lists:sort(Intervals)) end, BySender),
    Distinct = lists:sum([L - F + 1 || Merged <- maps:values(PerSender), {F, L} <- Merged]),
    #{total => Total, distinct => Distinct, duplicates => Total - Distinct, order_violations => Order,
      gaps => Gaps, conn_mismatch => Mismatch, runs => length(Runs), markers => maps:keys(Markers),
      %% Per sender, the merged intervals of sequence numbers received: [{1, N}] when nothing is missing.
      ranges => PerSender}.

merge([]) -> [];
merge([{F, L} | Rest]) -> merge(Rest, F, L, []).

merge([], F, L, Acc) -> lists:reverse([{F, L} | Acc]);
merge([{F2, L2} | Rest], F, L, Acc) when F2 =< L + 1 -> merge(Rest, F, max(L, L2), Acc);
merge([{F2, L2} | Rest], F, L, Acc) -> merge(Rest, F2, L2, [{F, L} | Acc]).
