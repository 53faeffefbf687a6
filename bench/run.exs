# ExMonty benchmarks: `mix bench` (or `mix run bench/run.exs`).
#
# Every figure is reported next to a baseline measured in the same run:
# native Monty linked directly into a Rust binary (bench/native), the physical
# limit for an in-process interpreter, or ExMonty itself under another
# condition. Nothing here is asserted: the last table compares the measured
# figures with issue #12's targets, and the numbers go to the README.
#
# Options (environment):
#   BENCH_N           iterations of the micro benchmarks (default 20000)
#   BENCH_FIB_N       fib(25) runs (default 21)
#   BENCH_ROUNDS      alternating native/ExMonty rounds those are split into
#                     (default 20)
#   BENCH_PAUSED      paused executions for the density row (default 10000)
#   BENCH_PAUSED_MAX  a second, larger density run (default 100000; 0 skips it)
#   BENCH_VMS         fresh VMs timed for NIF load → first result (default 7)
#   BENCH_PYDANTIC=1  install pydantic-monty 1.4.0 into bench/.venv when no
#                     python3 with `pydantic_monty` is found (otherwise skipped)
Code.require_file("support.exs", __DIR__)

defmodule Bench do
  import Bench.Stats, only: [us: 1, ratio: 1]

  @fib "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(25)"
  @venv "bench/.venv"
  @pydantic_monty "pydantic-monty==1.4.0"

  def fib_code, do: @fib

  def int_env(name, default), do: String.to_integer(System.get_env(name, default))

  def machine do
    cpu =
      case File.read("/proc/cpuinfo") do
        {:ok, info} ->
          case Regex.run(~r/^model name\s*:\s*(.+)$/m, info, capture: :all_but_first) do
            [model] -> model
            _ -> "unknown CPU"
          end

        _ ->
          "unknown CPU"
      end

    load =
      case File.read("/proc/loadavg") do
        {:ok, text} -> ", load average #{text |> String.split() |> hd()} at the start"
        _ -> ""
      end

    "#{cpu}, #{:erlang.system_info(:logical_processors_available)} logical CPUs available, " <>
      "#{System.schedulers_online()} schedulers, Elixir #{System.version()} / OTP #{System.otp_release()}" <>
      load
  end

  # `name median_us p99_us iterations` lines, as printed by bench/native and
  # bench/pydantic_monty_bench.py.
  def parse_rows(out) do
    for line <- String.split(out, "\n", trim: true),
        [name, median, p99, _n] <- [String.split(line)],
        into: %{} do
      {name, {String.to_float(median), String.to_float(p99)}}
    end
  end

  # Builds bench/native with the guest's cargo profile (`monty`: Monty's
  # own release settings); returns the path of its binary.
  def native_binary do
    {_, 0} =
      System.cmd(
        "cargo",
        ["build", "--locked", "--profile", "monty", "-q", "-p", "ex_monty_native_bench"],
        stderr_to_stdout: true
      )

    target = System.get_env("CARGO_TARGET_DIR") || "target"
    Path.expand(Path.join([target, "monty", "ex_monty_native_bench"]))
  end

  def native(binary, n, fib_n) do
    {out, 0} = System.cmd(binary, ["#{n}", "#{fib_n}"])
    parse_rows(out)
  end

  # The official binding, when a python3 that imports it is at hand:
  # {:ok, python, version} or {:skip, why}.
  def pydantic_python do
    venv_python = Path.expand(Path.join([@venv, "bin", "python"]))

    cond do
      System.find_executable("python3") == nil ->
        {:skip, "no python3 on PATH"}

      version = pydantic_version("python3") ->
        {:ok, "python3", version}

      version = File.exists?(venv_python) && pydantic_version(venv_python) ->
        {:ok, venv_python, version}

      System.get_env("BENCH_PYDANTIC") == "1" ->
        install_pydantic(venv_python)

      true ->
        {:skip,
         "python3 cannot import pydantic_monty; BENCH_PYDANTIC=1 installs #{@pydantic_monty} " <>
           "into #{@venv} (pip, PyPI)"}
    end
  end

  defp pydantic_version(python) do
    script =
      "import importlib.metadata, pydantic_monty; print(importlib.metadata.version('pydantic-monty'))"

    case System.cmd(python, ["-c", script], stderr_to_stdout: true) do
      {out, 0} -> String.trim(out)
      _ -> nil
    end
  end

  defp install_pydantic(venv_python) do
    IO.puts("installing #{@pydantic_monty} into #{@venv} (BENCH_PYDANTIC=1) ...")

    with {_, 0} <- System.cmd("python3", ["-m", "venv", @venv], stderr_to_stdout: true),
         {_, 0} <-
           System.cmd(venv_python, ["-m", "pip", "install", "-q", @pydantic_monty],
             stderr_to_stdout: true
           ),
         version when is_binary(version) <- pydantic_version(venv_python) do
      {:ok, venv_python, version}
    else
      {out, status} -> {:skip, "installing #{@pydantic_monty} failed (#{status}): #{out}"}
      nil -> {:skip, "#{@pydantic_monty} installed but does not import"}
    end
  end

  def pydantic(python, n, fib_n) do
    case System.cmd(python, ["bench/pydantic_monty_bench.py", "#{n}", "#{fib_n}"],
           stderr_to_stdout: true
         ) do
      {out, 0} -> {:ok, parse_rows(out)}
      {out, status} -> {:skip, "bench/pydantic_monty_bench.py failed (#{status}): #{out}"}
    end
  end

  def header(first, columns) do
    IO.puts(
      String.pad_trailing(first, 30) <>
        Enum.map_join(columns, fn {c, w} -> String.pad_leading(c, w) end)
    )
  end

  def row(name, {median, p99}, {base_median, base_p99}, x) do
    IO.puts(
      String.pad_trailing(name, 30) <>
        Enum.map_join([median, p99, base_median, base_p99], &String.pad_leading(us(&1), 12)) <>
        String.pad_leading(ratio(x), 10)
    )
  end

  # Calls per microsecond of `callers` processes, each making `calls` calls.
  def throughput(callers, calls, fun) do
    {elapsed, _} =
      :timer.tc(fn ->
        1..callers
        |> Enum.map(fn _ -> Task.async(fn -> for _ <- 1..calls, do: fun.() end) end)
        |> Task.await_many(:infinity)
      end)

    callers * calls / elapsed
  end
