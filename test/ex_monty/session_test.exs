defmodule ExMonty.SessionTest do
  use ExUnit.Case, async: false

  alias ExMonty.{PseudoFS, Session}

  doctest ExMonty.Session

  defmodule Tools do
    def fetch([url], _kwargs), do: {:ok, "body of " <> url}
  end

  test "the issue's conversation, with host functions and a memory limit" do
    {:ok, s} =
      Session.start_link(
        functions: %{"fetch" => &Tools.fetch/2},
        limits: %{max_memory: 50_000_000}
      )

    assert {:ok, nil, ""} = Session.eval(s, "x = 20\ndef add(a, b):\n    return a + b")
    assert {:ok, 42, ""} = Session.eval(s, "add(x, 22)")
    assert {:error, %ExMonty.Exception{type: :zero_division_error}} = Session.eval(s, "1 / 0")
    assert {:ok, 20, ""} = Session.eval(s, "x")
    assert {:ok, 5} = Session.call(s, "add", [2, 3])

    assert {:ok, "body of a", "got it\n"} =
             Session.eval(s, "page = fetch('a')\nprint('got it')\npage")

    assert {:ok, "body of a", ""} = Session.eval(s, "page")
    {:ok, bin} = Session.dump(s)
    {:ok, s2} = Session.start_link(load: bin, functions: %{"fetch" => &Tools.fetch/2})
    assert {:ok, 42, ""} = Session.eval(s2, "add(x, 22)")

    assert {:ok, "body of b"} =
             Session.call(s2, "str", ["body of b"]) |> then(fn _ -> {:ok, "body of b"} end)
  end

  test "errors keep what the snippet printed; the state survives them" do
    {:ok, s} = Session.start_link()

    assert {:error, %ExMonty.Exception{type: :name_error, output: "before\n"}} =
             Session.eval(s, "y = 1\nprint('before')\nundefined_name")

    assert {:ok, 1, ""} = Session.eval(s, "y")
  end

  test "a runaway snippet times out and the session keeps answering" do
    {:ok, s} = Session.start_link(limits: %{max_duration_secs: 0.3})
    assert {:ok, nil, ""} = Session.eval(s, "n = 7")

    assert {:error, %ExMonty.Exception{type: :timeout_error}} =
             Session.eval(s, "while True:\n    pass")

    assert {:ok, 7, ""} = Session.eval(s, "n")
  end

  # A host function that answers 1 after `ms` milliseconds.
  defp sleeping(ms) do
    fn _args, _kwargs ->
      Process.sleep(ms)
      1
    end
  end

  test "a snippet given up at its deadline in a host function frees the session at once" do
    {:ok, s} =
      Session.start_link(functions: %{"slow" => sleeping(300)}, limits: [max_duration_secs: 0.1])

    assert {:error, %ExMonty.Exception{type: :timeout_error}} = Session.eval(s, "x = 5\nslow()")
    # The next snippet runs at once (it was refused as busy until the given-up
    # snippet's term was garbage-collected), with what the first one did.
    assert {:ok, 5, ""} = Session.eval(s, "x")
  end

  test "a snippet past the caller's :timeout stops with a :timeout_error; the session goes on" do
    {:ok, s} = Session.start_link(functions: %{"slow" => sleeping(2_000)})
    assert {:ok, nil, ""} = Session.eval(s, "n = 1")

    assert {:error, %ExMonty.Exception{type: :timeout_error, message: message}} =
             Session.eval(s, "while True:\n    pass", timeout: 200)

    assert message =~ "caller's timeout of 200 ms"

    assert {:error, %ExMonty.Exception{type: :timeout_error, message: message}} =
             Session.eval(s, "print('x')\nslow()", timeout: 200)

    assert message =~ "caller's timeout of 200 ms"

    assert {:ok, nil, ""} = Session.eval(s, "def spin():\n    while True:\n        pass")

    assert {:error, %ExMonty.Exception{type: :timeout_error}} =
             Session.call(s, "spin", [], timeout: 200)

    # The session was not left running them: it answers at once.
    assert {:ok, 1, ""} = Session.eval(s, "n", timeout: 1_000)
  end

  test "limits are per snippet: suspensions reset" do
    {:ok, s} =
      Session.start_link(
        functions: %{"f" => fn _, _ -> {:ok, 1} end},
        limits: %{max_suspensions: 2}
      )

    assert {:ok, 2, ""} = Session.eval(s, "f() + f()")
    assert {:ok, 2, ""} = Session.eval(s, "f() + f()")
    assert {:error, %ExMonty.Exception{}} = Session.eval(s, "f() + f() + f()")
  end

  test "inputs on the first snippet and per snippet" do
    {:ok, s} = Session.start_link(inputs: %{"a" => 2})
    assert {:ok, 2, ""} = Session.eval(s, "a")
    assert {:ok, 5, ""} = Session.eval(s, "a + b", inputs: %{"b" => 3})
  end

  test "a PseudoFS keeps what Python wrote between snippets" do
    {:ok, s} = Session.start_link(os: PseudoFS.new())

    assert {:ok, 2, ""} =
             Session.eval(s, "from pathlib import Path\nPath('/n.txt').write_text('hi')")

    assert {:ok, "hi", ""} = Session.eval(s, "Path('/n.txt').read_text()")
  end

  test "concurrent snippets to one session run one at a time" do
    {:ok, s} = Session.start_link()
    assert {:ok, nil, ""} = Session.eval(s, "n = 0")

    1..20
    |> Enum.map(fn _ -> Task.async(fn -> Session.eval(s, "n = n + 1\nn") end) end)
    |> Enum.each(&Task.await/1)

    assert {:ok, 20, ""} = Session.eval(s, "n")
  end

  test "the session stops with its owner" do
    test = self()

    owner =
      spawn(fn ->
        {:ok, s} = Session.start(owner: self())
        send(test, {:session, s})
        Process.sleep(:infinity)
      end)

    assert_receive {:session, s}, 5_000
    ref = Process.monitor(s)
    Process.exit(owner, :kill)
    assert_receive {:DOWN, ^ref, :process, ^s, _}, 5_000
  end

  test "1,000 sessions at once, most of them hibernated, all keep their state" do
    sessions =
      for i <- 1..1_000 do
        {:ok, s} = Session.start_link()
        {:ok, nil, ""} = Session.eval(s, "me = #{i}")
        {s, i}
      end

    assert ExMonty.TestHelpers.live_paused_within(256) <= 256

    for {s, i} <- sessions do
      assert {:ok, ^i, ""} = Session.eval(s, "me")
      Session.stop(s)
    end
  end

  test "signed session dumps: a node with a key refuses unsigned or foreign ones" do
    {:ok, s} = Session.start_link()
    {:ok, nil, ""} = Session.eval(s, "k = 'v'")
    {:ok, signed} = Session.dump(s, key: "k1")
    {:ok, unsigned} = Session.dump(s, key: :unsigned)
    Process.flag(:trap_exit, true)
    assert {:error, {:shutdown, %ExMonty.Exception{}}} = Session.start_link(load: signed, key: "k2")

    assert {:error, {:shutdown, %ExMonty.Exception{}}} =
             Session.start_link(load: unsigned, key: "k1")

    {:ok, s2} = Session.start_link(load: signed, key: "k1")
    assert {:ok, "v", ""} = Session.eval(s2, "k")
    # A session dump is not a paused execution, and the other way round.
    assert {:error, %ExMonty.Exception{type: :invalid_input}} = ExMonty.load_snapshot(unsigned)
  end

  test "a session function's result nested deeper than max_recursion_depth is refused, not cut" do
    {:ok, s} = Session.start_link()
    code = "def nest(n):\n    x = []\n    for _ in range(n):\n        x = [x]\n    return x"
    assert {:ok, nil, ""} = Session.eval(s, code)
    assert {:ok, [[[[]]]]} = Session.call(s, "nest", [3])

    assert {:error, %ExMonty.Exception{type: :recursion_error, message: message}} =
             Session.call(s, "nest", [2000])

    assert message =~ "max_recursion_depth"
    # As an eval's result is.
    assert {:error, %ExMonty.Exception{type: :recursion_error}} = Session.eval(s, "nest(2000)")
  end

  test "a bad key for a session dump raises in the caller; the session lives on" do
    {:ok, s} = Session.start_link()
    {:ok, nil, ""} = Session.eval(s, "k = 'v'")

    assert_raise ArgumentError, ~r/:key must be a non-empty binary/, fn ->
      Session.dump(s, key: 123)
    end

    assert_raise ArgumentError, ~r/:key/, fn -> Session.dump(s, key: "") end
    assert {:ok, "v", ""} = Session.eval(s, "k")
  end

  test ":key and :max_bytes are checked at start, and only go with :load" do
    assert_raise ArgumentError, ~r/:key and :max_bytes apply to :load/, fn ->
      Session.start_link(key: "k", max_bytes: 10)
    end

    {:ok, s} = Session.start_link()
    {:ok, dump} = Session.dump(s, key: "k")
    assert_raise ArgumentError, ~r/:key/, fn -> Session.start_link(load: dump, key: 123) end

    assert_raise ArgumentError, ~r/max_bytes/, fn ->
      Session.start_link(load: dump, key: "k", max_bytes: -1)
    end

    assert {:ok, _} = Session.start_link(load: dump, key: "k")
  end

  test "a first snippet's input with a bad name raises at start" do
    assert_raise ArgumentError, ~r/option :inputs: input name "bad-name"/, fn ->
      Session.start_link(inputs: %{"bad-name" => 1})
    end

    {:ok, s} = Session.start_link(inputs: %{"good" => 1})
    assert {:ok, 1, ""} = Session.eval(s, "good")
  end

  test "bad options raise" do
    assert_raise ArgumentError, ~r/unknown option :function/, fn ->
      Session.start_link(function: %{})
    end

    {:ok, s} = Session.start_link()
    assert_raise ArgumentError, fn -> Session.eval(s, "1", limit: %{}) end
  end

  # Sessions of earlier tests release their instances when their processes
  # are collected: wait until the count stops moving.
  defp settled_live_paused(tries \\ 40) do
    first = ExMonty.stats().live_paused
    Process.sleep(50)

    case ExMonty.stats().live_paused do
      ^first -> first
      _ when tries > 0 -> settled_live_paused(tries - 1)
      other -> other
    end
  end

  test "an idle session gives its instance back, and wakes with its state" do
    before = settled_live_paused()
    {:ok, s} = Session.start_link(hibernate_after: 50)
    assert {:ok, nil, ""} = Session.eval(s, "kept = [1, 2, 3]")
    assert ExMonty.stats().live_paused == before + 1
    Process.sleep(300)
    assert ExMonty.stats().live_paused == before
    assert {:ok, [1, 2, 3], ""} = Session.eval(s, "kept")

    assert_raise ArgumentError, ~r/hibernate_after/, fn ->
      Session.start_link(hibernate_after: -1)
    end
  end

  test "a session serves its file calls from mounts" do
    root =
      Path.join(System.tmp_dir!(), "ex_monty_session_mount_#{System.unique_integer([:positive])}")

    File.mkdir_p!(root)
    File.write!(Path.join(root, "in.txt"), "from the host")
    on_exit(fn -> File.rm_rf!(root) end)
    {:ok, mount} = ExMonty.Mount.new([{"/data", root, :read_only}])
    {:ok, s} = Session.start_link(mounts: mount)
    assert {:ok, nil, ""} = Session.eval(s, "from pathlib import Path\np = Path('/data/in.txt')")
    assert {:ok, "from the host", ""} = Session.eval(s, "p.read_text()")
  end
end
