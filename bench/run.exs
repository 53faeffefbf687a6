# ExMonty benchmarks: `mix bench` (or `mix run bench/run.exs`).
#
# Every figure is reported next to a baseline measured in the same run:
# native Monty linked directly into a Rust binary (bench/native), the physical
# limit for an in-process interpreter. Nothing here is asserted: the numbers
# go to the README.
#
# Options (environment): BENCH_N (iterations of the micro benchmarks, default
# 20000), BENCH_FIB_N (fib(25) runs, default 21).

defmodule Bench do
  @fib "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(25)"

  def fib_code, do: @fib

  def measure(iterations, fun) do
    warmup = min(iterations, 200)
    for _ <- 1..warmup, do: fun.()

    samples =
      for _ <- 1..iterations do
        started = System.monotonic_time(:nanosecond)
        fun.()
        (System.monotonic_time(:nanosecond) - started) / 1000
      end
      |> Enum.sort()

    {Enum.at(samples, div(iterations, 2)),
     Enum.at(samples, min(iterations - 1, div(iterations * 99, 100)))}
  end

  def native(n, fib_n) do
    {_, 0} =
      System.cmd("cargo", ["build", "--locked", "--release", "-q", "-p", "ex_monty_native_bench"],
        stderr_to_stdout: true
      )

    target = System.get_env("CARGO_TARGET_DIR") || "target"

    binary = Path.expand(Path.join([target, "release", "ex_monty_native_bench"]))
    {out, 0} = System.cmd(binary, ["#{n}", "#{fib_n}"])

    for line <- String.split(out, "\n", trim: true), into: %{} do
      [name, median, p99, _n] = String.split(line)
      {name, {String.to_float(median), String.to_float(p99)}}
    end
  end

  def row(name, {median, p99}, {native_median, native_p99}) do
    IO.puts(
      String.pad_trailing(name, 28) <>
        fmt(median) <>
        fmt(p99) <>
        fmt(native_median) <>
        fmt(native_p99) <>
        String.pad_leading(:erlang.float_to_binary(median / native_median, decimals: 2) <> "x", 10)
    )
  end

  defp fmt(us) when us >= 10_000, do: String.pad_leading("#{Float.round(us / 1000, 1)} ms", 12)
  defp fmt(us), do: String.pad_leading("#{Float.round(us * 1.0, 2)} us", 12)
end

n = String.to_integer(System.get_env("BENCH_N", "20000"))
fib_n = String.to_integer(System.get_env("BENCH_FIB_N", "21"))

IO.puts(
  "ExMonty benchmark — #{System.schedulers_online()} schedulers, #{n} iterations (fib: #{fib_n})\n"
)

native = Bench.native(n, fib_n)

{:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])

results = [
  {"eval(\"2 + 2\")", "eval_2_plus_2",
   Bench.measure(n, fn -> {:ok, 4, ""} = ExMonty.eval("2 + 2") end)},
  {"run(precompiled, x * 2)", "run_precompiled",
   Bench.measure(n, fn -> {:ok, 10, ""} = ExMonty.run(runner, %{"x" => 5}) end)},
  {"fib(25)", "fib_25",
   Bench.measure(fib_n, fn -> {:ok, 75025, ""} = ExMonty.eval(Bench.fib_code()) end)}
]

IO.puts(
  String.pad_trailing("workload", 28) <>
    String.pad_leading("median", 12) <>
    String.pad_leading("p99", 12) <>
    String.pad_leading("native med", 12) <>
    String.pad_leading("native p99", 12) <> String.pad_leading("ratio", 10)
)

for {label, key, measured} <- results do
  Bench.row(label, measured, Map.fetch!(native, key))
end

# --- Conversion costs ---------------------------------------------------------
IO.puts("\nconversion (round trip through the sandbox, minus a tiny value's cost):")
iters = max(div(n, 100), 20)

tiny =
  Bench.measure(iters, fn -> {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => "a"}) end)
  |> elem(0)

mb = String.duplicate("x", 1_048_576)

str_in =
  Bench.measure(iters, fn -> {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => mb}) end)
  |> elem(0)

str_out = Bench.measure(iters, fn -> {:ok, _, _} = ExMonty.eval("'x' * 1048576") end) |> elem(0)
ints = Enum.to_list(1..100_000)

list_in =
  Bench.measure(iters, fn -> {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => ints}) end)
  |> elem(0)

