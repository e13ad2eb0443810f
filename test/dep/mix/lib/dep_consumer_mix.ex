defmodule DepConsumerMix do
  @moduledoc """
  The code of a Mix project that uses distribute_pool as a dependency (scripts/dep_test.sh), as any user would:
  the application started by `Application.ensure_all_started/1`, which starts the C-node found in
  `:code.priv_dir(:distribute_pool)`, then a pool, a one-shot call and a call over a leased connection. Besides,
  it checks that this priv dir lies in the project's own build output (`_build/`) and that the running C-node
  is the binary found there.

      elixir --name N --cookie C -S mix run --no-start -e 'DepConsumerMix.main("target@127.0.0.1")'

  prints "dep_consumer_mix: OK ..." and halts 0, or prints the failed step and halts 1.
  """

  def main(target_name) do
    report = run(String.to_atom(target_name))
    IO.puts("dep_consumer_mix: OK #{report}")
    System.halt(0)
  catch
    {:step_failed, step, got} ->
      IO.puts("dep_consumer_mix: FAILED at #{step}: #{inspect(got)}")
      System.halt(1)

    kind, reason ->
      IO.puts("dep_consumer_mix: FAILED: #{Exception.format(kind, reason, __STACKTRACE__)}")
      System.halt(1)
  end

  defp run(target) do
    step("Application.ensure_all_started(:distribute_pool)", fn ->
      Application.ensure_all_started(:distribute_pool)
    end, &match?({:ok, _}, &1))

    priv = List.to_string(:code.priv_dir(:distribute_pool))
    build = Path.join(File.cwd!(), "_build") <> "/"
    step("priv_dir in this project's build output", fn -> priv end, &String.starts_with?(&1, build))

    exe = Path.join(priv, "dpool_cnode")
    # The C-node's OS pid, only to check that what runs is that binary (same file as /proc/<pid>/exe).
    {:ok, os_pid} = :distribute_pool_cnode.os_pid()

    step("the running C-node is #{exe}", fn -> {file_id(exe), file_id("/proc/#{os_pid}/exe")} end, fn
      {{:ok, id}, {:ok, id}} -> true
      _ -> false
    end)

    {:ok, pool} =
      step("new(target, 2)", fn -> :distribute_pool.new(target, 2) end, &match?({:ok, _}, &1))

    step("call(pool, :erlang, :node, [])", fn -> :distribute_pool.call(pool, :erlang, :node, []) end,
      &(&1 == {:ok, target}))

    step("with_connection + call(conn, :erlang, :node, [])", fn ->
      :distribute_pool.with_connection(pool, fn conn -> :distribute_pool.call(conn, :erlang, :node, []) end)
    end, &(&1 == {:ok, {:ok, target}}))

    step("destroy(pool)", fn -> :distribute_pool.destroy(pool) end, &(&1 == :ok))
    step("Application.stop(:distribute_pool)", fn -> Application.stop(:distribute_pool) end, &(&1 == :ok))

    link =
      case File.read_link(priv) do
        {:ok, to} -> to
        {:error, _} -> "(a directory)"
      end

    "target=#{target} priv_dir=#{priv} priv_link=#{link} cnode_os_pid=#{os_pid}"
  end

  # Runs fun and returns its result when check accepts it, else throws the step's name and the result.
  defp step(name, fun, check) do
    got =
      try do
        fun.()
      catch
        kind, reason -> {:raised, kind, reason}
      end

    if check.(got), do: got, else: throw({:step_failed, name, got})
  end

  # A file's identity (device and inode), following symbolic links.
  defp file_id(path) do
    case File.stat(path) do
      {:ok, %File.Stat{major_device: device, inode: inode}} -> {:ok, {device, inode}}
      error -> error
    end
  end
end
