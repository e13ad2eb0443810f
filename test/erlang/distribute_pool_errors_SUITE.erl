%% Errors say why: every option mistake names its key and value ({invalid_config, Why}), every failed
%% connection its cause ({connection_failed, {Kind, Text}}), and format_error/1 turns them into sentences.
%% Each case checks the exact return values a user sees.
-module(distribute_pool_errors_SUITE).

-include_lib("common_test/include/ct.hrl").

-export([all/0]).
-export([suite/0]).
-export([init_per_suite/1]).
-export([end_per_suite/1]).
-export([option_mistakes_name_key_and_value/1]).
-export([target_not_in_epmd_is_not_registered/1]).
-export([host_that_refuses_is_unreachable/1]).
-export([wrong_cookie_is_handshake_refused/1]).
-export([silent_target_is_timeout/1]).
-export([missing_cnode_is_cnode_not_running/1]).
-export([new_starts_the_application/1]).
-export([operations_say_why_the_target_is_down/1]).
-export([ended_lease_ping_and_discard_say_so/1]).

-import(dpool_ct_helper, [doc/1, do_stop_peer/1, do_uniq/1, do_wait_until/2, do_stats/1, with_target/2,
                          with_target_pool/3, with_nodes/2]).

-spec suite() -> list().
suite() ->
    [{timetrap, {minutes, 3}}].

-spec all() -> [atom()].
all() ->
    [option_mistakes_name_key_and_value,
     target_not_in_epmd_is_not_registered,
     host_that_refuses_is_unreachable,
     wrong_cookie_is_handshake_refused,
     silent_target_is_timeout,
     missing_cnode_is_cnode_not_running,
     new_starts_the_application,
     operations_say_why_the_target_is_down,
     ended_lease_ping_and_discard_say_so].

-spec init_per_suite(list()) -> list().
init_per_suite(Config) ->
    dpool_ct_helper:do_init_suite(Config).

-spec end_per_suite(list()) -> ok.
end_per_suite(Config) ->
    dpool_ct_helper:do_end_suite(Config).

%% Cases.

