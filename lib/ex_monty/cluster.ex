defmodule ExMonty.Cluster do
  @moduledoc """
  Runs executions on other nodes of an Erlang cluster.

  Every node that starts the `:ex_monty` application joins the `:pg` group
  `#{inspect(:ex_monty_nodes)}` (scope `:ex_monty`) and publishes its load:
  the executions it runs for callers, those queued, and its capacity
  (`config :ex_monty, cluster_capacity:`, default: its worker threads).
  Nothing else is needed: connect the nodes (`Node.connect/1`) and they see
  each other.

  ## Placement

  `ExMonty.eval/2`, `ExMonty.run/3`, `ExMonty.start/3` and
  `ExMonty.Sandbox.run/2` take a `:node` option:

    * `node: :"b@host"` — run there;
    * `node: :auto` — run on the least-loaded node of the group (see `pick/0`);
    * `node: nil` (or no `:node`) — run in the calling process, as always.

  Each node runs at most its capacity of such executions at once; the rest
  wait in a FIFO queue on that node — a call never fails because the cluster
  is busy, it waits (bound the wait with `:timeout`).

      iex> ExMonty.eval("1 + 1", node: node())
      {:ok, 2, ""}

      iex> ExMonty.eval("sum(range(10))", node: :auto)
      {:ok, 45, ""}

  ## Callbacks stay on the caller's node

  With `ExMonty.Sandbox.run(code, node: n, functions: ...)` the Python runs
  on `n`, but every `:functions` entry, `:handler` callback and `:os`
  handler (a map or a module) runs on the *caller's* node: the remote run
  sends each call back and waits for the answer, under the same
  `:callback_timeout` and deadline as a local run. An `ExMonty.PseudoFS` is
  data: it travels with the call, and with `return_os: true` comes back as
  Python left it. `:mounts` are directories of one node and cannot be used
  with `:node` (`ArgumentError`).

      iex> {:ok, caller, ""} =
      ...>   ExMonty.Sandbox.run("where()",
      ...>     node: :auto,
      ...>     functions: %{"where" => fn [], _ -> {:ok, to_string(node())} end}
      ...>   )
      iex> caller == to_string(node())
      true

  ## Mobility

  Runners and snapshots are resources of the node that made them. They
  cross nodes as dumps (`ExMonty.dump/2`, `ExMonty.dump_snapshot/2`), signed
  with `config :ex_monty, dump_key:` when it is set; a node with a key
  refuses unsigned dumps and dumps signed with another key
  (`{:error, %ExMonty.Exception{type: :invalid_input}}`), so every node of a
  cluster needs the same `dump_key`.

    * `ExMonty.run(runner, inputs, node: n)` ships the runner's dump;
    * `ExMonty.start(runner, inputs, node: n)` runs the first step on `n`
      and returns a paused execution as a snapshot of *this* node;
    * `resume/3` runs the next step of a snapshot on another node.

  A paused execution is therefore never stranded: whatever node ran its
  last step, the caller holds it (or its dump) and can resume it anywhere.

  ## Faults

  The caller monitors the target node's cluster server for the whole call.
  If the node goes down or is disconnected, the call returns
  `{:error, %ExMonty.Exception{type: :node_down}}` at once; if the caller's
  `:timeout` passes first, it returns a `:timeout_error` and the remote
  execution is cancelled. If the caller dies, the target kills the
  execution (the NIF cancels it); the same happens when the caller's node
  is lost. See the README's "Cluster" section for netsplits and slow nodes.
  """

  alias ExMonty.{Exception, Snapshot}
  alias ExMonty.Cluster.{Remote, Server}

  @scope :ex_monty
  @group :ex_monty_nodes

  @doc false
  @spec scope() :: atom()
  def scope, do: @scope

  @doc false
  @spec group() :: atom()
  def group, do: @group

  @doc """
  The nodes running ExMonty that this node sees (itself included).

  ## Examples

      iex> node() in ExMonty.Cluster.nodes()
      true
  """
  @spec nodes() :: [node()]
  def nodes do
    @scope
    |> :pg.get_members(@group)
    |> Enum.map(&node/1)
    |> Enum.uniq()
    |> Enum.sort()
  end

  @doc """
  The last load each node published:
  `%{node => %{running:, queued:, capacity:, completed:}}`.

  `running` and `queued` count the executions the node runs for `:node`
  callers, `completed` those it has finished since it started; this node's
  entry is exact, the others are at most about 50 ms old (a node not heard
  from yet shows zeros and capacity 1).

  ## Examples

      iex> %{running: _, queued: _, capacity: capacity, completed: _} = ExMonty.Cluster.loads()[node()]
      iex> capacity > 0
      true
  """
  @spec loads() :: %{
          node() => %{
            running: non_neg_integer(),
            queued: non_neg_integer(),
            capacity: pos_integer(),
            completed: non_neg_integer()
          }
        }
  def loads do
    Map.new(nodes(), fn n ->
      {running, queued, capacity, completed} = load(n)
      {n, %{running: running, queued: queued, capacity: capacity, completed: completed}}
    end)
  end

  @doc """
  The least-loaded node among `among` (default: all of `nodes/0`): the
  lowest (running + queued) / capacity, counting for each node the calls
  this node has sent it and not yet seen answered (so that a burst does not
  all go to the node that was idle 50 ms ago). On a tie, this node (no
  network hop), else any. Nodes of `among` that are not in the group are
  ignored; when none is, returns this node.

  Pass a tenant's own nodes to keep its work on them:
  `ExMonty.eval(code, node: ExMonty.Cluster.pick(tenant_nodes))`.

  ## Examples

      iex> ExMonty.Cluster.pick() in ExMonty.Cluster.nodes()
      true

      iex> ExMonty.Cluster.pick([node()])
      node()
  """
  @spec pick([node()] | nil) :: node()
  def pick(among \\ nil) do
    inflight =
      Server.loads_table()
      |> :ets.match({{:inflight, :_}, :"$1", :_})
      |> Enum.frequencies_by(&hd/1)

    members = if among == nil, do: nodes(), else: Enum.filter(nodes(), &(&1 in among))

    case members do
      [] ->
        node()

      members ->
        Enum.min_by(members, fn n ->
          {running, queued, capacity, _completed} = load(n)
          busy = max(running + queued, Map.get(inflight, n, 0))
          {busy / capacity, if(n == node(), do: 0, else: 1), :rand.uniform()}
        end)
    end
  end

  defp load(n) do
    case :ets.lookup(Server.loads_table(), n) do
      [{^n, running, queued, capacity, completed}] -> {running, queued, capacity, completed}
      [] -> {0, 0, 1, 0}
    end
  end

  @doc """
  Resumes a paused execution on `node` (see `ExMonty.resume/3` for the
  answers): the snapshot travels as a dump, the step runs there, and a new
  pause comes back as a snapshot of this node.

  ## Options

    * `:node` (required) — a node name, or `:auto`.
    * `:timeout` — milliseconds to wait (default `:infinity`).

  ## Examples

      iex> {:ok, runner} = ExMonty.compile("fetch() * 2")
      iex> {:ok, {:function_call, _call, snapshot, ""}} = ExMonty.start(runner)
      iex> ExMonty.Cluster.resume(snapshot, {:ok, 21}, node: node())
      {:ok, {:complete, 42, ""}}
  """
  @spec resume(Snapshot.t(), ExMonty.answer(), keyword()) ::
          {:ok, ExMonty.progress()} | {:error, Exception.t()}
  def resume(%Snapshot{} = snapshot, answer, opts) do
    opts = Keyword.validate!(opts, [:node, :timeout])

    target =
      case Keyword.fetch(opts, :node) do
        {:ok, target} when is_atom(target) and target != nil ->
          target

        other ->
          raise ArgumentError,
                "ExMonty.Cluster.resume/3 needs option :node (a node name or :auto), got: #{inspect(other)}"
      end

    case Keyword.get(opts, :timeout, :infinity) do
      t when t == :infinity or (is_integer(t) and t >= 0) ->
        :ok

      other ->
        raise ArgumentError,
              "invalid value for option :timeout of ExMonty.Cluster.resume/3: expected a " <>
                "non-negative integer (milliseconds) or :infinity, got: #{inspect(other)}"
    end

    Remote.call(:resume, [snapshot, answer], Keyword.take(opts, [:timeout]), target)
  end

  def resume(other, _answer, _opts),
    do:
      raise(
        ArgumentError,
        "ExMonty.Cluster.resume/3 expects an ExMonty.Snapshot, got: #{inspect(other, limit: 5)}"
      )

  @doc false
  # Counts a call in flight to `target` while `fun` runs (see pick/0).
  @spec track_inflight(node(), (() -> result)) :: result when result: term()
  def track_inflight(target, fun) do
    key = {:inflight, make_ref()}
    :ets.insert(Server.loads_table(), {key, target, self()})

    try do
      fun.()
    after
      :ets.delete(Server.loads_table(), key)
    end
  end

  @doc false
  # Forgets calls in flight whose caller died without cleaning up.
  @spec sweep_inflight() :: :ok
  def sweep_inflight do
    Server.loads_table()
    |> :ets.match({{:inflight, :"$1"}, :_, :"$2"})
    |> Enum.each(fn [ref, pid] ->
      unless Process.alive?(pid), do: :ets.delete(Server.loads_table(), {:inflight, ref})
    end)
  end
end
