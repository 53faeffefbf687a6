defmodule ExMonty.SerializationTest do
  use ExUnit.Case, async: true

  import Bitwise

  describe "spec: Serialization" do
    test "runner dump and load" do
      {:ok, runner} = ExMonty.compile("x + 1", inputs: ["x"])
      {:ok, binary} = ExMonty.dump(runner)
      {:ok, restored} = ExMonty.load_runner(binary)
      assert {:ok, 2, ""} = ExMonty.run(restored, %{"x" => 1})
      assert restored.input_names == ["x"]
    end

    test "snapshot dump and load, resumed in another process" do
      {:ok, runner_with_ext_fns} = ExMonty.compile("a = 10\nb = fetch(a)\na + b")
      {:ok, {:function_call, _call, snapshot, _}} = ExMonty.start(runner_with_ext_fns)
      {:ok, snap_binary} = ExMonty.dump_snapshot(snapshot)

      task =
        Task.async(fn ->
          {:ok, restored_snap} = ExMonty.load_snapshot(snap_binary)
          ExMonty.resume(restored_snap, {:ok, 5})
        end)

      assert {:ok, {:complete, 15, _}} = Task.await(task)
      # The original snapshot is still usable, and gives the same result.
      assert {:ok, {:complete, 15, _}} = ExMonty.resume(snapshot, {:ok, 5})
    end

    test "load_progress returns what the snapshot waits for" do
      {:ok, runner} = ExMonty.compile("x = lookup_me\nx")
      {:ok, {:name_lookup, "lookup_me", snapshot, _}} = ExMonty.start(runner)
      {:ok, binary} = ExMonty.dump_snapshot(snapshot)
      assert {:ok, {:name_lookup, "lookup_me", restored, ""}} = ExMonty.load_progress(binary)
      assert {:ok, {:complete, 7, ""}} = ExMonty.resume(restored, {:ok, 7})
    end

    test "snapshots at each kind of pause survive dump and load" do
      cases = [
        {"f(1) + 1", {:ok, 1}, 2},
        {"from pathlib import Path\nPath('/a').read_text()", {:ok, "txt"}, "txt"},
        {"v = undefined_name\nv", {:ok, 9}, 9}
      ]

      for {code, answer, expected} <- cases do
        {:ok, runner} = ExMonty.compile(code)
        {:ok, {_kind, _call, snapshot, _}} = ExMonty.start(runner)
        {:ok, binary} = ExMonty.dump_snapshot(snapshot)
        {:ok, restored} = ExMonty.load_snapshot(binary)
        assert {:ok, {:complete, ^expected, _}} = ExMonty.resume(restored, answer)
      end
    end
  end

  describe "hostile binaries" do
    test "wrong kind, version, truncation and garbage are refused" do
      {:ok, runner} = ExMonty.compile("1")
      {:ok, dump} = ExMonty.dump(runner)

      assert {:error, %{type: :invalid_input, message: m}} = ExMonty.load_snapshot(dump)
      assert m =~ "runner"
      <<"EXMONTY", _v, rest::binary>> = dump
      assert {:error, %{message: m}} = ExMonty.load_runner(<<"EXMONTY", 99, rest::binary>>)
      assert m =~ "version 99"
      assert {:error, %{type: :invalid_input}} = ExMonty.load_runner(binary_part(dump, 0, 20))
      assert {:error, %{type: :invalid_input}} = ExMonty.load_runner("garbage")

      assert {:error, %{type: :invalid_input}} =
               ExMonty.load_runner(:crypto.strong_rand_bytes(4096))

      assert {:error, %{type: :invalid_input}} = ExMonty.load_snapshot(<<>>)
      assert {:error, %{type: :invalid_input}} = ExMonty.load_runner(123)
    end

    test "fuzz: thousands of mutated dumps never crash the VM" do
      {:ok, runner} = ExMonty.compile("def f(x):\n    return [x, {'k': x * 2}]\nf(fetch(3))")
      {:ok, runner_dump} = ExMonty.dump(runner)
      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner)
      {:ok, snapshot_dump} = ExMonty.dump_snapshot(snapshot)
      :rand.seed(:exsss, {1, 2, 3})

      outcomes =
        for i <- 1..1500 do
          {kind, original} =
            if rem(i, 2) == 0, do: {:runner, runner_dump}, else: {:snapshot, snapshot_dump}

          mutated = mutate(original)

          result =
            case kind do
              :runner ->
                with {:ok, r} <- ExMonty.load_runner(mutated),
                     do: ExMonty.run(r, %{}, limits: %{max_duration_secs: 2})

              :snapshot ->
                with {:ok, s} <- ExMonty.load_snapshot(mutated, limits: %{max_duration_secs: 2}),
                     do: ExMonty.resume(s, {:ok, 1})
            end

          case result do
            {:ok, _} -> :ok
            {:ok, _, _} -> :ok
            {:error, %ExMonty.Exception{}} -> :error
          end
        end

      assert length(outcomes) == 1500
      assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
    end
  end

  describe "signed dumps" do
    test "a signed dump loads with its key only" do
      {:ok, runner} = ExMonty.compile("41 + 1")
      {:ok, signed} = ExMonty.dump(runner, key: "k1")
      assert {:ok, restored} = ExMonty.load_runner(signed, key: "k1")
      assert {:ok, 42, ""} = ExMonty.run(restored)
      assert {:error, %{message: m}} = ExMonty.load_runner(signed, key: "other")
      assert m =~ "signature"
      assert {:error, %{message: m}} = ExMonty.load_runner(signed)
      assert m =~ "no signing key"
    end

    test "with a key, tampered and unsigned dumps are refused before decoding" do
      {:ok, runner} = ExMonty.compile("1")
      {:ok, signed} = ExMonty.dump(runner, key: "k")
      {:ok, unsigned} = ExMonty.dump(runner)
      size = byte_size(signed)
      <<head::binary-size(20), b, tail::binary>> = signed
      tampered = <<head::binary, Bitwise.bxor(b, 1), tail::binary>>
      assert byte_size(tampered) == size
      assert {:error, %{message: m}} = ExMonty.load_runner(tampered, key: "k")
      assert m =~ "signature"
      assert {:error, %{message: m}} = ExMonty.load_runner(unsigned, key: "k")
      assert m =~ "not signed"
    end

    test "snapshots are signed too" do
      {:ok, runner} = ExMonty.compile("f()")
      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner)
      {:ok, signed} = ExMonty.dump_snapshot(snapshot, key: "s")
      assert {:ok, restored} = ExMonty.load_snapshot(signed, key: "s")
      assert {:ok, {:complete, :ellipsis, ""}} = ExMonty.resume(restored, {:ok, :ellipsis})
    end

    test "a runner from an unsigned dump stays untrusted: signing its dump again does not clear it" do
      {:ok, runner} = ExMonty.compile("x + 1", inputs: ["x"])
      refute runner.untrusted
      {:ok, unsigned} = ExMonty.dump(runner)
      {:ok, loaded} = ExMonty.load_runner(unsigned)
      assert loaded.untrusted
      assert {:ok, 2, ""} = ExMonty.run(loaded, %{"x" => 1})
      assert {:ok, {:complete, 3, ""}} = ExMonty.start(loaded, %{"x" => 2})

      {:ok, resigned} = ExMonty.dump(loaded, key: "k")
      {:ok, again} = ExMonty.load_runner(resigned, key: "k")
      assert again.untrusted

      {:ok, signed} = ExMonty.dump(runner, key: "k")
      {:ok, trusted} = ExMonty.load_runner(signed, key: "k")
      refute trusted.untrusted
    end
  end

  defp mutate(binary) do
    case :rand.uniform(5) do
      1 ->
        # flip one bit, after the header so the payload decoder is exercised
        pos = 10 + :rand.uniform(max(byte_size(binary) - 11, 1)) - 1
        <<head::binary-size(pos), b, tail::binary>> = binary
        <<head::binary, Bitwise.bxor(b, 1 <<< (:rand.uniform(8) - 1)), tail::binary>>

      2 ->
        binary_part(binary, 0, :rand.uniform(byte_size(binary)) - 1)

      3 ->
        pos = 10 + :rand.uniform(max(byte_size(binary) - 11, 1)) - 1
        <<head::binary-size(pos), _::binary-size(1), tail::binary>> = binary
        <<head::binary, :rand.uniform(256) - 1, tail::binary>>

      4 ->
        <<head::binary-size(10), _::binary>> = binary
        head <> :crypto.strong_rand_bytes(:rand.uniform(200))

      5 ->
        pos = 10 + :rand.uniform(max(byte_size(binary) - 11, 1)) - 1
        <<head::binary-size(pos), tail::binary>> = binary
        head <> :crypto.strong_rand_bytes(:rand.uniform(16)) <> tail
    end
  end
end
