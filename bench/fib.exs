# Helper for bench/run.exs: fib(25) median in this VM (run with EX_MONTY_BENCH_NO_EPOCH=1).
Code.require_file("support.exs", __DIR__)

[n] = System.argv()
code = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(25)"

{median, _p99} =
  Bench.Stats.measure(String.to_integer(n), fn -> {:ok, 75025, ""} = ExMonty.eval(code) end)

Bench.FreshVM.report(fib_median_us: median)
