# Density: N paused executions, the memory they hold, and what resuming
# them costs. `mix run bench/density.exs` (DENSITY_N, default 10_000); also
# run in a fresh VM by `mix bench`.
#
# Past `config :ex_monty, max_live_paused:` (256) a pause is kept as its dump
# bytes instead of a whole wasm instance; this measures both kinds in one run.
Code.require_file("support.exs", __DIR__)

n = String.to_integer(System.get_env("DENSITY_N", "10000"))
r = Bench.Density.run(n)

us = fn
  nil -> "n/a"
  t -> Bench.Stats.us(t)
end

IO.puts("density — #{n} paused executions (#{r.live_paused} hold an instance, the rest hibernated)")

IO.puts("  start + pause       #{Bench.Stats.us(r.start_us)} each")
IO.puts("  hibernation settled #{Bench.Stats.us(r.settle_us)} after the last start")

IO.puts(
  "  memory held         #{Bench.Stats.mb(r.held_bytes)} above baseline (#{round(r.held_bytes / n)} bytes each)"
)

IO.puts("  resume, live        median #{us.(r.resume_live_us)}")
IO.puts("  resume, hibernated  median #{us.(r.resume_hibernated_us)}")
IO.puts("    next pause kept   median #{us.(r.resume_hibernated_kept_us)}")
Bench.FreshVM.report(r)
