# Type-check latency: `mix run bench/type_check.exs` (TYPE_CHECK_N samples, default 20).
#
# Measures, in this VM:
#   * the first check (loads the type-check component: from the on-disk
#     cache when it is there, else compiles it with Cranelift);
#   * one-shot checks (ExMonty.type_check/2: a fresh instance each) of a
#     20-line agent script and a 500-line file, clean and with one error;
#   * warm checks (a session's checker: one instance reused) of the same;
#   * the components' sizes.
alias ExMonty.{Job, Native}

n = String.to_integer(System.get_env("TYPE_CHECK_N", "20"))
priv = :code.priv_dir(:ex_monty) |> to_string()

# The 20-line agent script (also the type-check suite's clean-code case) and
# its host module's stubs: bench/fixtures/.
agent = File.read!("bench/fixtures/agent_script.py")

agent_opts = [
  modules: %{"tools" => File.read!("bench/fixtures/agent_tools.pyi")},
  inputs: %{"topics" => "list[str]", "max_words" => "int"}
]

block = fn i ->
  """
  class Account#{i}:
      def __init__(self, owner: str, balance: float) -> None:
          self.owner = owner
          self.balance = balance

      def deposit(self, amount: float) -> float:
          if amount <= 0:
              raise ValueError("amount must be positive")
          self.balance += amount
          return self.balance

  def report#{i}(accounts: list[Account#{i}]) -> dict[str, float]:
      totals: dict[str, float] = {}
      for a in accounts:
          totals[a.owner] = totals.get(a.owner, 0.0) + a.balance
      return totals

  acc#{i} = Account#{i}("ada", 10.0)
  acc#{i}.deposit(5.0)
  summary#{i} = report#{i}([acc#{i}])
  """
end

big = Enum.map_join(1..25, &block.(&1))
lines = fn code -> code |> String.trim_trailing() |> String.split("\n") |> length() end

time_ms = fn f ->
  t = System.monotonic_time(:microsecond)
  result = f.()
  {(System.monotonic_time(:microsecond) - t) / 1000, result}
end

stats = fn samples ->
  sorted = Enum.sort(samples)
  median = Enum.at(sorted, div(length(sorted), 2))
  p99 = Enum.at(sorted, min(length(sorted) - 1, round(length(sorted) * 0.99)))
  "median #{Float.round(median, 2)} ms, p99 #{Float.round(p99, 2)} ms"
end

cache = Application.get_env(:ex_monty, :cache_dir, Path.join(priv, "cache"))
cached? = Path.wildcard(Path.join(cache, "ex_monty_typecheck-*.cwasm")) != []

{first, :ok} = time_ms.(fn -> ExMonty.type_check("x: int = 1") end)

IO.puts(
  "first check in this VM: #{Float.round(first, 1)} ms " <>
    "(component #{if cached?, do: "loaded from the cache", else: "compiled, then cached"})"
)

one_shot = fn code, opts ->
  for _ <- 1..n, do: elem(time_ms.(fn -> ExMonty.type_check(code, opts) end), 0)
end

bad_agent = String.replace(agent, "limit=3", "limit='3'")
bad_big = big <> "acc1.deposit('5')\n"
{:error, [_]} = ExMonty.type_check(bad_agent, agent_opts)
{:error, [_]} = ExMonty.type_check(bad_big)
:ok = ExMonty.type_check(agent, agent_opts)
:ok = ExMonty.type_check(big)

IO.puts("one-shot (fresh instance per check), #{n} samples:")

IO.puts(
  "  agent script (#{lines.(agent)} lines), clean:    " <> stats.(one_shot.(agent, agent_opts))
)

IO.puts("  agent script, one error:              " <> stats.(one_shot.(bad_agent, agent_opts)))
IO.puts("  #{lines.(big)}-line file, clean:                " <> stats.(one_shot.(big, [])))
IO.puts("  #{lines.(big)}-line file, one error:            " <> stats.(one_shot.(bad_big, [])))

# Warm: one checker (as a session has), checked again and again.
settings = %{
  wasm_path: Path.join(priv, "ex_monty_typecheck.wasm"),
  cache_dir: cache,
  max_duration_ms: 30_000,
  memory_cap: 512 * 1024 * 1024,
  imports: false
}

request = fn code, opts ->
  %{
    code: code,
    script_name: "main.py",
    stubs:
      "from typing import Any\n" <>
        Enum.map_join(Keyword.get(opts, :inputs, %{}), fn {k, v} -> "#{k}: #{v}\n" end),
    modules: Map.to_list(Keyword.get(opts, :modules, %{})),
    prelude: ""
  }
end

warm = fn code, opts ->
  checker = Native.typecheck_new()
  req = request.(code, opts)
  call = fn -> Job.run({:typecheck_check, :typecheck_check}, [checker, req, settings]) end
  {first, {:ok, _}} = time_ms.(call)
  samples = for _ <- 1..n, do: elem(time_ms.(fn -> {:ok, _} = call.() end), 0)
  {first, samples}
end

IO.puts("warm (one checker reused, as in a session), #{n} samples:")

for {label, code, opts} <- [
      {"agent script, clean:     ", agent, agent_opts},
      {"agent script, one error: ", bad_agent, agent_opts},
      {"#{lines.(big)}-line file, clean:   ", big, []},
      {"#{lines.(big)}-line file, one error:", bad_big, []}
    ] do
  {first, samples} = warm.(code, opts)
  IO.puts("  #{label} first #{Float.round(first, 2)} ms, then " <> stats.(samples))
end

size = fn file -> File.stat!(Path.join(priv, file)).size end
mb = fn bytes -> Float.round(bytes / 1_048_576, 1) end
IO.puts("ex_monty_typecheck.wasm: #{mb.(size.("ex_monty_typecheck.wasm"))} MiB")
IO.puts("ex_monty_guest.wasm:     #{mb.(size.("ex_monty_guest.wasm"))} MiB")
%{live_instances: live} = ExMonty.stats()
IO.puts("interpreter instances alive: #{live}")
