defmodule ExMonty.OptionsTest do
  use ExUnit.Case, async: true

  alias ExMonty.{Mount, Sandbox}

  defmodule OsModule do
    def handle_os(_function, _args, _kwargs), do: :not_handled
  end

  defmodule NameHandler do
    @behaviour ExMonty.Sandbox

    @impl true
    def handle_function("f", [x], _kwargs), do: {:ok, x * 10}

    @impl true
    def handle_name_lookup("f"), do: {:ok, {:function, "f"}}
    def handle_name_lookup(_), do: :undefined
  end

  defmodule CallOnlyHandler do
    @behaviour ExMonty.Sandbox

    @impl true
    def handle_function("f", [x], _kwargs), do: {:ok, x * 10}
  end

  setup_all do
    {:ok, runner} = ExMonty.compile("x", inputs: ["x"])
    {:ok, runner: runner}
  end

  describe "unknown options raise ArgumentError naming the key and the valid ones" do
    test "eval/2" do
      error = assert_raise ArgumentError, fn -> ExMonty.eval("1", limit: %{max_memory: 1}) end
      assert error.message =~ "unknown option :limit for ExMonty.eval/2"
      assert error.message =~ ":limits"

      assert_raise ArgumentError, ~r/unknown option :input for ExMonty.eval\/2/, fn ->
        ExMonty.eval("x", input: %{"x" => 1})
      end

      assert_raise ArgumentError, ~r/unknown option :limit/, fn ->
        ExMonty.eval!("1", limit: %{})
      end
    end

    test "compile/2 refuses options it would drop" do
      assert_raise ArgumentError, ~r/unknown option :limits for ExMonty.compile\/2/, fn ->
        ExMonty.compile("1", limits: %{max_memory: 1})
      end
    end

    test "run/3, run!/3 and start/3", %{runner: runner} do
      assert_raise ArgumentError, ~r/unknown option :limit for ExMonty.run\/3/, fn ->
        ExMonty.run(runner, %{"x" => 1}, limit: %{})
      end

      assert_raise ArgumentError, ~r/unknown option :timeout for ExMonty.start\/3/, fn ->
        ExMonty.start(runner, %{"x" => 1}, timeout: 5)
      end

      assert_raise ArgumentError, ~r/unknown option :nope/, fn ->
        ExMonty.run!(runner, %{"x" => 1}, nope: 1)
      end
    end

    test "Sandbox.run/2" do
      error =
        assert_raise ArgumentError, fn ->
          Sandbox.run("f()", function: %{"f" => fn _, _ -> {:ok, 1} end})
        end

      assert error.message =~ "unknown option :function for ExMonty.Sandbox.run/2"
      assert error.message =~ ":functions"
    end

    test "options that are a map, not a keyword list", %{runner: runner} do
      assert_raise ArgumentError, ~r/must be a keyword list/, fn ->
        ExMonty.run(runner, %{"x" => 1}, %{limits: %{}})
      end

      assert_raise ArgumentError, ~r/must be a keyword list/, fn -> ExMonty.eval("1", %{}) end
      assert_raise ArgumentError, ~r/must be a keyword list/, fn -> Sandbox.run("1", [:x]) end
    end
  end

  describe "invalid values raise ArgumentError naming the key and the value" do
    test "eval/2" do
      for {opts, pattern} <- [
            {[script_name: :foo], ~r/option :script_name .* got: :foo/},
            {[script_name: ""], ~r/:script_name/},
            {[script_name: String.duplicate("a", 257)], ~r/:script_name/},
            {[cwd: "relative"], ~r/option :cwd .* got: "relative"/},
            {[mounts: :nope], ~r/option :mounts/},
            {[timeout: -1], ~r/option :timeout .* got: -1/},
            {[inputs: [1]], ~r/option :inputs .* got: \[1\]/},
            {[limits: %{nope: 1}], ~r/unknown limit/}
          ] do
        assert_raise ArgumentError, pattern, fn -> ExMonty.eval("1", opts) end
      end
    end

    test "resume/3 and resume_futures/3 check :timeout's value" do
      {:ok, runner} = ExMonty.compile("f()")

      for bad <- ["5", 1.5, -1] do
        {:ok, {:function_call, _, snapshot, ""}} = ExMonty.start(runner)

        assert_raise ArgumentError, ~r/option :timeout .* got: #{Regex.escape(inspect(bad))}/, fn ->
          ExMonty.resume(snapshot, {:ok, 1}, timeout: bad)
        end

        assert_raise ArgumentError, ~r/option :timeout/, fn ->
          ExMonty.resume_futures(snapshot, %{}, timeout: bad)
        end

        # Refused before anything ran: the snapshot resumes.
        assert {:ok, {:complete, 1, ""}} = ExMonty.resume(snapshot, {:ok, 1}, timeout: 1_000)
      end
    end

    test "compile/2 inputs are a list of names" do
      assert_raise ArgumentError, ~r/option :inputs of ExMonty.compile\/2/, fn ->
        ExMonty.compile("1", inputs: %{"x" => 1})
      end
    end

    test "Sandbox.run/2 validates every option before running" do
      for {opts, pattern} <- [
            {[os: "x"], ~r/option :os .* got: "x"/},
            {[os: %{"read_text" => fn _, _ -> {:ok, ""} end}],
             ~r/invalid key "read_text" in option :os/},
            {[os: %{read_text: fn _ -> {:ok, ""} end}], ~r/invalid handler for :read_text/},
            {[os: %{date_tomorrow: fn _, _ -> {:ok, nil} end}], ~r/invalid key :date_tomorrow/},
            {[os: NoSuchModule], ~r/option :os/},
            {[os: Enum], ~r/option :os/},
            {[script_name: :foo], ~r/option :script_name/},
            {[callback_timeout: -1], ~r/option :callback_timeout .* got: -1/},
            {[callback_timeout: 0], ~r/option :callback_timeout/},
            {[callback_timeout: "1"], ~r/option :callback_timeout .* got: "1"/},
            {[inputs: nil], ~r/option :inputs of ExMonty.Sandbox.run\/2/},
            {[return_os: "yes"], ~r/option :return_os/},
            {[handler: "Mod"], ~r/option :handler/},
            {[handler: NoSuchModule], ~r/option :handler/},
            {[functions: [:nope]], ~r/option :functions/},
            {[functions: %{"f" => :not_a_fun}], ~r/"f" => :not_a_fun in option :functions/},
            {[functions: %{"f" => fn -> :ok end}], ~r/option :functions/}
          ] do
        assert_raise ArgumentError, pattern, fn -> Sandbox.run("1", opts) end
      end
    end

    test "valid forms are accepted" do
      fs = ExMonty.PseudoFS.new()
      assert {:ok, 1, ""} = Sandbox.run("1", os: fs, callback_timeout: :infinity)
      assert {:ok, 1, ""} = Sandbox.run("1", os: OsModule, return_os: false)
      assert {:ok, 1, ""} = Sandbox.run("1", os: %{read_text: fn _, _ -> {:ok, ""} end})
      assert {:ok, 1, ""} = ExMonty.eval("1", cwd: "/tmp", timeout: :infinity, script_name: "a.py")
    end

    test "callback_timeout: :infinity waits for the callback" do
      f = fn [x], _ -> Process.sleep(20) && {:ok, x} end
      assert {:ok, 3, ""} = Sandbox.run("f(3)", functions: %{"f" => f}, callback_timeout: :infinity)
    end

    test "wrong argument types raise", %{runner: runner} do
      assert_raise ArgumentError, ~r/ExMonty.eval\/2 expects Python source/, fn ->
        ExMonty.eval(:not_code)
      end

      assert_raise ArgumentError, ~r/ExMonty.run\/3 expects an ExMonty.Runner/, fn ->
        ExMonty.run(:nope)
      end

      assert_raise ArgumentError, ~r/ExMonty.start\/3/, fn -> ExMonty.start(:nope) end
      assert_raise ArgumentError, ~r/ExMonty.resume\/3/, fn -> ExMonty.resume(runner, {:ok, 1}) end
      assert_raise ArgumentError, ~r/Sandbox.run\/2 expects/, fn -> Sandbox.run(:code) end
    end

    test "resume_futures/2 checks its argument's shape" do
      {:ok, runner} = ExMonty.compile("f()")
      {:ok, {:function_call, _call, snapshot, ""}} = ExMonty.start(runner)

      assert_raise ArgumentError, ~r/map or list/, fn -> ExMonty.resume_futures(snapshot, :x) end

      assert_raise ArgumentError, ~r/\{call_id, answer\} pairs/, fn ->
        ExMonty.resume_futures(snapshot, [:x])
      end

      assert_raise ArgumentError, ~r/an ExMonty.Snapshot/, fn ->
        ExMonty.resume_futures(:nope, %{})
      end

      # The snapshot was not consumed by the refused calls.
      assert {:ok, {:complete, 1, ""}} = ExMonty.resume(snapshot, {:ok, 1})
    end
  end

  describe "input names" do
    test "keywords and non-identifiers are refused the same way, before anything runs" do
      for name <- ["class", "None", "1x", "a-b", "", "lambda"] do
        assert {:error, %ExMonty.Exception{type: :invalid_input, python_type: "ValueError"} = e} =
                 ExMonty.eval("print('ran')", inputs: %{name => 1}),
               "input name #{inspect(name)}"

        assert e.message =~ inspect(name)

        assert {:error, %ExMonty.Exception{type: :invalid_input, python_type: "ValueError"}} =
                 ExMonty.compile("1", inputs: [name])
      end
    end

    test "soft keywords and other identifiers are fine" do
      assert {:ok, 6, ""} =
               ExMonty.eval("match + case + _x", inputs: %{"match" => 1, "case" => 2, "_x" => 3})
    end
  end

  describe "mount options" do
    setup do
      dir = Path.join(System.tmp_dir!(), "ex_monty_opts_#{System.unique_integer([:positive])}")
      File.mkdir_p!(dir)
      on_exit(fn -> File.rm_rf!(dir) end)
      {:ok, dir: dir}
    end

    test "an unknown per-mount option raises", %{dir: dir} do
      assert_raise ArgumentError, ~r/unknown option :write_limit for ExMonty.Mount.new\/1/, fn ->
        Mount.new([{"/data", dir, :read_write, write_limit: 5}])
      end
    end

    test "invalid values and options for another mode raise", %{dir: dir} do
      assert_raise ArgumentError, ~r/:write_bytes_limit .* got: 0/, fn ->
        Mount.new([{"/data", dir, :read_write, write_bytes_limit: 0}])
      end

      assert_raise ArgumentError, ~r/:memory_usage_limit .* got: -1/, fn ->
        Mount.new([{"/data", dir, :overlay, memory_usage_limit: -1}])
      end

      assert_raise ArgumentError, ~r/applies to :read_write mounts only/, fn ->
        Mount.new([{"/data", dir, :read_only, write_bytes_limit: 10}])
      end

      assert_raise ArgumentError, ~r/applies to :overlay mounts only/, fn ->
        Mount.new([{"/data", dir, :read_write, memory_usage_limit: 10}])
      end
    end

    test "a :read_write mount has a 100 MiB write limit by default; :infinity lifts it", %{
      dir: dir
    } do
      # 101 files of about 1 MiB (contents, name and a 128-byte entry each):
      # the default limit stops the 101st.
      code = """
      from pathlib import Path
      n = 0
      try:
          for i in range(101):
              Path(f'/data/f{i}').write_bytes(b'x' * 1048000)
              n += 1
      except OSError as e:
          pass
      n
      """

      {:ok, mount} = Mount.new([{"/data", dir, :read_write}])
      assert {:ok, 100, ""} = Sandbox.run(code, mounts: mount)

      File.rm_rf!(dir)
      File.mkdir_p!(dir)
      {:ok, mount} = Mount.new([{"/data", dir, :read_write, write_bytes_limit: :infinity}])
      assert {:ok, 101, ""} = Sandbox.run(code, mounts: mount)
    end

    test "an overlay accepts an explicit memory limit and :infinity", %{dir: dir} do
      code = "from pathlib import Path\nPath('/data/f').write_text('x' * 100)"
      {:ok, mount} = Mount.new([{"/data", dir, :overlay, memory_usage_limit: 10}])
      assert {:error, %ExMonty.Exception{}} = Sandbox.run(code, mounts: mount)
      {:ok, mount} = Mount.new([{"/data", dir, :overlay, memory_usage_limit: :infinity}])
      assert {:ok, 100, ""} = Sandbox.run(code, mounts: mount)
    end
  end

  describe "Sandbox: names served by a handler" do
    test "handle_name_lookup/1 returning {:function, name} serves a function read as a name" do
      assert {:ok, 20, ""} = Sandbox.run("g = f\ng(2)", handler: NameHandler)
      assert {:ok, [10, 20], ""} = Sandbox.run("h = f\n[h(1), h(2)]", handler: NameHandler)
    end

    test "a handler without handle_name_lookup/1 serves calls but not names" do
      assert {:ok, 20, ""} = Sandbox.run("f(2)", handler: CallOnlyHandler)

      assert {:error, %ExMonty.Exception{type: :name_error}} =
               Sandbox.run("g = f\ng(2)", handler: CallOnlyHandler)
    end
  end

  describe "Sandbox: OS answers are checked" do
    @wrong [
      {:read_text, "Path('/x').read_text()", {:ok, 5}},
      {:read_bytes, "Path('/x').read_bytes()", {:ok, "text"}},
      {:exists, "Path('/x').exists()", {:ok, "yes"}},
      {:is_dir, "Path('/x').is_dir()", {:ok, 1}},
      {:iterdir, "list(Path('/x').iterdir())", {:ok, ["a"]}},
      {:getenv, "os.getenv('HOME')", {:ok, 5}},
      {:get_environ, "dict(os.environ)", {:ok, %{"A" => 1}}},
      {:write_text, "Path('/x').write_text('a')", {:ok, "one"}},
      {:mkdir, "Path('/x').mkdir()", {:ok, 1}},
      {:resolve, "Path('x').resolve()", {:ok, "/x"}}
    ]

    for {function, code, answer} <- @wrong do
      test "#{function} answered with #{inspect(answer)} raises TypeError at the call site" do
        os = %{unquote(function) => fn _, _ -> unquote(Macro.escape(answer)) end}

        code =
          "from pathlib import Path\nimport os\ntry:\n    " <>
            unquote(code) <>
            "\nexcept TypeError as e:\n    r = str(e)\nr"

        assert {:ok, message, ""} = Sandbox.run(code, os: os)
        assert message =~ "expected"
        assert message =~ inspect(elem(unquote(Macro.escape(answer)), 1))
      end
    end

    test "answers of the right type pass" do
      os = %{
        read_text: fn _, _ -> {:ok, "t"} end,
        read_bytes: fn _, _ -> {:ok, {:bytes, "b"}} end,
        exists: fn _, _ -> {:ok, true} end,
        iterdir: fn _, _ -> {:ok, [{:path, "/x/a"}]} end,
        getenv: fn _, _ -> {:ok, nil} end,
        get_environ: fn _, _ -> {:ok, %{"A" => "1"}} end
      }

      code = """
      from pathlib import Path
      import os
      (Path('/x').read_text(), Path('/x').read_bytes(), Path('/x').exists(),
       [str(p) for p in Path('/x').iterdir()], os.getenv('H', 'dflt'), dict(os.environ))
      """

      assert {:ok, {"t", {:bytes, "b"}, true, ["/x/a"], nil, %{"A" => "1"}}, ""} =
               Sandbox.run(code, os: os)
    end
  end
end
