defmodule ExMonty.Cluster.Server do
  @moduledoc false
  # One per node. It
  #
  #   * joins the :pg group of ExMonty nodes and publishes this node's load
  #     (running and queued executions, and its capacity) to the other members
  #     every @tick_ms when it changed, and every @heartbeat_ms regardless;
  #   * keeps the loads the others publish in the ETS table @loads, which
  #     ExMonty.Cluster.pick/0 reads without calling anyone;
  #   * runs executions for callers (remote or local): at most `capacity` at a
  #     time, each in its own process; the rest wait in a FIFO queue.
  #
  # Each execution process runs ExMonty on this node, so the NIF monitors it:
  # killing it cancels the Python run. The server monitors every caller and
  # kills (or unqueues) its execution when the caller dies, including when the
  # caller's node goes away (:noconnection). Nothing is linked to callers;
  # executions are linked to the server (which traps exits).

  use GenServer

  alias ExMonty.Cluster

  @tick_ms 50
  @heartbeat_ms 1_000

  @doc false
  @spec start_link(term()) :: GenServer.on_start()
  def start_link(_arg), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)

  @doc false
  # The ETS tables this server owns.
  @spec loads_table() :: atom()
  def loads_table, do: ExMonty.Cluster.Loads

  @doc false
  @spec bridges_table() :: atom()
  def bridges_table, do: ExMonty.Cluster.Bridges

  @doc false
  @spec runners_table() :: atom()
  def runners_table, do: ExMonty.Cluster.Runners

  @impl true
  def init(_arg) do
    :ets.new(loads_table(), [:named_table, :public, :set, read_concurrency: true])
    :ets.new(runners_table(), [:named_table, :public, :set, read_concurrency: true])
    :ets.new(bridges_table(), [:named_table, :public, :set, read_concurrency: true])
    capacity = capacity!()
    Process.flag(:trap_exit, true)
    :ok = :pg.join(Cluster.scope(), Cluster.group(), self())

    state = %{
      capacity: capacity,
      # request ref => {exec pid, exec monitor, caller monitor}
      running: %{},
      # monitor (exec or caller) => request ref
      monitors: %{},
      # queued requests, oldest first: {ref, caller, request, caller monitor}
      queue: :queue.new(),
      completed: 0,
      dirty: true,
      last_sent: System.monotonic_time(:millisecond)
    }

    publish_local(state)
    :timer.send_interval(@tick_ms, :tick)
    {:ok, state}
  end

  defp capacity! do
    case Application.get_env(:ex_monty, :cluster_capacity) do
      nil ->
        ExMonty.stats().workers

      n when is_integer(n) and n > 0 ->
        n

      other ->
        raise ArgumentError,
              "config :ex_monty, cluster_capacity: must be a positive integer, got: #{inspect(other)}"
    end
  end

  @impl true
  def handle_info({:ex_monty_exec, ref, caller, request}, state)
      when is_reference(ref) and is_pid(caller) do
    caller_mon = Process.monitor(caller)
    state = put_in(state.monitors[caller_mon], ref)

    state =
      if map_size(state.running) < state.capacity do
        spawn_exec(state, ref, caller, request, caller_mon)
      else
        %{state | queue: :queue.in({ref, caller, request, caller_mon}, state.queue)}
      end

    {:noreply, changed(state)}
  end

  def handle_info({:ex_monty_done, ref, pid}, state) do
    case state.running do
      %{^ref => {^pid, mon, caller_mon}} ->
        Process.demonitor(mon, [:flush])
        Process.demonitor(caller_mon, [:flush])

        state = %{
          state
          | running: Map.delete(state.running, ref),
            monitors: Map.drop(state.monitors, [mon, caller_mon]),
            completed: state.completed + 1
        }

        {:noreply, changed(next(state))}

      _ ->
        {:noreply, state}
    end
  end

  def handle_info({:ex_monty_cancel, ref}, state), do: {:noreply, changed(cancel(state, ref))}

  def handle_info({:DOWN, mon, :process, _pid, reason}, state) do
    case Map.pop(state.monitors, mon) do
      {nil, _} ->
        {:noreply, state}

      {ref, monitors} ->
        state = %{state | monitors: monitors}

        state =
          case state.running do
            %{^ref => {_pid, ^mon, caller_mon}} ->
              # The execution ended without saying it was done: it
              # crashed; its caller is told here.
              if reason != :normal do
                send(ref, {ref, {:error, crashed(reason)}})
              end

              Process.demonitor(caller_mon, [:flush])

              %{
                state
                | running: Map.delete(state.running, ref),
                  monitors: Map.delete(monitors, caller_mon),
                  completed: state.completed + 1
              }
              |> next()

            _ ->
              # The caller died (or its node went away).
              cancel(state, ref)
          end

        {:noreply, changed(state)}
    end
  end

  def handle_info({:ex_monty_load, node, running, queued, capacity, completed}, state) do
    :ets.insert(loads_table(), {node, running, queued, capacity, completed})
    {:noreply, state}
  end

  def handle_info(:tick, state) do
    now = System.monotonic_time(:millisecond)

    # Also keeps this node's entry under its current name (distribution may
    # start after ExMonty does).
    publish_local(state)

    if state.dirty or now - state.last_sent >= @heartbeat_ms do
      broadcast(state)
      if now - state.last_sent >= @heartbeat_ms, do: Cluster.sweep_inflight()
      {:noreply, %{state | dirty: false, last_sent: now}}
    else
      {:noreply, state}
    end
  end

  # Exit signals of linked executions (their :DOWN does the work).
  def handle_info({:EXIT, _pid, _reason}, state), do: {:noreply, state}

  def handle_info(_other, state), do: {:noreply, state}

  defp spawn_exec(state, ref, caller, request, caller_mon) do
    # Linked, so that executions do not outlive a crashed server (which
    # traps exits); monitored, to free their slot.
    pid = spawn_link(ExMonty.Cluster.Remote, :execute, [ref, caller, request])
    mon = Process.monitor(pid)

    %{
      state
      | running: Map.put(state.running, ref, {pid, mon, caller_mon}),
        monitors: Map.put(state.monitors, mon, ref)
    }
  end

  # Starts queued executions while there is room.
  defp next(state) do
    if map_size(state.running) < state.capacity do
      case :queue.out(state.queue) do
        {{:value, {ref, caller, request, caller_mon}}, queue} ->
          %{state | queue: queue} |> spawn_exec(ref, caller, request, caller_mon) |> next()

        {:empty, _} ->
          state
      end
    else
      state
    end
  end

  defp cancel(state, ref) do
    case Map.pop(state.running, ref) do
      {{pid, mon, caller_mon}, running} ->
        # The NIF cancels the Python run of a process that dies.
        Process.exit(pid, :kill)
        Process.demonitor(mon, [:flush])
        Process.demonitor(caller_mon, [:flush])

        %{state | running: running, monitors: Map.drop(state.monitors, [mon, caller_mon])}
        |> next()

      {nil, _} ->
        {gone, queue} = Enum.split_with(:queue.to_list(state.queue), &(elem(&1, 0) == ref))
        Enum.each(gone, fn {_, _, _, caller_mon} -> Process.demonitor(caller_mon, [:flush]) end)
        monitors = Map.drop(state.monitors, Enum.map(gone, &elem(&1, 3)))
        %{state | queue: :queue.from_list(queue), monitors: monitors}
    end
  end

  defp changed(state) do
    publish_local(state)
    %{state | dirty: true}
  end

  defp publish_local(state) do
    :ets.insert(
      loads_table(),
      {node(), map_size(state.running), :queue.len(state.queue), state.capacity, state.completed}
    )
  end

  defp broadcast(state) do
    message =
      {:ex_monty_load, node(), map_size(state.running), :queue.len(state.queue), state.capacity,
       state.completed}

    for pid <- :pg.get_members(Cluster.scope(), Cluster.group()), pid != self() do
      send(pid, message)
    end

    :ok
  end

  defp crashed(reason) do
    %ExMonty.Exception{
      type: :runtime_error,
      python_type: "RuntimeError",
      message: "the execution on #{node()} exited: #{inspect(reason, limit: 20)}"
    }
  end
end
