defmodule ExMontyTest do
  use ExUnit.Case, async: true

  doctest ExMonty

  alias ExMonty.TestHelpers

  describe "spec: Simple Evaluation" do
    test "2 + 2" do
      assert {:ok, 4, ""} = ExMonty.eval("2 + 2")
    end

    test "list comprehension" do
      {:ok, result, ""} = ExMonty.eval("[x**2 for x in range(10)]")
      assert result == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
    end
  end

  describe "spec: With Inputs" do
    test "inputs map" do
      {:ok, result, ""} = ExMonty.eval("x + y", inputs: %{"x" => 10, "y" => 20})
      assert result == 30
    end

    test "input direction examples" do
      assert {:ok, 42, ""} = ExMonty.eval("x", inputs: %{"x" => 42})
      assert {:ok, "hello", ""} = ExMonty.eval("x", inputs: %{"x" => "hello"})
      assert {:ok, [1, 2, 3], ""} = ExMonty.eval("x", inputs: %{"x" => [1, 2, 3]})
      assert {:ok, %{"a" => 1}, ""} = ExMonty.eval("x", inputs: %{"x" => %{"a" => 1}})

      assert {:ok, {:bytes, <<1, 2, 3>>}, ""} =
               ExMonty.eval("x", inputs: %{"x" => {:bytes, <<1, 2, 3>>}})

      assert {:ok, {:path, "/tmp/file"}, ""} =
               ExMonty.eval("x", inputs: %{"x" => {:path, "/tmp/file"}})
    end
  end

  describe "spec: Print Capture" do
    test "print output is the third element" do
      assert {:ok, nil, "hello world\n"} = ExMonty.eval("print('hello world')")
    end

    test "many lines, in order" do
      {:ok, nil, output} = ExMonty.eval("for i in range(2000):\n    print('line', i)")
      lines = String.split(output, "\n", trim: true)
      assert length(lines) == 2000
      assert hd(lines) == "line 0"
      assert List.last(lines) == "line 1999"
    end

    test "output printed before an error is kept in the exception, not its message" do
      assert {:error, %ExMonty.Exception{type: :value_error, message: "no", output: output}} =
               ExMonty.eval("print('x')\nimport time\ntime.sleep(0.01)\nraise ValueError('no')")

      assert output == "x\n"
    end

    test "an error without prior output has output \"\"" do
      assert {:error, %ExMonty.Exception{output: ""}} = ExMonty.eval("1/0")
    end

    test "run/3 keeps the output of earlier steps too" do
      {:ok, runner} = ExMonty.compile("print(x)\nimport time\ntime.sleep(0.01)\n1/0", inputs: ["x"])
      assert {:error, %ExMonty.Exception{output: "7\n"}} = ExMonty.run(runner, %{"x" => 7})
    end

    # Needs the NIF to fill the exception's output for a single-step run.
    test "output printed before an error in one step is kept" do
      assert {:error, %ExMonty.Exception{type: :zero_division_error, output: "before\n"}} =
               ExMonty.eval("print('before')\n1/0")
    end
  end

  describe "spec: Compile Once, Run Many" do
    test "reuses a runner" do
      {:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
      assert {:ok, 10, ""} = ExMonty.run(runner, %{"x" => 5})
      assert {:ok, 20, ""} = ExMonty.run(runner, %{"x" => 10})
      assert {:ok, 200, ""} = ExMonty.run(runner, %{"x" => 100})
    end

    test "each run starts from the program, never from the last run's state" do
      # Warm instances keep the last program decoded; its runs share nothing.
      {:ok, a} = ExMonty.compile("seen = []\nseen.append(x)\nprint(len(seen))\nseen", inputs: ["x"])
      {:ok, b} = ExMonty.compile("x + 1", inputs: ["x"])

      for i <- 1..50 do
        assert {:ok, [^i], "1\n"} = ExMonty.run(a, %{"x" => i})
        assert {:ok, result, ""} = ExMonty.run(b, %{"x" => i})
        assert result == i + 1
        assert {:ok, [^i], "1\n"} = ExMonty.run(a, %{"x" => i})
      end
    end

    test "runners of the same program, compiled or loaded, each run their own" do
      # Warm instances keep the program they ran last, named by its runner.
      code = "x * 3"
      {:ok, a} = ExMonty.compile(code, inputs: ["x"])
      {:ok, b} = ExMonty.compile(code, inputs: ["x"])
      {:ok, c} = ExMonty.compile("x - 3", inputs: ["x"])
      {:ok, dump} = ExMonty.dump(a)
      {:ok, loaded} = ExMonty.load_runner(dump)

      for i <- 1..30, runner <- [a, b, loaded, c] do
        expected = if runner == c, do: i - 3, else: i * 3
        assert {:ok, ^expected, ""} = ExMonty.run(runner, %{"x" => i})
      end
    end

    test "a program too large to keep runs again and again, between others" do
      code = Enum.map_join(1..3000, "\n", &"v#{&1} = x + #{&1}") <> "\nv3000"
      {:ok, large} = ExMonty.compile(code, inputs: ["x"])
      {:ok, small} = ExMonty.compile("x - 1", inputs: ["x"])
      # Instances keep programs up to 64 KiB of bytes; this one is decoded every run.
      {:ok, dump} = ExMonty.dump(large)
      assert byte_size(dump) > 64 * 1024

      for i <- 1..10, runner <- [large, large, small] do
        expected = if runner == large, do: i + 3000, else: i - 1
        assert {:ok, ^expected, ""} = ExMonty.run(runner, %{"x" => i})
      end
    end

    test "a runner is shared by 100 processes at once" do
      {:ok, runner} = ExMonty.compile("sum(range(n)) + n", inputs: ["n"])

      results =
        1..100
        |> Task.async_stream(fn n -> {n, ExMonty.run(runner, %{"n" => n})} end,
          max_concurrency: 100,
          timeout: 60_000
        )
        |> Enum.map(fn {:ok, result} -> result end)

      for {n, result} <- results do
        assert result == {:ok, div(n * (n - 1), 2) + n, ""}
      end
    end

    test "missing and unknown inputs are errors" do
      {:ok, runner} = ExMonty.compile("x", inputs: ["x"])

      assert {:error, %ExMonty.Exception{type: :invalid_input, message: msg}} =
               ExMonty.run(runner, %{})

      assert msg =~ "missing input"
      assert {:error, %ExMonty.Exception{message: msg}} = ExMonty.run(runner, %{"x" => 1, "y" => 2})
      assert msg =~ "unknown input"
    end
  end

  describe "errors" do
    test "syntax errors from compile carry their location" do
      assert {:error, %ExMonty.Exception{type: :syntax_error} = error} =
               ExMonty.compile("x = 1\ny = (2 +\n", script_name: "broken.py")

      assert [%ExMonty.StackFrame{filename: "broken.py", line: line} | _] = error.traceback
      assert line in 2..3
    end

    test "runtime errors carry a traceback with function names and source lines" do
      code = """
      def inner(x):
          return x / 0

      def outer():
          return inner(1)

      outer()
      """

      assert {:error, %ExMonty.Exception{type: :zero_division_error} = error} = ExMonty.eval(code)
      names = Enum.map(error.traceback, & &1.name)
      assert "outer" in names and "inner" in names
      frame = List.last(error.traceback)
      assert frame.line == 2
      assert frame.source_line =~ "return x / 0"
      assert Exception.message(error) =~ "Traceback (most recent call last)"
    end

    test "eval! raises ExMonty.Exception" do
      assert_raise ExMonty.Exception, ~r/KeyError/, fn -> ExMonty.eval!("{}['missing']") end
    end

    test "run! raises" do
      {:ok, runner} = ExMonty.compile("[][1]")
      assert_raise ExMonty.Exception, ~r/IndexError/, fn -> ExMonty.run!(runner) end
    end

    test "bad data is an error, a bad argument raises" do
      assert_raise ArgumentError, fn -> ExMonty.eval(:not_code) end
      assert {:error, %ExMonty.Exception{type: :invalid_input}} = ExMonty.eval(<<255, 0>>)
      assert_raise ArgumentError, fn -> ExMonty.eval("1", inputs: [1]) end

      assert {:error, %ExMonty.Exception{type: :invalid_input}} =
               ExMonty.eval("1", inputs: %{"not an identifier" => 1})

      assert_raise ArgumentError, fn -> ExMonty.run(:nope) end

      assert {:error, %ExMonty.Exception{type: :invalid_input}} =
               ExMonty.compile("x", inputs: ["x", "x"])
    end

    test "tables that exist on both sides agree: OS call functions" do
      rust = Map.new(ExMonty.Native.runtime_os_functions())
      assert Enum.sort(Map.values(rust)) == ExMonty.OsCall.functions()

      for {python_name, function} <- rust do
        assert ExMonty.OsCall.function_atom(python_name) == function
      end
    end

    test "tables that exist on both sides agree: exception types" do
      rust = Map.new(ExMonty.Native.runtime_exception_types(), fn {name, atom} -> {atom, name} end)
      elixir = ExMonty.Exception.python_types()

      decimal =
        for {atom, _} <- rust, String.starts_with?(Atom.to_string(atom), "decimal_"), do: atom

      assert Map.drop(rust, decimal) == elixir
    end

    test "layouts that exist on both sides agree: limits and settings tuples" do
      {limit_fields, settings_fields} = ExMonty.Native.runtime_settings_layout()
      assert limit_fields == Enum.map(ExMonty.Limits.native_fields(), &Atom.to_string/1)
      assert settings_fields == Enum.map(ExMonty.Execution.settings_fields(), &Atom.to_string/1)

      # Each field goes where its name says, for the defaults (a literal)
      # and for limits given per call.
      custom = ExMonty.Limits.normalize!(max_memory: 4096, gc_interval: 7, max_allocations: 9)

      for limits <- [ExMonty.Limits.defaults(), custom] do
        native = ExMonty.Limits.to_native(limits)
        assert Map.new(Enum.zip(ExMonty.Limits.native_fields(), Tuple.to_list(native))) == limits
      end

      settings = ExMonty.Execution.native_settings(custom, true, "/tmp", :mounts, :policy, true)

      assert Enum.zip(ExMonty.Execution.settings_fields(), Tuple.to_list(settings)) == [
               limits: ExMonty.Limits.to_native(custom),
               interactive: true,
               cwd: "/tmp",
               mounts: :mounts,
               os_policy: :policy,
               live_output: true
             ]

      # And the NIF reads them so: a limit given per call takes effect.
      assert {:error, %ExMonty.Exception{type: :memory_error}} =
               ExMonty.eval("x = 'a' * 100000", limits: [max_memory: 4096])

      assert {:ok, 100_000, ""} = ExMonty.eval("len('a' * 100000)")
    end

    test "invalid limits raise ArgumentError" do
      assert_raise ArgumentError, ~r/unknown limit/, fn -> ExMonty.eval("1", limits: %{nope: 1}) end

      assert_raise ArgumentError, ~r/max_memory/, fn ->
        ExMonty.eval("1", limits: %{max_memory: -1})
      end

      assert_raise ArgumentError, ~r/max_duration_secs/, fn ->
        ExMonty.eval("1", limits: %{max_duration_secs: "5"})
      end
    end
  end

  describe "scheduling" do
    test "a runaway loop stops at its duration limit while other processes keep answering" do
      {_pinger, ping} = TestHelpers.pinger()

      task =
        Task.async(fn ->
          ExMonty.eval("while True:\n    pass", limits: %{max_duration_secs: 0.5})
        end)

      Process.sleep(50)
      latencies = for _ <- 1..20, do: ping.() |> tap(fn _ -> Process.sleep(10) end)

      assert {:error, %ExMonty.Exception{type: :timeout_error}} = Task.await(task, 10_000)
      # Generous bound: the loop runs on a worker thread, not on a scheduler.
      assert Enum.max(latencies) < 100_000
      # And the sandbox keeps working afterwards.
      assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
    end
  end
end