end

alias Bench.Stats, as: S

n = Bench.int_env("BENCH_N", "20000")
fib_n = Bench.int_env("BENCH_FIB_N", "21")
paused = Bench.int_env("BENCH_PAUSED", "10000")
paused_max = Bench.int_env("BENCH_PAUSED_MAX", "100000")
vms = Bench.int_env("BENCH_VMS", "7")
rounds = max(Bench.int_env("BENCH_ROUNDS", "20"), 1)
%{workers: workers} = ExMonty.stats()
cores = System.schedulers_online()

IO.puts("ExMonty benchmark — #{Bench.machine()}")
IO.puts("#{workers} workers, #{n} iterations (fib: #{fib_n})\n")

# --- ExMonty against native Monty ---------------------------------------------
# Machines change speed from minute to minute (a VM's neighbours, frequency
# scaling), so native Monty and ExMonty are measured in alternating rounds:
# each round runs the native binary, then the same workloads in ExMonty, and
# each ratio is the median of the rounds' ratios (both sides of a ratio were
# measured within seconds of each other). The medians and p99s shown are the
# medians of the rounds' figures.
native_binary = Bench.native_binary()
{:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
per_round = max(div(n, rounds), 1)
fib_per_round = max(div(fib_n, rounds), 3)

workloads = [
  {"eval(\"2 + 2\")", "eval_2_plus_2", per_round, fn -> {:ok, 4, ""} = ExMonty.eval("2 + 2") end},
  {"run(precompiled, x * 2)", "run_precompiled", per_round,
   fn -> {:ok, 10, ""} = ExMonty.run(runner, %{"x" => 5}) end},
  {"fib(25)", "fib_25", fib_per_round, fn -> {:ok, 75025, ""} = ExMonty.eval(Bench.fib_code()) end}
]

measured_rounds =
  for _ <- 1..rounds do
    native_round = Bench.native(native_binary, per_round, fib_per_round)

    for {_, key, iterations, fun} <- workloads, into: %{} do
      {key, {Bench.Stats.measure(iterations, fun), Map.fetch!(native_round, key)}}
    end
  end

of_rounds = fn key, pick ->
  measured_rounds |> Enum.map(&pick.(Map.fetch!(&1, key))) |> S.median()
end

native =
  for {_, key, _, _} <- workloads, into: %{} do
    {key, {of_rounds.(key, fn {_, {m, _}} -> m end), of_rounds.(key, fn {_, {_, p}} -> p end)}}
  end

results =
  for {label, key, _, _} <- workloads do
    {label, key,
     {of_rounds.(key, fn {{m, _}, _} -> m end), of_rounds.(key, fn {{_, p}, _} -> p end)}}
  end

round_ratios = fn key ->
  Enum.map(measured_rounds, fn round ->
    {{median, _}, {native_median, _}} = Map.fetch!(round, key)
    median / native_median
  end)
end

Bench.header("workload", [
  {"median", 12},
  {"p99", 12},
  {"native med", 12},
  {"native p99", 12},
  {"ratio", 10}
])

for {label, key, measured} <- results do
  Bench.row(label, measured, Map.fetch!(native, key), S.median(round_ratios.(key)))
end

IO.puts(
  "(#{rounds} alternating rounds of #{per_round} calls (fib: #{fib_per_round}); " <>
    "ratio = median of the rounds' ratios:"
)

for {label, key, _} <- results do
  IO.puts(
    "  #{String.pad_trailing(label, 26)} " <> Enum.map_join(round_ratios.(key), " ", &S.ratio/1)
  )
end

IO.puts(")")

ratio_of = fn key ->
  {_, _, {median, _}} = List.keyfind(results, key, 1)
  {median, S.median(round_ratios.(key))}
end

# --- New sessions -------------------------------------------------------------
# What an agent platform pays per new conversation: a session started, its
# first snippet run, the session stopped (pydantic-monty's counterpart below:
# a session checked out of its pool, one feed_run, closed).
session_n = max(div(n, 20), 100)

new_session = fn ->
  {:ok, session} = ExMonty.Session.start()
  {:ok, 3, ""} = ExMonty.Session.eval(session, "1 + 2")
  :ok = ExMonty.Session.stop(session)
end

{session_us, session_p99} = S.measure(session_n, new_session)

IO.puts(
  "\nnew session + first snippet + stop (#{session_n} times): median #{S.us(session_us)}, " <>
    "p99 #{S.us(session_p99)}"
)

# A conversation restored from its dump: one signed with a key (verified,
# so it goes into a warm instance) and an unsigned one (a new instance).
{:ok, saved} = ExMonty.Session.start()

{:ok, nil, ""} =
  ExMonty.Session.eval(saved, "def f(x):\n    return x * 2\nhistory = list(range(100))")

for {label, key} <- [{"a signed dump", "bench key"}, {"an unsigned dump", :unsigned}] do
  {:ok, dump} = ExMonty.Session.dump(saved, key: key)

  restore = fn ->
    {:ok, session} = ExMonty.Session.start(load: dump, key: key)
    {:ok, 10, ""} = ExMonty.Session.eval(session, "f(5)")
    :ok = ExMonty.Session.stop(session)
  end

  {median, p99} = S.measure(session_n, restore)

  IO.puts(
    "session restored from #{label} + snippet + stop: median #{S.us(median)}, p99 #{S.us(p99)}"
  )
end

:ok = ExMonty.Session.stop(saved)

# --- pydantic-monty, the official binding -------------------------------------
IO.puts("\npydantic-monty (the official Python binding: native Monty in subprocess workers):")

pydantic =
  with {:ok, python, version} <- Bench.pydantic_python(),
       {:ok, rows} <- Bench.pydantic(python, n, fib_n) do
    IO.puts("  pydantic-monty #{version} (#{Path.relative_to_cwd(python)})")

    Bench.header("  workload", [
      {"median", 12},
      {"p99", 12},
      {"native med", 12},
      {"vs native", 10},
      {"ExMonty med", 12},
      {"ExMonty ratio", 14}
    ])

    for {label, key, pydantic_key} <- [
          {"  session feed_run(\"2 + 2\")", "eval_2_plus_2", "session_feed_run_2_plus_2"},
          {"  session feed_run(fib(25))", "fib_25", "session_feed_run_fib_25"}
        ] do
      {median, p99} = Map.fetch!(rows, pydantic_key)
      {native_median, _} = Map.fetch!(native, key)
      {_, _, {ex_median, _}} = List.keyfind(results, key, 1)

      IO.puts(
        String.pad_trailing(label, 30) <>
          Enum.map_join([median, p99, native_median], &String.pad_leading(S.us(&1), 12)) <>
          String.pad_leading(S.ratio(median / native_median), 10) <>
          String.pad_leading(S.us(ex_median), 12) <>
          String.pad_leading(S.ratio(ex_median / median), 14)
      )
    end

    {checkout, checkout_p99} = rows["session_checkout_feed_run_close"]

    IO.puts(
      String.pad_trailing("  new session + feed_run", 30) <>
        Enum.map_join([checkout, checkout_p99], &String.pad_leading(S.us(&1), 12)) <>
        String.pad_leading("", 22) <>
        String.pad_leading(S.us(session_us), 12) <>
        String.pad_leading(S.ratio(session_us / checkout), 14)
    )

    {first, _} = rows["start_to_first_result"]
    IO.puts("  (ExMonty ratio: ExMonty's median over pydantic-monty's)")
    IO.puts("  pool start → first result #{S.us(first)} (one measurement)")
    {:ok, version, rows}
  else
    {:skip, why} ->
      IO.puts("  skipped: #{why}")
      :skipped
  end

# --- 2 concurrent callers vs 1 ------------------------------------------------
# Many short rounds, each 1 caller then 2 callers: this machine changes speed
# within a second, so the two sides of a ratio must be measured within
# milliseconds of each other; the row is the median of the rounds' ratios.
calls = max(div(n, 10), 200)
concurrency_rounds = 40
small = fn -> {:ok, 4, ""} = ExMonty.eval("2 + 2") end
Bench.throughput(2, calls, small)

rounds =
  for _ <- 1..concurrency_rounds do
    one = Bench.throughput(1, calls, small)
    two = Bench.throughput(2, calls, small)
    {one, two, two / one}
  end

one_rate = S.median(Enum.map(rounds, &elem(&1, 0)))
two_rate = S.median(Enum.map(rounds, &elem(&1, 1)))
ratios = rounds |> Enum.map(&elem(&1, 2)) |> Enum.sort()
concurrency = S.median(ratios)

IO.puts(
  "\nconcurrent callers (eval(\"2 + 2\"), #{concurrency_rounds} alternating rounds of " <>
    "#{calls} calls per caller):\n" <>
    "  1 caller  #{round(one_rate * 1_000_000)} evals/s (median round)\n" <>
    "  2 callers #{round(two_rate * 1_000_000)} evals/s (median round)\n" <>
    "  2 callers vs 1: median of the rounds' ratios #{S.ratio(concurrency)} " <>
    "(quartiles #{S.ratio(S.percentile(ratios, 25))}, #{S.ratio(S.percentile(ratios, 75))})"
)

# --- NIF load → first result, in fresh VMs ------------------------------------
# This VM has loaded the guest, so the on-disk compiled-code cache is warm (and
# so is the OS's page cache); one more VM is run first and not counted. Each
# round starts two VMs: one with ExMonty's Elixir modules loaded beforehand,
# as a release does at boot (the row's figure), one that loads them on first
# use, as `mix run` and tests do.
IO.puts(
  "\nNIF load → first result (#{vms} fresh VMs of each kind, `mix run --no-start`, " <>
    "warm compiled-code cache):"
)

first_result_vm = fn mode ->
  Bench.FreshVM.run("bench/first_result.exs", [mode], [], ["--no-start"])
end

first_result_vm.("lazy")
fresh_rounds = for _ <- 1..vms, do: {first_result_vm.("preload"), first_result_vm.("lazy")}

report_first = fn label, fresh ->
  field = fn key -> Enum.map(fresh, &String.to_integer(&1[key])) end
  total = S.median(field.("total_us"))

  IO.puts(
    "  #{label}: median #{S.us(total)} (min #{S.us(Enum.min(field.("total_us")))}, " <>
      "max #{S.us(Enum.max(field.("total_us")))}): " <>
      "NIF load #{S.us(S.median(field.("nif_load_us")))}, " <>
      "runtime init #{S.us(S.median(field.("init_us")))}, " <>
      "first eval #{S.us(S.median(field.("first_eval_us")))}; guest loaded from: " <>
      (fresh |> Enum.map(& &1["loaded_from"]) |> Enum.uniq() |> Enum.join(", "))
  )

  total
end

first_result = report_first.("modules preloaded (release)", Enum.map(fresh_rounds, &elem(&1, 0)))

first_result_lazy =
  report_first.("modules loaded on first use", Enum.map(fresh_rounds, &elem(&1, 1)))

# --- Density, in fresh VMs ----------------------------------------------------
density = fn count ->
  r = Bench.FreshVM.run("bench/density.exs", [], [{"DENSITY_N", "#{count}"}])
  num = fn key -> if r[key] in ["nil", ""], do: nil, else: elem(Float.parse(r[key]), 0) end

  result = %{
    n: count,
    live_paused: String.to_integer(r["live_paused"]),
    held: num.("held_bytes"),
    start: num.("start_us"),
    settle: num.("settle_us"),
    live: num.("resume_live_us"),
    hibernated: num.("resume_hibernated_us"),
    hibernated_kept: num.("resume_hibernated_kept_us")
  }

  show = fn
    nil -> "n/a"
    t -> S.us(t)
  end

  IO.puts(
    "  #{count} paused (#{result.live_paused} live): #{S.mb(result.held)} above baseline " <>
      "(#{round(result.held / count)} bytes each, after #{S.us(result.settle)} for the last " <>
      "ones to hibernate), start + pause #{S.us(result.start)}, " <>
      "resume live #{show.(result.live)}, hibernated #{show.(result.hibernated)} " <>
      "(#{show.(result.hibernated_kept)} when each one's next pause is kept) (medians)"
  )

  result
end

IO.puts("\ndensity (a fresh VM per run; RSS above the VM's baseline):")
dense = density.(paused)

# The larger run must work; if it does not, the summary says so.
dense_max =
  if paused_max > 0 and paused_max != paused do
    try do
      {:ok, density.(paused_max)}
    rescue
      e ->
        IO.puts("  #{paused_max} paused: FAILED: #{Exception.message(e)}")
        {:error, Exception.message(e)}
    end
  end

# --- Conversion costs ---------------------------------------------------------
IO.puts("\nconversion (round trip through the sandbox, minus a tiny value's cost):")
iters = max(div(n, 100), 20)
conv = fn fun -> Bench.Stats.measure(iters, fun) |> elem(0) end
tiny = conv.(fn -> {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => "a"}) end)
big = String.duplicate("x", 1_048_576)
str_in = conv.(fn -> {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => big}) end)
str_out = conv.(fn -> {:ok, _, _} = ExMonty.eval("'x' * 1048576") end)
ints = Enum.to_list(1..100_000)
list_in = conv.(fn -> {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => ints}) end)
list_out = conv.(fn -> {:ok, _, _} = ExMonty.eval("list(range(100000))") end)
map_in = Map.new(1..100_000, &{Integer.to_string(&1), &1})

