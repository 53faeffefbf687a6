# Helper for bench/run.exs: fib(25) median in this VM (run with EX_MONTY_BENCH_NO_EPOCH=1).
[n] = System.argv()
n = String.to_integer(n)
code = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(25)"
for _ <- 1..2, do: {:ok, 75025, ""} = ExMonty.eval(code)

samples =
  for _ <- 1..n do
    t = System.monotonic_time(:nanosecond)
    {:ok, 75025, ""} = ExMonty.eval(code)
    (System.monotonic_time(:nanosecond) - t) / 1000
  end
  |> Enum.sort()

IO.puts("fib_median_us #{Enum.at(samples, div(n, 2)) / 1}")
