defmodule Mix.Tasks.Monty.ReplTest do
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias Mix.Tasks.Monty.Repl

  defp repl(input, args \\ []) do
    parent = self()

    stdout =
      capture_io(input, fn ->
        stderr = capture_io(:stderr, fn -> send(parent, {:status, Repl.main(args)}) end)
        send(parent, {:stderr, stderr})
      end)

    assert_received {:status, status}
    assert_received {:stderr, stderr}
    {status, stdout, stderr}
  end

  test "state persists between lines; values print as Python's repr" do
    {0, out, ""} = repl("x = [1, 'a']\nx + [None, (2,)]\nprint('hi')\n")
    assert out =~ "[1, 'a', None, (2,)]"
    assert out =~ "hi\n"
  end

  test "multi-line blocks continue until a blank line; brackets until they close" do
    input = "def add(a, b):\n    return a + b\n\nadd(2,\n3)\n"
    {0, out, ""} = repl(input)
    assert out =~ "... "
    assert out =~ "5\n"
  end

  test "a traceback goes to stderr and the session keeps its state" do
    {0, out, err} = repl("y = 7\n1 / 0\ny\n")
    assert err =~ "ZeroDivisionError: division by zero"
    assert out =~ "7\n"
  end

  test "--dump and --load continue a session" do
    file = Path.join(System.tmp_dir!(), "ex_monty_repl_#{System.unique_integer([:positive])}.bin")
    on_exit(fn -> File.rm(file) end)
    {0, _, ""} = repl("z = 41\n", ["--dump", file])
    {0, out, ""} = repl("z + 1\n", ["--load", file])
    assert out =~ "42\n"
  end

  test "usage errors" do
    assert {2, _, err} = repl("", ["--nope"])
    assert err =~ "usage"
    assert {2, _, err} = repl("", ["--load", "/nonexistent/file"])
    assert err =~ "cannot read"
    assert {2, _, _} = repl("", ["--timeout", "abc"])
  end
end
