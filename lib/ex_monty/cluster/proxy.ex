defmodule ExMonty.Cluster.Proxy do
  @moduledoc false
  # Host callbacks of an ExMonty.Sandbox run placed on another node.
  #
  # The whole Sandbox loop runs on the target node (one message round trip
  # per callback, no dump per step), but with stand-ins for the caller's
  # `:functions`, `:handler` and `:os` (unless a PseudoFS, which is data and
  # travels). A stand-in sends the call to the caller, which runs the real
  # callback on its own node (ExMonty.Cluster.Remote.serve_callback) and
  # sends back the result: tools and their credentials never leave it.
  #
  # Stand-ins find their caller through the group leader: the execution
  # process gets a fresh group leader (a relay that forwards IO to the
  # original one), every process the Sandbox spawns inherits it, and the
  # bridges table maps it to the caller's reply alias.

  alias ExMonty.Cluster.Server

  @doc false
  @spec with_bridge(reference(), pid(), (() -> result)) :: result when result: term()
  def with_bridge(ref, caller, fun) do
    execution = self()
    original = Process.group_leader()
    relay = spawn(fn -> relay(execution, original) end)
    :ets.insert(Server.bridges_table(), {relay, ref, caller})
    Process.group_leader(execution, relay)

    try do
      fun.()
    after
      Process.group_leader(execution, original)
      send(relay, :stop)
    end
  end

  defp relay(execution, original) do
    mon = Process.monitor(execution)
    relay_loop(mon, original)
  end

  defp relay_loop(mon, original) do
    receive do
      {:io_request, _from, _reply_as, _request} = io ->
        send(original, io)
        relay_loop(mon, original)

      {:DOWN, ^mon, :process, _, _} ->
        :ets.delete(Server.bridges_table(), self())

      :stop ->
        :ets.delete(Server.bridges_table(), self())

      _other ->
        relay_loop(mon, original)
    end
  end

  @doc false
  # The Sandbox options that stand in for the caller's callbacks.
  @spec options(map()) :: keyword()
  def options(spec) do
    functions =
      Map.new(spec.functions, fn
        {name, :sync} -> {name, function(name)}
        {name, :async} -> {name, {:async, function(name)}}
      end)

    handler =
      case spec.handler do
        nil -> []
        true -> [handler: __MODULE__.Handler]
        false -> [handler: __MODULE__.LookupHandler]
      end

    os =
      case spec.os do
        {:map, keys} ->
          [os: Map.new(keys, &{&1, fn args, kwargs -> call({:os, &1, args, kwargs}) end})]

        :module ->
          [os: __MODULE__.Os]

        _ ->
          []
      end

    [functions: functions] ++ handler ++ os
  end

  defp function(name), do: fn args, kwargs -> call({:function, name, args, kwargs}) end

  @doc false
  # Sends `request` to the caller and waits for its answer. The Sandbox's
  # watchdog bounds the wait (callback_timeout) and kills this process when
  # the run ends; the caller's end kills the callback when this process dies.
  @spec call(tuple()) :: term()
  def call(request) do
    case :ets.lookup(Server.bridges_table(), Process.group_leader()) do
      [{_relay, ref, caller}] ->
        mon = Process.monitor(caller)
        proxy_ref = make_ref()
        send(ref, {ref, :callback, self(), proxy_ref, request})

        receive do
          {^proxy_ref, {:returned, {:ex_monty_async_done, result}}} ->
            Process.demonitor(mon, [:flush])
            {:async, fn -> result end}

          {^proxy_ref, {:returned, result}} ->
            Process.demonitor(mon, [:flush])
            result

          {^proxy_ref, {:failed, answer}} ->
            Process.demonitor(mon, [:flush])
            answer

          {:DOWN, ^mon, :process, _, reason} ->
            {:error, :runtime_error,
             "the caller on #{node(caller)} is gone (#{inspect(reason)}): callback not run"}
        end

      [] ->
        {:error, :runtime_error, "ExMonty.Cluster.Proxy called outside a remote Sandbox run"}
    end
  end

  @doc false
  # Runs a callback on the caller's node (in a process of its own).
  @spec run_here(tuple(), map()) :: {:returned, term()} | {:failed, term()}
  def run_here(request, callbacks) do
    {:returned, invoke(request, callbacks)}
  rescue
    e ->
      {:failed, {:error, :runtime_error, "host callback raised: " <> Exception.message(e)}}
  catch
    kind, reason ->
      {:failed, {:error, :runtime_error, "host callback #{kind}: #{inspect(reason, limit: 20)}"}}
  end

  defp invoke({:function, name, args, kwargs}, %{functions: functions}) do
    case Map.fetch!(functions, name) do
      {:async, fun} -> fun.(args, kwargs)
      fun -> fun.(args, kwargs)
    end
  end

  defp invoke({:handler, :handle_function, [name, args, kwargs]}, %{handler: handler}) do
    case handler.handle_function(name, args, kwargs) do
      # A deferred answer is computed here at once and handed over done:
      # its concurrency with Python is lost, not its result.
      {:async, fun0} when is_function(fun0, 0) -> {:ex_monty_async_done, fun0.()}
      other -> other
    end
  end

  defp invoke({:handler, :handle_name_lookup, [name]}, %{handler: handler}) do
    if function_exported?(handler, :handle_name_lookup, 1),
      do: handler.handle_name_lookup(name),
      else: :undefined
  end

  defp invoke({:handler, :handle_os, [function, args, kwargs]}, %{handler: handler}) do
    if function_exported?(handler, :handle_os, 3),
      do: handler.handle_os(function, args, kwargs),
      else: :not_handled
  end

  defp invoke({:os, function, args, kwargs}, %{os: os}) when is_map(os),
    do: Map.fetch!(os, function).(args, kwargs)

  defp invoke({:os_module, function, args, kwargs}, %{os: module}),
    do: module.handle_os(function, args, kwargs)

  defmodule Handler do
    @moduledoc false
    # Stands in for a handler module that exports handle_function/3.
    @behaviour ExMonty.Sandbox
    alias ExMonty.Cluster.Proxy

    @impl true
    def handle_function(name, args, kwargs),
      do: Proxy.call({:handler, :handle_function, [name, args, kwargs]})

    @impl true
    def handle_name_lookup(name), do: Proxy.call({:handler, :handle_name_lookup, [name]})

    @impl true
    def handle_os(function, args, kwargs),
      do: Proxy.call({:handler, :handle_os, [function, args, kwargs]})
  end

  defmodule LookupHandler do
    @moduledoc false
    # Stands in for a handler module without handle_function/3 (undefined
    # functions stay NameErrors).
    @behaviour ExMonty.Sandbox
    alias ExMonty.Cluster.Proxy

    @impl true
    def handle_name_lookup(name), do: Proxy.call({:handler, :handle_name_lookup, [name]})

    @impl true
    def handle_os(function, args, kwargs),
      do: Proxy.call({:handler, :handle_os, [function, args, kwargs]})
  end

  defmodule Os do
    @moduledoc false
    # Stands in for an `:os` module.
    alias ExMonty.Cluster.Proxy

    @spec handle_os(atom(), list(), map()) :: term()
    def handle_os(function, args, kwargs),
      do: Proxy.call({:os_module, function, args, kwargs})
  end
end
