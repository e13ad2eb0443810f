%% Every memory use of the C-node has a bound (issue 14, "What to build" 2, and the attacks of its table):
%% floods of checkouts, targets that stop reading under every send API, malformed and oversized packets from
%% a caller that completed a real handshake, callers that create many pools. Each case runs a C-node of its
%% own (started by hand, with the bounds it needs), reads its RSS from /proc/<os pid>/status, and checks the
%% expected outcome: a clear error naming the limit, the offending link dropped, the C-node alive, the other
%% callers unaffected, the RSS bounded and given back.
-module(distribute_pool_limits_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([init_per_testcase/2]).
-export([end_per_testcase/2]).
-export([checkout_flood_from_one_caller/1]).
-export([frozen_target_with_every_send_api/1]).
-export([oversized_packet_announcements_under_ulimit/1]).
-export([malformed_packets_after_a_valid_handshake/1]).
-export([one_caller_creates_many_pools/1]).
-export([total_connection_cap_is_hit/1]).
-export([app_env_limits_reach_the_embedded_cnode/1]).
-export([descriptor_limit_is_named/1]).
-export([unread_output_does_not_hold_the_cnode/1]).
-export([flood/4]).

-import(dpool_ct_helper, [doc/1, do_wait_until/2, do_wait_value/3, do_uniq/1, do_stats/1, do_start_sink/2,
                          do_target_os_pid/1, do_signal/2, do_os_alive/1, with_nodes/2]).

-define(SERVICE, dpool_limits).
%% RSS bounds, generous (a busy 2-core machine, allocator slack): what a flood may add at its peak, and what may
%% stay once it is over and the memory was given back.
-define(FLOOD_PEAK_KB, 192 * 1024).
-define(BIG_LINE_PEAK_KB, 256 * 1024).
-define(AFTER_FLOOD_KB, 32 * 1024).
%% The frozen target's case: bounds of the C-node, and what its RSS may add over them.
-define(LINK_QUEUE, 8 * 1024 * 1024).
-define(OUTPUT_QUEUE, 24 * 1024 * 1024).
-define(FROZEN_MARGIN_KB, 96 * 1024).
-define(MIB, 1024 * 1024).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 5}}].

-spec all() -> [atom()].
all() ->
    [checkout_flood_from_one_caller,
     frozen_target_with_every_send_api,
     oversized_packet_announcements_under_ulimit,
     malformed_packets_after_a_valid_handshake,
     one_caller_creates_many_pools,
     total_connection_cap_is_hit,
     app_env_limits_reach_the_embedded_cnode,
     descriptor_limit_is_named,
     unread_output_does_not_hold_the_cnode].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    Tool = hostile_client(),
    case filelib:is_regular(Tool) of
        false -> ct:fail({hostile_client_missing, Tool, "build it first: make cnode (BUILD_TESTING=ON)"});
        true -> ok
    end,
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Under AddressSanitizer an address-space limit cannot be set: ASan reserves terabytes of it for its shadow
%% memory at start.
-spec init_per_testcase(atom(), list()) -> list() | {skip, string()}.
init_per_testcase(oversized_packet_announcements_under_ulimit, Config) ->
    case dpool_ct_helper:do_sanitized() of
        false -> Config;
        true -> {skip, "under AddressSanitizer (DPOOL_TEST_SANITIZER): no address-space limit can be set"}
    end;
