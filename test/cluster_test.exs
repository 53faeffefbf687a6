defmodule ExMonty.ClusterTest do
  # ExMonty across :peer nodes of this machine: placement, queueing,
  # callbacks on the caller's node, mobility of paused executions with signed
  # dumps, and the faults: a node killed mid-run, a caller that dies, a
  # timeout. Every wait is bounded.
  use ExUnit.Case, async: false

  alias ExMonty.{Exception, Cluster}

  # Distribution is started by test_helper.exs (these tests are excluded,
  # with a message, when it cannot start).
  @moduletag :cluster
  @moduletag timeout: 180_000

  @key "cluster-test-key"

  defmodule Tools do
    # A handler module that exists only on the test node: a remote run can
    # use it only through the caller.
    @behaviour ExMonty.Sandbox

    @impl true
    def handle_function("whoami", [], _kwargs), do: {:ok, Atom.to_string(node())}
    def handle_function("later", [x], _kwargs), do: {:async, fn -> {:ok, x + 1} end}
    def handle_function(name, _args, _kwargs), do: {:error, :name_error, "no tool #{name}"}

    @impl true
    def handle_name_lookup("secret_node"), do: {:ok, Atom.to_string(node())}
    def handle_name_lookup(_), do: :undefined
  end

  # --- peers -------------------------------------------------------------------

  defp start_peer(env \\ []) do
    name = :"ex_monty_peer_#{System.unique_integer([:positive])}"
    cookie = Node.get_cookie() |> Atom.to_charlist()

    {:ok, peer, node} =
      :peer.start(%{name: name, args: [~c"-setcookie", cookie], wait_boot: 60_000})

    :ok = :erpc.call(node, :code, :add_pathsa, [:code.get_path()], 60_000)

    :ok = :erpc.call(node, Application, :put_env, [:logger, :level, :info], 60_000)

    for {key, value} <- env do
      :ok = :erpc.call(node, Application, :put_env, [:ex_monty, key, value], 60_000)
    end

    {:ok, _} = :erpc.call(node, Application, :ensure_all_started, [:ex_monty], 60_000)
    wait_until(fn -> node in Cluster.nodes() end)
    {peer, node}
  end

  defp stop_peer(peer) do
    :peer.stop(peer)
  catch
    _, _ -> :ok
  end

  defp wait_until(fun, timeout \\ 15_000) do
    deadline = System.monotonic_time(:millisecond) + timeout

    Stream.repeatedly(fn ->
      fun.() || (Process.sleep(20) && System.monotonic_time(:millisecond) > deadline)
    end)
    |> Enum.find(& &1)

    assert fun.(), "condition not met within #{timeout} ms"
  end

  # The executions a node runs for callers, as it sees itself.
  defp running_on(node) do
    :erpc.call(node, Cluster, :loads, [], 10_000)[node].running
  end

  defp completed(node), do: :erpc.call(node, Cluster, :loads, [], 10_000)[node].completed

  setup_all do
    previous = Application.get_env(:ex_monty, :dump_key)
    Application.put_env(:ex_monty, :dump_key, @key)
    {peer1, node1} = start_peer(dump_key: @key, cluster_capacity: 1)
    {peer2, node2} = start_peer(dump_key: @key, cluster_capacity: 1)

    on_exit(fn ->
      stop_peer(peer1)
      stop_peer(peer2)

      if previous,
        do: Application.put_env(:ex_monty, :dump_key, previous),
        else: Application.delete_env(:ex_monty, :dump_key)
    end)

    %{node1: node1, node2: node2}
  end

  # --- placement -----------------------------------------------------------------

  test "node: runs the execution on that node", %{node1: node1} do
    {:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
    assert ExMonty.run(runner, %{"x" => 21}, node: node1) == {:ok, 42, ""}
    # Again: the runner loaded over there the first time is reused.
    assert ExMonty.run(runner, %{"x" => 5}, node: node1) == {:ok, 10, ""}
    assert ExMonty.eval("print('hi')\n6 * 7", node: node1) == {:ok, 42, "hi\n"}

    assert {:error, %Exception{type: :zero_division_error, output: "a\n"}} =
             ExMonty.eval("print('a')\n1/0", node: node1)

    # Seen running over there, not here.
    task = Task.async(fn -> ExMonty.eval("import time\ntime.sleep(1)\n1", node: node1) end)
    wait_until(fn -> running_on(node1) == 1 end)
    assert Cluster.loads()[node()].running == 0
    assert Task.await(task, 15_000) == {:ok, 1, ""}
  end

  test ":auto spreads the work over the nodes and queues when all are busy",
       %{node1: node1, node2: node2} do
    nodes = [node(), node1, node2]
    wait_until(fn -> Enum.all?(nodes, &(&1 in Cluster.nodes())) end)
    before = Map.new(nodes, &{&1, completed(&1)})

    # 10 sleepers, 4 slots in all (2 here, 1 on each peer): most wait in a
    # queue; none fails.
    results =
      1..10
      |> Enum.map(fn i ->
        Task.async(fn -> ExMonty.eval("import time\ntime.sleep(0.3)\n#{i}", node: :auto) end)
      end)
      |> Task.await_many(60_000)

    assert results == Enum.map(1..10, &{:ok, &1, ""})

    wait_until(fn ->
      Enum.sum(Enum.map(nodes, &(completed(&1) - before[&1]))) == 10
    end)

    used = Enum.count(nodes, &(completed(&1) > before[&1]))
    assert used >= 2, "all 10 executions ran on one node"
  end

  test "an unknown or unreachable node is :node_down, never a hang" do
    assert {:error, %Exception{type: :node_down, python_type: "RuntimeError"}} =
             ExMonty.eval("1", node: :"nobody@nowhere-#{System.unique_integer([:positive])}")
  end

  test "options are checked before anything is sent" do
    assert_raise ArgumentError, ~r/invalid value for option :node/, fn ->
      ExMonty.eval("1", node: "b@host")
    end

    {:ok, mount} = ExMonty.Mount.new([])

    assert_raise ArgumentError, ~r/:mounts cannot be used with :node/, fn ->
      ExMonty.eval("1", node: node(), mounts: mount)
    end

    assert_raise ArgumentError, ~r/unknown option :limit/, fn ->
      ExMonty.Sandbox.run("1", node: node(), limit: 1)
    end

    {:ok, runner} = ExMonty.compile("f()")
    {:ok, {:function_call, _, snapshot, ""}} = ExMonty.start(runner)

    assert_raise ArgumentError, ~r/needs option :node/, fn ->
      Cluster.resume(snapshot, {:ok, 1}, timeout: 100)
    end

    assert_raise ArgumentError, ~r/unknown keys \[:nodes\]/, fn ->
      Cluster.resume(snapshot, {:ok, 1}, nodes: [node()])
    end

    assert_raise ArgumentError,
                 ~r/invalid value for option :timeout of ExMonty.Cluster.resume/,
                 fn ->
                   Cluster.resume(snapshot, {:ok, 1}, node: node(), timeout: -1)
                 end

    assert_raise ArgumentError, ~r/invalid value for option :node of ExMonty.start/, fn ->
      ExMonty.start(runner, %{}, node: 42)
    end

    # Nothing was consumed by the refused calls.
    assert Cluster.resume(snapshot, {:ok, 1}, node: :auto) == {:ok, {:complete, 1, ""}}
  end

  # --- callbacks ---------------------------------------------------------------------

  test "host callbacks run on the caller's node", %{node1: node1} do
    me = Atom.to_string(node())
    test_pid = self()

    # The tools exist only here.
    refute :erpc.call(node1, Code, :ensure_loaded?, [Tools], 10_000)

    code = """
    import asyncio
    async def main():
        return await asyncio.gather(fetch(1), fetch(2))
    from pathlib import Path
    [where(), whoami(), secret_node, asyncio.run(main()), await later(41), Path('/f').read_text()]
    """

    assert {:ok, [^me, ^me, ^me, [2, 3], 42, "file from " <> ^me], ""} =
             ExMonty.Sandbox.run(code,
               node: node1,
               handler: Tools,
               functions: %{
                 "where" => fn [], _ ->
                   send(test_pid, {:callback_ran_in, self()})
                   {:ok, Atom.to_string(node())}
                 end,
                 "fetch" => {:async, fn [x], _ -> {:ok, x + 1} end}
               },
               os: %{read_text: fn _args, _ -> {:ok, "file from #{node()}"} end}
             )

    assert_received {:callback_ran_in, pid}
    assert node(pid) == node()
  end

  test "host objects and their methods work when the run is on another node", %{node1: node1} do
    me = Atom.to_string(node())
    point = ExMonty.Dataclass.new("Point", x: 3, y: 4)

    assert {:ok, [^me, 14, back], ""} =
             ExMonty.Sandbox.run("p.x = 10\n[p.where(), p.total(), p]",
               node: node1,
               inputs: %{"p" => point},
               functions: %{
                 "Point.where" => fn [_p], _ -> {:ok, Atom.to_string(node())} end,
                 "Point.total" => fn [p], _ -> {:ok, p.fields["x"] + p.fields["y"]} end
               }
             )

    assert ExMonty.Dataclass.same?(back, point) and back.fields["x"] == 10
  end

  test "a remote callback that times out is killed on the caller's node", %{node1: node1} do
    test_pid = self()

    result =
      ExMonty.Sandbox.run("try:\n    slow()\nexcept TimeoutError as e:\n    r = str(e)\nr",
        node: node1,
        callback_timeout: 200,
        functions: %{
          "slow" => fn [], _ ->
            send(test_pid, {:slow, self()})
            Process.sleep(30_000)
          end
        }
      )

    assert {:ok, "host callback timed out after 200 ms", ""} = result
    assert_receive {:slow, pid}, 5_000
    wait_until(fn -> not Process.alive?(pid) end, 5_000)
  end

  test "a PseudoFS travels with the call and comes back with return_os", %{node1: node1} do
    fs = ExMonty.PseudoFS.new()

    assert {:ok, nil, "", fs} =
             ExMonty.Sandbox.run(
               "from pathlib import Path\nPath('/out.txt').write_text('made remotely')\nNone",
               node: node1,
               os: fs,
               return_os: true
             )

    assert {{:ok, "made remotely"}, _} =
             ExMonty.PseudoFS.handle(fs, :read_text, [{:path, "/out.txt"}], %{})
  end

  # --- mobility --------------------------------------------------------------------------

  test "a paused execution started on one node resumes on another",
       %{node1: node1, node2: node2} do
    {:ok, runner} =
      ExMonty.compile("a = fetch(x)\nprint('got', a)\nb = fetch(a + 1)\na + b", inputs: ["x"])

    # First step on node1: the pause comes back as a snapshot of this node.
    assert {:ok, {:function_call, %{name: "fetch", args: [1]}, snapshot, ""}} =
             ExMonty.start(runner, %{"x" => 1}, node: node1)

    # Next step on node2, last one here.
    assert {:ok, {:function_call, %{args: [11]}, snapshot2, "got 10\n"}} =
             Cluster.resume(snapshot, {:ok, 10}, node: node2)

    assert ExMonty.resume(snapshot2, {:ok, 100}) == {:ok, {:complete, 110, ""}}
  end

  test "nodes refuse dumps signed with another key or unsigned, and nothing is lost",
       %{node1: node1} do
    {:ok, runner} = ExMonty.compile("fetch() + 1")
    {:ok, {:function_call, _, snapshot, ""}} = ExMonty.start(runner)

    {other_peer, other} = start_peer(dump_key: "another-key")

    try do
      assert {:error, %Exception{type: :invalid_input, message: message}} =
               Cluster.resume(snapshot, {:ok, 1}, node: other)

      assert message =~ "signature does not match"

      assert {:error, %Exception{type: :invalid_input}} = ExMonty.run(runner, %{}, node: other)

      # An unsigned dump is refused by a node that has a key.
      {:ok, unsigned} = ExMonty.dump_snapshot(snapshot, key: :unsigned)

      assert {:error, %Exception{type: :invalid_input, message: message}} =
               :erpc.call(node1, ExMonty, :load_snapshot, [unsigned], 10_000)

      assert message =~ "not signed"

      # The caller still holds the paused execution: it resumes elsewhere.
      assert Cluster.resume(snapshot, {:ok, 1}, node: node1) == {:ok, {:complete, 2, ""}}
    after
      stop_peer(other_peer)
    end
  end

  # --- faults ------------------------------------------------------------------------------

  test "a peer killed with kill -9 mid-run gives :node_down, and the caller lives on" do
    {peer, node} = start_peer()
    os_pid = :erpc.call(node, :os, :getpid, [], 10_000) |> to_string()

    try do
      task =
        Task.async(fn -> ExMonty.eval("while True:\n    pass", node: node, timeout: 60_000) end)

      wait_until(fn -> running_on(node) == 1 end)
      {_, 0} = System.cmd("kill", ["-9", os_pid])

      assert {:error, %Exception{type: :node_down, message: message}} = Task.await(task, 30_000)
      assert message =~ "went down"
    after
      stop_peer(peer)
    end
  end

  test "a paused execution whose remote step was lost resumes elsewhere", %{node1: node1} do
    {peer, node} = start_peer(dump_key: @key)

    try do
      {:ok, runner} = ExMonty.compile("spin = fetch()\nwhile spin:\n    pass\n'done'")
      {:ok, {:function_call, _, snapshot, ""}} = ExMonty.start(runner)

      task = Task.async(fn -> Cluster.resume(snapshot, {:ok, true}, node: node) end)
      wait_until(fn -> running_on(node) == 1 end)
      :peer.stop(peer)
      assert {:error, %Exception{type: :node_down}} = Task.await(task, 30_000)

      # The caller's snapshot was shipped as a dump, never consumed.
      assert Cluster.resume(snapshot, {:ok, false}, node: node1) == {:ok, {:complete, "done", ""}}
    after
      stop_peer(peer)
    end
  end

  test "a peer stopped mid-Sandbox-run gives :node_down" do
    {peer, node} = start_peer()

    try do
      task =
        Task.async(fn ->
          ExMonty.Sandbox.run("f()\nwhile True:\n    pass",
            node: node,
            functions: %{"f" => fn [], _ -> {:ok, 1} end}
          )
        end)

      wait_until(fn -> running_on(node) == 1 end)
      :peer.stop(peer)

      assert {:error, %Exception{type: :node_down}} = Task.await(task, 30_000)
    after
      stop_peer(peer)
    end
  end

  test "a caller that dies cancels its remote execution", %{node2: node2} do
    before = :erpc.call(node2, ExMonty, :stats, [], 10_000)
    caller = spawn(fn -> ExMonty.eval("while True:\n    pass", node: node2) end)
    wait_until(fn -> running_on(node2) == 1 end)

    Process.exit(caller, :kill)

    # The execution is gone and its wasm instance back in the pool, long
    # before max_duration_secs (30 s) would have ended it.
    wait_until(fn -> running_on(node2) == 0 end, 5_000)

    wait_until(
      fn ->
        stats = :erpc.call(node2, ExMonty, :stats, [], 10_000)
        stats.live_instances - stats.idle_instances <= before.live_instances - before.idle_instances
      end,
      5_000
    )
  end

  test "a queued call whose caller dies is dropped; the queue moves on", %{node2: node2} do
    # node2 runs one execution at a time: the spinner holds it, the next waits.
    spinner = spawn(fn -> ExMonty.eval("while True:\n    pass", node: node2) end)
    wait_until(fn -> running_on(node2) == 1 end)
    queued = spawn(fn -> ExMonty.eval("while True:\n    pass", node: node2) end)
    wait_until(fn -> :erpc.call(node2, Cluster, :loads, [], 10_000)[node2].queued == 1 end)

    Process.exit(queued, :kill)
    wait_until(fn -> :erpc.call(node2, Cluster, :loads, [], 10_000)[node2].queued == 0 end, 5_000)
    assert running_on(node2) == 1

    # A new call waits for the spinner's slot, then runs.
    waiting = Task.async(fn -> ExMonty.eval("'next'", node: node2, timeout: 30_000) end)
    wait_until(fn -> :erpc.call(node2, Cluster, :loads, [], 10_000)[node2].queued == 1 end)
    Process.exit(spinner, :kill)
    assert Task.await(waiting, 30_000) == {:ok, "next", ""}
  end

  test "the caller's :timeout cancels the remote execution", %{node2: node2} do
    wait_until(fn -> busy_instances(node2) == 0 end, 5_000)

    assert {:error, %Exception{type: :timeout_error, message: message}} =
             ExMonty.eval("while True:\n    pass", node: node2, timeout: 300)

    assert message =~ "300 ms"
    wait_until(fn -> running_on(node2) == 0 end, 5_000)
    # The wasm instance is free again, long before max_duration_secs.
    wait_until(fn -> busy_instances(node2) == 0 end, 5_000)
  end

  defp busy_instances(node) do
    stats = :erpc.call(node, ExMonty, :stats, [], 10_000)
    stats.live_instances - stats.idle_instances - stats.live_paused
  end

  describe "sessions on another node" do
    test "keep their state there, with callbacks on the caller's node", %{node1: node1} do
      {:ok, s} =
        ExMonty.Session.start_link(
          node: node1,
          handler: Tools,
          functions: %{"here" => fn [], _ -> {:ok, Atom.to_string(node())} end}
        )

      assert {:ok, nil, ""} = ExMonty.Session.eval(s, "x = 40\ndef add(a, b):\n    return a + b")
      assert {:ok, 42, ""} = ExMonty.Session.eval(s, "add(x, 2)")
      assert {:ok, 5} = ExMonty.Session.call(s, "add", [2, 3])
      # The session process is on node1, the callbacks run here (Tools
      # exists only on this node).
      assert [{:remote, remote}] = :sys.get_state(s) |> Map.take([:remote]) |> Map.to_list()

      assert node(remote) == node1
      me = Atom.to_string(node())
      assert {:ok, {^me, ^me}, ""} = ExMonty.Session.eval(s, "(whoami(), here())")

      # It moves as a dump, and continues here.
      {:ok, bin} = ExMonty.Session.dump(s)
      {:ok, local} = ExMonty.Session.start_link(load: bin)
      assert {:ok, 42, ""} = ExMonty.Session.eval(local, "add(x, 2)")
    end

    test "with type_check:, snippets are checked here against what ran there", %{node1: node1} do
      {:ok, s} =
        ExMonty.Session.start_link(
          node: node1,
          type_check: [stubs: "def here() -> str: ..."],
          functions: %{"here" => fn [], _ -> {:ok, Atom.to_string(node())} end}
        )

      assert {:ok, nil, ""} =
               ExMonty.Session.eval(s, "def add(a: int, b: int) -> int:\n    return a + b")

      assert {:error, %ExMonty.Exception{type: :type_check_error}} =
               ExMonty.Session.eval(s, "add(here(), 1)")

      assert {:ok, 3, ""} = ExMonty.Session.eval(s, "add(1, 2)")
      assert {:ok, "AB", ""} = ExMonty.Session.eval(s, "'ab'.upper()")
    end

    test "a lost node is :node_down, never a crash of the caller" do
      {peer, node} = start_peer()

      try do
        {:ok, s} = ExMonty.Session.start_link(node: node)
        assert {:ok, nil, ""} = ExMonty.Session.eval(s, "y = 1")
        stop_peer(peer)
        wait_until(fn -> node not in Node.list() end)

        assert {:error, %Exception{type: :node_down}} = ExMonty.Session.eval(s, "y")
        assert Process.alive?(s)
      after
        stop_peer(peer)
      end
    end
  end
end

defmodule ExMonty.ClusterDocTest do
  # The examples run on this node alone, distributed or not.
  use ExUnit.Case, async: false
  doctest ExMonty.Cluster
end
