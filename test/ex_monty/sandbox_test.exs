defmodule ExMonty.SandboxTest do
  use ExUnit.Case, async: true

  doctest ExMonty.Sandbox

  alias ExMonty.Sandbox

  defmodule Handler do
    @behaviour ExMonty.Sandbox

    @impl true
    def handle_function("fetch", [url], _kwargs), do: {:ok, "body of " <> url}
    def handle_function("fail", _, _), do: {:error, :value_error, "failed on purpose"}
    def handle_function("slow", [ms], _), do: {:async, fn -> Process.sleep(ms) && {:ok, ms} end}
    def handle_function(_name, _args, _kwargs), do: {:error, :name_error, "not defined"}

    @impl true
    def handle_name_lookup("VERSION"), do: {:ok, "1.2.3"}
    def handle_name_lookup(_), do: :undefined

    @impl true
    def handle_os(:read_text, [{:path, "/allowed/" <> _ = path}], _kwargs),
      do: {:ok, "read " <> path}

    def handle_os(:read_text, [{:path, path}], _kwargs),
      do: {:error, :os_error, "access denied: #{path}"}

    def handle_os(_, _, _), do: :not_handled
  end

  defmodule SlowHandler do
    @behaviour ExMonty.Sandbox

    @impl true
    def handle_os(_, _, _), do: Process.sleep(20_000) && {:ok, "late"}

    @impl true
    def handle_name_lookup("SLOW_NAME"), do: Process.sleep(20_000) && {:ok, 1}
    def handle_name_lookup("BAD_NAME"), do: {:ok, self()}
    def handle_name_lookup(_), do: :undefined
  end

  describe "spec: High-Level Sandbox" do
    test "function map" do
      assert {:ok, 42, ""} =
               Sandbox.run("double(21)",
                 functions: %{"double" => fn [x], _kwargs -> {:ok, x * 2} end}
               )
    end

    test "handler module" do
      code = "r = fetch('https://example.com')\nprint(VERSION)\nr"
      assert {:ok, "body of https://example.com", "1.2.3\n"} = Sandbox.run(code, handler: Handler)
    end

    test "handler errors are Python exceptions" do
      code = "try:\n    fail()\nexcept ValueError as e:\n    r = str(e)\nr"
      assert {:ok, "failed on purpose", ""} = Sandbox.run(code, handler: Handler)
    end

    test "inputs and limits are passed through" do
      assert {:ok, 30, ""} = Sandbox.run("x + y", inputs: %{"x" => 10, "y" => 20})

      assert {:error, %ExMonty.Exception{type: :recursion_error}} =
               Sandbox.run("def f(): return f()\nf()", limits: %{max_recursion_depth: 50})
    end
  end

  describe "callbacks never crash the caller" do
    for {label, fun} <- [
          raises: quote(do: fn _, _ -> raise ArgumentError, "bad arg" end),
          throws: quote(do: fn _, _ -> throw(:ball) end),
          exits: quote(do: fn _, _ -> exit(:gone) end),
          garbage: quote(do: fn _, _ -> :garbage end),
          kills_itself: quote(do: fn _, _ -> Process.exit(self(), :kill) end)
        ] do
      test "a callback that #{label} becomes a catchable RuntimeError" do
        code = "try:\n    f()\nexcept RuntimeError as e:\n    r = 'caught: ' + str(e)\nr"

        assert {:ok, "caught: " <> reason, ""} =
                 Sandbox.run(code, functions: %{"f" => unquote(fun)})

        assert reason =~ ~r/raised|throw|exit|returned/
      end
    end

    test "a slow callback times out as TimeoutError" do
      assert {:error, %ExMonty.Exception{type: :timeout_error, message: msg}} =
               Sandbox.run("f()",
                 functions: %{"f" => fn _, _ -> Process.sleep(20_000) end},
                 callback_timeout: 50
               )

      assert msg =~ "timed out"
    end

    test "unknown functions raise NameError" do
      assert {:error, %ExMonty.Exception{type: :name_error, message: "name 'nope' is not defined"}} =
               Sandbox.run("nope()")
    end
  end

  describe "async host calls" do
    @gather """
    import asyncio
    async def main():
        return await asyncio.gather(*[fetch(i) for i in range(10)])
    asyncio.run(main())
    """

    test "ten 100 ms calls run concurrently" do
      fetch = {:async, fn [i], _ -> Process.sleep(100) && {:ok, i * 10} end}
      started = System.monotonic_time(:millisecond)
      assert {:ok, result, ""} = Sandbox.run(@gather, functions: %{"fetch" => fetch})
      elapsed = System.monotonic_time(:millisecond) - started
      assert result == Enum.map(0..9, &(&1 * 10))
      # Sequential would take ~1000 ms; generous bound for a loaded machine.
      assert elapsed < 700
    end

    test "a handler module can defer work" do
      code =
        "import asyncio\nasync def main():\n    return await asyncio.gather(slow(50), slow(60))\nasyncio.run(main())"

      assert {:ok, [50, 60], ""} = Sandbox.run(code, handler: Handler)
    end

    test "awaiting a plain host function gets its value" do
      code =
        "import asyncio\nasync def main():\n    return await fetch(20) + 1\nasyncio.run(main())"

      assert {:ok, 41, ""} =
               Sandbox.run(code, functions: %{"fetch" => fn [x], _ -> {:ok, x * 2} end})
    end

    test "a failing async call raises in Python" do
      code = """
      import asyncio
      async def main():
          try:
              await asyncio.gather(fetch(1))
          except ValueError as e:
              return str(e)
      asyncio.run(main())
      """

      fetch = {:async, fn _, _ -> {:error, :value_error, "bad"} end}
      assert {:ok, "bad", ""} = Sandbox.run(code, functions: %{"fetch" => fetch})
    end
  end

  describe "spec: Custom OS Handlers" do
    test "function map" do
      path = Path.join(System.tmp_dir!(), "ex_monty_os_#{System.unique_integer([:positive])}.txt")
      File.write!(path, "from disk")

      os = %{
        read_text: fn [{:path, path}], _kwargs ->
          case File.read(path) do
            {:ok, content} -> {:ok, content}
            {:error, _} -> {:error, :file_not_found_error, "not found: #{path}"}
          end
        end
      }

      code = "from pathlib import Path\nPath(#{inspect(path)}).read_text()"
      assert {:ok, "from disk", _} = Sandbox.run(code, os: os)
      File.rm!(path)
      assert {:error, %{type: :file_not_found_error}} = Sandbox.run(code, os: os)
    end

    test "handler module" do
      code = "from pathlib import Path\nPath('/allowed/x').read_text()"
      assert {:ok, "read /allowed/x", ""} = Sandbox.run(code, handler: Handler)
      code = "from pathlib import Path\nPath('/etc/passwd').read_text()"

      assert {:error, %{type: :os_error, message: "access denied: /etc/passwd"}} =
               Sandbox.run(code, handler: Handler)
    end

    test "without a handler, file access is denied with PermissionError" do
      code = "from pathlib import Path\nPath('/etc/passwd').read_text()"
      assert {:error, %{type: :permission_error}} = Sandbox.run(code)
      assert {:error, %{type: :permission_error}} = ExMonty.eval(code)
    end

    test "an os handler's crash becomes a Python exception" do
      os = %{read_text: fn _, _ -> raise "disk on fire" end}
      code = "from pathlib import Path\nPath('/x').read_text()"
      assert {:error, %{type: :runtime_error, message: msg}} = Sandbox.run(code, os: os)
      assert msg =~ "disk on fire"
    end
  end

  test "sleeps wait in the caller, within max_total_sleep_secs" do
    assert {:ok, 1, ""} = Sandbox.run("import time\ntime.sleep(0.05)\n1")
    assert {:ok, 1, ""} = ExMonty.eval("import time\ntime.sleep(0.05)\n1")

    assert {:error, %{type: :timeout_error}} =
             Sandbox.run("import time\ntime.sleep(2)", limits: %{max_total_sleep_secs: 0.1})
  end

  describe "output on errors" do
    test "the exception carries everything printed since the run began" do
      code = "print('a')\nf()\nprint('b')\n1/0"

      assert {:error, %ExMonty.Exception{type: :zero_division_error, output: output}} =
               Sandbox.run(code, functions: %{"f" => fn _, _ -> {:ok, 1} end})

      assert String.starts_with?(output, "a\n")
    end

    test "also with return_os: true" do
      code = "print('a')\nf()\n1/0"

      assert {:error, %ExMonty.Exception{output: "a\n" <> _}, nil} =
               Sandbox.run(code, functions: %{"f" => fn _, _ -> {:ok, 1} end}, return_os: true)
    end
  end

  test "bad options raise ArgumentError" do
    assert_raise ArgumentError, fn -> Sandbox.run("1", functions: [:nope]) end
    assert_raise ArgumentError, fn -> Sandbox.run("1", functions: %{"f" => :not_a_fun}) end
    assert_raise ArgumentError, fn -> Sandbox.run("1", handler: NoSuchModule) end
  end

  describe "the run's deadline counts time spent in the host" do
    @half %{max_duration_secs: 0.5}

    defp timed(fun) do
      started = System.monotonic_time(:millisecond)
      result = fun.()
      {result, System.monotonic_time(:millisecond) - started}
    end

    test "a callback slower than max_duration_secs is cut at the deadline" do
      {result, ms} =
        timed(fn ->
          Sandbox.run("f()",
            functions: %{"f" => fn _, _ -> Process.sleep(20_000) end},
            limits: @half
          )
        end)

      assert {:error, %ExMonty.Exception{type: :timeout_error, python_type: "TimeoutError"} = e} =
               result

      assert e.message =~ "max_duration_secs"
      # Generous bound for a loaded machine: the callback alone takes 5 s.
      assert ms < 10_000
    end

    test "Python cannot catch the deadline" do
      code = "try:\n    f()\nexcept TimeoutError:\n    r = 'caught'\nr"

      assert {:error, %ExMonty.Exception{type: :timeout_error}} =
               Sandbox.run(code,
                 functions: %{"f" => fn _, _ -> Process.sleep(20_000) end},
                 limits: @half
               )
    end

    test "many short callbacks add up" do
      code = "for i in range(100):\n    f()"

      {result, ms} =
        timed(fn ->
          Sandbox.run(code,
            functions: %{"f" => fn _, _ -> Process.sleep(50) && {:ok, nil} end},
            limits: @half
          )
        end)

      assert {:error, %ExMonty.Exception{type: :timeout_error}} = result
      assert ms < 10_000
    end

    test "awaited futures, OS handlers and name lookups are cut too" do
      # Far beyond the deadline, so a loaded machine cannot blur the two.
      slow = fn -> Process.sleep(20_000) && {:ok, 1} end

      gather =
        "import asyncio\nasync def main():\n    return await asyncio.gather(f(1))\nasyncio.run(main())"

      os = %{read_text: fn _, _ -> slow.() end}

      for {code, opts} <- [
            {gather, functions: %{"f" => {:async, fn _, _ -> slow.() end}}},
            {"from pathlib import Path\nPath('/x').read_text()", os: os},
            {"from pathlib import Path\nPath('/x').read_text()", os: SlowHandler},
            {"SLOW_NAME", handler: SlowHandler}
          ] do
        {result, ms} = timed(fn -> Sandbox.run(code, [limits: @half] ++ opts) end)
        assert {:error, %ExMonty.Exception{type: :timeout_error}} = result, inspect(opts)
        assert ms < 10_000
      end
    end

    test "with return_os the error keeps the filesystem" do
      assert {:error, %ExMonty.Exception{type: :timeout_error}, %ExMonty.PseudoFS{}} =
               Sandbox.run("f()",
                 functions: %{"f" => fn _, _ -> Process.sleep(20_000) end},
                 os: ExMonty.PseudoFS.new(),
                 return_os: true,
                 limits: @half
               )
    end

    test "sleeps are not counted: they have max_total_sleep_secs" do
      code = "import time\nfor i in range(4):\n    time.sleep(0.2)\n'done'"

      assert {:ok, "done", ""} =
               Sandbox.run(code, limits: %{max_duration_secs: 0.5, max_total_sleep_secs: 2})
    end
  end

  describe "callback results Python cannot receive raise TypeError in Python" do
    @catch_type "try:\n    r = f()\nexcept TypeError as e:\n    r = 'caught: ' + str(e)\nr"

    test "a value with no Python meaning" do
      for value <- [self(), make_ref(), fn -> 1 end, [1 | 2], %{a: [1, {2, self()}]}] do
        assert {:ok,
                "caught: host function f returned a value that cannot be sent to Python: " <>
                  _,
                ""} = Sandbox.run(@catch_type, functions: %{"f" => fn _, _ -> {:ok, value} end})
      end
    end

    test "from an async function, through futures" do
      code = """
      import asyncio
      async def main():
          try:
              return await asyncio.gather(f(1), g(2))
          except TypeError as e:
              return 'caught: ' + str(e)
      asyncio.run(main())
      """

      functions = %{
        "f" => {:async, fn _, _ -> {:ok, 1} end},
        "g" => {:async, fn _, _ -> {:ok, make_ref()} end}
      }

      assert {:ok, "caught: host function g returned a value that cannot be sent to Python: " <> _,
              ""} = Sandbox.run(code, functions: functions)
    end

    test "from an OS handler and a name lookup" do
      code =
        "from pathlib import Path\n" <> String.replace(@catch_type, "f()", "Path('/x').read_text()")

      # A wrong type is caught by the OS answer check first; a value of the
      # right shape that cannot cross (a pid in a listing) by the conversion.
      os = %{read_text: fn _, _ -> {:ok, self()} end}

      assert {:ok, "caught: the host answered Path.read_text() with #PID" <> _, ""} =
               Sandbox.run(code, os: os)

      code = "from pathlib import Path\n" <> String.replace(@catch_type, "f()", "Path('/x').stat()")

      os = %{stat: fn _, _ -> {:ok, {:named_tuple, "os.stat_result", [{"st_mode", self()}]}} end}
      assert {:ok, "caught: host OS handler for " <> _, ""} = Sandbox.run(code, os: os)

      code = String.replace(@catch_type, "f()", "BAD_NAME")

      assert {:ok, "caught: host name lookup for BAD_NAME " <> _, ""} =
               Sandbox.run(code, handler: SlowHandler)
    end

    test "error messages that are not UTF-8 and unknown exception types still raise" do
      code = "try:\n    f()\nexcept ValueError as e:\n    r = str(e)\nr"

      assert {:ok, "<<255, 254>>", ""} =
               Sandbox.run(code,
                 functions: %{"f" => fn _, _ -> {:error, :value_error, <<255, 254>>} end}
               )

      code = "try:\n    f()\nexcept RuntimeError as e:\n    r = str(e)\nr"

      assert {:ok, "no_such_error: <<255>>", ""} =
               Sandbox.run(code,
                 functions: %{"f" => fn _, _ -> {:error, :no_such_error, <<255>>} end}
               )
    end
  end
end
