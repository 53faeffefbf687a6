defmodule ExMonty.PeerTest do
  # A dumped snapshot resumes in another BEAM (a fresh OS process, as after a
  # restart or on another node) and gives the same result as the original.
  use ExUnit.Case, async: false

  @moduletag timeout: 120_000

  test "a snapshot dumped here resumes in a fresh VM" do
    code =
      "data = [i * i for i in range(10)]\ntotal = fetch(sum(data))\nprint('resumed')\ntotal + len(data)"

    {:ok, runner} = ExMonty.compile(code)
    {:ok, {:function_call, %{args: [285]}, snapshot, ""}} = ExMonty.start(runner)
    {:ok, binary} = ExMonty.dump_snapshot(snapshot, key: "peer-key")

    {:ok, peer, _node} = :peer.start_link(%{connection: :standard_io, wait_boot: 60_000})

    try do
      :ok = :peer.call(peer, :code, :add_pathsa, [:code.get_path()], 60_000)
      {:ok, _} = :peer.call(peer, Application, :ensure_all_started, [:ex_monty], 60_000)

      # Resources belong to their VM, so load and resume over there.
      script = """
      {:ok, restored} = ExMonty.load_snapshot(binary, key: "peer-key")
      ExMonty.resume(restored, {:ok, 1000})
      """

      {remote, _binding} = :peer.call(peer, Code, :eval_string, [script, [binary: binary]], 60_000)

      local = ExMonty.resume(snapshot, {:ok, 1000})

      assert remote == {:ok, {:complete, 1010, "resumed\n"}}
      assert remote == local
    after
      :peer.stop(peer)
    end
  end

  test "a session dumped here continues in a fresh VM" do
    {:ok, s} = ExMonty.Session.start_link(os_policy: [random: {:seed, 3}])

    {:ok, nil, ""} =
      ExMonty.Session.eval(s, "import random\nhistory = [1, 2]\ndef add(a, b):\n    return a + b")

    {:ok, binary} = ExMonty.Session.dump(s, key: "peer-key")

    {:ok, peer, _node} = :peer.start_link(%{connection: :standard_io, wait_boot: 60_000})

    try do
      :ok = :peer.call(peer, :code, :add_pathsa, [:code.get_path()], 60_000)
      {:ok, _} = :peer.call(peer, Application, :ensure_all_started, [:ex_monty], 60_000)

      script = """
      {:ok, s} = ExMonty.Session.start(load: binary, key: "peer-key")
      ExMonty.Session.eval(s, "history.append(add(1, 2))\\n(history, random.randint(0, 10**6))")
      """

      {remote, _} = :peer.call(peer, Code, :eval_string, [script, [binary: binary]], 60_000)

      local =
        ExMonty.Session.eval(s, "history.append(add(1, 2))\n(history, random.randint(0, 10**6))")

      assert {:ok, {[1, 2, 3], _n}, ""} = remote
      assert remote == local
    after
      :peer.stop(peer)
    end
  end
end
