# Responsiveness: how late a BEAM process waiting on a 1 ms timer wakes up,
# idle and while four runaway Python loops occupy every worker thread.
# `mix run bench/responsiveness.exs`; compare worker priorities with
# `elixir --erl "-ex_monty worker_nice 0" -S mix run bench/responsiveness.exs`.

spin = fn -> ExMonty.eval("while True:\n    pass", limits: %{max_duration_secs: 4.0}) end

measure = fn label ->
  parent = self()

  pid =
    spawn(fn ->
      gaps =
        for _ <- 1..1500 do
          t0 = System.monotonic_time(:microsecond)
          Process.sleep(1)
          System.monotonic_time(:microsecond) - t0 - 1000
        end

      send(parent, {:gaps, Enum.sort(gaps)})
    end)

  receive do
    {:gaps, gaps} ->
      IO.puts("#{label}: p99 #{Enum.at(gaps, 1485) / 1000} ms, max #{List.last(gaps) / 1000} ms")
  end

  pid
end

measure.("idle")
tasks = for _ <- 1..4, do: Task.async(spin)
Process.sleep(100)
measure.("4 runaway loops (worker_nice #{Application.get_env(:ex_monty, :worker_nice)})")
Enum.each(tasks, &Task.await(&1, 10_000))
