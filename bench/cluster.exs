# ExMonty across nodes of one machine: `mix run bench/cluster.exs`.
#
# Reports, measured in the same run:
#   * the latency of one small eval here, through this node's cluster server
#     (node: node()), and on a peer node (node: peer) — the remote call's cost;
#   * the same for run/3 of a compiled runner (the runner travels as a dump);
#   * the throughput of small and medium evals from BENCH_CALLERS concurrent
#     callers on this node alone, through its server, and with node: :auto
#     over this node + 2 peers.
#
# All the nodes share this machine's cores (see the "cores" line): extra
# nodes add no CPU here, so the cluster figures show the cost of
# distribution, not its gain. Nothing is asserted.
#
# Options (environment): BENCH_N (latency samples, default 2000),
# BENCH_SECS (seconds per throughput run, default 3), BENCH_CALLERS
# (concurrent callers, default 16), BENCH_PEER_FLAGS (extra `erl` flags for
# the peers, e.g. "+sbwt none +sbwtdcpu none +sbwtdio none" so that three
# VMs on two cores do not busy-wait against each other).

defmodule ClusterBench do
  @code "sum(i * i for i in range(100))"

  def code, do: @code

  def latency(n, fun) do
    for _ <- 1..min(n, 200), do: {:ok, _, _} = fun.()

    samples =
      for _ <- 1..n do
        started = System.monotonic_time(:nanosecond)
        {:ok, _, _} = fun.()
        (System.monotonic_time(:nanosecond) - started) / 1000
      end
      |> Enum.sort()

    {Enum.at(samples, div(n, 2)), Enum.at(samples, min(n - 1, div(n * 99, 100)))}
  end

  def throughput(callers, secs, fun) do
    deadline = System.monotonic_time(:millisecond) + secs * 1000
    started = System.monotonic_time(:microsecond)

    total =
      1..callers
      |> Enum.map(fn _ -> Task.async(fn -> loop(fun, deadline, 0) end) end)
      |> Task.await_many(:infinity)
      |> Enum.sum()

    total / ((System.monotonic_time(:microsecond) - started) / 1_000_000)
  end

  defp loop(fun, deadline, count) do
    if System.monotonic_time(:millisecond) >= deadline do
      count
    else
      {:ok, _, _} = fun.()
      loop(fun, deadline, count + 1)
    end
  end

  def start_peer do
    name = :"ex_monty_bench_#{System.unique_integer([:positive])}"
    cookie = Node.get_cookie() |> Atom.to_charlist()

    flags =
      System.get_env("BENCH_PEER_FLAGS", "") |> String.split() |> Enum.map(&String.to_charlist/1)

    {:ok, peer, node} = :peer.start(%{name: name, args: [~c"-setcookie", cookie | flags]})
    :ok = :erpc.call(node, :code, :add_pathsa, [:code.get_path()])
    :ok = :erpc.call(node, Application, :put_env, [:logger, :level, :info])
    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:ex_monty])
    {peer, node}
  end

  def wait_for(nodes) do
    unless Enum.all?(nodes, &(&1 in ExMonty.Cluster.nodes())) do
      Process.sleep(20)
      wait_for(nodes)
    end
  end

  def us(x), do: :erlang.float_to_binary(x / 1, decimals: 1)
end

n = String.to_integer(System.get_env("BENCH_N", "2000"))
secs = String.to_integer(System.get_env("BENCH_SECS", "3"))
callers = String.to_integer(System.get_env("BENCH_CALLERS", "16"))

unless Node.alive?() do
  System.cmd("epmd", ["-daemon"])

  {:ok, _} =
    :net_kernel.start([:"ex_monty_bench_#{System.unique_integer([:positive])}", :shortnames])
end

{peer1, node1} = ClusterBench.start_peer()
{peer2, node2} = ClusterBench.start_peer()
ClusterBench.wait_for([node1, node2])

code = ClusterBench.code()
{:ok, runner} = ExMonty.compile(code)

IO.puts(
  "cores: #{System.schedulers_online()} schedulers, #{ExMonty.stats().workers} ExMonty workers per node"
)

IO.puts("eval of #{inspect(code)}\n")
IO.puts("latency (µs)                          median      p99")

rows = [
  {"eval, in the caller", fn -> ExMonty.eval(code) end},
  {"eval, node: node() (via the server)", fn -> ExMonty.eval(code, node: node()) end},
  {"eval, node: peer", fn -> ExMonty.eval(code, node: node1) end},
  {"run/3, in the caller", fn -> ExMonty.run(runner) end},
  {"run/3, node: peer (runner as a dump)", fn -> ExMonty.run(runner, %{}, node: node1) end}
]

results =
  for {label, fun} <- rows do
    {median, p99} = ClusterBench.latency(n, fun)

    IO.puts(
      String.pad_trailing(label, 36) <>
        String.pad_leading(ClusterBench.us(median), 8) <>
        String.pad_leading(ClusterBench.us(p99), 10)
    )

    {label, median}
  end
  |> Map.new()

local = results["eval, in the caller"]
remote = results["eval, node: peer"]

IO.puts(
  "\nremote eval: +#{ClusterBench.us(remote - local)} µs per call " <>
    "(#{:erlang.float_to_binary(remote / local, decimals: 2)}x the local median)"
)

for {name, work} <- [{"small", code}, {"medium", "sum(i * i for i in range(20000))"}] do
  IO.puts(
    "\nthroughput, #{name} eval #{inspect(work)}, #{callers} concurrent callers, #{secs} s each (evals/s)"
  )

  one = ClusterBench.throughput(callers, secs, fn -> ExMonty.eval(work) end)
  IO.puts("  1 node, in the callers:         #{round(one)}")

  served = ClusterBench.throughput(callers, secs, fn -> ExMonty.eval(work, node: node()) end)

  IO.puts(
    "  1 node, node: node() (server):  #{round(served)}  (#{:erlang.float_to_binary(served / one, decimals: 2)}x)"
  )

  auto = ClusterBench.throughput(callers, secs, fn -> ExMonty.eval(work, node: :auto) end)

  IO.puts(
    "  1 + 2 peers, node: :auto:       #{round(auto)}  (#{:erlang.float_to_binary(auto / one, decimals: 2)}x)"
  )
end

spread =
  ExMonty.Cluster.loads()
  |> Enum.map_join(", ", fn {node, load} -> "#{node}: #{load.completed}" end)

IO.puts("  completed per node (since start, latency runs included): #{spread}")

:peer.stop(peer1)
:peer.stop(peer2)
