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

  defp host_object, do: ExMonty.Dataclass.new("Point", x: 1, y: 2)

  defp wide_object(n), do: %ExMonty.Dataclass{name: "Wide", fields: Map.new(1..n, &{"f#{&1}", &1})}

  defp eval_host(code, limits \\ @small),
    do: ExMonty.eval(code, inputs: %{"p" => host_object()}, limits: limits)

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

      # --- host objects --------------------------------------------------------
      {"host object: dunder probes stay local",
       fn ->
         eval_host("[p.__class__.__name__, hasattr(p, '__reduce__'), hasattr(p, '_secret')]")
       end, :ok},
      {"host object: private attribute read", fn -> eval_host("p._secret") end, :attribute_error},
      {"host object: method call with 10**6 arguments",
       fn ->
         Sandbox.run("p.m(*range(10**6))",
           inputs: %{"p" => host_object()},
           functions: %{"Point.m" => fn args, _ -> {:ok, length(args)} end},
           limits: %{max_memory: 256 * 1024 * 1024}
         )
       end, :ok},
      {"host object: a million method calls",
       fn ->
         Sandbox.run("for i in range(10**7):\n    p.m()",
           inputs: %{"p" => host_object()},
           functions: %{"Point.m" => fn _, _ -> {:ok, nil} end}
         )
       end, :runtime_error},
      {"host object: 10**6 attributes set in Python",
       fn -> eval_host("for i in range(10**6):\n    setattr(p, 'a' + str(i), i)\np", @small) end,
       [:ok, :memory_error, :timeout_error]},
      {"host object: 200k fields in",
       fn -> ExMonty.eval("p.f1", inputs: %{"p" => wide_object(200_000)}) end, :ok},
      {"host object: name and fields that are not identifiers",
       fn ->
         ExMonty.eval("p",
           inputs: %{"p" => %ExMonty.Dataclass{name: "a.b()", fields: %{"x; import os" => 1}}}
         )
       end, :invalid_input},
      {"host object: forged id of a live sandbox object",
       fn ->
         Sandbox.run("class K:\n    pass\nk = K()\nr = echo(k)\nr",
           functions: %{
             "echo" => fn [{:instance, "K", _}], _ ->
               {:ok,
                %ExMonty.Dataclass{
                  name: "K",
                  fields: %{},
                  id: "00000000-0000-4000-8000-000000000000"
                }}
             end
           }
         )
       end, :ok},

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
    ExMonty.Native.runtime_drain()
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

    # Paused executions the cases dropped are cleared and pooled by the
    # workers once collected; then the pool is emptied and memory measured.
    :erlang.garbage_collect()
    assert ExMonty.TestHelpers.stats_until(&(&1.live_paused == 0))
    ExMonty.Native.runtime_drain()
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

  # ---------------------------------------------------------------------------
  # Host resources Python can reach: the PseudoFS, callback processes, time.
  # ---------------------------------------------------------------------------

  describe "PseudoFS cannot grow the VM" do
    test "1,000 writes of 30 MB end with ENOSPC, quickly, with memory bounded" do
      code =
        "from pathlib import Path\ns = b'x' * 30_000_000\nfor i in range(1000):\n    Path(f'/f{i}').write_bytes(s)"

      :erlang.garbage_collect()
      before = :erlang.memory(:total)
      started = System.monotonic_time(:millisecond)
      result = Sandbox.run(code, os: ExMonty.PseudoFS.new())
      elapsed = System.monotonic_time(:millisecond) - started
      :erlang.garbage_collect()
      growth = :erlang.memory(:total) - before

      assert {:error,
              %ExMonty.Exception{
                type: :os_error,
                message: "[Errno 28] No space left on device: '/f1'"
              }} = result

      assert elapsed < 10_000
      assert growth < 200 * 1024 * 1024
    end

    test "catching ENOSPC and retrying stays within the budget" do
      code = """
      from pathlib import Path
      s = b'x' * 10_000_000
      n = 0
      for i in range(100):
          try:
              Path(f'/f{i}').write_bytes(s)
          except OSError:
              n += 1
      n
      """

      :erlang.garbage_collect()
      before = :erlang.memory(:total)
      assert {:ok, 97, "", fs} = Sandbox.run(code, os: ExMonty.PseudoFS.new(), return_os: true)
      assert fs.used <= 32 * 1024 * 1024
      fs = nil
      _ = fs
      :erlang.garbage_collect()
      assert :erlang.memory(:total) - before < 200 * 1024 * 1024
    end

    test "time spent serving the filesystem counts against max_duration_secs" do
      fs =
        Enum.reduce(
          1..(10_000 - 2),
          ExMonty.PseudoFS.new(),
          &ExMonty.PseudoFS.put_file(&2, "/d/f#{&1}", "")
        )

      # Each failed rmdir scans the whole filesystem on the host, for little guest time.
      code =
        "from pathlib import Path\nfor i in range(5000):\n    try:\n        Path('/d').rmdir()\n    except OSError:\n        pass"

      started = System.monotonic_time(:millisecond)

      assert {:error, %ExMonty.Exception{type: :timeout_error}} =
               Sandbox.run(code, os: fs, limits: %{max_duration_secs: 0.5})

      assert System.monotonic_time(:millisecond) - started < 3_000
    end

    test "a 20,000-deep mkdir ends at once with an error" do
      started = System.monotonic_time(:millisecond)

      assert {:error,
              %ExMonty.Exception{type: :os_error, message: "[Errno 36] File name too long" <> _}} =
               Sandbox.run("from pathlib import Path\nPath('/' + 'a/' * 20000).mkdir(parents=True)",
                 os: ExMonty.PseudoFS.new()
               )

      assert System.monotonic_time(:millisecond) - started < 3_000
    end
  end

  describe "callback processes never outlive the run" do
    defp reporting(test_pid, reply) do
      fn _args, _kwargs ->
        send(test_pid, {:callback_pid, self()})
        reply.()
      end
    end

    defp reported_pids(acc \\ []) do
      receive do
        {:callback_pid, pid} -> reported_pids([pid | acc])
      after
        0 -> acc
      end
    end

    # Polls until every pid is dead (or 2 s passed); returns the survivors.
    defp survivors(pids, tries \\ 40) do
      alive = Enum.filter(pids, &Process.alive?/1)

      if alive == [] or tries == 0 do
        alive
      else
        Process.sleep(50)
        survivors(alive, tries - 1)
      end
    end

    defp settle_count(baseline, tries \\ 40) do
      count = length(Process.list())

      if count <= baseline + 5 or tries == 0 do
        count
      else
        Process.sleep(50)
        settle_count(baseline, tries - 1)
      end
    end

    test "1,000 un-awaited async calls are stopped when the run returns" do
      test_pid = self()
      baseline = length(Process.list())
      slow = {:async, reporting(test_pid, fn -> Process.sleep(60_000) && {:ok, 1} end)}

      assert {:ok, nil, ""} =
               Sandbox.run("for i in range(1000):\n    f(i)\nNone", functions: %{"f" => slow})

      # The run waits for its callbacks to be gone: nothing is left right away.
      assert length(Process.list()) <= baseline + 5
      pids = reported_pids()
      assert survivors(pids, 0) == []
      # Nothing left in the caller's mailbox either.
      refute_received {:ex_monty_callback, _, _}

      IO.puts(
        "\nun-awaited async calls: #{length(pids)} started, processes #{baseline} -> #{length(Process.list())}"
      )
    end

    test "a sync callback past callback_timeout is killed, even if it traps exits" do
      test_pid = self()

      stubborn =
        reporting(test_pid, fn ->
          Process.flag(:trap_exit, true)
          Process.sleep(60_000)
        end)

      assert {:error, %ExMonty.Exception{type: :timeout_error}} =
               Sandbox.run("f()", functions: %{"f" => stubborn}, callback_timeout: 100)

      assert [pid] = reported_pids()
      refute Process.alive?(pid)
    end

    test "a caller killed mid-run takes its callbacks with it" do
      test_pid = self()
      baseline = length(Process.list())
      sleeper = fn -> Process.sleep(60_000) && {:ok, 1} end

      caller =
        spawn(fn ->
          Sandbox.run("for i in range(50):\n    g(i)\nf()",
            functions: %{
              "f" => reporting(test_pid, sleeper),
              "g" => {:async, reporting(test_pid, sleeper)}
            }
          )
        end)

      # Wait until the sync callback runs (it is the last to start).
      wait_for = fn wait_for, n ->
        if length(reported_pids_peek()) >= 51 or n == 0,
          do: :ok,
          else: Process.sleep(20) && wait_for.(wait_for, n - 1)
      end

      wait_for.(wait_for, 250)
      Process.exit(caller, :kill)
      pids = reported_pids()
      assert length(pids) == 51
      assert survivors(pids) == []
      count = settle_count(baseline)
      assert count <= baseline + 5
      IO.puts("\nkilled caller: #{length(pids)} callbacks, processes #{baseline} -> #{count}")
    end

    defp reported_pids_peek do
      {:messages, messages} = Process.info(self(), :messages)
      for {:callback_pid, pid} <- messages, do: pid
    end
  end

  describe "dump keys and sizes (global configuration)" do
    setup do
      key = Application.get_env(:ex_monty, :dump_key)
      max = Application.get_env(:ex_monty, :max_dump_bytes)

      on_exit(fn ->
        restore = fn
          name, nil -> Application.delete_env(:ex_monty, name)
          name, value -> Application.put_env(:ex_monty, name, value)
        end

        restore.(:dump_key, key)
        restore.(:max_dump_bytes, max)
      end)
    end

    test "key: nil never turns verification off when a key is configured" do
      {:ok, runner} = ExMonty.compile("'attacker code'")
      {:ok, unsigned} = ExMonty.dump(runner)
      Application.put_env(:ex_monty, :dump_key, "configured")

      assert {:error, %{type: :invalid_input, message: m}} = ExMonty.load_runner(unsigned, key: nil)
      assert m =~ "not signed"
      assert {:error, %{type: :invalid_input}} = ExMonty.load_runner(unsigned)

      # key: nil on dump signs with the configured key.
      {:ok, signed} = ExMonty.dump(runner, key: nil)
      assert {:ok, _} = ExMonty.load_runner(signed)
      assert {:ok, _} = ExMonty.load_runner(signed, key: "configured")
      Application.delete_env(:ex_monty, :dump_key)
      assert {:error, %{message: m}} = ExMonty.load_runner(signed)
      assert m =~ "no signing key"

      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(elem(ExMonty.compile("f()"), 1))
      {:ok, unsigned_snapshot} = ExMonty.dump_snapshot(snapshot)
      Application.put_env(:ex_monty, :dump_key, "configured")
      assert {:error, %{type: :invalid_input}} = ExMonty.load_snapshot(unsigned_snapshot, key: nil)
      assert {:error, %{type: :invalid_input}} = ExMonty.load_progress(unsigned_snapshot, key: nil)
    end

    test "only key: :unsigned opts out, and then accepts only unsigned dumps" do
      Application.put_env(:ex_monty, :dump_key, "configured")
      {:ok, runner} = ExMonty.compile("1 + 1")
      {:ok, unsigned} = ExMonty.dump(runner, key: :unsigned)
      {:ok, signed} = ExMonty.dump(runner)
      assert byte_size(signed) == byte_size(unsigned) + 32
      assert {:ok, r} = ExMonty.load_runner(unsigned, key: :unsigned)
      assert {:ok, 2, ""} = ExMonty.run(r)
      assert {:error, %{message: m}} = ExMonty.load_runner(signed, key: :unsigned)
      assert m =~ ":unsigned"

      for bad <- [123, :other, "", ~c"key"] do
        assert_raise ArgumentError, fn -> ExMonty.dump(runner, key: bad) end
        assert_raise ArgumentError, fn -> ExMonty.load_runner(unsigned, key: bad) end
      end

      Application.put_env(:ex_monty, :dump_key, :not_a_binary)
      assert_raise ArgumentError, ~r/dump_key/, fn -> ExMonty.dump(runner) end
    end

    test "oversized dumps are refused before they are hashed or decoded" do
      garbage = "EXMONTY" <> <<1, 1, 1>> <> :binary.copy(<<0>>, 80 * 1024 * 1024)
      started = System.monotonic_time(:millisecond)
      assert {:error, %{type: :invalid_input, message: m}} = ExMonty.load_runner(garbage, key: "k")
      assert m =~ "83886090 bytes, over the limit of 67108864 bytes"
      assert {:error, %{message: m}} = ExMonty.load_snapshot(garbage)
      assert m =~ "over the limit"
      assert System.monotonic_time(:millisecond) - started < 1_000

      {:ok, runner} = ExMonty.compile("1")
      {:ok, dump} = ExMonty.dump(runner)
      assert {:ok, _} = ExMonty.load_runner(dump, max_bytes: byte_size(dump))
      assert {:error, _} = ExMonty.load_runner(dump, max_bytes: byte_size(dump) - 1)
      Application.put_env(:ex_monty, :max_dump_bytes, 16)
      assert {:error, %{message: m}} = ExMonty.load_runner(dump)
      assert m =~ "over the limit of 16 bytes"
      assert {:ok, _} = ExMonty.load_runner(dump, max_bytes: byte_size(dump))
      assert_raise ArgumentError, fn -> ExMonty.load_runner(dump, max_bytes: 0) end
    end

    test "dump and load options are validated strictly" do
      {:ok, runner} = ExMonty.compile("f()")
      {:ok, dump} = ExMonty.dump(runner)
      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner)
      {:ok, snap} = ExMonty.dump_snapshot(snapshot)

      assert_raise ArgumentError, ~r/unknown keys \[:keys\]/, fn ->
        ExMonty.dump(runner, keys: "k")
      end

      assert_raise ArgumentError, ~r/max_bytes/, fn ->
        ExMonty.dump_snapshot(snapshot, max_bytes: 1)
      end

      assert_raise ArgumentError, ~r/limits/, fn -> ExMonty.load_runner(dump, limits: %{}) end
      assert_raise ArgumentError, fn -> ExMonty.load_snapshot(snap, kee: "k") end
      assert_raise ArgumentError, fn -> ExMonty.load_progress(snap, timeout: 5) end
      assert_raise ArgumentError, fn -> ExMonty.dump(runner, %{key: "k"}) end
      assert_raise ArgumentError, fn -> ExMonty.load_runner(dump, [:key]) end

      assert {:ok, _} =
               ExMonty.load_snapshot(snap, limits: %{max_memory: 10_000_000}, max_bytes: 10_000_000)
    end
  end
end
