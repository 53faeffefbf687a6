defmodule ExMonty.OsPolicyTest do
  use ExUnit.Case, async: true

  doctest ExMonty.OsPolicy

  @frozen ~U[2024-05-01 12:30:15.250000Z]

  test "a frozen clock: every clock reads the same instant" do
    code = """
    import datetime, time
    (datetime.date.today().isoformat(), datetime.datetime.now().isoformat(), time.time())
    """

    assert {:ok, {"2024-05-01", "2024-05-01T12:30:15.250000", t}, ""} =
             ExMonty.eval(code, os_policy: [clock: @frozen])

    assert t == DateTime.to_unix(@frozen, :microsecond) / 1_000_000
  end

  test "the local zone: a fixed offset and an IANA zone with DST" do
    code = "import datetime\ndatetime.datetime.now().isoformat()"

    assert {:ok, "2024-05-01T14:30:15.250000", ""} =
             ExMonty.eval(code, os_policy: [clock: @frozen, timezone: 7200])

    assert {:ok, "2024-05-01T14:30:15.250000", ""} =
             ExMonty.eval(code, os_policy: [clock: @frozen, timezone: "Europe/Paris"])

    assert {:ok, "2024-01-01T13:00:00", ""} =
             ExMonty.eval(code,
               os_policy: [clock: ~U[2024-01-01 12:00:00Z], timezone: "Europe/Paris"]
             )
  end

  test "a seed makes random reproducible, byte for byte, with its output" do
    code = """
    import random
    xs = [random.randint(0, 10**9) for _ in range(5)]
    print(xs)
    random.choice(['a', 'b', 'c', 'd'])
    """

    runs = for _ <- 1..3, do: ExMonty.eval(code, os_policy: [random: {:seed, 7}, clock: @frozen])
    assert [{:ok, _, output} = first | _] = runs
    assert Enum.all?(runs, &(&1 == first))
    assert output =~ "["
    refute ExMonty.eval(code, os_policy: [random: {:seed, 8}]) == first
    assert {:ok, _, _} = ExMonty.eval(code, os_policy: [random: {:seed, "text"}])
    assert {:ok, _, _} = ExMonty.eval(code, os_policy: [random: {:seed, {:bytes, <<1, 2>>}}])
  end

  test "sleeps that return at once" do
    {micros, result} =
      :timer.tc(fn ->
        ExMonty.eval("import time\ntime.sleep(100)\n'done'", os_policy: [sleep: :zero])
      end)

    assert {:ok, "done", ""} = result
    assert micros < 5_000_000
  end

  test "a host clock is answered by the :os handler" do
    os = %{
      datetime_now: fn _args, _kwargs -> {:ok, ~N[2000-01-02 03:04:05]} end,
      date_today: fn _args, _kwargs -> {:ok, ~D[2000-01-02]} end
    }

    code = "import datetime\n(datetime.date.today(), datetime.datetime.now())"

    assert {:ok, {~D[2000-01-02], ~N[2000-01-02 03:04:05]}, ""} =
             ExMonty.Sandbox.run(code, os: os, os_policy: [clock: :host])
  end

  test "a session keeps its policy, also across a dump" do
    {:ok, s} = ExMonty.Session.start_link(os_policy: [clock: @frozen, random: {:seed, 1}])

    assert {:ok, "2024-05-01", ""} =
             ExMonty.Session.eval(s, "import datetime\nstr(datetime.date.today())")

    {:ok, bin} = ExMonty.Session.dump(s)
    {:ok, s2} = ExMonty.Session.start_link(load: bin)
    assert {:ok, "2024-05-01", ""} = ExMonty.Session.eval(s2, "str(datetime.date.today())")
  end

  test "executions without a policy are not affected by one that ran before" do
    {:ok, _, ""} = ExMonty.eval("1", os_policy: [clock: ~U[2000-01-01 00:00:00Z]])
    {:ok, year, ""} = ExMonty.eval("import datetime\ndatetime.date.today().year")
    assert year >= 2024
  end

  test "invalid policies raise, naming the key" do
    for {policy, pattern} <- [
          {[clok: :system], ~r/clok/},
          {[clock: :never], ~r/:clock/},
          {[timezone: 100_000], ~r/:timezone/},
          {[random: 42], ~r/:random/},
          {[sleep: :forever], ~r/:sleep/},
          {[process_time: :cpu], ~r/:process_time/},
          {:nope, ~r/keyword list or map/}
        ] do
      assert_raise ArgumentError, pattern, fn -> ExMonty.eval("1", os_policy: policy) end
    end

    assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
             ExMonty.eval("1", os_policy: [timezone: "Mars/Olympus_Mons"])

    assert message =~ "Mars/Olympus_Mons"
  end
end