dict_in =
  Bench.Stats.measure(div(iters, 2) + 1, fn ->
    {:ok, _, _} = ExMonty.eval("len(x)", inputs: %{"x" => map_in})
  end)
  |> elem(0)

dict_out =
  Bench.Stats.measure(div(iters, 2) + 1, fn ->
    {:ok, _, _} = ExMonty.eval("{str(i): i for i in range(100000)}")
  end)
  |> elem(0)

for {label, t} <- [
      {"1 MB string in (per MB)", str_in - tiny},
      {"1 MB string out (per MB, incl. building it)", str_out - tiny},
      {"100k-int list in (per 100k items)", list_in - tiny},
      {"100k-int list out (per 100k items, incl. building it)", list_out - tiny},
      {"100k-entry dict in (per 100k entries)", dict_in - tiny},
      {"100k-entry dict out (per 100k entries, incl. building it)", dict_out - tiny}
    ] do
  IO.puts("  " <> String.pad_trailing(label, 58) <> String.pad_leading(S.us(t), 12))
end

# --- Cost of epoch interruption (deadlines + cancellation) --------------------
# Two fresh VMs, identical but for epoch interruption, both without scheduler
# busy-waiting (which otherwise competes with the worker threads on a small
# machine and drowns a 10% effect in noise).
IO.puts(
  "\nepoch interruption cost (fib(25) in two fresh VMs with +sbwt none; with vs without epochs):"
)

