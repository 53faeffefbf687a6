# Shared by the scripts in bench/ (`Code.require_file("support.exs", __DIR__)`):
# timing and percentiles, the density and responsiveness measurements, and
# running a script in a fresh VM. Nothing here asserts a number.

defmodule Bench.Stats do
  @moduledoc false

  @doc "Runs `fun` `iterations` times (after a warm-up); `{median_us, p99_us}`."
  def measure(iterations, fun) do
    for _ <- 1..min(iterations, 200), do: fun.()

    samples =
      for _ <- 1..iterations do
        started = System.monotonic_time(:nanosecond)
        fun.()
        (System.monotonic_time(:nanosecond) - started) / 1000
      end
      |> Enum.sort()

    {percentile(samples, 50), percentile(samples, 99)}
  end

  @doc "The `p`th percentile of an ascending list."
  def percentile(sorted, p),
    do: Enum.at(sorted, min(length(sorted) - 1, div(length(sorted) * p, 100)))

  def median(values), do: values |> Enum.sort() |> percentile(50)

  @doc "Microseconds, printed at a readable scale."
  def us(us) when us >= 10_000, do: "#{Float.round(us / 1000, 1)} ms"
  def us(us) when us >= 1_000, do: "#{Float.round(us / 1000, 2)} ms"
  def us(us), do: "#{Float.round(us * 1.0, 2)} us"

  def mb(bytes), do: "#{Float.round(bytes / 1_048_576, 1)} MB"

  def ratio(x), do: :erlang.float_to_binary(x * 1.0, decimals: 2) <> "x"
end

defmodule Bench.FreshVM do
  @moduledoc false
  # A script in a VM of its own prints its figures on a line
  # `bench_result key=value ...`; `run/3` returns them as a map of strings.

  def run(script, args \\ [], env \\ [], mix_args \\ []) do
    {out, status} =
      System.cmd("mix", ["run" | mix_args] ++ [script | args],
        env: [{"MIX_ENV", to_string(Mix.env())} | env],
        stderr_to_stdout: true
      )

    case {status, Regex.run(~r/^bench_result (.*)$/m, out, capture: :all_but_first)} do
      {0, [fields]} ->
        for field <- String.split(fields), into: %{} do
          [key, value] = String.split(field, "=", parts: 2)
          {key, value}
        end

      _ ->
        raise "#{script} failed in a fresh VM (exit status #{status}):\n#{out}"
    end
  end

  def report(fields) do
    IO.puts("bench_result " <> Enum.map_join(fields, " ", fn {k, v} -> "#{k}=#{v}" end))
  end
end

defmodule Bench.Density do
  @moduledoc false
  # N paused executions: the memory they hold and what resuming them costs.
  # Past `config :ex_monty, max_live_paused:` (256) a pause is kept as its dump
  # bytes instead of a whole wasm instance; both kinds are measured.

  def run(n) do
    {:ok, runner} = ExMonty.compile("x = f(n)\ny = g(x)\nx + y", inputs: ["n"])

    # Warm up the pool and the caches.
    for i <- 1..50 do
      {:ok, {:function_call, _, s, _}} = ExMonty.start(runner, %{"n" => i})
      {:ok, {:function_call, _, s2, _}} = ExMonty.resume(s, {:ok, i})
      {:ok, {:complete, _, _}} = ExMonty.resume(s2, {:ok, 1})
    end

    :erlang.garbage_collect()
    before = rss()

    {started_us, snapshots} =
      :timer.tc(fn ->
        for i <- 1..n do
          {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner, %{"n" => i})
          snapshot
        end
      end)

    # Pauses past the live cap are put to sleep by the workers after their
    # answer is out: on a slow machine that lags the loop above. Memory is
    # measured once it has caught up (the steady state), and the wait is
    # reported.
    {settle_us, _} =
      :timer.tc(fn -> settle(Application.get_env(:ex_monty, :max_live_paused, 256), 500) end)

    :erlang.garbage_collect()
    held = rss() - before
    %{live_paused: live_paused} = ExMonty.stats()

    {live, hibernated} = Enum.split(snapshots, live_paused)

    %{
      n: n,
      live_paused: live_paused,
      start_us: started_us / n,
      settle_us: settle_us,
      held_bytes: held,
      resume_live_us: live |> Enum.take(200) |> resume_median(),
      resume_hibernated_us: hibernated |> Enum.take(1000) |> resume_median(),
      # The same on the next hibernated ones, but each resumed execution's
      # next pause is kept (a conversation that goes on) instead of dropped:
      # the cap then puts that pause to sleep and its instance goes back to
      # the pool, where the next wake finds it (dropped pauses hold their
      # instances until garbage-collected, so wakes above mostly need new ones).
      resume_hibernated_kept_us:
        hibernated |> Enum.drop(1000) |> Enum.take(1000) |> resume_median(:keep)
    }
  end

  # Waits (10 ms steps, at most `tries`) until no more than `cap` pauses hold an instance.
  defp settle(cap, tries) do
    %{live_paused: live} = ExMonty.stats()

    if live > cap and tries > 0 do
      Process.sleep(10)
      settle(cap, tries - 1)
    end
  end

  defp resume_median(snapshots, next \\ :drop)

  defp resume_median([], _next), do: nil

  defp resume_median(snapshots, next) do
    {times, kept} =
      Enum.map_reduce(snapshots, [], fn snapshot, kept ->
        {t, {:ok, {:function_call, _, following, _}}} =
          :timer.tc(fn -> ExMonty.resume(snapshot, {:ok, 1}) end)

        {t, if(next == :keep, do: [following | kept], else: kept)}
      end)

    # Held until every resume is timed.
    _ = length(kept)
    Bench.Stats.median(times)
  end

  @doc "This OS process's resident memory in bytes (the VM's own count off Linux)."
  def rss do
    case File.read("/proc/self/status") do
      {:ok, status} ->
        [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, status)
        String.to_integer(kb) * 1024

      _ ->
        :erlang.memory(:total)
    end
  end
end

defmodule Bench.Responsiveness do
  @moduledoc false
  # How late a BEAM process waiting on a 1 ms timer wakes up, while runaway
  # Python loops occupy every worker thread (and more wait in the queue).

  @doc "Sorted lateness of `samples` 1 ms sleeps, in microseconds."
  def timer_gaps(samples) do
    parent = self()

    spawn(fn ->
      gaps =
        for _ <- 1..samples do
          t0 = System.monotonic_time(:microsecond)
          Process.sleep(1)
          System.monotonic_time(:microsecond) - t0 - 1000
        end

      send(parent, {:gaps, Enum.sort(gaps)})
    end)

    receive do
      {:gaps, gaps} -> gaps
    end
  end

  @doc "Runs `fun` while `loops` runaway loops run; `fun`'s result."
  def under_runaway(loops, fun) do
    # Long enough to cover `fun`; each loop stops at its deadline anyway.
    spin = fn -> ExMonty.eval("while True:\n    pass", limits: %{max_duration_secs: 4.0}) end
    tasks = for _ <- 1..loops, do: Task.async(spin)
    Process.sleep(100)
    result = fun.()
    Enum.each(tasks, &Task.await(&1, 10_000))
    result
  end
end
