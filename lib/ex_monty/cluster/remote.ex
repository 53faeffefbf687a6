defmodule ExMonty.Cluster.Remote do
  @moduledoc false
  # Both ends of an execution placed on a node with `node:`.
  #
  # The caller (any process, on any node) monitors the target node's
  # ExMonty.Cluster.Server with an alias, sends it the request and waits for
  # the result on that alias. While it waits it serves the callback requests
  # of a remote ExMonty.Sandbox run (so callbacks run on the caller's node).
  # Its wait ends on the result, on the monitor's :DOWN (the node went away:
  # :node_down) or at its :timeout (the remote execution is cancelled). Late
  # messages to the alias are dropped by the VM once it is deactivated.
  #
  # The execution side (execute/3) runs in a process the server spawned on
  # the target node and monitors; the NIF monitors it in turn, so killing it
  # cancels the Python run.

  alias ExMonty.{Cluster, Exception, PseudoFS, Runner, Snapshot}
  alias ExMonty.Cluster.{Proxy, Server}

  @doc false
  # Called at the top of ExMonty.eval/run/start and Sandbox.run: `:local`
  # when there is no `:node` option, else the result of the remote execution.
  @spec dispatch(atom(), list(), keyword()) :: :local | term()
  def dispatch(kind, args, opts) do
    case Keyword.pop(opts, :node) do
      {nil, _opts} -> :local
      {target, opts} -> call(kind, args, opts, target)
    end
  end

  @doc false
  @spec call(atom(), list(), keyword(), node() | :auto) :: term()
  def call(kind, args, opts, target) do
    if Keyword.get(opts, :mounts) != nil do
      raise ArgumentError,
            "option :mounts cannot be used with :node: a mount is a directory of this node " <>
              "(create the ExMonty.Mount on the node that runs the code, or use an :os handler)"
    end

    target = if target == :auto, do: Cluster.pick(), else: target
    here = target == node()
    {request, callbacks} = request(kind, args, opts, here)
    timeout = Keyword.get(opts, :timeout, :infinity)

    Cluster.track_inflight(target, fn ->
      case await(target, request, callbacks, timeout) do
        {:raise, exception, stacktrace} -> reraise exception, stacktrace
        result -> receive_result(kind, result, opts, here)
      end
    end)
  end

  # --- the caller's side -----------------------------------------------------

  defp request(:eval, [code], opts, _here), do: {{:eval, code, opts}, nil}

  defp request(kind, [%Runner{} = runner, inputs], opts, here) when kind in [:run, :start] do
    {{kind, ship(:runner, runner, here), inputs, opts}, nil}
  end

  defp request(:resume, [%Snapshot{} = snapshot, answer], opts, here),
    do: {{:resume, ship(:snapshot, snapshot, here), answer, opts}, nil}

  # Sessions placed on another node: the session process lives there, its
  # callbacks stay here (stand-ins there call back, as for a Sandbox run).
  defp request(:session_start, [session_opts], _opts, _here),
    do: {{:session_start, session_opts}, nil}

  defp request(:session_eval, [pid, code, eval_opts], opts, _here) do
    {spec, callbacks} = callback_spec(opts)
    {{:session_eval, pid, code, eval_opts, spec}, callbacks}
  end

  defp request(:session_call, [pid, name, args, call_opts], _opts, _here),
    do: {{:session_call, pid, name, args, call_opts}, nil}

  defp request(:session_dump, [pid, dump_opts], _opts, _here),
    do: {{:session_dump, pid, dump_opts}, nil}

  defp request(:sandbox, [code], opts, _here) do
    {spec, callbacks} = callback_spec(opts)
    remote_opts = Keyword.drop(opts, [:functions, :handler, :os])

    remote_opts =
      if spec.os == :pseudo_fs, do: [{:os, callbacks.os} | remote_opts], else: remote_opts

    {{:sandbox, code, remote_opts, spec}, callbacks}
  end

  # What stands in, on the other node, for the caller's callbacks.
  defp callback_spec(opts) do
    functions = Keyword.get(opts, :functions, %{})
    handler = Keyword.get(opts, :handler)
    os = Keyword.get(opts, :os)

    spec = %{
      functions:
        Map.new(functions, fn
          {name, {:async, _}} -> {name, :async}
          {name, _} -> {name, :sync}
        end),
      handler: handler && function_exported?(handler, :handle_function, 3),
      os:
        case os do
          nil -> nil
          %PseudoFS{} -> :pseudo_fs
          map when is_map(map) -> {:map, Map.keys(map)}
          module when is_atom(module) -> :module
        end
    }

    {spec, %{functions: functions, handler: handler, os: os}}
  end

  # Resources are valid on their own node only: they travel as dumps, signed
  # with this node's dump key (when one is configured) and checked on arrival
  # with the target's.
  defp ship(_kind, resource, true), do: {:here, resource}

  defp ship(:runner, runner, false) do
    case ExMonty.dump(runner) do
      {:ok, binary} -> {:dump, binary}
      {:error, _} = error -> {:failed, error}
    end
  end

  defp ship(:snapshot, snapshot, false) do
    case ExMonty.dump_snapshot(snapshot) do
      {:ok, binary} -> {:dump, binary}
      {:error, _} = error -> {:failed, error}
    end
  end

  defp await(target, _request, _callbacks, _timeout)
       when target != node() and node() == :nonode@nohost do
    {:error,
     %Exception{
       type: :node_down,
       python_type: "RuntimeError",
       message: "cannot reach node #{target}: this node is not distributed (see Node.start/2)"
     }}
  end

  defp await(target, request, callbacks, timeout) do
    server = {Server, target}
    ref = :erlang.monitor(:process, server, alias: :demonitor)
    send(server, {:ex_monty_exec, ref, self(), request})
    deadline = if timeout == :infinity, do: :infinity, else: now() + timeout
    wait(ref, target, callbacks, deadline, timeout)
  end

  defp wait(ref, target, callbacks, deadline, timeout) do
    receive do
      {^ref, :callback, proxy, proxy_ref, call} ->
        serve_callback(proxy, proxy_ref, call, callbacks)
        wait(ref, target, callbacks, deadline, timeout)

      {^ref, result} ->
        Process.demonitor(ref, [:flush])
        result

      {:DOWN, ^ref, :process, _, reason} ->
        {:error, node_down(target, reason)}
    after
      left(deadline) ->
        Process.demonitor(ref, [:flush])
        send({Server, target}, {:ex_monty_cancel, ref})

        {:error,
         %Exception{
           type: :timeout_error,
           python_type: "TimeoutError",
           message: "execution on #{target} exceeded the caller's timeout of #{timeout} ms"
         }}
    end
  end

  defp now, do: System.monotonic_time(:millisecond)
  defp left(:infinity), do: :infinity
  defp left(deadline), do: max(deadline - now(), 0)

  defp node_down(target, reason) do
    message =
      case reason do
        :noconnection -> "node #{target} went down or was disconnected during the execution"
        :noproc -> "ExMonty is not running on node #{target}"
        other -> "ExMonty's cluster server on #{target} exited: #{inspect(other, limit: 10)}"
      end

    %Exception{type: :node_down, python_type: "RuntimeError", message: message}
  end

  # A paused execution comes back as a dump (signed with the target's key)
  # and is loaded here (checked with this node's key).
  defp receive_result(kind, {:ok, {step, call, {:ex_monty_dump, binary}, output}}, _opts, false)
       when kind in [:start, :resume] do
    case ExMonty.load_snapshot(binary) do
      {:ok, snapshot} -> {:ok, {step, call, snapshot, output}}
      {:error, _} = error -> error
    end
  end

  defp receive_result(:sandbox, result, opts, _here) do
    # With return_os, handlers that are functions or modules come back as
    # given (they ran here); a PseudoFS comes back as Python left it.
    case {result, Keyword.get(opts, :os)} do
      {_, %PseudoFS{}} -> result
      {{:ok, value, output, _fs}, os} -> {:ok, value, output, os}
      {{:error, exception, _fs}, os} -> {:error, exception, os}
      _ -> result
    end
  end

  defp receive_result(_kind, result, _opts, _here), do: result

  # Runs a callback of a remote Sandbox run here, in a process that lives
  # only as long as the proxy waiting for it on the remote node: when the
  # remote run times the callback out, ends, or its node goes away, the
  # proxy's :DOWN kills the callback.
  defp serve_callback(proxy, proxy_ref, call, callbacks) do
    spawn(fn ->
      Process.flag(:trap_exit, true)
      mon = Process.monitor(proxy)
      worker = spawn_link(fn -> exit({:ex_monty_callback, Proxy.run_here(call, callbacks)}) end)

      receive do
        {:EXIT, ^worker, {:ex_monty_callback, result}} ->
          send(proxy, {proxy_ref, result})

        {:EXIT, ^worker, reason} ->
          send(
            proxy,
            {proxy_ref,
             {:failed,
              {:error, :runtime_error, "host callback exited: #{inspect(reason, limit: 20)}"}}}
          )

        {:DOWN, ^mon, :process, _, _} ->
          Process.exit(worker, :kill)
      end
    end)
  end

  # --- the execution side ------------------------------------------------------

  @doc false
  # Runs in a process spawned (and monitored) by this node's server.
  @spec execute(reference(), pid(), tuple()) :: :ok
  def execute(ref, caller, request) do
    here = node(caller) == node()

    result =
      try do
        run(request, ref, caller, here)
      rescue
        exception -> {:raise, exception, __STACKTRACE__}
      catch
        kind, reason ->
          {:error,
           %Exception{
             type: :runtime_error,
             python_type: "RuntimeError",
             message: "the execution on #{node()} failed: #{kind} #{inspect(reason, limit: 20)}"
           }}
      end

    # The server first (a local send: it is queued there before the caller
    # can even see the result), so that a caller exiting right after its
    # result is not taken for a caller dying mid-run.
    send(Server, {:ex_monty_done, ref, self()})
    send(ref, {ref, result})
    :ok
  end

  defp run({:eval, code, opts}, _ref, _caller, _here), do: ExMonty.eval(code, opts)

  defp run({:run, runner, inputs, opts}, _ref, _caller, _here) do
    with {:ok, runner} <- arrive(:runner, runner), do: ExMonty.run(runner, inputs, opts)
  end

  defp run({:start, runner, inputs, opts}, _ref, _caller, here) do
    with {:ok, runner} <- arrive(:runner, runner),
         do: runner |> ExMonty.start(inputs, opts) |> depart(here)
  end

  defp run({:resume, snapshot, answer, opts}, _ref, _caller, here) do
    with {:ok, snapshot} <- arrive(:snapshot, snapshot),
         do: snapshot |> ExMonty.resume(answer, opts) |> depart(here)
  end

  defp run({:session_start, opts}, _ref, _caller, _here), do: ExMonty.Session.start(opts)

  defp run({:session_eval, pid, code, opts, spec}, ref, caller, _here) do
    Proxy.with_bridge(ref, caller, fn ->
      ExMonty.Session.eval_bridged(pid, code, opts, Proxy.options(spec))
    end)
  end

  defp run({:session_call, pid, name, args, opts}, _ref, _caller, _here),
    do: ExMonty.Session.call(pid, name, args, opts)

  defp run({:session_dump, pid, opts}, _ref, _caller, _here), do: ExMonty.Session.dump(pid, opts)

  defp run({:sandbox, code, opts, spec}, ref, caller, _here) do
    Proxy.with_bridge(ref, caller, fn ->
      ExMonty.Sandbox.run(code, Proxy.options(spec) ++ opts)
    end)
  end

  defp arrive(_kind, {:here, resource}), do: {:ok, resource}
  defp arrive(_kind, {:failed, error}), do: error
  defp arrive(:runner, {:dump, binary}), do: cached_runner(binary)
  defp arrive(:snapshot, {:dump, binary}), do: ExMonty.load_snapshot(binary)

  # Runners loaded from dumps are kept (at most @cache_entries of them and
  # @cache_bytes of dumps; the cache is emptied when either is passed), keyed
  # by the dump and this node's key: a runner run again and again on this
  # node is verified and loaded once.
  @cache_entries 256
  @cache_bytes 32 * 1024 * 1024

  defp cached_runner(binary) do
    table = Server.runners_table()

    key =
      :crypto.hash(:sha256, [
        binary,
        :erlang.term_to_binary(Application.get_env(:ex_monty, :dump_key))
      ])

    case :ets.lookup(table, key) do
      [{^key, runner, _size}] ->
        {:ok, runner}

      [] ->
        with {:ok, runner} <- ExMonty.load_runner(binary) do
          total = :ets.update_counter(table, :bytes, byte_size(binary), {:bytes, 0})

          if total > @cache_bytes or :ets.info(table, :size) > @cache_entries do
            :ets.delete_all_objects(table)
          else
            :ets.insert(table, {key, runner, byte_size(binary)})
          end

          {:ok, runner}
        end
    end
  end

  defp depart({:ok, {step, call, %Snapshot{} = snapshot, output}}, false) do
    case ExMonty.dump_snapshot(snapshot) do
      {:ok, binary} -> {:ok, {step, call, {:ex_monty_dump, binary}, output}}
      {:error, _} = error -> error
    end
  end

  defp depart(result, _here), do: result
end
