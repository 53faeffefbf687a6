defmodule ExMonty.IsolationTest do
  # Instances are reused across executions (a fresh instance costs ~100 us, a
  # warm one ~4 us), so no execution may observe another's state.
  use ExUnit.Case, async: false

  # Tests here count pooled instances. Paused executions that earlier tests'
  # processes dropped are cleared on workers and join the pool meanwhile:
  # wait for that to end, so it cannot land between a drain and a count.
  setup do
    :erlang.garbage_collect()
    assert ExMonty.TestHelpers.stats_until(&(&1.live_paused == 0))
    :ok
  end

  test "globals, functions and classes do not survive an execution" do
    assert {:ok, nil, ""} =
             ExMonty.eval("secret = 'tenant-a'\ndef helper(): return 1\nclass Thing: pass")

    for name <- ["secret", "helper", "Thing"] do
      assert {:error, %ExMonty.Exception{type: :name_error}} = ExMonty.eval(name)
    end
  end

  test "mutating a module does not leak into the next execution" do
    # Whatever Monty allows here, the next execution must see a pristine module.
    _ = ExMonty.eval("import math\nmath.pi = 3")
    assert {:ok, pi, ""} = ExMonty.eval("import math\nmath.pi")
    assert_in_delta pi, 3.14159, 0.001
  end

  test "many sequential executions on reused instances stay independent" do
    {:ok, runner} =
      ExMonty.compile("total = 0\nfor i in range(n):\n    total += i\ntotal", inputs: ["n"])

    for n <- 1..300 do
      assert {:ok, total, ""} = ExMonty.run(runner, %{"n" => n})
      assert total == div(n * (n - 1), 2)
    end

    %{workers: workers, idle_instances: idle} = ExMonty.stats()
    assert idle <= workers * 2 + 2
  end

  test "warm instances kept by many threads share one cap and are drained together" do
    # Each thread keeps the instances it checks in apart from the others (so an
    # instance stays with the core that last ran it); the cap and the count
    # still cover them all.
    short = fn -> {:ok, 4, ""} = ExMonty.eval("2 + 2") end
    # Longer than a slice: handed to a worker thread, which checks it in there.
    long = fn -> {:ok, _, ""} = ExMonty.eval("t = 0\nfor i in range(200000):\n    t += i\nt") end

    tasks =
      for i <- 1..24 do
        Task.async(fn -> for _ <- 1..10, do: if(rem(i, 4) == 0, do: long.(), else: short.()) end)
      end

    Task.await_many(tasks, 60_000)

    %{workers: workers, idle_instances: idle} = ExMonty.stats()
    assert idle >= 1
    assert idle <= workers * 2 + 2
    assert ExMonty.Native.runtime_drain() == idle
    assert ExMonty.stats().idle_instances == 0

    short.()
    assert ExMonty.stats().idle_instances == 1
  end

  test "a runner from an unsigned dump runs in instances of its own, never pooled" do
    {:ok, runner} = ExMonty.compile("x + 1", inputs: ["x"])
    {:ok, unsigned} = ExMonty.dump(runner)
    {:ok, loaded} = ExMonty.load_runner(unsigned)
    ExMonty.Native.runtime_drain()

    for _ <- 1..5 do
      assert {:ok, 2, ""} = ExMonty.run(loaded, %{"x" => 1})
    end

    # Its instances were dropped, not pooled; a trusted run pools its own.
    assert ExMonty.stats().idle_instances == 0
    assert {:ok, 2, ""} = ExMonty.run(runner, %{"x" => 1})
    assert ExMonty.stats().idle_instances == 1
  end

  test "a paused execution dropped without a resume gives back a cleared instance" do
    ExMonty.Native.runtime_drain()

    {:ok, runner} =
      ExMonty.compile("secret = 'tenant-a'\nanswer = f(n)\nsecret + str(answer)", inputs: ["n"])

    # The snapshot lives only in this process: it is dropped when the process exits.
    {pid, ref} =
      spawn_monitor(fn ->
        {:ok, {:function_call, %ExMonty.FunctionCall{name: "f"}, _snapshot, _}} =
          ExMonty.start(runner, %{"n" => 1})
      end)

    assert_receive {:DOWN, ^ref, :process, ^pid, :normal}, 5_000
    # Abandoned on a worker, its instance joins the pool instead of being unmapped.
    assert_pooled_and_cleared(["secret", "answer"])
  end

  test "a session that ends gives back a cleared instance" do
    ExMonty.Native.runtime_drain()
    {:ok, session} = ExMonty.Session.start()
    assert {:ok, nil, ""} = ExMonty.Session.eval(session, "secret = 'tenant-b'")
    :ok = ExMonty.Session.stop(session)
    assert_pooled_and_cleared(["secret"])
  end

  test "a new session starts in a pooled instance and sees nothing that ran there" do
    ExMonty.Native.runtime_drain()
    assert {:ok, nil, ""} = ExMonty.eval("secret = 'tenant-a'\ndef helper(): return 1")
    assert %{idle_instances: 1, live_instances: live} = ExMonty.stats()

    {:ok, session} = ExMonty.Session.start()
    # The session took the idle instance rather than making one. (An
    # instance an earlier test left to a worker to drop may go meanwhile:
    # the count may fall, never grow.)
    assert %{idle_instances: 0, live_instances: now} = ExMonty.stats()
    assert now <= live

    for name <- ["secret", "helper"] do
      assert {:error, %ExMonty.Exception{type: :name_error}} = ExMonty.Session.eval(session, name)
    end

    :ok = ExMonty.Session.stop(session)
  end

  test "an unsigned dump loads into a new instance, a verified one into a warm one" do
    # Dumped in a process of its own: the pause is gone with it.
    {unsigned, signed} =
      Task.await(
        Task.async(fn ->
          {:ok, runner} = ExMonty.compile("f(1) + 1")
          {:ok, {:function_call, _, paused, ""}} = ExMonty.start(runner)
          {:ok, unsigned} = ExMonty.dump_snapshot(paused, key: :unsigned)
          {:ok, signed} = ExMonty.dump_snapshot(paused, key: "node key")
          {unsigned, signed}
        end)
      )

    :erlang.garbage_collect()
    assert ExMonty.TestHelpers.stats_until(&(&1.live_paused == 0))
    ExMonty.Native.runtime_drain()
    assert {:ok, nil, ""} = ExMonty.eval("secret = 'tenant-a'")
    assert %{idle_instances: 1, live_instances: live} = ExMonty.stats()

    # Bytes anyone could have written never share an instance's memory with
    # what earlier executions left there.
    {:ok, from_anyone} = ExMonty.load_snapshot(unsigned, key: :unsigned)
    assert %{idle_instances: 1, live_instances: live_now} = ExMonty.stats()
    assert live_now == live + 1

    # A dump whose signature checks out was written by ExMonty: a warm one.
    {:ok, from_us} = ExMonty.load_snapshot(signed, key: "node key")
    assert %{idle_instances: 0, live_instances: ^live_now} = ExMonty.stats()

    for snapshot <- [from_anyone, from_us] do
      assert {:ok, {:complete, 3, ""}} = ExMonty.resume(snapshot, {:ok, 2})
    end

    # The verified one's instance went back to the pool; the other's was
    # dropped (on a worker) instead.
    assert ExMonty.TestHelpers.stats_until(
             &(&1.live_instances == live and &1.idle_instances == 1 and &1.live_paused == 0)
           )
  end

  test "what was restored from an unsigned dump stays untrusted, signed or not" do
    {:ok, runner} = ExMonty.compile("f(1) + g(2)")

    unsigned =
      Task.await(
        Task.async(fn ->
          {:ok, {:function_call, _, paused, ""}} = ExMonty.start(runner)
          {:ok, unsigned} = ExMonty.dump_snapshot(paused, key: :unsigned)
          unsigned
        end)
      )

    {:ok, {:function_call, %{name: "f"}, restored, ""}} =
      ExMonty.load_progress(unsigned, key: :unsigned)

    {:ok, {:function_call, %{name: "g"}, later, ""}} = ExMonty.resume(restored, {:ok, 1})
    # Signed now, but what it holds came from bytes nobody vouched for.
    {:ok, resigned} = ExMonty.dump_snapshot(later, key: "node key")
    assert <<"EXMONTY", 1, 2, 3, _::binary>> = resigned

    :erlang.garbage_collect()
    assert ExMonty.TestHelpers.stats_until(&(&1.live_paused <= 1))
    ExMonty.Native.runtime_drain()
    assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
    assert %{idle_instances: 1} = ExMonty.stats()

    {:ok, again} = ExMonty.load_snapshot(resigned, key: "node key")
    # Loaded into a new instance, the idle one left alone.
    assert %{idle_instances: 1} = ExMonty.stats()
    assert {:ok, {:complete, 3, ""}} = ExMonty.resume(again, {:ok, 2})
    # A signed dump of trusted state has no such mark.
    assert {:ok, trusted} = ExMonty.dump(runner, key: "node key")
    assert <<"EXMONTY", 1, 1, 1, _::binary>> = trusted
  end

  test "an instance that served a long session retires when the session ends" do
    ExMonty.Native.runtime_drain()
    {:ok, session} = ExMonty.Session.start()

    # More snippets than an instance serves executions.
    %{instance_max_uses: uses} = ExMonty.stats()
    for i <- 0..uses, do: {:ok, nil, ""} = ExMonty.Session.eval(session, "x = #{i}")

    :ok = ExMonty.Session.stop(session)
    :erlang.garbage_collect()
    assert ExMonty.TestHelpers.stats_until(&(&1.live_paused == 0))
    assert ExMonty.stats().idle_instances == 0
  end

  # Once collected, the dropped execution's instance is the one pooled instance,
  # the next execution runs in it, and none of `names` is defined there.
  defp assert_pooled_and_cleared(names) do
    :erlang.garbage_collect()
    assert ExMonty.TestHelpers.stats_until(&(&1.idle_instances == 1 and &1.live_paused == 0))
    %{live_instances: live} = ExMonty.stats()

    for name <- names do
      assert {:error, %ExMonty.Exception{type: :name_error}} = ExMonty.eval(name)
    end

    assert ExMonty.stats().live_instances == live
  end

  test "an execution that failed leaves nothing behind" do
    assert {:error, _} = ExMonty.eval("leaked = [1] * 1000\nraise RuntimeError('boom')")
    assert {:error, %ExMonty.Exception{type: :name_error}} = ExMonty.eval("leaked")
  end
end
