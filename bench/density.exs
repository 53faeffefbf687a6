# Density: N paused executions, the memory they hold, and what resuming
# them costs. `mix run bench/density.exs` (DENSITY_N, default 10_000).
#
# Past `config :ex_monty, max_live_paused:` (256) a pause is kept as its dump
# bytes instead of a whole wasm instance; this measures both kinds in one run.

n = String.to_integer(System.get_env("DENSITY_N", "10000"))

rss = fn ->
  case File.read("/proc/self/status") do
    {:ok, status} ->
      [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, status)
      String.to_integer(kb) * 1024

    _ ->
      :erlang.memory(:total)
  end
end

mb = fn bytes -> Float.round(bytes / 1_048_576, 1) end

{:ok, runner} = ExMonty.compile("x = f(n)\ny = g(x)\nx + y", inputs: ["n"])
# Warm up the pool and the caches.
for i <- 1..50 do
  {:ok, {:function_call, _, s, _}} = ExMonty.start(runner, %{"n" => i})
  {:ok, {:function_call, _, s2, _}} = ExMonty.resume(s, {:ok, i})
  {:ok, {:complete, _, _}} = ExMonty.resume(s2, {:ok, 1})
end

:erlang.garbage_collect()
before = rss.()

{started_us, snapshots} =
  :timer.tc(fn ->
    for i <- 1..n do
      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner, %{"n" => i})
      snapshot
    end
  end)

:erlang.garbage_collect()
held = rss.() - before
stats = ExMonty.stats()

resume = fn snapshots ->
  for snapshot <- snapshots do
    {t, {:ok, {:function_call, _, next, _}}} =
      :timer.tc(fn -> ExMonty.resume(snapshot, {:ok, 1}) end)

    {t, next}
  end
end

{live, hibernated} = Enum.split(snapshots, stats.live_paused)
live_times = live |> Enum.take(200) |> resume.()
hib_times = hibernated |> Enum.take(1000) |> resume.()

median = fn times ->
  times |> Enum.map(&elem(&1, 0)) |> Enum.sort() |> then(&Enum.at(&1, div(length(&1), 2)))
end

IO.puts(
  "density — #{n} paused executions (#{stats.live_paused} hold an instance, the rest hibernated)"
)

IO.puts("  start + pause       #{Float.round(started_us / n, 1)} us each")
IO.puts("  memory held         #{mb.(held)} MB above baseline (#{round(held / n)} bytes each)")
IO.puts("  resume, live        median #{median.(live_times)} us")
IO.puts("  resume, hibernated  median #{median.(hib_times)} us")
