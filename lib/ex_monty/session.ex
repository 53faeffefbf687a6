defmodule ExMonty.Session do
  @moduledoc """
  A Python REPL with persistent state: what one snippet defines, the next
  one uses — the shape of an agent's conversation.

      iex> {:ok, s} = ExMonty.Session.start_link()
      iex> ExMonty.Session.eval(s, "x = 20\\ndef add(a, b):\\n    return a + b")
      {:ok, nil, ""}
      iex> ExMonty.Session.eval(s, "add(x, 22)")
      {:ok, 42, ""}
      iex> {:error, %ExMonty.Exception{type: :zero_division_error}} = ExMonty.Session.eval(s, "1 / 0")
      iex> ExMonty.Session.eval(s, "x")
      {:ok, 20, ""}
      iex> ExMonty.Session.call(s, "add", [2, 3])
      {:ok, 5}
      iex> {:ok, bin} = ExMonty.Session.dump(s)
      iex> {:ok, s2} = ExMonty.Session.start_link(load: bin)
      iex> ExMonty.Session.eval(s2, "add(x, 22)")
      {:ok, 42, ""}

  A session is a process: supervise it, name it (`:name`), and feed it one
  snippet at a time (concurrent calls queue). It runs inside the same
  WebAssembly sandbox as every execution, under the same limits, and its
  host calls are answered as `ExMonty.Sandbox.run/2` answers them.

  ## Options

  Everything `ExMonty.Sandbox.run/2` takes — `:functions`, `:handler`,
  `:os`, `:mounts`, `:limits`, `:callback_timeout`, `:cwd`, `:script_name`,
  `:os_policy` (see `ExMonty.OsPolicy`; a dumped session keeps its policy)
  — plus:

    * `:inputs` — variables for the first snippet (a map);
    * `:load` — a binary from `dump/2` to continue from (with `:key` and
      `:max_bytes`, see `ExMonty.Dump`);
    * `:name` — a GenServer name;
    * `:owner` — the process the session belongs to (default: the caller);
      the session stops when it exits;
    * `:on_output` — receives what Python prints while a snippet runs (see
      `ExMonty.Sandbox`);
    * `:node` — run the session on another node of the cluster (a node
      name, or `:auto` for the least-loaded one): its Python state lives
      there, its callbacks (`:functions`, `:handler`, an `:os` map or
      module) still run here; a lost node answers
      `{:error, %ExMonty.Exception{type: :node_down}}` (see `ExMonty.Cluster`);
    * `:hibernate_after` — milliseconds idle after which the session gives
      its wasm instance back and waits as its dump bytes (default 15 000;
      `:infinity` keeps it). The next snippet wakes it transparently.
    * `:type_check` — `true` or a keyword list of `ExMonty.type_check/2`'s
      `:stubs`, `:inputs`, `:modules`, `:timeout`, `:max_memory`: every snippet is type
      checked against the declarations and what earlier snippets that ran
      to completion defined and imported, and refused without running
      (`{:error, %ExMonty.Exception{type: :type_check_error}}`) when the
      checker finds a problem. The session keeps a warm checker of its own
      (given back when it hibernates). Not combinable with `:load` (a dump
      does not carry the checker's declarations).

  An unknown option or an invalid value raises `ArgumentError`.

  ## Limits and state

  `:limits` apply to each snippet (time, suspensions and output reset per
  snippet); the heap is the session's, so `max_memory` bounds what the whole
  conversation keeps. A Python error ends the snippet, never the session: the
  state it had stays. A `PseudoFS` given as `:os` keeps what Python writes
  from one snippet to the next.

  An idle session does not pin a wasm instance: after `:hibernate_after`,
  or at once beyond `config :ex_monty, max_live_paused:` (256) idle sessions
  and paused executions, it waits as its dump bytes (a few KB) and is woken
  on its next snippet, with everything it had.
  """

  use GenServer

  alias ExMonty.{Dump, Exception, Job, Limits, Native, Options, Sandbox, TypeCheck}
  alias ExMonty.Cluster.Remote

  @sandbox_keys [:callback_timeout, :functions, :handler, :modules, :mounts, :on_output, :os]

  @typedoc "A session: its pid or name."
  @type t :: GenServer.server()

  @doc """
  Starts a session linked to the caller (see the module doc for options).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    opts = Options.validate!(opts, :session)
    check_type_check_load!(opts)
    check_load!(opts)
    check_inputs!(opts)
    opts = Keyword.put_new(opts, :owner, self())
    GenServer.start_link(__MODULE__, opts, Keyword.take(opts, [:name]))
  end

  @doc "Like `start_link/1`, without a link."
  @spec start(keyword()) :: GenServer.on_start()
  def start(opts \\ []) do
    opts = Options.validate!(opts, :session)
    check_type_check_load!(opts)
    check_load!(opts)
    check_inputs!(opts)
    opts = Keyword.put_new(opts, :owner, self())
    GenServer.start(__MODULE__, opts, Keyword.take(opts, [:name]))
  end

  # The first snippet's inputs are checked here: a bad name kept in the
  # session's state refused every later snippet.
  defp check_inputs!(opts) do
    case input_pairs(Map.new(Keyword.get(opts, :inputs, %{}))) do
      {:ok, _} ->
        :ok

      {:error, %Exception{message: message}} ->
        raise ArgumentError, "ExMonty.Session.start_link/1: option :inputs: #{message}"
    end
  end

  # `:key` and `:max_bytes` are the load's: checked here (raised in the
  # session, a bad one would take its caller down through the link), and
  # refused without `:load` rather than ignored.
  defp check_load!(opts) do
    given = Enum.filter([:key, :max_bytes], &Keyword.has_key?(opts, &1))

    cond do
      Keyword.has_key?(opts, :load) ->
        Dump.check_load_opts!(opts)

      given != [] ->
        raise ArgumentError,
              "ExMonty.Session.start_link/1: #{Enum.map_join(given, " and ", &inspect/1)} " <>
                "apply to :load (checking the dump to continue from), which is not given"

      true ->
        :ok
    end
  end

  defp check_type_check_load!(opts) do
    if TypeCheck.requested(opts) && Keyword.has_key?(opts, :load) do
      raise ArgumentError,
            "ExMonty.Session.start_link/1: :type_check cannot be combined with :load " <>
              "(a dump does not carry the type checker's declarations)"
    end
  end

  @doc false
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: Keyword.get(opts, :name, __MODULE__), start: {__MODULE__, :start_link, [opts]}}
  end

  @doc """
  Runs `code` against the session: `{:ok, value, output}` or
  `{:error, %ExMonty.Exception{}}` (with everything the snippet printed in
  its `output`).

  Options: `:inputs` (variables set before the snippet runs), `:limits`
  (this snippet's, instead of the session's) and `:timeout` (milliseconds,
  default `:infinity`: a snippet still running then stops with a
  `:timeout_error`, as at its own `max_duration_secs`, which still applies;
  the session keeps its state).
  """
  @spec eval(t(), String.t(), keyword()) :: ExMonty.result()
  def eval(session, code, opts \\ []) do
    opts = Options.validate!(opts, :session_eval)

    unless is_binary(code) do
      raise ArgumentError,
            "ExMonty.Session.eval/3 expects Python source (a string), got: #{inspect(code, limit: 5)}"
    end

    call_within(session, opts, &{:eval, code, &1})
  end

  # The session enforces a caller's `:timeout` itself (`:until`, internal:
  # the deadline it sets from now; see `within_until/2`); the call waits a
  # little longer, for a session busy with another caller's snippet.
  defp call_within(session, opts, request) do
    timeout = Keyword.get(opts, :timeout, :infinity)
    opts = Keyword.put(opts, :until, ExMonty.Driver.until(timeout))

    try do
      GenServer.call(session, request.(opts), call_timeout(timeout))
    catch
      :exit, {:timeout, {GenServer, :call, _}} -> {:error, Job.timed_out(timeout)}
    end
  end

  defp call_timeout(:infinity), do: :infinity
  defp call_timeout(timeout), do: timeout + 5_000

  @doc """
  Calls a function the session defined, with positional arguments:
  `{:ok, value}` or `{:error, %ExMonty.Exception{}}`. The function may not
  call the host. Options: `:limits`, `:timeout`.
  """
  @spec call(t(), String.t(), list(), keyword()) :: {:ok, ExMonty.value()} | {:error, Exception.t()}
  def call(session, name, args, opts \\ []) do
    opts = Options.validate!(opts, :session_call)

    unless is_binary(name) and is_list(args) do
      raise ArgumentError,
            "ExMonty.Session.call/4 expects a function name and a list of arguments, got: " <>
              inspect({name, args}, limit: 5)
    end

    call_within(session, opts, &{:call, name, args, &1})
  end

  @doc """
  Serialises the session (its variables, functions and classes), signed as
  `ExMonty.Dump` describes (`:key`). `start_link(load: binary)` continues it,
  on this node or another.
  """
  @spec dump(t(), keyword()) :: {:ok, binary()} | {:error, Exception.t()}
  def dump(session, opts \\ []) do
    opts = Keyword.validate!(opts, [:key])
    # Checked here: raised in the session, it would end the session.
    :ok = Dump.check_key!(opts)
    GenServer.call(session, {:dump, opts}, :infinity)
  end

  @doc """
  Whether interactive input can run as it is (`:complete`), needs more lines
  (`:incomplete`: an open bracket, a trailing backslash), or opened a block
  that a blank line ends (`:block`) — as CPython's prompt decides.

      iex> ExMonty.Session.continuation("x = 1")
      :complete
      iex> ExMonty.Session.continuation("f(1,")
      :incomplete
      iex> ExMonty.Session.continuation("def f():")
      :block
  """
  @spec continuation(String.t()) :: :complete | :incomplete | :block
  def continuation(code) when is_binary(code) do
    case Job.await(Native.session_continuation(code)) do
      {:ok, mode} -> mode
      {:error, exception} -> raise exception
    end
  end

  @doc "Stops the session."
  @spec stop(t()) :: :ok
  def stop(session), do: GenServer.stop(session)

  # ---------------------------------------------------------------------------

  @doc false
  # A snippet of a session placed here by another node: `stand_ins` replace
  # the caller's callbacks for this snippet, and `group_leader` is the
  # bridge they find their caller by (see ExMonty.Cluster.Proxy).
  @spec eval_bridged(pid(), String.t(), keyword(), keyword()) :: ExMonty.result()
  def eval_bridged(pid, code, opts, stand_ins) do
    GenServer.call(pid, {:eval, code, opts, {Process.group_leader(), stand_ins}}, :infinity)
  end

  @impl true
  def init(opts) do
    case Keyword.pop(opts, :node) do
      {nil, opts} -> init_here(opts)
      {target, opts} -> init_remote(target, opts)
    end
  end

  # The callbacks stay on this node; everything else goes with the session.
  @callback_keys [:functions, :handler, :callback_timeout]

  defp init_remote(target, opts) do
    Process.monitor(Keyword.fetch!(opts, :owner))
    target = if target == :auto, do: ExMonty.Cluster.pick(), else: target

    {callbacks, remote_opts} =
      case Keyword.get(opts, :os) do
        %ExMonty.PseudoFS{} -> Keyword.split(opts, @callback_keys)
        _ -> Keyword.split(opts, [:os | @callback_keys])
      end

    remote_opts =
      remote_opts
      |> Keyword.drop([:name, :on_output, :type_check])
      |> Keyword.put(:owner, self())

    case ExMonty.Cluster.Remote.call(:session_start, [remote_opts], [], target) do
      {:ok, pid} ->
        Process.monitor(pid)
        # Snippets are type checked here, where the callbacks' specs are.
        type_check = TypeCheck.session_new(opts)
        {:ok, %{remote: pid, node: target, callbacks: callbacks, down: nil, type_check: type_check}}

      {:error, exception} ->
        {:stop, {:shutdown, exception}}
    end
  end

  defp init_here(opts) do
    Process.monitor(Keyword.fetch!(opts, :owner))
    limits = Limits.normalize!(Keyword.get(opts, :limits))
    mounts = with %ExMonty.Mount{resource: resource} <- Keyword.get(opts, :mounts), do: resource

    settings =
      ExMonty.Execution.native_settings(
        limits,
        true,
        cwd(opts),
        mounts,
        ExMonty.OsPolicy.normalize!(Keyword.get(opts, :os_policy)),
        Keyword.has_key?(opts, :on_output)
      )

    created =
      case Keyword.fetch(opts, :load) do
        {:ok, binary} ->
          with {:ok, bytes, signed} <-
                 Dump.decode(:session, binary, Keyword.take(opts, [:key, :max_bytes])) do
            # A verified dump may go into a warm instance (see
            # `ExMonty.load_snapshot/2`); any other gets a new one.
            Job.run({:session_load, :session_load_dirty}, [bytes, settings, signed == :signed])
          end

        :error ->
          script = Keyword.get(opts, :script_name, "main.py")
          Job.await(Native.session_new(script, settings))
      end

    case created do
      {:ok, resource} ->
        state = %{
          resource: resource,
          limits: Keyword.get(opts, :limits),
          inputs: Keyword.get(opts, :inputs, %{}),
          sandbox: Keyword.take(opts, @sandbox_keys),
          hibernate_after: Keyword.get(opts, :hibernate_after, 15_000),
          type_check: TypeCheck.session_new(opts)
        }

        {:ok, state, state.hibernate_after}

      {:error, exception} ->
        {:stop, {:shutdown, exception}}
    end
  end

  defp cwd(opts) do
    case Keyword.get(opts, :os) do
      %ExMonty.PseudoFS{cwd: cwd} -> Keyword.get(opts, :cwd, cwd)
      _ -> Keyword.get(opts, :cwd)
    end
  end

  # The snippet's limits, with `max_duration_secs` cut to what is left of
  # the caller's `:timeout`: the snippet then stops as at its own time limit
  # (a Python TimeoutError; the session keeps its state and its instance),
  # where cancelling it would lose the session. `capped`: the caller's
  # timeout, when it is what cut the limit.
  defp within_until(opts, state) do
    limits = Limits.normalize!(Keyword.get(opts, :limits, state.limits))

    case Keyword.get(opts, :until, :infinity) do
      :infinity ->
        {limits, nil}

      {deadline, timeout} ->
        left = max(deadline - System.monotonic_time(:millisecond), 1) / 1000

        if limits.max_duration_secs == nil or left < limits.max_duration_secs do
          {%{limits | max_duration_secs: left}, timeout}
        else
          {limits, nil}
        end
    end
  end

  defp caller_timeout({:error, %Exception{type: :timeout_error} = exception}, timeout)
       when is_integer(timeout),
       do: {:error, %{exception | message: Job.timed_out(timeout).message}}

  defp caller_timeout(result, _capped), do: result

  @impl true
  def handle_call(request, _from, %{remote: pid} = state) do
    reply =
      case {state.down, request} do
        {%Exception{} = down, _} ->
          {:error, down}

        {nil, {:eval, code, opts}} ->
          # A deadline is this node's clock: the other node's session gets
          # the caller's :timeout as it was given.
          opts = Keyword.delete(opts, :until)

          checked(state, code, Keyword.get(opts, :inputs, %{}), fn ->
            Remote.call(:session_eval, [pid, code, opts], state.callbacks, state.node)
          end)

        {nil, {:call, name, args, opts}} ->
          opts = Keyword.delete(opts, :until)
          Remote.call(:session_call, [pid, name, args, opts], [], state.node)

        {nil, {:dump, opts}} ->
          Remote.call(:session_dump, [pid, opts], [], state.node)
      end

    state =
      case reply do
        {:ok, _value, _output, type_check} -> %{state | type_check: type_check}
        _ -> state
      end

    {:reply, strip_type_check(reply), state}
  end

  def handle_call({:eval, code, opts}, from, state),
    do: handle_call({:eval, code, opts, nil}, from, state)

  def handle_call({:eval, code, opts, bridge}, _from, state) do
    inputs = Map.merge(state.inputs, Keyword.get(opts, :inputs, %{}))

    case input_pairs(inputs) do
      {:ok, pairs} ->
        {limits, capped} = within_until(opts, state)
        resource = state.resource

        on_output = Keyword.get(state.sandbox, :on_output)

        first = fn ->
          Job.run(
            {:session_feed, :session_feed_dirty},
            [resource, code, pairs, Limits.to_native(limits)],
            :infinity,
            on_output
          )
        end

        {result, os} =
          checked_here(state, code, inputs, fn ->
            with_bridge(
              bridge,
              state.sandbox,
              &Sandbox.serve(first, [limits: limits] ++ &1)
            )
          end)

        sandbox = if os, do: Keyword.put(state.sandbox, :os, os), else: state.sandbox

        {result, type_check} =
          case result do
            {:ok, value, output, type_check} -> {{:ok, value, output}, type_check}
            other -> {caller_timeout(other, capped), state.type_check}
          end

        # A snippet the type checker refused never ran: the inputs wait for the next.
        inputs =
          if match?({:error, %Exception{type: :type_check_error}}, result),
            do: state.inputs,
            else: %{}

        state = %{state | inputs: inputs, sandbox: sandbox, type_check: type_check}
        {:reply, result, state, state.hibernate_after}

      {:error, _} = error ->
        {:reply, error, state, state.hibernate_after}
    end
  end

  def handle_call({:call, name, args, opts}, _from, state) do
    {limits, capped} = within_until(opts, state)
    resource = state.resource

    result =
      Job.run(
        {:session_call, :session_call_dirty},
        [resource, name, args, Limits.to_native(limits)]
      )
      |> caller_timeout(capped)

    reply =
      case result do
        {:ok, {:complete, value, _output}} ->
          {:ok, value}

        {:ok, pause} ->
          # Given up now, not when its term is collected: the session is
          # free for its next snippet at once.
          ExMonty.Driver.abandon(elem(pause, 2))
          Exception.invalid("a session function may not call the host")

        {:error, _} = error ->
          error
      end

    {:reply, reply, state, state.hibernate_after}
  end

  def handle_call({:dump, opts}, _from, state) do
    reply =
      case Job.await(Native.snapshot_dump(state.resource)) do
        {:ok, {bytes, _kind, untrusted}} -> Dump.encode(:session, bytes, opts, untrusted)
        {:error, _} = error -> error
      end

    {:reply, reply, state, state.hibernate_after}
  end

  # With `type_check:`, a snippet runs only when the checker accepts it, and
  # once it ran to completion later snippets see what it defined: `run`'s
  # {:ok, value, output} comes back as {:ok, value, output, type_check}.
  defp checked(state, code, inputs, run) do
    case TypeCheck.session_check(state.type_check, code, inputs) do
      {:ok, pending} ->
        case run.() do
          {:ok, value, output} ->
            {:ok, value, output, TypeCheck.session_commit(state.type_check, pending)}

          other ->
            other
        end

      {:error, _} = refused ->
        refused
    end
  end

  # The same around Sandbox.serve/2, which also returns the :os state.
  defp checked_here(state, code, inputs, serve) do
    case TypeCheck.session_check(state.type_check, code, inputs) do
      {:ok, pending} ->
        case serve.() do
          {{:ok, value, output}, os} ->
            {{:ok, value, output, TypeCheck.session_commit(state.type_check, pending)}, os}

          other ->
            other
        end

      {:error, _} = refused ->
        {refused, nil}
    end
  end

  defp strip_type_check({:ok, value, output, _type_check}), do: {:ok, value, output}
  defp strip_type_check(reply), do: reply

  # Placed by another node: the stand-ins of its callbacks, and the bridge
  # (group leader) the processes they run in find their caller by.
  defp with_bridge(nil, sandbox, serve), do: serve.(sandbox)

  defp with_bridge({group_leader, stand_ins}, sandbox, serve) do
    # Stand-in modules are looked up with function_exported?/3: load them.
    for {key, module} <- stand_ins, key in [:handler, :os], is_atom(module) do
      Code.ensure_loaded(module)
    end

    original = Process.group_leader()
    Process.group_leader(self(), group_leader)

    try do
      serve.(Keyword.merge(sandbox, stand_ins))
    after
      Process.group_leader(self(), original)
    end
  end

  @impl true
  def handle_info({:DOWN, _ref, :process, pid, reason}, %{remote: pid} = state) do
    down = %Exception{
      type: :node_down,
      python_type: "RuntimeError",
      message: "the session on #{state.node} is gone: #{inspect(reason, limit: 10)}"
    }

    {:noreply, %{state | down: down}}
  end

  def handle_info({:DOWN, _ref, :process, _owner, _reason}, state) do
    {:stop, :normal, state}
  end

  # Idle: the session's instance goes back to the pool, this process's heap
  # shrinks; both come back on the next call.
  def handle_info(:timeout, state) do
    _ = Job.await(Native.snapshot_hibernate(state.resource))
    TypeCheck.session_release(state.type_check)
    {:noreply, state, :hibernate}
  end

  def handle_info(_message, %{remote: _} = state), do: {:noreply, state}
  def handle_info(_message, state), do: {:noreply, state, state.hibernate_after}

  defp input_pairs(inputs) when map_size(inputs) == 0, do: {:ok, []}

  defp input_pairs(inputs) do
    Enum.reduce_while(inputs, {:ok, []}, fn {name, value}, {:ok, acc} ->
      name = if is_atom(name), do: Atom.to_string(name), else: name

      if is_binary(name) and Regex.match?(~r/\A[A-Za-z_][A-Za-z0-9_]*\z/, name) do
        {:cont, {:ok, [{name, value} | acc]}}
      else
        {:halt, Exception.invalid("input name #{inspect(name)} is not a valid Python identifier")}
      end
    end)
  end
end
