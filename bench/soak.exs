# Soak: `mix run bench/soak.exs` (SOAK_RUNS, SOAK_SNAPSHOTS to change the counts).
#
# 100 000 executions and 10 000 paused-then-dropped snapshots, with the
# process's resident memory before and after. Not a test: the numbers go to the
# README. Growth beyond allocator noise would mean a leak.

rss_mb = fn ->
  [_size, resident | _] = File.read!("/proc/self/statm") |> String.split()
  String.to_integer(resident) * 4096 / 1_048_576
end

runs = String.to_integer(System.get_env("SOAK_RUNS", "100000"))
snapshots = String.to_integer(System.get_env("SOAK_SNAPSHOTS", "10000"))

{:ok, runner} =
  ExMonty.compile("s = 0\nfor i in range(n):\n    s += i\n[s, str(s), {'k': s}]", inputs: ["n"])

{:ok, paused} = ExMonty.compile("x = [i for i in range(100)]\ny = fetch(x)\ny")

# Warm up so the pools and allocator reach their steady state first.
for n <- 1..2_000, do: {:ok, _, _} = ExMonty.run(runner, %{"n" => rem(n, 50)})
for _ <- 1..500, do: {:ok, {:function_call, _, _, _}} = ExMonty.start(paused)
:erlang.garbage_collect()
before = rss_mb.()

{micros, _} =
  :timer.tc(fn ->
    for n <- 1..runs, do: {:ok, _, _} = ExMonty.run(runner, %{"n" => rem(n, 50)})
  end)

:erlang.garbage_collect()
after_runs = rss_mb.()

{snap_micros, _} =
  :timer.tc(fn ->
    for _ <- 1..snapshots do
      {:ok, {:function_call, _, _snapshot, _}} = ExMonty.start(paused)
    end
  end)

:erlang.garbage_collect()
Process.sleep(200)
after_snapshots = rss_mb.()

IO.puts(
  "soak: #{runs} runs in #{Float.round(micros / 1_000_000, 1)} s; RSS #{Float.round(before, 1)} MB -> #{Float.round(after_runs, 1)} MB (#{Float.round(after_runs - before, 1)} MB)"
)

IO.puts(
  "soak: #{snapshots} paused-then-dropped snapshots in #{Float.round(snap_micros / 1_000_000, 1)} s; RSS -> #{Float.round(after_snapshots, 1)} MB (#{Float.round(after_snapshots - after_runs, 1)} MB)"
)
