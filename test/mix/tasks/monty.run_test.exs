defmodule Mix.Tasks.Monty.RunTest do
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO

  alias Mix.Tasks.Monty.Run

  # Runs the task's main/1 and returns {status, stdout, stderr}.
  defp run_task(args) do
    parent = self()

    stderr =
      capture_io(:stderr, fn ->
        stdout = capture_io(fn -> send(parent, {:status, Run.main(args)}) end)
        send(parent, {:stdout, stdout})
      end)

    assert_received {:status, status}
    assert_received {:stdout, stdout}
    {status, stdout, stderr}
  end

  test "prints the output and the result's Python repr, exit 0" do
    assert {0, "hi\n[1, 'a', None, (2,)]\n", ""} =
             run_task(["-e", "print('hi')\n[1, 'a', None, (2,)]"])

    assert {0, "", ""} = run_task(["-e", "None"])
  end

  test "a Python exception: output on stdout first, traceback on stderr, exit 1" do
    # (A sleep makes the error a later step than the print: what earlier
    # steps printed is kept by ExMonty itself.)
    code = "print('before')\nimport time\ntime.sleep(0.01)\nf()"
    assert {1, "before\n", stderr} = run_task(["-e", code])
    assert stderr =~ "NameError: name 'f' is not defined"
  end

  test "runs a file" do
    path = Path.join(System.tmp_dir!(), "monty_run_#{System.unique_integer([:positive])}.py")
    File.write!(path, "x = 20\nprint(x)\n{'k': x + 1.5}")
    on_exit(fn -> File.rm(path) end)
    assert {0, "20\n{'k': 21.5}\n", ""} = run_task([path])
  end

  test "a missing file is a usage error on stderr, exit 2" do
    assert {2, "", stderr} = run_task(["/no/such/file.py"])
    assert stderr == "mix monty.run: cannot read /no/such/file.py: no such file or directory\n"
  end

  test "unknown flags, bad values and extra arguments: usage on stderr, exit 2" do
    for args <- [
          ["--nope", "-e", "1"],
          ["--timeout", "abc", "-e", "1"],
          ["--max-memory", "1.5", "-e", "1"],
          ["--timeout", "-1", "-e", "1"],
          ["a.py", "b.py"],
          ["-e", "1", "extra"],
          []
        ] do
      assert {2, "", stderr} = run_task(args), inspect(args)
      assert stderr =~ "usage: mix monty.run", inspect(args)
    end
  end

  test "--help prints the usage on stdout, exit 0" do
    assert {0, "usage: mix monty.run" <> _, ""} = run_task(["--help"])
  end

  test "limits are applied" do
    assert {1, "", stderr} = run_task(["--timeout", "0.2", "-e", "while True:\n    pass"])
    assert stderr =~ "TimeoutError"
  end

  @tag timeout: 180_000
  test "as a command: stdout carries only the program's output, exit codes are meaningful" do
    # stderr is discarded: only stdout is compared.
    mix = fn args ->
      System.cmd("sh", ["-c", "mix monty.run \"$@\" 2>/dev/null", "sh" | args],
        env: [{"MIX_ENV", "test"}]
      )
    end

    # A stale source makes mix recompile first: its notices stay off stdout.
    File.touch!(Path.expand("../../../lib/ex_monty/repr.ex", __DIR__))
    assert {"'a'\n", 0} = mix.(["-e", "'a'"])
    assert {"x\n", 1} = mix.(["-e", "print('x')\nimport time\ntime.sleep(0.01)\n1/0"])
    assert {"", 2} = mix.(["--timeout", "abc", "-e", "1"])
    assert {"", 2} = mix.(["/no/such/file.py"])
  end
end
