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

# Two rounds of each: a leak grows every round; allocator retention (freed
# memory the process keeps for reuse) shows up once and then plateaus.
report = fn label, count, fun ->
  for round <- 1..2 do
    before = rss_mb.()
    # Enum.each, not `for`: each result is dropped before the next call.
    {micros, _} = :timer.tc(fn -> Enum.each(1..count, fun) end)
    :erlang.garbage_collect()
    Process.sleep(200)
    after_mb = rss_mb.()

    %{idle_instances: idle, live_instances: live} = ExMonty.stats()

    IO.puts(
      "soak: #{label}, round #{round}: #{count} in #{Float.round(micros / 1_000_000, 1)} s; " <>
        "RSS #{Float.round(before, 1)} -> #{Float.round(after_mb, 1)} MB (#{Float.round(after_mb - before, 1)} MB); " <>
        "instances alive #{live} (#{idle} idle)"
    )
  end
end

IO.puts("soak: baseline RSS #{Float.round(before, 1)} MB")
report.("runs", runs, fn n -> {:ok, _, _} = ExMonty.run(runner, %{"n" => rem(n, 50)}) end)

report.("paused-then-dropped snapshots", snapshots, fn _ ->
  {:ok, {:function_call, _, _snapshot, _}} = ExMonty.start(paused)
end)
