defmodule ExMonty.LiveOutputTest do
  use ExUnit.Case, async: true

  # Prints, then computes for a while without printing or calling the host.
  @slow """
  print('started')
  n = 0
  for i in range(3_000_000):
      n += i
  print('done')
  n
  """

  defp ms, do: System.monotonic_time(:millisecond)

  test "a chunk arrives while the step that printed it still runs" do
    test = self()
    on_output = fn stream, text -> send(test, {:chunk, ms(), stream, text}) end
    {:ok, _n, "started\ndone\n"} = ExMonty.eval(@slow, on_output: on_output)
    finished = ms()

    assert_received {:chunk, first_at, :stdout, "started\n"}
    assert_received {:chunk, _, :stdout, "done\n"}
    # The first line came long before the step ended.
    assert finished - first_at >= 50
  end

  test "stdout and stderr are kept apart; the final output has both" do
    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\nprint('out again')"
    {:ok, nil, output} = ExMonty.eval(code, on_output: self())
    assert output == "out\nerr\nout again\n"
    assert_received {:ex_monty_output, :stdout, "out\n"}
    assert_received {:ex_monty_output, :stderr, "err\n"}
    assert_received {:ex_monty_output, :stdout, "out again\n"}
  end

  test "streams through Sandbox callbacks and session snippets, in order" do
    test = self()
    on_output = fn _stream, text -> send(test, {:text, text}) end
    functions = %{"f" => fn [x], _ -> {:ok, x * 2} end}

    {:ok, 4, _} =
      ExMonty.Sandbox.run("print('a')\nx = f(1)\nprint('b')\nf(x)",
        functions: functions,
        on_output: on_output
      )

    assert_received {:text, "a\n"}
    assert_received {:text, "b\n"}

    {:ok, s} = ExMonty.Session.start_link(on_output: on_output, functions: functions)
    {:ok, 2, "c\n"} = ExMonty.Session.eval(s, "print('c')\nf(1)")
    assert_received {:text, "c\n"}
  end

  test "many tiny prints arrive batched, none lost" do
    test = self()
    on_output = fn _stream, text -> send(test, {:text, text}) end
    {:ok, nil, output} = ExMonty.eval("for i in range(20000):\n    print(i)", on_output: on_output)
    texts = collect([])
    assert IO.iodata_to_binary(texts) == output
    assert length(texts) < 2_000
  end

  defp collect(acc) do
    receive do
      {:text, text} -> collect([acc, text])
    after
      0 -> List.flatten(acc)
    end
  end

  test "without :on_output nothing is sent" do
    {:ok, nil, "quiet\n"} = ExMonty.eval("print('quiet')")
    refute_received {:ex_monty_output, _, _, _}
    refute_received {:ex_monty_output, _, _}
  end

  test "an invalid :on_output raises" do
    assert_raise ArgumentError, ~r/on_output/, fn -> ExMonty.eval("1", on_output: :stdout) end
  end
end
