defmodule ExMonty.InteractiveTest do
  use ExUnit.Case, async: true

  alias ExMonty.{FunctionCall, OsCall, Snapshot}

  defp start!(code, opts \\ []) do
    {:ok, runner} = ExMonty.compile(code, opts)
    {:ok, progress} = ExMonty.start(runner)
    progress
  end

  describe "spec: low-level API" do
    test "function call pause and resume" do
      {:ok, runner} = ExMonty.compile("result = fetch(url)\nresult", inputs: ["url"])
      {:ok, progress} = ExMonty.start(runner, %{"url" => "https://example.com"})

      assert {:function_call, %FunctionCall{name: "fetch", args: ["https://example.com"]} = call,
              snapshot, ""} = progress

      assert call.kwargs == %{}
      assert is_integer(call.call_id)
      assert {:ok, {:complete, "body", ""}} = ExMonty.resume(snapshot, {:ok, "body"})
    end

    test "keyword arguments arrive as a map" do
      assert {:function_call, %FunctionCall{args: [1], kwargs: %{"retries" => 3}}, _, ""} =
               start!("fetch(1, retries=3)")
    end

    test "name lookup answered with a host function" do
      assert {:name_lookup, "tool", snapshot, ""} = start!("f = tool\nf(2)")

      assert {:ok, {:function_call, %FunctionCall{name: "tool", args: [2]}, snapshot, ""}} =
               ExMonty.resume(snapshot, {:ok, {:function, "tool"}})

      assert {:ok, {:complete, 4, ""}} = ExMonty.resume(snapshot, {:ok, 4})
    end

    test "name lookup answered with a value, and :undefined raises NameError" do
      assert {:name_lookup, "config", snapshot, ""} = start!("x = config\nx['a']")
      assert {:ok, {:complete, 1, ""}} = ExMonty.resume(snapshot, {:ok, %{"a" => 1}})

      assert {:name_lookup, "config", snapshot, ""} = start!("x = config")
      assert {:error, %ExMonty.Exception{type: :name_error}} = ExMonty.resume(snapshot, :undefined)
    end

    test "os call" do
      assert {:os_call, %OsCall{function: :read_text, args: [{:path, "/some/file"}]}, snapshot, ""} =
               start!("from pathlib import Path\nPath('/some/file').read_text()")

      assert {:ok, {:complete, "content", ""}} = ExMonty.resume(snapshot, {:ok, "content"})
    end

    test "output is delivered per step and never lost" do
      code = "print('a')\nx = f()\nprint('b', x)\ny = g()\nprint('c', y)\n'done'"
      assert {:function_call, %{name: "f"}, s1, "a\n"} = start!(code)
      assert {:ok, {:function_call, %{name: "g"}, s2, "b 1\n"}} = ExMonty.resume(s1, {:ok, 1})
      assert {:ok, {:complete, "done", "c 2\n"}} = ExMonty.resume(s2, {:ok, 2})
    end
  end

  describe "errors raised by the host" do
    test "are raised in Python and catchable" do
      code = "try:\n    fetch()\nexcept KeyError as e:\n    r = 'caught ' + str(e)\nr"
      assert {:function_call, _, snapshot, ""} = start!(code)

      assert {:ok, {:complete, "caught 'missing'", ""}} =
               ExMonty.resume(snapshot, {:error, :key_error, "missing"})
    end

    test "uncaught, they come back as the exception" do
      assert {:function_call, _, snapshot, ""} = start!("fetch()")

      assert {:error, %ExMonty.Exception{type: :file_not_found_error, message: "nope"}} =
               ExMonty.resume(snapshot, {:error, :file_not_found_error, "nope"})
    end

    test "an unknown exception type is refused without consuming the snapshot" do
      assert {:function_call, _, snapshot, ""} = start!("fetch()")

      assert {:error, %ExMonty.Exception{type: :invalid_input}} =
               ExMonty.resume(snapshot, {:error, :not_a_python_error, "x"})

      assert {:ok, {:complete, 1, ""}} = ExMonty.resume(snapshot, {:ok, 1})
    end
  end

  describe "snapshots are used once" do
    test "resuming twice is an error" do
      assert {:function_call, _, snapshot, ""} = start!("f()")
      assert {:ok, {:complete, 1, ""}} = ExMonty.resume(snapshot, {:ok, 1})

      assert {:error, %ExMonty.Exception{type: :snapshot_consumed}} =
               ExMonty.resume(snapshot, {:ok, 1})
    end

    test "two processes racing: exactly one wins" do
      for _ <- 1..20 do
        assert {:function_call, _, snapshot, ""} = start!("f() * 2")

        results =
          1..2
          |> Enum.map(fn n -> Task.async(fn -> ExMonty.resume(snapshot, {:ok, n}) end) end)
          |> Enum.map(&Task.await/1)

        assert Enum.count(results, &match?({:ok, {:complete, _, _}}, &1)) == 1
        assert Enum.count(results, &match?({:error, %{type: :snapshot_consumed}}, &1)) == 1
      end
    end

    test "a bad answer is reported without consuming the snapshot" do
      assert {:function_call, _, snapshot, ""} = start!("f()")

      assert {:error, %ExMonty.Exception{type: :invalid_input, message: msg}} =
               ExMonty.resume(snapshot, {:ok, [1, self()]})

      assert msg =~ "result[1]"
      assert {:error, %ExMonty.Exception{type: :invalid_input}} = ExMonty.resume(snapshot, :bogus)
      assert {:ok, {:complete, 3, ""}} = ExMonty.resume(snapshot, {:ok, 3})
    end

    test "a dropped snapshot frees its sandbox" do
      for _ <- 1..200 do
        assert {:function_call, _, %Snapshot{}, ""} = start!("f()")
      end

      :erlang.garbage_collect()
      assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
    end
  end

  describe "async futures" do
    @gather """
    import asyncio
    async def main():
        a, b = await asyncio.gather(fetch('a'), fetch('b'))
        return a + b
    asyncio.run(main())
    """

    test "pending calls are resolved together" do
      assert {:function_call, %{name: "fetch", args: ["a"], call_id: id_a}, s, ""} = start!(@gather)

      assert {:ok, {:function_call, %{args: ["b"], call_id: id_b}, s, ""}} =
               ExMonty.resume(s, :pending)

      assert {:ok, {:resolve_futures, ids, s, ""}} = ExMonty.resume(s, :pending)
      assert Enum.sort(ids) == Enum.sort([id_a, id_b])

      assert {:ok, {:complete, "AB", ""}} =
               ExMonty.resume_futures(s, %{id_a => {:ok, "A"}, id_b => {:ok, "B"}})
    end

    test "futures can be resolved a few at a time, and with errors" do
      assert {:function_call, %{call_id: id_a}, s, ""} = start!(@gather)
      assert {:ok, {:function_call, %{call_id: id_b}, s, ""}} = ExMonty.resume(s, :pending)
      assert {:ok, {:resolve_futures, _, s, ""}} = ExMonty.resume(s, :pending)

      assert {:ok, {:resolve_futures, [^id_b], s, ""}} =
               ExMonty.resume_futures(s, [{id_a, {:ok, "A"}}])

      assert {:error, %ExMonty.Exception{type: :value_error, message: "down"}} =
               ExMonty.resume_futures(s, [{id_b, {:error, :value_error, "down"}}])
    end

    test "resume on a futures pause (and vice versa) is refused" do
      assert {:function_call, _, s, ""} = start!(@gather)
      assert {:error, %{type: :invalid_input}} = ExMonty.resume_futures(s, [{0, {:ok, 1}}])
      assert {:ok, {:function_call, _, s, ""}} = ExMonty.resume(s, :pending)
      assert {:ok, {:resolve_futures, _, s, ""}} = ExMonty.resume(s, :pending)
      assert {:error, %{type: :invalid_input}} = ExMonty.resume(s, {:ok, 1})
    end
  end

  describe "limits across steps" do
    test "max_suspensions bounds host round trips" do
      {:ok, runner} = ExMonty.compile("for i in range(100):\n    f()")
      {:ok, progress} = ExMonty.start(runner, %{}, limits: %{max_suspensions: 5})

      result =
        Enum.reduce_while(1..100, progress, fn _, {:function_call, _, s, _} ->
          case ExMonty.resume(s, {:ok, nil}) do
            {:ok, {:function_call, _, _, _} = next} -> {:cont, next}
            other -> {:halt, other}
          end
        end)

      assert {:error, %ExMonty.Exception{type: :runtime_error, message: msg}} = result
      assert msg =~ "suspension limit"
    end
  end
end
