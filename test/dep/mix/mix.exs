# A Mix project that has distribute_pool as a dependency (scripts/dep_test.sh copies it next to a fresh copy
# of the library, ../distribute_pool). `manager: :rebar3` makes Mix build it with rebar3, whose pre-compile
# hook builds the C-node; the test points Mix at Debian's rebar3 with MIX_REBAR3, so nothing is fetched.
defmodule DepConsumerMix.MixProject do
  use Mix.Project

  def project do
    [
      app: :dep_consumer_mix,
      version: "0.1.0",
      deps: [{:distribute_pool, path: "../distribute_pool", manager: :rebar3}]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
