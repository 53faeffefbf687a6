defmodule ExMonty.LimitsTest do
  use ExUnit.Case, async: true

  doctest ExMonty.Limits

  test "keys not given keep their defaults; unknown keys and bad values raise" do
    limits = ExMonty.Limits.normalize!(max_memory: 1024)
    assert limits.max_memory == 1024
    assert limits.max_duration_secs == 30.0

    assert_raise ArgumentError, ~r/unknown limit :max_memroy/, fn ->
      ExMonty.Limits.normalize!(max_memroy: 1)
    end

    assert_raise ArgumentError, ~r/max_recursion_depth/, fn ->
      ExMonty.Limits.normalize!(max_recursion_depth: 10_101)
    end

    assert ExMonty.Limits.normalize!(max_recursion_depth: 10_100).max_recursion_depth == 10_100
  end

  test "max_memory counts exactly over many executions that free blocks of every size" do
    # The guest keeps freed small blocks for reuse; what it keeps must leave
    # the live-byte count, and what it hands out again must rejoin it. A
    # drift either way would, over these runs in one instance, make a
    # MemoryError appear (count drifting up) or let one through (down).
    {:ok, session} = ExMonty.Session.start_link(limits: %{max_memory: 1_000_000})

    churn = """
    kept = []
    for n in range(1, 1300, 7):
        s = 'x' * n
        l = list(range(n % 70))
        d = {i: str(i) for i in range(n % 45)}
        kept.append((s, l, d))
        if len(kept) > 20:
            kept = kept[10:]
    len(kept)
    """

    for _ <- 1..300 do
      assert {:ok, count, ""} = ExMonty.Session.eval(session, churn)
      assert count in 1..20
    end

    assert {:error, %ExMonty.Exception{type: :memory_error}} =
             ExMonty.Session.eval(session, "y = 'a' * 2_000_000")

    assert {:ok, 1000, ""} = ExMonty.Session.eval(session, "len('a' * 1000)")
  end

  test "limits and options that change between calls take effect each time" do
    # An instance that runs with the settings of its previous call is not
    # sent them again; settings that differ must always be sent.
    {:ok, runner} = ExMonty.compile("len('a' * n)", inputs: ["n"])
    tight = [limits: [max_memory: 4096]]

    for _ <- 1..3 do
      assert {:ok, 100_000, ""} = ExMonty.run(runner, %{"n" => 100_000})
      assert {:ok, 100_000, ""} = ExMonty.run(runner, %{"n" => 100_000})
      assert {:error, %{type: :memory_error}} = ExMonty.run(runner, %{"n" => 100_000}, tight)
      assert {:error, %{type: :memory_error}} = ExMonty.run(runner, %{"n" => 100_000}, tight)
      assert {:ok, 7, ""} = ExMonty.eval("len('a' * 100000) and 7")
      assert {:ok, 7, ""} = ExMonty.eval("len('a' * 100000) and 7")
      assert {:error, %{type: :memory_error}} = ExMonty.eval("len('a' * 100000)", tight)
      assert {:error, %{type: :memory_error}} = ExMonty.eval("len('a' * 100000)", tight)
    end

    # `start` runs the same program interactively: a host function pauses
    # it, where `run` raises NameError.
    {:ok, runner} = ExMonty.compile("fetch(1)")

    for _ <- 1..3 do
      assert {:error, %{type: :name_error}} = ExMonty.run(runner)
      assert {:ok, {:function_call, %{name: "fetch"}, _, ""}} = ExMonty.start(runner)
      assert {:ok, {:function_call, %{name: "fetch"}, _, ""}} = ExMonty.start(runner)
      assert {:error, %{type: :name_error}} = ExMonty.run(runner)
    end
  end

  test "a tight limit of one call does not hold for the next call on the same instance" do
    # A session keeps its instance: its next snippet's arguments (large
    # here) cross into the instance the tight snippet ran in.
    {:ok, session} = ExMonty.Session.start_link()

    assert {:error, %ExMonty.Exception{type: :memory_error}} =
             ExMonty.Session.eval(session, "x = 'a' * 100000", limits: [max_memory: 4096])

    deep = Enum.reduce(1..100_000, [], fn _, acc -> [acc] end)
    assert {:ok, 1, ""} = ExMonty.Session.eval(session, "len(y)", inputs: %{"y" => deep})

    {:ok, session} = ExMonty.Session.start_link()

    assert {:error, %ExMonty.Exception{type: :memory_error}} =
             ExMonty.Session.eval(session, "x = 'a' * 100000", limits: [max_memory: 4096])

    source = "z = '" <> String.duplicate("a", 8_000_000) <> "'\nlen(z)"
    assert {:ok, 8_000_000, ""} = ExMonty.Session.eval(session, source)
  end

  test "an allocation count nearly spent by one call does not hold for the next one" do
    {:ok, session} = ExMonty.Session.start_link()
    strings = Enum.map(1..3000, &"s#{&1}")

    for n <- 100..220//20 do
      assert {:ok, 10, ""} =
               ExMonty.Session.eval(session, "z = [str(i) for i in range(10)]\nlen(z)",
                 limits: [max_allocations: n]
               )

      assert {:ok, 3000, ""} = ExMonty.Session.eval(session, "len(y)", inputs: %{"y" => strings})
    end
  end

  test "an answer, like an input, is not counted against max_allocations" do
    strings = Enum.map(1..5000, &"s#{&1}")
    limits = [limits: [max_allocations: 1000]]
    {:ok, with_input} = ExMonty.compile("len(y)", inputs: ["y"])
    assert {:ok, 5000, ""} = ExMonty.run(with_input, %{"y" => strings}, limits)

    {:ok, runner} = ExMonty.compile("x = fetch()\nlen(x)")

    assert {:ok, {:function_call, %{name: "fetch"}, snapshot, ""}} =
             ExMonty.start(runner, %{}, limits)

    # Decoding the answer was counted: 5 000 strings trapped the instance.
    assert {:ok, {:complete, 5000, ""}} = ExMonty.resume(snapshot, {:ok, strings})
  end

  test "a paused execution keeps counting its allocations after a resume" do
    {:ok, runner} = ExMonty.compile("fetch(1)\nx = [str(i) for i in range(100000)]\nlen(x)")
    limits = [limits: [max_allocations: 1000]]

    assert {:ok, {:function_call, %{name: "fetch"}, snapshot, ""}} =
             ExMonty.start(runner, %{}, limits)

    assert {:error, %ExMonty.Exception{type: :memory_error}} = ExMonty.resume(snapshot, {:ok, 1})

    assert {:ok, {:function_call, %{name: "fetch"}, snapshot, ""}} = ExMonty.start(runner)
    assert {:ok, {:complete, 100_000, ""}} = ExMonty.resume(snapshot, {:ok, 1})
  end
end
