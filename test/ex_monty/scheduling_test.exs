defmodule ExMonty.SchedulingTest do
  # Not async: these tests hold every worker thread on purpose.
  use ExUnit.Case, async: false

  describe "short executions on the calling scheduler" do
    test "short executions answer even while runaway code holds every worker" do
      workers = ExMonty.stats().workers
      # Warm instances to spare: executions paused at once each hold their
      # own, and all go back to the pool when they end.
      {:ok, pauses} = ExMonty.compile("f()")

      1..(workers + 8)
      |> Enum.map(fn _ -> Task.async(fn -> ExMonty.start(pauses) end) end)
      |> Enum.map(&Task.await/1)
      |> Enum.each(fn {:ok, {:function_call, _, snapshot, ""}} ->
        {:ok, {:complete, 1, ""}} = ExMonty.resume(snapshot, {:ok, 1})
      end)

      {:ok, runner} = ExMonty.compile("f() + 1")

      runaways =
        for _ <- 1..workers do
          Task.async(fn -> ExMonty.eval("while True:\n    pass", timeout: 3_000) end)
        end

      # Every worker is busy once the runaways outlive their first slice.
      Process.sleep(200)
      t0 = System.monotonic_time(:millisecond)
      assert {:ok, 42, ""} = ExMonty.eval("x * 2", inputs: %{"x" => 21})

      assert {:ok, {:function_call, %{name: "f"}, snapshot, ""}} = ExMonty.start(runner)

      assert {:ok, {:complete, 3, ""}} = ExMonty.resume(snapshot, {:ok, 2})
      # Long before the runaways' 3 s timeout: nothing above waited for a worker.
      assert System.monotonic_time(:millisecond) - t0 < 1_500

      for task <- runaways do
        assert {:error, %ExMonty.Exception{type: :timeout_error}} = Task.await(task, 10_000)
      end
    end

    @tag :linux
    test "worker threads run in Linux's idle scheduling class, below the VM's schedulers" do
      # /proc/self/task/*/stat: field 19 is the nice value, field 41 the
      # scheduling policy (5: SCHED_IDLE); fields count from the pid.
      stats =
        for stat <- Path.wildcard("/proc/self/task/*/stat"),
            {:ok, text} <- [File.read(stat)],
            [_, comm, rest] <- [Regex.run(~r/^\d+ \((.*)\) (.*)$/s, text)],
            do: {comm, String.split(rest)}

      workers = for {"ex_monty_worke" <> _, fields} <- stats, do: fields
      schedulers = for {comm, fields} <- stats, String.ends_with?(comm, "_scheduler"), do: fields

      # Threads a worker started (wasmtime's compile threads) carry its name
      # and class too.
      assert length(workers) >= ExMonty.stats().workers
      assert schedulers != []
      assert Enum.all?(workers, &(Enum.at(&1, 38) == "5" and Enum.at(&1, 16) == "19"))
      # The schedulers keep the class the VM started with (whatever nice the
      # VM was started at).
      assert Enum.all?(schedulers, &(Enum.at(&1, 38) != "5"))
    end

    test "an execution longer than its first slice carries on and answers" do
      code = "total = 0\nfor i in range(300000):\n    total += i\ntotal"
      assert {:ok, 44_999_850_000, ""} = ExMonty.eval(code)
      # With output printed before and after the hand-over.
      code = "print('a')\n" <> code <> "\nprint('b')\ntotal"
      assert {:ok, 44_999_850_000, "a\nb\n"} = ExMonty.eval(code)
    end

    test "a short execution leaves no monitor on its caller; a handed-off one is monitored" do
      {:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
      before = monitors(self())

      for i <- 1..200 do
        assert {:ok, value, ""} = ExMonty.run(runner, %{"x" => i})
        assert value == 2 * i
      end

      assert monitors(self()) == before

      # An execution that outlives its slice goes to a worker and is
      # monitored there: killing its caller cancels it.
      caller = spawn(fn -> ExMonty.eval("while True:\n    pass", timeout: 5_000) end)

      Process.sleep(100)
      assert length(monitors(caller)) > 0
      Process.exit(caller, :kill)
    end
  end

  defp monitors(pid) do
    {:monitored_by, by} = Process.info(pid, :monitored_by)
    by
  end

  describe "the caller's :timeout" do
    test "covers sleeps and what runs after them" do
      code = "import time\ntime.sleep(0.01)\nwhile True:\n    pass"

      assert {:error, %ExMonty.Exception{type: :timeout_error, message: message}} =
               ExMonty.eval(code, timeout: 300)

      # Not Monty's max_duration_secs (30 s), which is all that stopped it.
      assert message =~ "caller's timeout of 300 ms"
    end

    test "cuts a sleep that would outlast it, keeping what was printed" do
      {:ok, runner} = ExMonty.compile("import time\nprint('x')\ntime.sleep(5)\n1")

      assert {:error, %ExMonty.Exception{type: :timeout_error, output: "x\n"}} =
               ExMonty.run(runner, %{}, timeout: 200)

      {:ok, quick} = ExMonty.compile("import time\nprint('x')\ntime.sleep(0.01)\n1")
      assert {:ok, 1, "x\n"} = ExMonty.run(quick, %{}, timeout: 2_000)
    end
  end
end
