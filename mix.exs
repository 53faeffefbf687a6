Code.require_file("mix/native_compiler.exs", __DIR__)

defmodule ExMonty.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :ex_monty,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:ex_monty_native | Mix.compilers()],
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      aliases: aliases(),
      test_coverage: [ignore_modules: []],
      description: "Run untrusted Python (Monty) from Elixir inside a WebAssembly sandbox.",
      docs: [main: "readme"]
    ]
  end

  def application do
    [
      mod: {ExMonty.Application, []},
      extra_applications: [:logger, :crypto]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]

  defp aliases do
    [
      bench: ["run bench/run.exs"]
    ]
  end
end
