defmodule ExMonty.AdversarialTest do
  # Hostile Python and hostile Elixir input. Every case must end in the exact
  # outcome listed, and the node must stay healthy afterwards: a normal eval
  # works and memory returns near its baseline. The suite prints a summary:
  # cases tried, contained, crashed (which must be 0).
  use ExUnit.Case, async: false

  alias ExMonty.Sandbox

  @moduletag timeout: 300_000

  @small %{max_duration_secs: 2.0, max_memory: 64 * 1024 * 1024}

  defp eval(code, limits \\ @small), do: ExMonty.eval(code, limits: limits)

  defp error_type({:error, %ExMonty.Exception{type: type}}), do: type
  defp error_type({:error, %ExMonty.Exception{type: type}, _}), do: type
  defp error_type(other), do: {:not_an_error, other}

  defp deep_tuple(0), do: {}
  defp deep_tuple(n), do: {deep_tuple(n - 1)}

  defp cases do
    big_source = "s = '" <> String.duplicate("a", 50_000_000) <> "'\nlen(s)"
    big_literal = "x = " <> String.duplicate("7", 1_000_000) <> "\nx % 10"

    [
      # --- memory bombs ----------------------------------------------------
      # wasm32 has 32-bit indexes: a size past 4 GiB is an OverflowError there.
      {"str repeat 10**10", fn -> eval("'x' * 10**10") end, :overflow_error},
      {"str repeat 10**9", fn -> eval("'x' * 10**9") end, :memory_error},
      {"list doubling", fn -> eval("x = [0]\nwhile True:\n    x = x + x") end, :memory_error},
      {"dict growth", fn -> eval("d = {}\ni = 0\nwhile True:\n    d[i] = i\n    i += 1") end,
       :memory_error},
      {"nesting built at run time", fn -> eval("x = []\nwhile True:\n    x = [x]") end,
       :memory_error},
      {"string doubling", fn -> eval("s = 'x'\nwhile True:\n    s = s + s") end, :memory_error},
      {"bytes repeat", fn -> eval("b'x' * 10**9") end, :memory_error},
      {"huge bigint 10**10**8", fn -> eval("10**10**8") end, :memory_error},
      {"sorted huge range", fn -> eval("sorted(range(10**9))") end, :memory_error},

      # --- CPU bombs ---------------------------------------------------------
      {"infinite loop", fn -> eval("while True:\n    pass") end, :timeout_error},
      {"KeyboardInterrupt", fn -> eval("raise KeyboardInterrupt()") end, :keyboard_interrupt},
      {"nested infinite loop", fn -> eval("while True:\n    for i in range(10):\n        pass") end,
       :timeout_error},
      # Monty's regex engine does not backtrack catastrophically.
      {"catastrophic regex", fn -> eval("import re\nre.match('(a+)+$', 'a' * 40 + 'b')") end, :ok},
      {"pow with a huge exponent", fn -> eval("pow(7, 10**9)") end, :memory_error},
      {"sum of a huge range", fn -> eval("sum(range(10**13))") end, :timeout_error},

      # --- recursion ---------------------------------------------------------
      {"plain recursion", fn -> eval("def f(n):\n    return f(n + 1)\nf(0)") end, :recursion_error},
      {"mutual recursion",
       fn -> eval("def a():\n    return b()\ndef b():\n    return a()\na()") end, :recursion_error},
      {"recursion through __repr__",
       fn -> eval("class A:\n    def __repr__(self):\n        return repr(self)\nrepr(A())") end,
       :recursion_error},
      {"recursion through __eq__",
       fn -> eval("class A:\n    def __eq__(self, o):\n        return self == o\nA() == A()") end,
       :recursion_error},
      {"deep containers compared",
       fn ->
         eval("x = []\ny = []\nfor i in range(100000):\n    x = [x]\n    y = [y]\nx == y")
       end, :recursion_error},
      {"self-referencing list repr", fn -> eval("x = []\nx.append(x)\nrepr(x)") end, :ok},

      # --- source bombs --------------------------------------------------------
      {"100k nested brackets",
       fn -> eval(String.duplicate("[", 100_000) <> String.duplicate("]", 100_000)) end,
       :syntax_error},
      {"100k nested parentheses",
       fn -> eval(String.duplicate("(", 100_000) <> "1" <> String.duplicate(")", 100_000)) end,
       :syntax_error},
      {"50 MB source", fn -> eval(big_source, %{max_memory: 512 * 1024 * 1024}) end, :ok},
      {"1 MB integer literal", fn -> eval(big_literal) end, :syntax_error},
      {"invalid UTF-8 source", fn -> eval(<<"x = '", 0xFF, "'">>) end, :invalid_input},

      # --- output bombs --------------------------------------------------------
      {"print loop", fn -> eval("while True:\n    print('x' * 1000)") end, :memory_error},
      {"one huge print", fn -> eval("print('x' * 10**8)", %{max_memory: 256 * 1024 * 1024}) end,
       :memory_error},

      # --- host abuse ----------------------------------------------------------
      {"millions of suspensions",
       fn ->
         Sandbox.run("for i in range(10**7):\n    f()",
           functions: %{"f" => fn _, _ -> {:ok, nil} end}
         )
       end, :runtime_error},
      {"giant argument to a host call",
       fn ->
         Sandbox.run("f('x' * 10**7)",
           functions: %{"f" => fn [s], _ -> {:ok, byte_size(s)} end},
           limits: %{max_memory: 256 * 1024 * 1024}
         )
       end, :ok},
      {"giant value from a host call",
       fn ->
         Sandbox.run("len(f())",
           functions: %{"f" => fn _, _ -> {:ok, String.duplicate("x", 100_000_000)} end},
           limits: @small
         )
       end, :memory_error},
      {
        "os.urandom(10**12)",
        fn -> Sandbox.run("import os\nos.urandom(10**12)") end,
        # The size does not fit wasm32's index type; an OverflowError, as in CPython.
        :overflow_error
      },

      # --- hostile Elixir input ------------------------------------------------
      {"pid input", fn -> ExMonty.eval("x", inputs: %{"x" => self()}) end, :invalid_input},
      {"reference input", fn -> ExMonty.eval("x", inputs: %{"x" => make_ref()}) end,
       :invalid_input},
      {"function input", fn -> ExMonty.eval("x", inputs: %{"x" => fn -> 1 end}) end,
       :invalid_input},
      {"port input", fn -> ExMonty.eval("x", inputs: %{"x" => hd(Port.list())}) end,
       :invalid_input},
      {"improper list input", fn -> ExMonty.eval("x", inputs: %{"x" => [1 | 2]}) end,
       :invalid_input},
      {"unmapped atom input", fn -> ExMonty.eval("x", inputs: %{"x" => :hello}) end,
       :invalid_input},
      {"non-UTF-8 binary input", fn -> ExMonty.eval("x", inputs: %{"x" => <<0xFF, 0xFE>>}) end,
       :invalid_input},
      {"huge integer input",
       fn -> ExMonty.eval("x % 7", inputs: %{"x" => Integer.pow(10, 100_000)}) end, :ok},
      {"deeply nested tuple input",
       fn -> ExMonty.eval("1", inputs: %{"x" => deep_tuple(100_000)}) end, :ok},
      {"colliding dict keys", fn -> ExMonty.eval("x", inputs: %{"x" => %{1 => :a, 1.0 => :b}}) end,
       :invalid_input},
      {"bad answer to a snapshot",
       fn ->
         {:ok, r} = ExMonty.compile("f()")
         {:ok, {:function_call, _, s, _}} = ExMonty.start(r)
         ExMonty.resume(s, {:ok, {1, self()}})
       end, :invalid_input}
    ]
  end

  defp classify({:ok, _, _}), do: :ok
  defp classify({:ok, _, _, _}), do: :ok
  defp classify(other), do: error_type(other)

  defp rss_mb do
    case File.read("/proc/self/statm") do
      {:ok, statm} ->
        [_size, resident | _] = String.split(statm)
        String.to_integer(resident) * 4096 / 1_048_576

      _ ->
        0.0
    end
  end

  test "every attack is contained with the expected outcome, and the node stays healthy" do
    ExMonty.Native.drain_pool()
    baseline = rss_mb()

    results =
      for {name, fun, expected} <- cases() do
        started = System.monotonic_time(:millisecond)
        outcome = classify(fun.())
        elapsed = System.monotonic_time(:millisecond) - started
        healthy = ExMonty.eval("1 + 1") == {:ok, 2, ""}
        ok = outcome in List.wrap(expected) and healthy
        {name, outcome, expected, healthy, elapsed, ok}
      end

    ExMonty.Native.drain_pool()
    :erlang.garbage_collect()
    growth = rss_mb() - baseline

    failures = Enum.reject(results, &elem(&1, 5))
    contained = Enum.count(results, fn {_, _, _, healthy, _, _} -> healthy end)

    IO.puts(
      "\nadversarial: #{length(results)} cases tried, #{contained} contained, " <>
        "#{length(results) - contained} crashed; memory #{Float.round(growth, 1)} MB above baseline"
    )

    assert failures == [], "unexpected outcomes:\n" <> Enum.map_join(failures, "\n", &inspect/1)
    assert contained == length(results)
    # Generous: the host allocator keeps freed pages; what matters is no unbounded growth.
    assert growth < 1024
  end

  test "fuzz: random terms as inputs and answers never crash" do
    :rand.seed(:exsss, {7, 8, 9})

    for _ <- 1..1000 do
      term = random_term(4)

      case ExMonty.eval("x", inputs: %{"x" => term}) do
        {:ok, _, _} -> :ok
        {:error, %ExMonty.Exception{}} -> :ok
      end
    end

    {:ok, runner} = ExMonty.compile("f()")

    for _ <- 1..300 do
      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner)
      answer = Enum.random([{:ok, random_term(3)}, {:error, random_atom(), "m"}, random_term(2)])

      case ExMonty.resume(snapshot, answer) do
        {:ok, {:complete, _, _}} -> :ok
        {:error, %ExMonty.Exception{}} -> :ok
      end
    end

    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
  end

  test "fuzz: random bytes as dumps never crash" do
    :rand.seed(:exsss, {4, 5, 6})

    for i <- 1..1000 do
      bytes = :crypto.strong_rand_bytes(:rand.uniform(300))
      bytes = if rem(i, 2) == 0, do: "EXMONTY" <> <<1, rem(i, 3), 0>> <> bytes, else: bytes
      assert {:error, %ExMonty.Exception{}} = ExMonty.load_runner(bytes)

      case ExMonty.load_snapshot(bytes) do
        {:error, %ExMonty.Exception{}} -> :ok
        {:ok, %ExMonty.Snapshot{}} -> :ok
      end
    end

    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
  end

  defp random_atom, do: Enum.random([:value_error, :key_error, :nope, :runtime_error, :os_error])

  defp random_term(0), do: random_leaf()

  defp random_term(depth) do
    case :rand.uniform(8) do
      1 -> Enum.map(1..:rand.uniform(4), fn _ -> random_term(depth - 1) end)
      2 -> List.to_tuple(Enum.map(1..:rand.uniform(3), fn _ -> random_term(depth - 1) end))
      3 -> Map.new(1..:rand.uniform(3), fn _ -> {random_leaf(), random_term(depth - 1)} end)
      4 -> MapSet.new(Enum.map(1..:rand.uniform(3), fn _ -> random_leaf() end))
      5 -> [random_term(depth - 1) | random_leaf()]
      _ -> random_leaf()
    end
  end

  defp random_leaf do
    Enum.random([
      :rand.uniform(1000) - 500,
      Integer.pow(2, 70 + :rand.uniform(100)),
      :rand.uniform() * 100,
      "text",
      <<0xFF, :rand.uniform(255)>>,
      {:bytes, <<1, 2, 3>>},
      {:path, "/tmp"},
      nil,
      true,
      :ellipsis,
      :infinity,
      :some_atom,
      self(),
      make_ref(),
      {:named_tuple, "P", [{"a", 1}]},
      {:named_tuple, 5, :bad},
      {:bytes, :not_binary},
      Date.utc_today(),
      ~N[2024-01-02 03:04:05],
      {:timedelta, 1, 2, 3},
      {:decimal, "1.5"},
      {:complex, 1.0, 2.0}
    ])
  end
end