-spec option_mistakes_name_key_and_value(list()) -> ok.
option_mistakes_name_key_and_value(_Config) ->
    doc("Each option mistake gives {error, {invalid_config, Why}} naming the key and the value, with the "
        "known key a typo resembles and the range a value must be in; format_error/1 says it in words."),
    T = 'dpool_never_contacted@127.0.0.1',
    Cases =
        [{#{max_conections => 4},
          {unknown_option, max_conections, {did_you_mean, max_connections}},
          "invalid configuration: unknown option max_conections (did you mean max_connections?)"},
         {#{max_connections => 4, acquire_timeout => 100},
          {unknown_option, acquire_timeout, {did_you_mean, acquire_timeout_ms}}, none},
         {#{max_connections => 4, colour => blue}, {unknown_option, colour}, none},
         {#{max_connections => 0},
          {bad_value, max_connections, 0, <<"an integer in 1..1000">>},
          "invalid configuration: max_connections => 0: must be an integer in 1..1000"},
         {5000, {bad_value, max_connections, 5000, <<"an integer in 1..1000">>}, none},
         {#{max_connections => 2, min_connections => 3},
          {bad_value, min_connections, 3, <<"an integer in 0..max_connections (2)">>}, none},
         {#{max_connections => 2, max_idle_ms => 5},
          {bad_value, max_idle_ms, 5, <<"0 (off) or an integer in 10..86400000">>}, none},
         {#{max_connections => 2, acquire_timeout_ms => infinity},
          {bad_value, acquire_timeout_ms, infinity, <<"an integer in 0..86400000">>}, none},
         {#{max_connections => 2, validate_on_checkout => yes},
          {bad_value, validate_on_checkout, yes, <<"true or false">>}, none},
         {#{max_connections => 2, backoff_min_ms => 200, backoff_max_ms => 100},
          {bad_value, backoff_max_ms, 100, <<"an integer in backoff_min_ms (200)..600000">>}, none},
         {#{max_connections => 2, name => "orders"},
          {bad_value, name, "orders", <<"a non-empty UTF-8 atom other than undefined">>}, none},
         {#{max_connections => 1, cnode => 42}, {bad_value, cnode, 42, <<"a node name, or {Service, Node}">>}, none},
         {#{}, {missing_option, max_connections}, "invalid configuration: option max_connections is required"},
         {[{max_connections, 1}, {max_connections, 2}], {duplicate_option, max_connections}, none},
         {foo, {bad_options, foo}, none},
         {[4], {bad_options, [4]}, none}],
    [case distribute_pool:new(T, Options) of
         {error, {invalid_config, Why}} ->
             Text = distribute_pool:format_error({invalid_config, Why}),
             ct:log("~p -> ~p~n  ~ts", [Options, Why, Text]),
             case Sentence of
                 none -> ok;
                 Text -> ok;
                 _ -> ct:fail({format_error, Why, Text, Sentence})
             end;
         Other ->
             ct:fail({not_the_expected_reason, Options, Other, Why})
     end || {Options, Why, Sentence} <- Cases],
    %% Targets: named as given, whatever their type.
    [{error, {invalid_config, {bad_target, Bad}}} = distribute_pool:new(Bad, 1)
     || Bad <- ["nohost", <<"a@b@c">>, 'no_at_sign', 42, "bad name@127.0.0.1"]],
    "invalid configuration: target \"nohost\" is no node name (name@host)" =
        distribute_pool:format_error({invalid_config, {bad_target, "nohost"}}),
    ok.

-spec target_not_in_epmd_is_not_registered(list()) -> ok.
target_not_in_epmd_is_not_registered(_Config) ->
    doc("A target name that the target host's epmd does not know (a typo, or a node that is not running) "
        "gives {connection_failed, {not_registered, Text}} at once, Text naming the name and the host."),
    Name = do_uniq("dpool_typo"),
    {Micros, Result} = timer:tc(fun() -> distribute_pool:new(Name ++ "@127.0.0.1", 2) end),
    {error, {connection_failed, {not_registered, Text}}} = Result,
    ct:log("~ts (after ~b ms)", [Text, Micros div 1000]),
    {match, _} = re:run(Text, "epmd on 127.0.0.1 has no node named '" ++ Name ++ "'"),
    Text = list_to_binary(distribute_pool:format_error({connection_failed, {not_registered, Text}})),
    true = Micros < 5000000,
    ok.

-spec host_that_refuses_is_unreachable(list()) -> ok.
host_that_refuses_is_unreachable(_Config) ->
    doc("A host where nothing listens on the epmd port (the tests' epmd listens on 127.0.0.1 only) gives "
        "{connection_failed, {unreachable, Text}} at once."),
    {error, {connection_failed, {unreachable, Text}}} =
        distribute_pool:new('someone@127.0.0.2', #{max_connections => 1, connect_timeout_ms => 3000}),
    ct:log("~ts", [Text]),
    {match, _} = re:run(Text, "cannot ask epmd on 127.0.0.2 port [0-9]+: .*refused"),
    ok.

-spec wrong_cookie_is_handshake_refused(list()) -> ok.
wrong_cookie_is_handshake_refused(_Config) ->
    doc("A target with another cookie refuses the handshake: {connection_failed, {handshake_refused, Text}}, "
        "and Text says the cookie is not the target's."),
    with_nodes([{isolated, "dpool_other_cookie", "not_the_test_cookie"}], fun([{_, T}]) ->
        {error, {connection_failed, {handshake_refused, Text}}} = distribute_pool:new(T, 1),
        ct:log("~ts", [Text]),
        {match, _} = re:run(Text, "cookie is not the target's"),
        ok
    end).

-spec silent_target_is_timeout(list()) -> ok.
silent_target_is_timeout(_Config) ->
    doc("A name registered in epmd whose port accepts connections but never answers the handshake gives "
        "{connection_failed, {timeout, Text}} after connect_timeout_ms."),
    {ok, Listen} = gen_tcp:listen(0, [binary, {ip, {127, 0, 0, 1}}, {active, false}]),
    {ok, Port} = inet:port(Listen),
    Name = do_uniq("dpool_silent"),
    Epmd = do_epmd_register(Name, Port),
    try
        T0 = erlang:monotonic_time(millisecond),
        {error, {connection_failed, {timeout, Text}}} =
            distribute_pool:new(Name ++ "@127.0.0.1", #{max_connections => 1, connect_timeout_ms => 1000}),
        Elapsed = erlang:monotonic_time(millisecond) - T0,
        ct:log("~ts (after ~b ms)", [Text, Elapsed]),
        {match, _} = re:run(Text, "within connect_timeout_ms \\(1000 ms\\)"),
        true = Elapsed >= 1000 andalso Elapsed < 6000
    after
        gen_tcp:close(Epmd),
        gen_tcp:close(Listen)
    end.

-spec missing_cnode_is_cnode_not_running(list()) -> ok.
missing_cnode_is_cnode_not_running(_Config) ->
    doc("A `cnode' option naming a C-node that does not run gives {connection_failed, {cnode_not_running, "
        "Text}}, for new/2 and for an operation on a handle of it."),
    {error, {connection_failed, {cnode_not_running, Text}}} =
        distribute_pool:new('t@127.0.0.1', #{max_connections => 1, cnode => 'dpool_nosuch_cnode@127.0.0.1'}),
    ct:log("~ts", [Text]),
    {match, _} = re:run(Text, "dpool_nosuch_cnode@127.0.0.1"),
    ok.

-spec new_starts_the_application(list()) -> ok.
new_starts_the_application(_Config) ->
    doc("new/2 starts the application (and its C-node) when it is not running, as the Gleam new does."),
    try
        with_target("dpool_autostart", fun(T) ->
            ok = application:stop(distribute_pool),
            false = lists:keymember(distribute_pool, 1, application:which_applications()),
            {ok, Pool} = distribute_pool:new(T, 1),
            true = lists:keymember(distribute_pool, 1, application:which_applications()),
            {ok, T} = distribute_pool:call(Pool, erlang, node, []),
            ok = distribute_pool:destroy(Pool)
        end)
    after
        {ok, _} = application:ensure_all_started(distribute_pool)
    end.

-spec operations_say_why_the_target_is_down(list()) -> ok.
operations_say_why_the_target_is_down(_Config) ->
    doc("Once the target is gone, checkouts and one-shot operations give {connection_failed, {Kind, Text}} "
        "with the cause of the last failed attempt (the name left epmd: not_registered), and stats show it "
        "as last_failure."),
    with_target("dpool_gone", fun(T, Peer) ->
        {ok, Pool} = distribute_pool:new(T, #{max_connections => 1, backoff_min_ms => 20, backoff_max_ms => 50}),
        #{last_failure := none} = do_stats(Pool),
        do_stop_peer(Peer),
        do_wait_until(fun() ->
                              case do_stats(Pool) of
                                  #{last_failure := {not_registered, _}} -> true;
                                  _ -> false
                              end
                      end, 10000),
        {error, {connection_failed, {not_registered, Text}}} = distribute_pool:with_connection(Pool, fun(_) -> ok end),
        {error, {connection_failed, {not_registered, Text}}} = distribute_pool:call(Pool, erlang, node, []),
        {error, {connection_failed, {not_registered, Text}}} = distribute_pool:cast_batch(Pool, sink, [a]),
        ct:log("~ts", [Text]),
        ok = distribute_pool:destroy(Pool)
    end).

-spec ended_lease_ping_and_discard_say_so(list()) -> ok.
ended_lease_ping_and_discard_say_so(_Config) ->
    doc("ping on an ended lease is {error, invalid_connection} (not pang, which means the target is down); "
        "discard of an ended lease is {error, invalid_connection} and closes nothing."),
    with_target_pool("dpool_ended", 1, fun(_T, Pool) ->
        {ok, Kept} = distribute_pool:with_connection(Pool, fun(C) -> pong = distribute_pool:ping(C), C end),
        {error, invalid_connection} = distribute_pool:ping(Kept),
        {error, invalid_connection} = distribute_pool:discard(Kept),
        {ok, {ok, {error, invalid_connection}}} =
            distribute_pool:with_connection(Pool, fun(C) ->
                                                          ok = distribute_pool:discard(C),
                                                          {ok, distribute_pool:discard(C)}
                                                  end),
        #{connections_created := Created} = do_stats(Pool),
        %% Only the first discard closed the connection: one replacement.
        do_wait_until(fun() -> maps:get(connections_created, do_stats(Pool)) =:= 2 end, 10000),
        {ok, pong} = distribute_pool:with_connection(Pool, fun distribute_pool:ping/1),
        #{connections_closed := #{broken := 1}} = do_stats(Pool),
        ct:log("connections created before the replacement came: ~b", [Created])
    end).

%% Helpers.

%% Publishes Name in the tests' epmd (ALIVE2_REQ) on Port, for as long as the returned socket stays open.
-spec do_epmd_register(string(), inet:port_number()) -> gen_tcp:socket().
do_epmd_register(Name, Port) ->
    EpmdPort = list_to_integer(os:getenv("ERL_EPMD_PORT", "4369")),
    {ok, S} = gen_tcp:connect({127, 0, 0, 1}, EpmdPort, [binary, {active, false}, {packet, raw}]),
    NameBin = list_to_binary(Name),
    Body = <<120, Port:16, 72, 0, 6:16, 6:16, (byte_size(NameBin)):16, NameBin/binary, 0:16>>,
    ok = gen_tcp:send(S, <<(byte_size(Body)):16, Body/binary>>),
    {ok, <<_Resp, 0, _Creation/binary>>} = gen_tcp:recv(S, 0, 5000),
    S.