%% Nor can the C-node run out of descriptors under UndefinedBehaviorSanitizer: its vptr check reads a vtable
%% only after testing the memory through a pipe (sanitizer_common's IsAccessibleMemoryRange), so with no
%% descriptor left every virtual call reads as "invalid vptr" and stops the C-node.
init_per_testcase(descriptor_limit_is_named, Config) ->
    case dpool_ct_helper:do_sanitized() of
        false -> Config;
        true -> {skip, "under UBSan (DPOOL_TEST_SANITIZER): its vptr check needs a descriptor (a pipe)"}
    end;
init_per_testcase(_Case, Config) ->
    Config.

-spec end_per_testcase(atom(), list()) -> ok.
end_per_testcase(_Case, _Config) ->
    ok.

%% Cases.

-spec checkout_flood_from_one_caller(list()) -> ok.
checkout_flood_from_one_caller(_Config) ->
    doc("Table row: a caller with the cookie sends 10^6 checkouts and never checks in. One process of a client "
        "node sends 200,000 checkouts (50,000 in the sanitizer stage, still five times the line) without "
        "waiting: the pool keeps max_waiters (10,000) in line and answers every other one "
        "{limit_reached, {max_waiters, _}} at once; the C-node's RSS stays bounded; a caller on another node is "
        "served by another pool, and told max_waiters by the flooded one; when the flooding process dies its "
        "leases and waiters are gone. The same flood into a pool that takes 1,000,000 waiters holds them all, and "
        "once the process dies the memory is given back (RSS under a bound again)."),
    with_nodes([{target, "dpool_lim_flood_t"}, {client, "dpool_lim_flooder"}, cnode("dpool_lim_flood", [])],
               fun([{_, T}, {_, Flooder}, #{os_pid := OsPid} = Port]) ->
        CNode = server(Port),
        Flood = flood_size(),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 2, cnode => CNode}),
        {ok, Big} = distribute_pool:new(T, #{max_connections => 1, max_waiters => 1000000, cnode => CNode}),
        {ok, Other} = distribute_pool:new(T, #{max_connections => 2, cnode => CNode}),
        Rss0 = rss_kb(OsPid),
        %% The bounded line.
        F1 = start_flood(Flooder, CNode, Pool, Flood),
        Refused = Flood - 2 - 10000,
        do_wait_value(fun() -> Stats = do_stats(Pool),
                               {maps:get(waiting, Stats), maps:get(max_waiters, maps:get(limit_refusals, Stats))}
                      end,
                      fun(V) -> V =:= {10000, Refused} end, 120000),
        Peak1 = hwm_kb(OsPid),
        %% Another caller: its own pool works, the flooded one says why it will not wait.
        {Micros, {ok, {ok, T}}} =
            timer:tc(fun() -> node_over_lease(Other) end),
        {error, {limit_reached, {max_waiters, Text}}} =
            distribute_pool:with_connection(Pool, fun(_) -> ok end, #{acquire_timeout_ms => 60000}),
        ct:log("refused: ~ts", [Text]),
        #{limit_refusals := #{max_waiters := InfoRefused}} = info(CNode),
        true = InfoRefused >= Refused + 1,
        %% The flooding process dies: its leases and its place in line go.
        stop_flood(F1),
        do_wait_until(fun() ->
                          case do_stats(Pool) of
                              #{waiting := 0, available_connections := 2} -> true;
                              _ -> false
                          end
                      end, 60000),
        %% A line as long as the flood, then given back.
        F2 = start_flood(Flooder, CNode, Big, Flood),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Big)) =:= Flood - 1 end, 120000),
        Rss2 = rss_kb(OsPid),
        stop_flood(F2),
        do_wait_until(fun() -> maps:get(waiting, do_stats(Big)) =:= 0 end, 60000),
        Rss3 = do_wait_value(fun() -> rss_kb(OsPid) end,
                             fun(R) -> R < Rss0 + ?AFTER_FLOOD_KB orelse not rss_checked() end, 30000),
        #{memory_trims := Trims} = info(CNode),
        ct:pal("checkout flood of ~b: RSS ~b kB before, peak ~b kB with 10,000 waiters (bounded line); ~b kB with "
               "~b waiters; ~b kB after the flooding process died (~b trims); another caller's call took ~b us",
               [Flood, Rss0, Peak1, Rss2, Flood - 1, Rss3, Trims, Micros]),
        true = Peak1 - Rss0 < ?FLOOD_PEAK_KB orelse not rss_checked(),
        true = Rss2 - Rss0 < ?BIG_LINE_PEAK_KB orelse not rss_checked(),
        true = Trims >= 1,
        true = Micros < 2000000,
        true = do_os_alive(OsPid),
        [ok = distribute_pool:destroy(P) || P <- [Pool, Big, Other]],
        ok
    end).

-spec frozen_target_with_every_send_api(list()) -> ok.
frozen_target_with_every_send_api(_Config) ->
    doc("Table row: pooled connections to a frozen target, cast batches without waiting. The target is "
        "stopped (kill -STOP) and every send API floods a pool of 4 connections to it: request, call, send, "
        "send_async, cast_batch (fire-and-forget, and the library's), send_batch, send_batch_parallel. Each gets "
        "{limit_reached, {Limit, _}} naming max_pending_requests, max_link_queue_bytes or "
        "max_output_queue_bytes, and no other error (a send held back by the busy connection, or a request that "
        "times out, is no error of the C-node's); a pool to another target keeps working while the frozen "
        "connections hold less than the global bound. Then more connections to the frozen target fill the "
        "global bound: refusals name max_output_queue_bytes. Nothing is queued beyond the bounds (8 MiB per "
        "connection, 24 MiB in all), so the C-node's RSS stays under them plus a margin; the C-node stays up, "
        "and once the target resumes everything drains and both pools work."),
    Args = ["--max-link-queue-bytes", integer_to_list(?LINK_QUEUE),
            "--max-output-queue-bytes", integer_to_list(?OUTPUT_QUEUE), "--net-ticktime", "300"],
    with_nodes([{target, "dpool_lim_frozen"}, {target, "dpool_lim_healthy"}, cnode("dpool_lim_frozen", Args)],
               fun([{_, T}, {_, H}, #{os_pid := OsPid} = Port]) ->
        CNode = server(Port),
        _ = do_start_sink(T, dpool_lim_sink),
        Options = #{max_connections => 4, health_check_interval_ms => 0, max_pending_requests => 50,
                    acquire_timeout_ms => 60000, cnode => CNode},
        {ok, Frozen} = distribute_pool:new(T, Options),
        {ok, Frozen2} = distribute_pool:new(T, Options),
        {ok, Healthy} = distribute_pool:new(H, #{max_connections => 2, cnode => CNode}),
        Rss0 = rss_kb(OsPid),
        TargetOsPid = do_target_os_pid(T),
        Bin = binary:copy(<<"f">>, ?MIB),
        Send = fun(C, M) -> distribute_pool:send(C, dpool_lim_sink, M) end,
        do_signal(TargetOsPid, "STOP"),
        {Results, Parallel} =
            try
                %% Each API in turn, on the frozen pool's most recently used connection (leases are last in,
                %% first out): requests and calls first, while its queue is empty (max_pending_requests), then
                %% the sends, which fill its queue (max_link_queue_bytes).
                Requests = with_lease(Frozen, fun(C) ->
                               spread(60, fun() -> distribute_pool:request(C, dpool_lim_sink, hello, 20000) end)
                           end),
                Calls = with_lease(Frozen, fun(C) ->
                            spread(60, fun() -> distribute_pool:call(C, erlang, node, [], 20000) end)
                        end),
                Sends = with_lease(Frozen, fun(C) -> spread(40, fun() -> Send(C, Bin) end) end),
                Asyncs = with_lease(Frozen, fun(C) ->
                             lists:append(spread(20, fun() ->
                                                         [distribute_pool:send_async(C, dpool_lim_sink, Bin),
                                                          distribute_pool:send_async(C, dpool_lim_sink, Bin)]
                                                     end))
                         end),
                RawBatches = fire_and_forget_batches(CNode, Frozen, 20, [Bin, Bin, Bin, Bin]),
                Batch = await(background(fun() ->
                                             distribute_pool:cast_batch(Frozen, dpool_lim_sink, [Bin, Bin, Bin, Bin])
                                         end), 3000),
                SendBatch = await(background(fun() -> distribute_pool:send_batch(Frozen, [Bin, Bin, Bin], Send) end),
                                  3000),
                %% Another target's pool is not affected: the frozen connections hold less than the global bound.
                {ok, {ok, H}} = node_over_lease(Healthy),
                ok = distribute_pool:send(Healthy, dpool_nobody, Bin),
                Info1 = info(CNode),
                %% A second pool to the same target: the output of all links reaches its bound. Then every
                %% connection of the frozen pool at once, refused by that bound or its own link's. (Started
                %% before the second pool's batches, its 12 MiB could all fit in the links that were not full
                %% yet, and did once on a busy machine: then it met no bound at all.)
                More = fire_and_forget_batches(CNode, Frozen2, 40, [Bin, Bin, Bin, Bin]),
                ParallelPid = background(fun() -> distribute_pool:send_batch_parallel(Frozen, lists:duplicate(12, Bin), Send) end),
                #{output_queue_bytes := Queued, output_queue_peak_bytes := QueuePeak, limit_refusals := Refusals} =
                    info(CNode),
                Peak = hwm_kb(OsPid),
                ct:pal("frozen target: RSS ~b kB before, peak ~b kB; output queued ~b bytes (peak ~b; bounds ~b per "
                       "connection, ~b in all); refusals ~0p (before the global bound was reached: ~0p)",
                       [Rss0, Peak, Queued, QueuePeak, ?LINK_QUEUE, ?OUTPUT_QUEUE, Refusals,
                        maps:get(limit_refusals, Info1)]),
                true = QueuePeak =< ?OUTPUT_QUEUE + ?MIB,
                true = Peak - Rss0 < ?OUTPUT_QUEUE div 1024 + ?FROZEN_MARGIN_KB orelse not rss_checked(),
                true = do_os_alive(OsPid),
                {#{request => Requests, call => Calls, send => Sends, send_async => Asyncs,
                   cast_batch_fire_and_forget => RawBatches ++ More, cast_batch => [Batch],
                   send_batch => batch_results(SendBatch)},
                 ParallelPid}
            after
                do_signal(TargetOsPid, "CONT")
            end,
        %% Resumed: what was held back goes, the queues drain, and the pools work again.
        {ok, #{successful := ParOk, failed := ParFailed}} = await(Parallel, 90000),
        All = Results#{send_batch_parallel => ParOk ++ [R || {_, R} <- ParFailed]},
        ct:log("results: ~p", [maps:map(fun(_, Rs) -> summary(Rs) end, All)]),
        maps:foreach(fun(Api, Rs) ->
                         case {lists:any(fun is_limit_error/1, Rs), [R || R <- Rs, not expected_while_frozen(R)]} of
                             {true, []} -> ok;
                             Other -> ct:fail({Api, Other})
                         end
                     end, All),
        true = lists:any(fun(R) -> limit_of(R) =:= max_pending_requests end, maps:get(request, All) ++ maps:get(call, All)),
        true = lists:any(fun(R) -> limit_of(R) =:= max_output_queue_bytes end,
                         maps:get(cast_batch_fire_and_forget, All) ++ maps:get(send_batch_parallel, All)),
        do_wait_until(fun() -> maps:get(output_queue_bytes, info(CNode)) < ?MIB end, 60000),
        ok = distribute_pool:send(Frozen, dpool_lim_sink, Bin),
        %% The sink answers no request: the 50 held on one connection keep its slots until their 20 s timeout,
        %% and a lease may land on that connection until then.
        do_wait_until(fun() -> node_over_lease(Frozen) =:= {ok, {ok, T}} end, 40000),
        {ok, {ok, H}} = node_over_lease(Healthy),
        [ok = distribute_pool:destroy(P) || P <- [Frozen, Frozen2, Healthy]],
        ok
    end).

-spec oversized_packet_announcements_under_ulimit(list()) -> ok.
oversized_packet_announcements_under_ulimit(_Config) ->
    doc("Table row: 3 links each announcing a 1 GiB - 1 packet, under ulimit -v 6000000. The C-node runs with "
        "its address space limited (prlimit on its OS pid). With the default bound on caller packets (512 MiB) "
        "each link is dropped as soon as its length is read. With the bound raised to 4 GiB - 1, an announcement "
        "alone costs nothing (the links stay open, the RSS does not move); when the three stream their bytes, "
        "the memory runs out for at least one: that link is dropped (out_of_memory), never the C-node, and "
        "another caller is answered throughout."),
    OneGiB = 1024 * 1024 * 1024,
    with_nodes([cnode("dpool_lim_big", [])], fun([#{os_pid := OsPid} = Port]) ->
        CNode = server(Port),
        limit_address_space(OsPid, 6000000 * 1024),
        Outcomes = run_parallel(3, fun() -> hostile(Port, ["announce", integer_to_list(OneGiB - 1), "0"]) end),
        ct:log("default bound: ~ts", [lists:join(", ", Outcomes)]),
        [<<"DROPPED", _/binary>> = O || O <- Outcomes],
        #{dropped_links := #{callers := #{oversized_packet := 3}}} = info(CNode),
        true = do_os_alive(OsPid)
    end),
    Raised = ["--max-caller-packet-bytes", integer_to_list(4 * OneGiB - 1)],
    with_nodes([cnode("dpool_lim_big2", Raised)], fun([#{os_pid := OsPid} = Port]) ->
        CNode = server(Port),
        Rss0 = rss_kb(OsPid),
        %% An announcement alone: nothing is allocated for it.
        limit_address_space(OsPid, 6000000 * 1024),
        Announced = run_parallel(3, fun() -> hostile(Port, ["announce", integer_to_list(OneGiB - 1), "10"]) end),
        ct:log("announced only: ~ts", [lists:join(", ", Announced)]),
        [<<"OPEN">> = O || O <- Announced],
        Rss1 = rss_kb(OsPid),
        true = Rss1 - Rss0 < 32 * 1024,
        %% The bytes themselves, with room for about one such packet.
        limit_address_space(OsPid, vm_size_kb(OsPid) * 1024 + OneGiB + OneGiB div 4),
        Self = self(),
        Pinger = spawn_link(fun() -> ping_loop(CNode, Self, []) end),
        Streamed = run_parallel(3, fun() ->
                                       hostile(Port, ["announce", integer_to_list(OneGiB - 1),
                                                      integer_to_list(OneGiB - 1)])
                                   end),
        Pinger ! {stop, Self},
        Pings = receive {pings, Ps} -> Ps after 30000 -> ct:fail(pinger_stuck) end,
        #{dropped_links := #{callers := Dropped}} = info(CNode),
        ct:pal("3 x (1 GiB - 1) streamed under a limited address space: ~ts; callers' links dropped: ~0p; RSS ~b kB "
               "before, ~b kB after the announcements, peak ~b kB; ~b pings during, the slowest ~b us",
               [lists:join(", ", Streamed), Dropped, Rss0, Rss1, hwm_kb(OsPid), length(Pings), lists:max([0 | Pings])]),
        [true = is_dropped(O) || O <- Streamed],
        #{out_of_memory := OutOfMemory} = Dropped,
        true = OutOfMemory >= 1,
        true = length(Pings) >= 1,
        true = lists:max(Pings) < 5000000,
        true = do_os_alive(OsPid),
        pong = gen_server:call(CNode, ping, 5000)
    end).

-spec malformed_packets_after_a_valid_handshake(list()) -> ok.
malformed_packets_after_a_valid_handshake(_Config) ->
    doc("Point 8: malformed packets after a valid handshake. A caller completes a real handshake (ei) and "
        "writes a packet with a corrupt header, an atom cache reference on a link without a cache, a length "
        "that does not match its terms (bytes after the message; a binary longer than the packet), a tuple or "
        "list of 2^32 - 1 elements: each time its link is dropped within 1 s and counted (malformed_packet), the "
        "C-node stays up, and another caller's pool works. The same tool's well-formed ping is answered and its "
        "link stays open, so the drops are the packets' doing."),
    with_nodes([{target, "dpool_lim_bad_t"}, cnode("dpool_lim_bad", [])], fun([{_, T}, #{os_pid := OsPid} = Port]) ->
        CNode = server(Port),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, cnode => CNode}),
        <<"ANSWERED">> = hostile(Port, ["well_formed"]),
        Cases = [corrupt_header, bad_atom_cache_ref, length_mismatch_short, length_mismatch_long,
                 huge_arity_control, huge_arity_message, huge_list],
        lists:foreach(fun(Case) ->
                          Outcome = hostile(Port, [atom_to_list(Case)]),
                          ct:log("~s: ~s", [Case, Outcome]),
                          case Outcome of
                              <<"DROPPED ", Ms/binary>> -> true = binary_to_integer(Ms) < 1000;
                              _ -> ct:fail({Case, not_dropped, Outcome})
                          end,
                          {ok, {ok, T}} = node_over_lease(Pool)
                      end, Cases),
        Expected = length(Cases),
        #{dropped_links := #{callers := #{malformed_packet := Expected}}} = info(CNode),
        true = do_os_alive(OsPid),
        ok = distribute_pool:destroy(Pool)
    end).

-spec one_caller_creates_many_pools(list()) -> ok.
one_caller_creates_many_pools(_Config) ->
    doc("Table row: one caller creates 10,000 pools. With --max-pools-per-caller 5 and "
        "--max-connections-per-caller 8, a caller node's sixth pool, or a pool that takes its connections "
        "over 8, is refused with {limit_reached, {max_pools_per_caller | max_connections_per_caller, Text}}; "
        "another caller node still creates pools; a pool destroyed gives its share back."),
    Args = ["--max-pools-per-caller", "5", "--max-connections-per-caller", "8", "--max-total-connections", "100"],
    with_nodes([{client, "dpool_lim_greedy"}, cnode("dpool_lim_quota", Args)], fun([{_, Greedy}, Port]) ->
        CNode = server(Port),
        T = 'nobody@127.0.0.1',
        New = fun(Node, Max) ->
                  erpc:call(Node, gen_server, call,
                            [CNode, {new, T, #{max_connections => Max, min_connections => 0}}, 10000])
              end,
        Ids = [begin {ok, Id} = New(Greedy, 1), Id end || _ <- lists:seq(1, 5)],
        {error, {limit_reached, {max_pools_per_caller, PoolsText}}} = New(Greedy, 1),
        %% Another caller node is not held back by the greedy one.
        {ok, Mine} = New(node(), 8),
        ok = gen_server:call(CNode, {destroy, hd(Ids), 0}, 10000),
        {error, {limit_reached, {max_connections_per_caller, ConnsText}}} = New(Greedy, 5),
        {ok, Fifth} = New(Greedy, 4),
        #{limit_refusals := #{max_pools_per_caller := 1, max_connections_per_caller := 1}} = info(CNode),
        ct:log("~ts~n~ts", [PoolsText, ConnsText]),
        [ok = gen_server:call(CNode, {destroy, Id, 0}, 10000) || Id <- [Mine, Fifth | tl(Ids)]],
        ok
    end).

-spec total_connection_cap_is_hit(list()) -> ok.
total_connection_cap_is_hit(_Config) ->
    doc("Table row: the total connection cap is hit. A pool that would take the C-node over "
        "--max-total-connections is refused with {limit_reached, {max_total_connections, Text}}, not "
        "invalid_config; the text says how many the pools hold."),
    Args = ["--max-total-connections", "3"],
    with_nodes([{target, "dpool_lim_total_t"}, cnode("dpool_lim_total", Args)], fun([{_, T}, Port]) ->
        CNode = server(Port),
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 2, cnode => CNode}),
        {error, {limit_reached, {max_total_connections, Text}}} =
            distribute_pool:new(T, #{max_connections => 2, cnode => CNode}),
        <<"the C-node keeps at most 3 connections (--max-total-connections) and its pools hold 2: 2 more do not fit">> =
            Text,
        "limit max_total_connections reached: " ++ _ =
            distribute_pool:format_error({limit_reached, {max_total_connections, Text}}),
        {ok, Small} = distribute_pool:new(T, #{max_connections => 1, cnode => CNode}),
        #{limit_refusals := #{max_total_connections := 1},
          limits := #{max_total_connections := 3, max_pools_per_caller := 1000}} = info(CNode),
        [ok = distribute_pool:destroy(P) || P <- [Pool, Small]],
        ok
    end).

-spec unread_output_does_not_hold_the_cnode(list()) -> ok.
unread_output_does_not_hold_the_cnode(_Config) ->
    doc("A C-node whose standard output nobody reads (a pipe to a process that never reads, as when the node "
        "that started it is frozen) goes on serving: pools are made and destroyed, each connection up and down an "
        "event line, far beyond what the pipe and the C-node's queue of 1,024 lines hold; the lines it could not "
        "write are counted in info's output_lines_dropped; the end of its standard input still ends it."),
    with_nodes([{target, "dpool_lim_out_t"}], fun([{_, T}]) ->
        Name = do_uniq("dpool_lim_out") ++ "@127.0.0.1",
        %% sh runs the C-node with its standard output into a process that says its pid and sleeps; standard
        %% error (the C-node's log) and standard input are this port's.
        Script = "\"$0\" \"$@\" | sh -c 'echo \"READER $$\" >&2; exec sleep 600'",
        Args = ["-c", Script, dpool_ct_helper:do_executable(), "--name", Name, "--service", atom_to_list(?SERVICE),
                "--events", "--exit-on-stdin-eof"],
        Port = open_port({spawn_executable, "/bin/sh"},
                         [{args, Args}, {env, [{"DISTRIBUTE_POOL_COOKIE", atom_to_list(erlang:get_cookie())}]},
                          {line, 4096}, binary, exit_status, use_stdio, stderr_to_stdout, hide]),
        {os_pid, Shell} = erlang:port_info(Port, os_pid),
        Children = fun() ->
                           [list_to_integer(P) || P <- string:lexemes(os:cmd("pgrep -P " ++ integer_to_list(Shell)),
                                                                      "\n")]
                   end,
        %% The reader and the C-node, once known: once the shell is gone they are no longer its children.
        Known = fun(Pids) -> put(unread_output_pids, Pids), Pids end,
        try
            Reader = receive
                         {Port, {data, {eol, <<"READER ", Pid/binary>>}}} -> binary_to_integer(Pid)
                     after 15000 -> ct:fail(no_reader)
                     end,
            _ = Known([Reader]),
            [CNodePid] = do_wait_value(fun() -> Children() -- [Reader] end, fun(C) -> length(C) =:= 1 end, 10000),
            _ = Known([Reader, CNodePid]),
            CNode = {?SERVICE, list_to_atom(Name)},
            do_wait_until(fun() -> is_map(catch info(CNode)) end, 15000),
            [begin
                 {ok, P} = distribute_pool:new(T, #{min_connections => 50, max_connections => 50, cnode => CNode}),
                 ok = distribute_pool:destroy(P)
             end || _ <- lists:seq(1, 30)],
            #{output_lines_dropped := Dropped, pools := 0} = info(CNode),
            ct:log("3000 connection events and the log: ~b lines dropped", [Dropped]),
            true = Dropped > 0,
            port_close(Port),
            do_wait_until(fun() -> not do_os_alive(CNodePid) end, 10000)
        after
            Left = lists:usort(Children() ++ case get(unread_output_pids) of undefined -> []; Pids -> Pids end),
            catch port_close(Port),
            [os:cmd("kill -9 " ++ integer_to_list(P)) || P <- Left, do_os_alive(P)]
        end,
        ok
    end).

-spec descriptor_limit_is_named(list()) -> ok.
descriptor_limit_is_named(_Config) ->
    doc("Issue 17, scale: the C-node raises its descriptor limit to the hard limit and says so when that is too "
        "low. Started under prlimit --nofile=64:64, it warns at start that 64 descriptors cannot hold "
        "--max-total-connections and --max-splice-pipes (and says what its pipes take of the user's pipe memory); a pool of 100 connections then fails with connection_failed whose text names "
        "the descriptor limit (not a bare 'Too many open files'), and the C-node goes on answering (a pool of 1 "
        "works once the failed one's sockets are gone)."),
    Prlimit = os:find_executable("prlimit"),
    Prlimit =/= false orelse ct:fail("prlimit (util-linux) is needed"),
    with_nodes([{target, "dpool_lim_fd_t"}], fun([{_, T}]) ->
        %% 8 pipes: within three quarters of the default pipe allowance, so not cut for an unprivileged user.
        Args = ["--name", do_uniq("dpool_lim_fd") ++ "@127.0.0.1", "--service", atom_to_list(?SERVICE),
                "--max-splice-pipes", "8"],
        Port = dpool_ct_helper:do_start_cnode_port([Prlimit, "--nofile=64:64", "--"], Args,
                                                   atom_to_list(erlang:get_cookie()), []),
        try
            #{output := Output, os_pid := OsPid} = Port,
            ct:log("C-node start-up output:~n~ts", [lists:join("
", Output)]),
            [Warning] = [L || L <- Output,
                              binary:match(L, <<"warning: descriptor limit (RLIMIT_NOFILE): only 64 ">>) =/= nomatch],
            %% The pipes of big messages count too: two descriptors each.
            {_, _} = binary:match(Warning, <<"--max-splice-pipes 8 need about">>),
            %% And the line about the pipes' share of the user's pipe memory.
            [_] = [L || L <- Output,
                        binary:match(L, <<"info: pipes of big messages: --max-splice-pipes 8 of 1024 KiB, up to 2048 "
                                          "pages of pipe memory">>) =/= nomatch],
            CNode = server(Port),
            {error, {connection_failed, {unreachable, Text}}} =
                distribute_pool:new(T, #{max_connections => 100, min_connections => 100, cnode => CNode}),
            ct:log("a pool of 100 under 64 descriptors: ~ts", [Text]),
            {_, _} = binary:match(Text, <<"out of file descriptors: the C-node has all 64 its limit allows open">>),
            {_, _} = binary:match(Text, <<"RLIMIT_NOFILE">>),
            true = do_os_alive(OsPid),
            pong = gen_server:call(CNode, ping, 5000),
            {ok, Small} = do_wait_value(fun() -> distribute_pool:new(T, #{max_connections => 1, cnode => CNode}) end,
                                        fun(R) -> element(1, R) =:= ok end, 30000),
            ok = distribute_pool:destroy(Small)
        after
            dpool_ct_helper:do_stop_cnode_port(Port)
        end
    end).

-spec app_env_limits_reach_the_embedded_cnode(list()) -> ok.
app_env_limits_reach_the_embedded_cnode(_Config) ->
    doc("The application env `limits' (a map of the C-node's --max-* options) reaches the embedded C-node's "
        "command line, where cnode_args does not give the same option; an unknown key or a value that is no "
        "positive integer stops the start with {bad_app_env, limits, _}."),
    ok = application:stop(distribute_pool),
    try
        ok = application:set_env(distribute_pool, limits, #{max_pools_per_caller => 7,
                                                            max_link_queue_bytes => 16 * ?MIB,
                                                            max_handshakes_per_lane => 9}),
        ok = application:set_env(distribute_pool, cnode_args, ["--max-total-connections", "99"]),
        {ok, _} = application:ensure_all_started(distribute_pool),
        #{limits := #{max_pools_per_caller := 7, max_link_queue_bytes := LinkQueue, max_total_connections := 99,
                      max_output_queue_bytes := DefaultOutput, max_handshakes_per_lane := 9,
                      max_handshakes_per_address := 64}} = info(dpool_ct_helper:do_cnode()),
        LinkQueue = 16 * ?MIB,
        DefaultOutput = 1024 * ?MIB,
        ok = application:set_env(distribute_pool, limits, #{max_total_connections => 5}),
        ok = application:stop(distribute_pool),
        {ok, _} = application:ensure_all_started(distribute_pool),
        #{limits := #{max_total_connections := 99}} = info(dpool_ct_helper:do_cnode()),
        ok = application:stop(distribute_pool),
        [begin
             ok = application:set_env(distribute_pool, limits, Bad),
             {error, {distribute_pool, {{bad_app_env, limits, Bad}, _}}} = application:ensure_all_started(distribute_pool)
         end || Bad <- [#{max_waiters => 10}, #{max_total_connections => 0}, #{max_total_connections => "5"}, [x]]]
    after
        ok = application:set_env(distribute_pool, limits, #{}),
        ok = application:set_env(distribute_pool, cnode_args, []),
        _ = application:stop(distribute_pool),
        {ok, _} = application:ensure_all_started(distribute_pool)
    end,
    ok.

%% Helpers.

%% A C-node of this case's own, with extra command-line arguments.
cnode(Prefix, Args) ->
    {cnode, ["--name", do_uniq(Prefix) ++ "@127.0.0.1", "--service", atom_to_list(?SERVICE) | Args]}.

server(#{node := Node}) ->
    {?SERVICE, Node}.

info(CNode) ->
    {ok, Info} = gen_server:call(CNode, info, 10000),
    Info.

%% A caller's flood of checkouts, far beyond the default max_waiters (10,000): 200,000, or 50,000 against the
%% sanitizer stage's C-node, which answers them at a fifth of the speed (still five times the line, so most are
%% refused as before).
flood_size() ->
    dpool_ct_helper:do_scaled(200000, 50000).

rss_kb(OsPid) -> status_kb(OsPid, <<"VmRSS:">>).

%% Whether the C-node's RSS tells its bounds: not under AddressSanitizer (the sanitizer stage sets
%% DPOOL_TEST_SANITIZER), which keeps freed memory in a quarantine (256 MB) before reusing it and adds shadow
%% memory. The plain run checks the RSS bounds; the sanitizer run, that the same floods make no memory error
%% (the C-node's own counters, such as the output queued, are checked in both).
rss_checked() -> not dpool_ct_helper:do_sanitized().

hwm_kb(OsPid) -> status_kb(OsPid, <<"VmHWM:">>).
vm_size_kb(OsPid) -> status_kb(OsPid, <<"VmSize:">>).

status_kb(OsPid, Key) ->
    {ok, Status} = file:read_file("/proc/" ++ integer_to_list(OsPid) ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:longest_common_prefix([L, Key]) =:= byte_size(Key)],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).

%% RLIMIT_AS of the running C-node (ulimit -v applied from outside).
limit_address_space(OsPid, Bytes) ->
    Cmd = io_lib:format("prlimit --pid ~b --as=~b:~b 2>&1", [OsPid, Bytes, Bytes]),
    "" = os:cmd(lists:flatten(Cmd)),
    ok.

%% The test tool, in the CMake build directory of this checkout (DPOOL_CMAKE_BUILD_DIR overrides it).
hostile_client() ->
    BuildDir = case os:getenv("DPOOL_CMAKE_BUILD_DIR") of
                   false ->
                       %% <checkout>/_build/<profile>/lib/distribute_pool
                       Root = lists:foldl(fun(_, D) -> filename:dirname(D) end, code:lib_dir(distribute_pool),
                                          lists:seq(1, 4)),
                       filename:join([Root, "_build", "cmake"]);
                   Dir ->
                       Dir
               end,
    filename:join(BuildDir, "hostile_client").

%% Runs the tool against the C-node of Port; its one line of outcome.
hostile(#{node := Node}, Args) ->
    Port = open_port({spawn_executable, hostile_client()},
                     [{args, [atom_to_list(Node), atom_to_list(erlang:get_cookie()), atom_to_list(?SERVICE) | Args]},
                      binary, exit_status, use_stdio, stderr_to_stdout, hide]),
    {os_pid, OsPid} = erlang:port_info(Port, os_pid),
    collect(Port, OsPid, <<>>).

collect(Port, OsPid, Acc) ->
    receive
        {Port, {data, Data}} ->
            collect(Port, OsPid, <<Acc/binary, Data/binary>>);
        {Port, {exit_status, 0}} ->
            string:trim(Acc);
        {Port, {exit_status, Status}} ->
            ct:fail({hostile_client_failed, Status, Acc})
    after 120000 ->
        _ = os:cmd("kill -9 " ++ integer_to_list(OsPid)),
        ct:fail({hostile_client_stuck, Acc})
    end.

is_dropped(<<"DROPPED", _/binary>>) -> true;
is_dropped(_) -> false.

%% Runs N copies of Fun at once; their results, in order.
run_parallel(N, Fun) ->
    Self = self(),
    Pids = [spawn_link(fun() -> Self ! {self(), Fun()} end) || _ <- lists:seq(1, N)],
    [receive {P, R} -> R after 300000 -> ct:fail(parallel_stuck) end || P <- Pids].

%% Pings the C-node every 100 ms until told to stop; the round trips, in microseconds.
ping_loop(CNode, Parent, Acc) ->
    receive
        {stop, Parent} -> Parent ! {pings, Acc}
    after 100 ->
        {Micros, pong} = timer:tc(fun() -> gen_server:call(CNode, ping, 10000) end),
        ping_loop(CNode, Parent, [Micros | Acc])
    end.

%% A process on Node that sends N checkouts of Pool to CNode without waiting for any answer, and then waits
%% to be stopped (killed: its leases and waiters are the C-node's to take back).
start_flood(Node, CNode, Pool, N) ->
    #{pool_id := Id} = do_stats(Pool),
    Self = self(),
    Pid = erlang:spawn(Node, ?MODULE, flood, [CNode, Id, N, Self]),
    receive {flooded, Pid} -> Pid after 120000 -> ct:fail(flood_stuck) end.

-spec flood({atom(), node()}, non_neg_integer(), pos_integer(), pid()) -> ok.
flood(CNode, PoolId, N, Parent) ->
    lists:foreach(fun(I) -> erlang:send(CNode, {'$gen_call', {self(), {flood, I}}, {checkout, PoolId, 600000}}) end,
                  lists:seq(1, N)),
    Parent ! {flooded, self()},
    receive stop -> ok end.

stop_flood(Pid) ->
    Ref = erlang:monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok after 30000 -> ct:fail(flood_not_stopped) end.

%% The target's node name, asked over a lease of Pool (with_connection's answer).
node_over_lease(Pool) ->
    distribute_pool:with_connection(Pool, fun(C) -> distribute_pool:call(C, erlang, node, []) end).

%% Holds a lease of Pool while Fun runs with it; Fun's result.
with_lease(Pool, Fun) ->
    {ok, Result} = distribute_pool:with_connection(Pool, Fun),
    Result.


%% N processes run Fun at once; what each gave within 3 s (a send still held back by a busy connection has given
%% nothing yet: `held').
spread(N, Fun) ->
    Pids = [background(Fun) || _ <- lists:seq(1, N)],
    Deadline = erlang:monotonic_time(millisecond) + 3000,
    [await(P, max(0, Deadline - erlang:monotonic_time(millisecond))) || P <- Pids].

%% A process that runs Fun and sends its result back; await/2 takes it (or `held' after Ms).
background(Fun) ->
    Self = self(),
    spawn(fun() -> Self ! {self(), Fun()} end).

await(Pid, Ms) ->
    receive {Pid, R} -> R after Ms -> held end.

%% N cast batches of Messages sent as gen_server calls without waiting (fire-and-forget), then the answers that
%% came within 3 s.
fire_and_forget_batches(CNode, Pool, N, Messages) ->
    #{pool_id := Id} = do_stats(Pool),
    Tags = [make_ref() || _ <- lists:seq(1, N)],
    [erlang:send(CNode, {'$gen_call', {self(), Tag}, {cast_batch, Id, dpool_lim_sink, Messages}}) || Tag <- Tags],
    Deadline = erlang:monotonic_time(millisecond) + 3000,
    [receive {Tag, R} -> R after max(0, Deadline - erlang:monotonic_time(millisecond)) -> held end || Tag <- Tags].

%% send_batch's answer as a list of results: each element's, or the batch's own.
batch_results({ok, Results}) -> Results;
batch_results(Other) -> [Other].

limit_of({error, {limit_reached, {Limit, Text}}}) when is_binary(Text) -> Limit;
limit_of(_) -> none.

is_limit_error(R) -> limit_of(R) =/= none.

%% While the target is frozen: queued (ok, {ok, N}), still held back, refused by a limit; or, for a request or
%% call whose answer cannot come, its timeout.
expected_while_frozen(ok) -> true;
expected_while_frozen({ok, N}) when is_integer(N) -> true;
expected_while_frozen(held) -> true;
expected_while_frozen({error, timeout}) -> true;
expected_while_frozen(R) -> is_limit_error(R).

summary(Results) ->
    lists:foldl(fun(R, Acc) ->
                        Key = case limit_of(R) of
                                  none -> R;
                                  Limit -> Limit
                              end,
                        maps:update_with(Key, fun(C) -> C + 1 end, 1, Acc)
                end, #{}, Results).
