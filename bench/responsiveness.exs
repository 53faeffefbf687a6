# Responsiveness: how late a BEAM process waiting on a 1 ms timer wakes up,
# idle and while four runaway Python loops occupy every worker thread.
# `mix run bench/responsiveness.exs`; compare worker priorities with
# `elixir --erl "-ex_monty worker_nice 0" -S mix run bench/responsiveness.exs`
# and VM flags with `ELIXIR_ERL_OPTIONS="+sbwt none +sbwtdcpu none +sbwtdio none"`.
# `mix bench` runs it in a fresh VM with those flags (the `bench_result` line).
Code.require_file("support.exs", __DIR__)

print = fn label, gaps ->
  IO.puts(
    "#{label}: p99 #{Bench.Stats.percentile(gaps, 99) / 1000} ms, max #{List.last(gaps) / 1000} ms"
  )
end

print.("idle", Bench.Responsiveness.timer_gaps(1500))

gaps = Bench.Responsiveness.under_runaway(4, fn -> Bench.Responsiveness.timer_gaps(1500) end)

print.(
  "4 runaway loops (worker_nice #{inspect(Application.get_env(:ex_monty, :worker_nice, :idle))})",
  gaps
)

Bench.FreshVM.report(gap_p99_us: Bench.Stats.percentile(gaps, 99), gap_max_us: List.last(gaps))
