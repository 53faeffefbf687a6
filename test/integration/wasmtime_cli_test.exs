defmodule ExMonty.WasmtimeCliTest do
  # The guest is a portable component: the stock wasmtime CLI runs it.
  use ExUnit.Case, async: true

  alias ExMonty.TestHelpers

  @moduletag :wasmtime_cli

  setup_all do
    case System.find_executable("wasmtime") do
      nil -> flunk("the wasmtime CLI is not installed: run scripts/setup.sh --test")
      path -> %{wasmtime: path}
    end
  end

  defp run_cli(wasmtime, args, stdin) do
    script = Path.join(System.tmp_dir!(), "ex_monty_cli_#{System.unique_integer([:positive])}.py")
    File.write!(script, stdin)

    try do
      System.cmd("sh", ["-c", ~s("$0" "$@" < "#{script}"), wasmtime | args], stderr_to_stdout: true)
    after
      File.rm(script)
    end
  end

  test "runs a script from stdin and prints output and result", %{wasmtime: wasmtime} do
    code = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint('hi')\nfib(20)\n"
    assert {output, 0} = run_cli(wasmtime, ["run", TestHelpers.guest_wasm()], code)
    assert output == "hi\n6765\n"
  end

  test "runs a script file given on the command line", %{wasmtime: wasmtime} do
    dir = Path.join(System.tmp_dir!(), "ex_monty_cli_dir_#{System.unique_integer([:positive])}")
    File.mkdir_p!(dir)
    File.write!(Path.join(dir, "script.py"), "print(sum(range(10)))\n")

    try do
      assert {"45\n", 0} =
               System.cmd(
                 wasmtime,
                 ["run", "--dir", dir, TestHelpers.guest_wasm(), Path.join(dir, "script.py")],
                 stderr_to_stdout: true
               )
    after
      File.rm_rf!(dir)
    end
  end

  test "a Python exception prints a traceback and fails", %{wasmtime: wasmtime} do
    assert {output, status} = run_cli(wasmtime, ["run", TestHelpers.guest_wasm()], "1 / 0\n")
    assert status != 0
    assert output =~ "ZeroDivisionError: division by zero"
  end
end