fib_in_vm = fn extra_env ->
  env = [{"ELIXIR_ERL_OPTIONS", "+sbwt none +sbwtdcpu none +sbwtdio none"} | extra_env]
  %{"fib_median_us" => median} = Bench.FreshVM.run("bench/fib.exs", ["#{fib_n}"], env)
  String.to_float(median)
end

with_epoch = fib_in_vm.([])
no_epoch = fib_in_vm.([{"EX_MONTY_BENCH_NO_EPOCH", "1"}])
{native_fib, _} = Map.fetch!(native, "fib_25")

IO.puts(
  "  with epochs #{S.us(with_epoch)} (#{S.ratio(with_epoch / native_fib)} native), " <>
    "without #{S.us(no_epoch)}: epochs cost +#{Float.round((with_epoch / no_epoch - 1) * 100, 1)}%"
)

# --- Scheduler responsiveness under runaway code ------------------------------
loops = workers * 2

IO.puts(
  "\nresponsiveness while #{loops} runaway loops run (#{workers} workers busy, the rest queued):"
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

pings = fn -> Enum.sort(for _ <- 1..200, do: ping.() |> tap(fn _ -> Process.sleep(1) end)) end
idle_pings = pings.()
idle_gaps = Bench.Responsiveness.timer_gaps(1500)

{busy_pings, busy_gaps} =
  Bench.Responsiveness.under_runaway(loops, fn ->
    {pings.(), Bench.Responsiveness.timer_gaps(1500)}
  end)

for {label, sorted} <- [{"idle", idle_pings}, {"under load", busy_pings}] do
  IO.puts(
    "  ping round trip, #{String.pad_trailing(label, 10)} median #{S.us(S.percentile(sorted, 50))}, " <>
      "p99 #{S.us(S.percentile(sorted, 99))}, max #{S.us(List.last(sorted))}"
  )
end

for {label, sorted} <- [{"idle", idle_gaps}, {"under load", busy_gaps}] do
  IO.puts(
    "  1 ms timer lateness, #{String.pad_trailing(label, 10)} p99 #{S.us(S.percentile(sorted, 99))}, " <>
      "max #{S.us(List.last(sorted))}"
  )
end

# The same timer measurement in a fresh VM whose schedulers do not busy-wait
# (the flags the README recommends for hosts that may run runaway code: on
# Linux 6.12+ a scheduler that spun is held back behind the workers).
quiet_vm = [{"ELIXIR_ERL_OPTIONS", "+sbwt none +sbwtdcpu none +sbwtdio none"}]

%{"gap_p99_us" => quiet_p99, "gap_max_us" => quiet_max} =
  Bench.FreshVM.run("bench/responsiveness.exs", [], quiet_vm)

{quiet_p99, _} = Float.parse(quiet_p99)
{quiet_max, _} = Float.parse(quiet_max)

IO.puts(
  "  1 ms timer lateness, under load, VM with +sbwt none (fresh VM, 4 loops): " <>
    "p99 #{S.us(quiet_p99)}, max #{S.us(quiet_max)}"
)

# --- Summary against issue #12's targets --------------------------------------
verdict = fn
  :reference -> ""
  nil -> "n/a"
  true -> "met"
  false -> "NOT met"
end

{eval_us, eval_x} = ratio_of.("eval_2_plus_2")
{run_us, run_x} = ratio_of.("run_precompiled")
{fib_us, fib_x} = ratio_of.("fib_25")
gap_max = List.last(busy_gaps)
gap_p99 = S.percentile(busy_gaps, 99)

show_us = fn
  nil -> "n/a"
  t -> S.us(t)
end

on_2_cores = if cores == 2, do: "", else: " (#{cores} cores here)"

summary =
  [
    {"eval(\"2 + 2\") vs native compile+run", "#{S.us(eval_us)}, #{S.ratio(eval_x)}", "≤ 2.5x",
     eval_x <= 2.5},
    {"run of a precompiled runner vs native run", "#{S.us(run_us)}, #{S.ratio(run_x)}", "≤ 4x",
     run_x <= 4},
    {"fib(25) vs native", "#{S.us(fib_us)}, #{S.ratio(fib_x)}", "≤ 1.3x", fib_x <= 1.3},
    {"RSS for #{paused} paused executions", S.mb(dense.held), "≤ 200 MB (for 10000)",
     if(paused == 10_000, do: dense.held <= 200 * 1_048_576)},
    case dense_max do
      nil ->
        nil

      {:ok, r} ->
        {"#{paused_max} paused executions", "work, #{S.mb(r.held)}", "must work (100000)",
         paused_max >= 100_000 or nil}

      {:error, _} ->
        {"#{paused_max} paused executions", "failed", "must work (100000)", false}
    end,
    {"resume of a paused execution (live)", show_us.(dense.live), "≤ 30 us",
     dense.live && dense.live <= 30},
    {"resume from hibernation", show_us.(dense.hibernated), "≤ 100 us",
     dense.hibernated && dense.hibernated <= 100},
    {"worst / p99 timer gap, runaway code#{on_2_cores}", "#{S.us(gap_max)} / #{S.us(gap_p99)}",
     "≤ 20 ms / ≤ 2 ms", gap_max <= 20_000 and gap_p99 <= 2_000},
    {"  same, VM with +sbwt none", "#{S.us(quiet_max)} / #{S.us(quiet_p99)}", "≤ 20 ms / ≤ 2 ms",
     quiet_max <= 20_000 and quiet_p99 <= 2_000},
    {"NIF load → first result (modules preloaded)", S.us(first_result), "≤ 20 ms",
     first_result <= 20_000},
    {"  same, modules loaded on first use", S.us(first_result_lazy), "(reference)", :reference},
    {"2 concurrent callers vs 1#{on_2_cores}", S.ratio(concurrency), "≥ 1.8x", concurrency >= 1.8},
    {"new session + first snippet + stop", S.us(session_us), "(reference)", :reference}
  ]
  |> Enum.reject(&is_nil/1)

IO.puts("\nsummary (issue #12's targets; measured in this run):")
widths = [50, 22, 22, 8]

line = fn cells ->
  IO.puts(
    "  " <>
      (Enum.zip(cells, widths) |> Enum.map_join(fn {c, w} -> String.pad_trailing(c, w) end))
  )
end

line.(["row", "measured", "target", "verdict"])

for {row, measured, target, met} <- summary do
  line.([row, measured, target, verdict.(met)])
end

case pydantic do
  {:ok, version, rows} ->
    for {label, key, pydantic_key} <- [
          {"feed_run(\"2 + 2\") vs native", "eval_2_plus_2", "session_feed_run_2_plus_2"},
          {"fib(25) vs native", "fib_25", "session_feed_run_fib_25"}
        ] do
      {median, _} = Map.fetch!(rows, pydantic_key)
      {native_median, _} = Map.fetch!(native, key)

      line.([
        "pydantic-monty #{version} #{label}",
        "#{S.us(median)}, #{S.ratio(median / native_median)}",
        "(reference)",
        ""
      ])
    end

    {checkout, _} = Map.fetch!(rows, "session_checkout_feed_run_close")

    line.([
      "pydantic-monty #{version} new session + feed_run",
      S.us(checkout),
      "(reference)",
      ""
    ])

  :skipped ->
    line.(["pydantic-monty", "skipped (see above)", "(reference)", ""])
end
