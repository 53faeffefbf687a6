defmodule ExMonty.ContainmentTest do
  # Cancellation, scheduling and containment. Bounds are generous: they tell a
  # blocked scheduler (seconds) from a healthy one (milliseconds), not speed.
  use ExUnit.Case, async: false

  alias ExMonty.TestHelpers

  @spin "while True:\n    pass"

  defp workers do
    %{workers: workers} = ExMonty.stats()
    workers
  end

  defp ms_since(t0), do: System.monotonic_time(:millisecond) - t0

  test "killing the caller interrupts its execution and frees the worker" do
    n = workers()

    pids =
      for _ <- 1..n do
        spawn(fn -> ExMonty.eval(@spin, limits: :unlimited) end)
      end

    Process.sleep(100)
    Enum.each(pids, &Process.exit(&1, :kill))

    # Every worker was busy with an unlimited loop; they must be free again.
    t0 = System.monotonic_time(:millisecond)
    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
    assert ms_since(t0) < 1_000
  end

  test "Task.shutdown of the caller cancels the execution" do
    task = Task.async(fn -> ExMonty.eval(@spin, limits: :unlimited) end)
    Process.sleep(50)
    assert Task.shutdown(task, :brutal_kill) == nil
    t0 = System.monotonic_time(:millisecond)
    results = for _ <- 1..workers(), do: Task.async(fn -> ExMonty.eval("2") end)
    assert Enum.all?(Task.await_many(results, 5_000), &(&1 == {:ok, 2, ""}))
    assert ms_since(t0) < 1_000
  end

  test "the :timeout option cancels and reports a timeout" do
    t0 = System.monotonic_time(:millisecond)

    assert {:error, %ExMonty.Exception{type: :timeout_error, message: msg}} =
             ExMonty.eval(@spin, limits: :unlimited, timeout: 100)

    assert msg =~ "100 ms"
    assert ms_since(t0) < 1_000
  end

  test "runaway loops on every worker, more queued: schedulers stay responsive and the queue drains" do
    {_pinger, ping} = TestHelpers.pinger()
    n = workers() * 2

    tasks =
      for _ <- 1..n do
        Task.async(fn -> ExMonty.eval(@spin, limits: %{max_duration_secs: 0.3}) end)
      end

    Process.sleep(20)
    latencies = for _ <- 1..30, do: ping.() |> tap(fn _ -> Process.sleep(5) end)

    results = Task.await_many(tasks, 30_000)
    assert Enum.all?(results, &match?({:error, %ExMonty.Exception{type: :timeout_error}}, &1))
    assert Enum.max(latencies) < 100_000
    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
  end

  test "a trap ends only its own execution; concurrent ones and the runner are unaffected" do
    {:ok, runner} = ExMonty.compile("sum(range(n))", inputs: ["n"])

    others = for n <- 1..20, do: Task.async(fn -> ExMonty.run(runner, %{"n" => n * 1000}) end)

    # Allocation limit: the guest aborts (a wasm trap) and the instance is discarded.
    assert {:error, %ExMonty.Exception{type: :memory_error}} =
             ExMonty.eval("x = [str(i) for i in range(100000)]", limits: %{max_allocations: 1000})

    for {task, n} <- Enum.zip(others, 1..20) do
      m = n * 1000
      assert Task.await(task, 10_000) == {:ok, div(m * (m - 1), 2), ""}
    end

    assert {:ok, 4950, ""} = ExMonty.run(runner, %{"n" => 100})
  end

  test "a memory bomb ends in MemoryError and the next run works" do
    assert {:error, %ExMonty.Exception{type: :memory_error}} =
             ExMonty.eval("x = b'x' * (200 * 1024 * 1024)",
               limits: %{max_memory: 16 * 1024 * 1024}
             )

    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
  end

  test "a paused execution whose caller dies is freed with its snapshot" do
    {:ok, runner} = ExMonty.compile("f()")

    for _ <- 1..50 do
      pid = spawn(fn -> {:ok, _} = ExMonty.start(runner) end)
      ref = Process.monitor(pid)
      assert_receive {:DOWN, ^ref, :process, ^pid, _}, 5_000
    end

    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
  end
end
