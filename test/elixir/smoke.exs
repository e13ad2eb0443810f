# Smoke test of distribute_pool from Elixir. Run from the project root, with an epmd running:
#
#   scripts/with_epmd.sh elixir --name elixir_smoke@127.0.0.1 --cookie dpool_test \
#     -pa _build/default/lib/distribute_pool/ebin test/elixir/smoke.exs
#
# Starts the application (and so the embedded C-node), starts a target node with :peer, and checks
# new (with a keyword list), with_connection + call, send, ping, stats, destroy, errors that say why, and a
# named pool under an Elixir Supervisor. Exits non-zero with a message on the first failure.
defmodule DistributePoolSmoke do
  def run do
    step("node is distributed", fn -> Node.alive?() end)

    step("iex's h has the library's docs (make build writes them)", fn ->
      case Code.fetch_docs(:distribute_pool) do
        {:docs_v1, _, :erlang, _, _, _, entries} ->
          Enum.any?(entries, fn
            {{:function, :new, 2}, _, _, %{"en" => doc}, _} -> doc != []
            _ -> false
          end)

        other ->
          other
      end
    end)

    step("application starts", fn ->
      match?({:ok, _}, Application.ensure_all_started(:distribute_pool))
    end)

    {peer, target} = start_target()

    try do
      checks(target)
    after
      :peer.stop(peer)
    end

    :ok = Application.stop(:distribute_pool)
    IO.puts("smoke: OK")
  end

  defp checks(target) do
    step("target has none of our code", fn ->
      :erpc.call(target, :code, :which, [:distribute_pool]) == :non_existing
    end)

    pool =
      step("new/2", fn ->
        case :distribute_pool.new(target, max_connections: 2) do
          {:ok, pool} -> {:ok, pool}
          other -> {:error, other}
        end
      end)

    step("with_connection + call erlang:node/0", fn ->
      :distribute_pool.with_connection(pool, fn conn ->
        :distribute_pool.call(conn, :erlang, :node, [])
      end) == {:ok, {:ok, target}}
    end)

    step("ping", fn ->
      :distribute_pool.with_connection(pool, &:distribute_pool.ping/1) == {:ok, :pong}
    end)

    # A process that only sleeps keeps what it receives in its queue.
    sink = :erpc.call(target, :erlang, :spawn, [:timer, :sleep, [:infinity]])
    true = :erpc.call(target, :erlang, :register, [:smoke_sink, sink])

    step("send to a registered name", fn ->
      :distribute_pool.with_connection(pool, fn conn ->
        :distribute_pool.send(conn, :smoke_sink, {:hello, "from elixir"})
      end) == {:ok, :ok}
    end)

    step("message arrived", fn ->
      wait_until(5000, fn ->
        :erpc.call(target, :erlang, :process_info, [sink, :messages]) ==
          {:messages, [{:hello, "from elixir"}]}
      end)
    end)

    step("stats", fn ->
      case :distribute_pool.stats(pool) do
        {:ok,
         %{
           total_connections: total,
           available_connections: available,
           in_use_connections: in_use,
           connecting_connections: connecting,
           max_connections: 2,
           successful_operations: ok_ops
         }} ->
          total == available + in_use + connecting and total <= 2 and ok_ops >= 2

        _ ->
          false
      end
    end)

    step("destroy", fn -> :distribute_pool.destroy(pool) == :ok end)
    step("destroyed pool is invalid", fn -> :distribute_pool.stats(pool) == {:error, :invalid_pool} end)
    step("bad arguments are errors that say why", fn ->
      :distribute_pool.new(target, 0) ==
        {:error, {:invalid_config, {:bad_value, :max_connections, 0, "an integer in 1..1000"}}} and
        :distribute_pool.new(target, max_conections: 4) ==
          {:error, {:invalid_config, {:unknown_option, :max_conections, {:did_you_mean, :max_connections}}}} and
        :distribute_pool.with_connection(:not_a_pool, fn _ -> :ok end) == {:error, :invalid_pool}
    end)

    step("a name the target's epmd does not know says so", fn ->
      case :distribute_pool.new(:"smoke_nobody@127.0.0.1", 1) do
        {:error, {:connection_failed, {:not_registered, text}}} when is_binary(text) -> true
        other -> other
      end
    end)

    supervised(target)
  end

  # A named pool as a child of an Elixir Supervisor: {:distribute_pool, options} calls child_spec/1.
  defp supervised(target) do
    children = [{:distribute_pool, name: :smoke_orders, target: target, max_connections: 2}]

    sup =
      step("Supervisor starts the pool", fn ->
        Supervisor.start_link(children, strategy: :one_for_one)
      end)

    step("the pool answers to its name", fn ->
      :distribute_pool.call(:smoke_orders, :erlang, :node, []) == {:ok, target}
    end)

    step("stats name the pool", fn ->
      match?({:ok, %{name: :smoke_orders, total_connections: 2}}, :distribute_pool.stats(:smoke_orders))
    end)

    step("stopping the Supervisor destroys the pool", fn ->
      :ok = Supervisor.stop(sup)
      :distribute_pool.stats(:smoke_orders) == {:error, :invalid_pool}
    end)
  end

  defp start_target do
    cookie = Atom.to_charlist(Node.get_cookie())

    case :peer.start_link(%{
           name: :peer.random_name('smoke_target'),
           host: '127.0.0.1',
           longnames: true,
           args: ['-setcookie', cookie]
         }) do
      {:ok, peer, target} -> {peer, target}
      other -> fail("start target: #{inspect(other)}")
    end
  end

  # Runs a check; true or {:ok, value} passes (returning true or value), anything else fails the smoke test.
  defp step(name, fun) do
    result =
      try do
        fun.()
      catch
        kind, reason -> fail("#{name}: raised #{inspect(kind)} #{inspect(reason)}")
      end

    case result do
      true ->
        IO.puts("smoke: #{name}: ok")
        true

      {:ok, value} ->
        IO.puts("smoke: #{name}: ok")
        value

      other ->
        fail("#{name}: got #{inspect(other)}")
    end
  end

  defp wait_until(timeout_ms, fun) do
    deadline = System.monotonic_time(:millisecond) + timeout_ms
    poll(deadline, fun)
  end

  defp poll(deadline, fun) do
    cond do
      fun.() -> true
      System.monotonic_time(:millisecond) > deadline -> false
      true ->
        Process.sleep(20)
        poll(deadline, fun)
    end
  end

  defp fail(message) do
    IO.puts(:stderr, "smoke: FAILED: #{message}")
    System.halt(1)
  end
end

DistributePoolSmoke.run()