list_out =
  Bench.measure(iters, fn -> {:ok, _, _} = ExMonty.eval("list(range(100000))") end) |> elem(0)

map_in = Map.new(1..100_000, &{Integer.to_string(&1), &1})

dict_in =
  Bench.measure(div(iters, 2) + 1, fn ->
    {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => map_in})
  end)
  |> elem(0)

dict_out =
  Bench.measure(div(iters, 2) + 1, fn ->
    {:ok, _, _} = ExMonty.eval("{str(i): i for i in range(100000)}")
  end)
  |> elem(0)

for {label, us} <- [
      {"1 MB string in (per MB)", str_in - tiny},
      {"1 MB string out (per MB, incl. building it)", str_out - tiny},
      {"100k-int list in (per 100k items)", list_in - tiny},
      {"100k-int list out (per 100k items, incl. building it)", list_out - tiny},
      {"100k-entry dict in (per 100k entries)", dict_in - tiny},
      {"100k-entry dict out (per 100k entries, incl. building it)", dict_out - tiny}
    ] do
  IO.puts(
    "  " <>
      String.pad_trailing(label, 58) <> String.pad_leading("#{Float.round(us / 1000, 2)} ms", 12)
  )
end

# --- Cost of epoch interruption (deadlines + cancellation) --------------------
# Two fresh VMs, identical but for epoch interruption, both without scheduler
# busy-waiting (which otherwise competes with the worker threads on a small
# machine and drowns a 10% effect in noise).
IO.puts(
  "\nepoch interruption cost (fib(25) in two fresh VMs with +sbwt none; with vs without epochs):"
)

fib_in_vm = fn extra_env ->
  {out, 0} =
    System.cmd("mix", ["run", "bench/fib.exs", "#{fib_n}"],
      env:
        [
          {"MIX_ENV", "dev"},
          {"ELIXIR_ERL_OPTIONS", "+sbwt none +sbwtdcpu none +sbwtdio none"}
        ] ++ extra_env,
      stderr_to_stdout: true
    )

  [median] = Regex.run(~r/fib_median_us (\S+)/, out, capture: :all_but_first)
  String.to_float(median)
end

with_epoch = fib_in_vm.([])
no_epoch = fib_in_vm.([{"EX_MONTY_BENCH_NO_EPOCH", "1"}])
{native_fib, _} = Map.fetch!(native, "fib_25")

IO.puts(
  "  with epochs #{Float.round(with_epoch / 1000, 1)} ms (#{Float.round(with_epoch / native_fib, 2)}x native), " <>
    "without #{Float.round(no_epoch / 1000, 1)} ms: epochs cost +#{Float.round((with_epoch / no_epoch - 1) * 100, 1)}%"
)

# --- Scheduler responsiveness under runaway code ------------------------------
%{workers: workers} = ExMonty.stats()

IO.puts(
  "\nping latency while #{workers * 2} runaway loops run (#{workers} workers busy, the rest queued):"
)

pinger =
  spawn(fn ->
    loop = fn loop ->
      receive do
        {:ping, from} ->
          send(from, :pong)
          loop.(loop)
      end
    end

    loop.(loop)
  end)

ping = fn ->
  t = System.monotonic_time(:nanosecond)
  send(pinger, {:ping, self()})

  receive do
    :pong -> (System.monotonic_time(:nanosecond) - t) / 1000
  end
end

idle_pings = Enum.sort(for _ <- 1..200, do: ping.() |> tap(fn _ -> Process.sleep(1) end))

loops =
  for _ <- 1..(workers * 2),
      do:
        Task.async(fn ->
          ExMonty.eval("while True:\n    pass", limits: %{max_duration_secs: 1.0})
        end)

Process.sleep(50)
busy_pings = Enum.sort(for _ <- 1..200, do: ping.() |> tap(fn _ -> Process.sleep(1) end))
Task.await_many(loops, 30_000)

pct = fn sorted, p -> Enum.at(sorted, min(length(sorted) - 1, div(length(sorted) * p, 100))) end

for {label, sorted} <- [{"idle", idle_pings}, {"under load", busy_pings}] do
  IO.puts(
    "  #{String.pad_trailing(label, 12)} median #{Float.round(pct.(sorted, 50), 1)} us, " <>
      "p99 #{Float.round(pct.(sorted, 99), 1)} us, max #{Float.round(List.last(sorted), 1)} us"
  )
end
