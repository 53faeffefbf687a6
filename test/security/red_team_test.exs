defmodule ExMonty.Security.RedTeamTest do
  # Holes found by a red-team pass, each closed at its root: paused executions
  # that were destroyed, unbounded instances, wrong results, mount serving that
  # ignored deadlines, leaked build paths, host answers that killed the
  # execution, and a precompiled cache anyone could plant code in.
  use ExUnit.Case, async: false

  @moduletag timeout: 300_000

  defp pause(code, opts \\ []) do
    {:ok, runner} = ExMonty.compile(code, inputs: Keyword.get(opts, :inputs, []))

    {:ok, {:function_call, _call, snapshot, _}} =
      ExMonty.start(runner, Keyword.get(opts, :values, %{}), Keyword.take(opts, [:limits]))

    snapshot
  end

  defp ms_since(t0), do: System.monotonic_time(:millisecond) - t0

  describe "paused executions survive everything but a resume" do
    test "dumping a heap close to max_memory neither fails nor consumes the snapshot" do
      snapshot = pause("x = 'a' * 70_000_000\nf()\nlen(x)", limits: %{max_memory: 100_000_000})

      assert {:ok, binary} = ExMonty.dump_snapshot(snapshot)
      assert byte_size(binary) > 70_000_000
      assert {:ok, {:complete, 70_000_000, ""}} = ExMonty.resume(snapshot, {:ok, nil})
    end

    test "100 concurrent dumps all succeed, and the snapshot still resumes" do
      snapshot = pause("f(1) + 1")

      results =
        1..100
        |> Task.async_stream(fn _ -> ExMonty.dump_snapshot(snapshot) end, max_concurrency: 100)
        |> Enum.map(fn {:ok, result} -> result end)

      assert Enum.all?(results, &match?({:ok, _}, &1))
      assert results |> Enum.map(&elem(&1, 1)) |> Enum.uniq() |> length() == 1
      assert {:ok, {:complete, 42, ""}} = ExMonty.resume(snapshot, {:ok, 41})
    end

    test "a resume racing dumps goes through; only it consumes" do
      snapshot = pause("f(1) + 1")
      dumps = for _ <- 1..20, do: Task.async(fn -> ExMonty.dump_snapshot(snapshot) end)
      resume = Task.async(fn -> ExMonty.resume(snapshot, {:ok, 1}) end)
      assert {:ok, {:complete, 2, ""}} = Task.await(resume)

      for task <- dumps do
        case Task.await(task) do
          {:ok, _} -> :ok
          {:error, %ExMonty.Exception{type: :snapshot_consumed}} -> :ok
        end
      end

      assert {:error, %ExMonty.Exception{type: :snapshot_consumed}} =
               ExMonty.resume(snapshot, {:ok, 1})
    end

    test "dumps waiting for a long resume do not hold the workers it needs" do
      # The resume outlives its first slice on the caller's scheduler and
      # continues on a worker while it has the execution; dumps queued
      # meanwhile wait their turn without holding a worker.
      snapshot = pause("x = f()\nfor i in range(2000000):\n    pass\nx + 1")
      resume = Task.async(fn -> ExMonty.resume(snapshot, {:ok, 1}) end)
      dumps = for _ <- 1..20, do: Task.async(fn -> ExMonty.dump_snapshot(snapshot) end)
      assert {:ok, {:complete, 2, ""}} = Task.await(resume, 30_000)

      for task <- dumps do
        case Task.await(task, 30_000) do
          {:ok, _} -> :ok
          {:error, %ExMonty.Exception{type: :snapshot_consumed}} -> :ok
        end
      end
    end

    test "a dump whose caller dies while it is queued leaves the snapshot intact" do
      snapshot = pause("f(1) + 1")
      %{workers: workers} = ExMonty.stats()

      busy =
        for _ <- 1..workers do
          Task.async(fn ->
            ExMonty.eval("while True:\n    pass", limits: %{max_duration_secs: 0.5})
          end)
        end

      Process.sleep(50)
      dumper = spawn(fn -> ExMonty.dump_snapshot(snapshot) end)
      Process.sleep(10)
      Process.exit(dumper, :kill)
      Enum.each(busy, &Task.await(&1, 10_000))
      assert {:ok, {:complete, 42, ""}} = ExMonty.resume(snapshot, {:ok, 41})
    end

    test "an unknown or repeated future id is refused without consuming the execution" do
      code =
        "import asyncio\nasync def main():\n    return await asyncio.gather(f(1), f(2))\nasyncio.run(main())"

      {:ok, runner} = ExMonty.compile(code)
      {:ok, {:function_call, c1, s1, _}} = ExMonty.start(runner)
      {:ok, {:function_call, c2, s2, _}} = ExMonty.resume(s1, :pending)
      {:ok, {:resolve_futures, ids, s3, _}} = ExMonty.resume(s2, :pending)
      assert Enum.sort(ids) == Enum.sort([c1.call_id, c2.call_id])

      assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
               ExMonty.resume_futures(s3, %{9_999 => {:ok, 0}})

      assert message =~ "9999"

      assert {:error, %ExMonty.Exception{type: :invalid_input}} =
               ExMonty.resume_futures(s3, [{c1.call_id, {:ok, 1}}, {c1.call_id, {:ok, 1}}])

      assert {:ok, {:complete, [10, 20], ""}} =
               ExMonty.resume_futures(s3, %{c1.call_id => {:ok, 10}, c2.call_id => {:ok, 20}})
    end

    test "an answer a pause does not accept leaves it paused" do
      {:ok, runner} = ExMonty.compile("x = y\nx")
      {:ok, {:name_lookup, "y", snapshot, _}} = ExMonty.start(runner)

      assert {:error, %ExMonty.Exception{type: :invalid_input}} = ExMonty.resume(snapshot, :pending)

      assert {:ok, {:complete, 5, ""}} = ExMonty.resume(snapshot, {:ok, 5})
    end
  end

  describe "paused executions do not pin an instance each" do
    test "beyond max_live_paused, pauses hibernate and resume with the same results" do
      n = 400
      code = "x = f(n)\nprint('got', x)\ny = g(x)\nx + y + n"

      snapshots =
        for i <- 1..n do
          pause(code, inputs: ["n"], values: %{"n" => i}, limits: %{max_suspensions: 2})
        end

      assert ExMonty.TestHelpers.live_paused_within(256) <= 256
      assert ExMonty.stats().live_instances < 300

      for {snapshot, i} <- Enum.with_index(snapshots, 1) do
        assert {:ok, {:function_call, %{name: "g", args: [x]}, next, "got " <> _}} =
                 ExMonty.resume(snapshot, {:ok, i * 10})

        assert x == i * 10
        assert {:ok, {:complete, total, ""}} = ExMonty.resume(next, {:ok, 1})
        assert total == i * 10 + 1 + i
      end
    end

    test "a hibernated execution keeps the suspensions it already spent" do
      # Fill the live slots so the next pauses hibernate.
      held = for _ <- 1..260, do: pause("f()")
      snapshot = pause("a = f()\nb = f()\nc = f()\n(a, b, c)", limits: %{max_suspensions: 2})
      assert ExMonty.TestHelpers.live_paused_within(256) <= 256

      {:ok, {:function_call, _, s2, _}} = ExMonty.resume(snapshot, {:ok, 1})
      {:ok, {:function_call, _, s3, _}} = ExMonty.resume(s2, {:ok, 2})

      assert {:error, %ExMonty.Exception{type: :runtime_error, message: message}} =
               ExMonty.resume(s3, {:ok, 3})

      assert message =~ "suspension limit"
      # The held ones still work.
      assert {:ok, {:complete, 7, ""}} = ExMonty.resume(hd(held), {:ok, 7})
    end

    test "past the live cap, a session answers every snippet while it is put to sleep" do
      # Each snippet's end puts the session to sleep on a worker (more pauses
      # than the cap hold an instance); the next snippet waits for that
      # instead of being refused as busy (one in six was, before).
      held = for _ <- 1..300, do: pause("f()")
      assert ExMonty.TestHelpers.live_paused_within(256) <= 256
      {:ok, session} = ExMonty.Session.start_link()

      for i <- 1..150 do
        assert {:ok, ^i, ""} = ExMonty.Session.eval(session, "x = #{i}\nx")
      end

      assert {:ok, 150, ""} = ExMonty.Session.eval(session, "x")
      assert {:ok, {:complete, 7, ""}} = ExMonty.resume(hd(held), {:ok, 7})
    end

    test "a hibernated execution keeps the allocations it already counted" do
      held = for _ <- 1..260, do: pause("f()")
      # Each part makes about 2 100 allocations: two fit in 5 000, three do not.
      part = "[str(i) for i in range(2000)]"
      code = "f()\na = #{part}\nf()\nb = #{part}\nf()\nc = #{part}\nlen(a) + len(b) + len(c)"

      run = fn max_allocations ->
        snapshot = pause(code, limits: %{max_allocations: max_allocations})

        Enum.reduce_while(1..3, snapshot, fn _, snapshot ->
          # The pause is put to sleep as its dump bytes before it is resumed.
          assert ExMonty.TestHelpers.live_paused_within(256) <= 256

          case ExMonty.resume(snapshot, {:ok, nil}) do
            {:ok, {:function_call, %{name: "f"}, next, ""}} -> {:cont, next}
            other -> {:halt, other}
          end
        end)
      end

      assert {:error, %ExMonty.Exception{type: :memory_error}} = run.(5_000)
      assert {:ok, {:complete, 6000, ""}} = run.(20_000)
      assert {:ok, {:complete, 7, ""}} = ExMonty.resume(hd(held), {:ok, 7})
    end
  end

  describe "results are right or refused" do
    test "an int larger than the BEAM's largest is refused, not returned as garbage" do
      assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
               ExMonty.eval("1 << 33554432")

      assert message =~ "bits"
      assert {:ok, n, ""} = ExMonty.eval("1 << 1000000")
      assert n == Bitwise.bsl(1, 1_000_000)
    end

    test "a set of distinct values that are equal terms is refused, not collapsed" do
      code = "class C:\n    pass\n{C(), C()}"
      assert {:error, %ExMonty.Exception{message: message}} = ExMonty.eval(code)
      assert message =~ "set"
      assert {:ok, %MapSet{} = set, ""} = ExMonty.eval("{1, 2, 3}")
      assert MapSet.size(set) == 3
    end

    test "invalid dates, times and decimals are refused with their path" do
      bad = [
        %Date{year: 2024, month: 2, day: 30},
        %{~D[2024-01-01] | month: 13},
        %{~D[2024-01-01] | month: 257},
        %{~T[10:00:00] | hour: 268},
        %{~T[10:00:00] | hour: 25},
        {:decimal, "12abc"},
        {:decimal, ""}
      ]

      for value <- bad do
        assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
                 ExMonty.eval("x", inputs: %{"x" => [1, value]})

        assert message =~ ~s(inputs["x"][1]), message
      end

      for good <- ["1", "-1.20", ".5", "1e-3", "NaN", "-Infinity", "5."] do
        assert {:ok, {:decimal, _}, ""} = ExMonty.eval("x", inputs: %{"x" => {:decimal, good}})
      end

      assert {:ok, ~D[2024-02-29], ""} = ExMonty.eval("x", inputs: %{"x" => ~D[2024-02-29]})
    end
  end

  describe "host answers" do
    test "an answer too large for max_memory raises a catchable MemoryError" do
      code = "try:\n    x = f()\n    r = len(x)\nexcept MemoryError:\n    r = 'too big'\nr"

      for size <- [150_000_000, 120_000_000] do
        snapshot = pause(code)
        big = :binary.copy("a", size)
        assert {:ok, {:complete, "too big", ""}} = ExMonty.resume(snapshot, {:ok, big})
      end

      snapshot = pause(code)
      assert {:ok, {:complete, 1000, ""}} = ExMonty.resume(snapshot, {:ok, :binary.copy("a", 1000)})
    end

    test "a step returning more than 128 MiB (wasmtime's default per call) succeeds" do
      assert {:ok, 140_000_000, ""} =
               ExMonty.eval("len('a' * 140_000_000)", limits: %{max_memory: 600_000_000})

      assert {:ok, s, ""} = ExMonty.eval("'a' * 140_000_000", limits: %{max_memory: 600_000_000})

      assert byte_size(s) == 140_000_000
    end
  end

  describe "class objects" do
    test "a class exported before its instances comes back (it crashed the export)" do
      code = "class K:\n    pass\n[K, K(), {K: 1}, (K(), K)]"

      assert {:ok,
              [{:class, "K"}, {:instance, "K", %{}}, %{{:class, "K"} => 1}, {_, {:class, "K"}}],
              ""} = ExMonty.eval(code)

      dataclass =
        "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n{'cls': P, 'obj': P(1)}"

      assert {:ok, %{"cls" => {:class, "P"}, "obj" => %ExMonty.Dataclass{name: "P"}}, ""} =
               ExMonty.eval(dataclass)

      # Also as the argument of a host call.
      {:ok, runner} = ExMonty.compile("class K:\n    pass\nf(K, K())")

      assert {:ok, {:function_call, %{args: [{:class, "K"}, {:instance, "K", %{}}]}, _, _}} =
               ExMonty.start(runner)
    end
  end

  describe "mounts" do
    setup do
      root = Path.join(System.tmp_dir!(), "ex_monty_walk_#{System.unique_integer([:positive])}")
      File.mkdir_p!(Path.join(root, "a/b"))
      for i <- 1..20, do: File.write!(Path.join(root, "a/f#{i}"), "x")
      File.ln_s!(".", Path.join(root, "a/loop"))
      File.ln_s!("..", Path.join(root, "a/b/up"))
      on_exit(fn -> File.rm_rf!(root) end)
      {:ok, mount} = ExMonty.Mount.new([{"/data", root, :read_only}])
      %{mount: mount}
    end

    # Each walk follows the loops until the mount's scan budget stops it.
    @walks """
    import os
    n = 0
    for i in range(200):
        try:
            for top, dirs, files in os.walk('/data', followlinks=True):
                n += len(files)
        except MemoryError:
            n += 1
    n
    """

    test "serving stops at the execution's deadline", %{mount: mount} do
      t0 = System.monotonic_time(:millisecond)

      result = ExMonty.Sandbox.run(@walks, mounts: mount, limits: %{max_duration_secs: 1})

      assert {:error, %ExMonty.Exception{type: :timeout_error}} = result
      assert ms_since(t0) < 5_000
    end

    test "a killed caller frees the worker serving its mount", %{mount: mount} do
      %{workers: workers} = ExMonty.stats()

      pids =
        for _ <- 1..workers do
          spawn(fn -> ExMonty.Sandbox.run(@walks, mounts: mount, limits: :unlimited) end)
        end

      Process.sleep(300)
      Enum.each(pids, &Process.exit(&1, :kill))
      t0 = System.monotonic_time(:millisecond)
      assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
      assert ms_since(t0) < 3_000
    end
  end

  describe "the precompiled cache" do
    defp start_peer(cache_dir) do
      {:ok, peer, _node} = :peer.start_link(%{connection: :standard_io, wait_boot: 60_000})
      :ok = :peer.call(peer, :code, :add_pathsa, [:code.get_path()], 60_000)
      :ok = :peer.call(peer, Application, :put_env, [:ex_monty, :cache_dir, cache_dir], 60_000)
      {:ok, _} = :peer.call(peer, Application, :ensure_all_started, [:ex_monty], 60_000)
      peer
    end

    defp loaded_from(peer) do
      :peer.call(peer, Application, :get_env, [:ex_monty, :guest_loaded_from], 60_000)
    end

    test "is written privately, and loaded only when nobody else can write it" do
      dir = Path.join(System.tmp_dir!(), "ex_monty_cache_#{System.unique_integer([:positive])}")
      on_exit(fn -> File.rm_rf!(dir) end)

      peer = start_peer(dir)
      assert loaded_from(peer) == "compiled"
      assert {:ok, 2, ""} = :peer.call(peer, ExMonty, :eval, ["1 + 1"], 60_000)
      :peer.stop(peer)

      assert %File.Stat{mode: dir_mode} = File.stat!(dir)
      assert Bitwise.band(dir_mode, 0o077) == 0
      [file] = File.ls!(dir) |> Enum.filter(&String.ends_with?(&1, ".cwasm"))
      path = Path.join(dir, file)
      assert Bitwise.band(File.stat!(path).mode, 0o077) == 0

      peer = start_peer(dir)
      assert loaded_from(peer) == "cache"
      :peer.stop(peer)

      # Someone else could have replaced the artifact: not loaded.
      File.chmod!(path, 0o666)
      peer = start_peer(dir)
      refute loaded_from(peer) == "cache"
      assert {:ok, 2, ""} = :peer.call(peer, ExMonty, :eval, ["1 + 1"], 60_000)
      :peer.stop(peer)

      # A directory others can write is not used at all.
      File.chmod!(dir, 0o777)
      peer = start_peer(dir)
      assert loaded_from(peer) =~ "not trusted"
      assert {:ok, 2, ""} = :peer.call(peer, ExMonty, :eval, ["1 + 1"], 60_000)
      :peer.stop(peer)
    end
  end
end
