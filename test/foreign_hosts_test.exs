defmodule ExMonty.ForeignHostsTest do
  # The guest component is shared with hosts outside Elixir (hosts/node, with
  # jco; hosts/python, with wasmtime-py). Each resumes a snapshot ExMonty
  # dumped, and ExMonty resumes one each of them dumped: same program, same
  # answers, same result everywhere. `scripts/setup.sh --test` installs both
  # hosts; locally a missing one is skipped (it fails when `CI` is set or
  # EX_MONTY_FOREIGN_HOSTS=required, as scripts/test.sh sets).
  use ExUnit.Case, async: true

  @moduletag :foreign_hosts
  @moduletag timeout: 300_000

  @root Path.expand("..", __DIR__)
  @code "a = ask('first')\nb = ask('second', n=len(a))\n(a, b, seed)"
  @result_json ~s({"tuple":["abc",{"tuple":[2,3]},[1,"s"]]}\n)

  defp host(:node) do
    node = System.find_executable("node")
    dir = Path.join(@root, "hosts/node")

    cond do
      node == nil -> {:missing, "node is not installed"}
      not File.dir?(Path.join(dir, "node_modules")) -> {:missing, "run npm ci in hosts/node"}
      true -> {:ok, node, Path.join(dir, "exchange.mjs")}
    end
  end

  defp host(:python) do
    python = Path.join(@root, "hosts/python/.venv/bin/python")

    if File.exists?(python),
      do: {:ok, python, Path.join(@root, "hosts/python/exchange.py")},
      else: {:missing, "hosts/python/.venv is missing"}
  end

  defp tmp_file do
    Path.join(System.tmp_dir!(), "ex_monty_foreign_#{System.unique_integer([:positive])}.dump")
  end

  defp with_host(name, fun) do
    case host(name) do
      {:ok, exe, script} ->
        if name == :node do
          {_, 0} = System.cmd(exe, [Path.join(Path.dirname(script), "transpile.mjs")])
        end

        fun.(exe, script)

      {:missing, why} ->
        if System.get_env("CI") || System.get_env("EX_MONTY_FOREIGN_HOSTS") == "required",
          do: flunk("#{name} host: #{why} (scripts/setup.sh --test installs it)"),
          else: IO.puts("\nskipping the #{name} host: #{why} (scripts/setup.sh --test)")
    end
  end

  for name <- [:node, :python] do
    test "the #{name} host resumes a snapshot ExMonty dumped" do
      with_host(unquote(name), fn exe, script ->
        {:ok, runner} = ExMonty.compile(@code, inputs: ["seed"])

        assert {:ok,
                {:function_call, %ExMonty.FunctionCall{name: "ask", args: ["first"]}, snapshot, _}} =
                 ExMonty.start(runner, %{"seed" => [1, "s"]})

        {:ok, dump} = ExMonty.dump_snapshot(snapshot, key: :unsigned)
        file = tmp_file()
        File.write!(file, dump)

        try do
          assert {@result_json, 0} =
                   System.cmd(exe, [script, "resume", file], stderr_to_stdout: true)
        after
          File.rm(file)
        end
      end)
    end

    test "ExMonty resumes a snapshot the #{name} host dumped" do
      with_host(unquote(name), fn exe, script ->
        file = tmp_file()

        try do
          assert {"", 0} = System.cmd(exe, [script, "dump", file], stderr_to_stdout: true)

          assert {:ok, {:function_call, call, snapshot, ""}} =
                   ExMonty.load_progress(File.read!(file), key: :unsigned)

          assert %ExMonty.FunctionCall{name: "ask", args: ["second"], kwargs: %{"n" => 3}} = call

          # Restored from an unsigned dump, its own dumps say so (flag bit
          # 1); still unsigned bytes, which the host loads.
          {:ok, back} = ExMonty.dump_snapshot(snapshot, key: :unsigned)
          assert <<"EXMONTY", 1, 2, 2, _::binary>> = back
          File.write!(file, back)

          assert {@result_json, 0} =
                   System.cmd(exe, [script, "resume", file], stderr_to_stdout: true)

          assert {:ok, {:complete, {"abc", {2, 3}, [1, "s"]}, ""}} =
                   ExMonty.resume(snapshot, {:ok, {2, 3}})
        after
          File.rm(file)
        end
      end)
    end
  end
end
