%% A supervisor for tests: its flags and children are given to start_link/2.
-module(dpool_ct_sup).
-behaviour(supervisor).

-export([init/1]).

-spec init({supervisor:sup_flags(), [supervisor:child_spec()]}) ->
    {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init({Flags, Children}) ->
    {ok, {Flags, Children}}.
