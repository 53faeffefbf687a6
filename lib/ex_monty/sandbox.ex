defmodule ExMonty.Sandbox do
  @moduledoc """
  Runs Python code and answers its host calls with Elixir code.

      iex> ExMonty.Sandbox.run("double(21)",
      ...>   functions: %{"double" => fn [x], _kwargs -> {:ok, x * 2} end}
      ...> )
      {:ok, 42, ""}

  ## Options

    * `:functions` — `%{"name" => fun}` where `fun.(args, kwargs)` returns
      `{:ok, value}` or `{:error, exception_type, message}`. Wrap a function as
      `{:async, fun}` to run it concurrently when Python awaits it (see below).
    * `:handler` — a module implementing this behaviour. `:functions` are
      looked up first.
    * `:os` — answers file, environment and clock requests: an
      `ExMonty.PseudoFS`, a map `%{function_atom => fun}` (see
      `ExMonty.OsCall` for the atoms), or a module implementing
      `c:handle_os/3`. Without it (or for calls it does not handle) file and
      environment access raise `PermissionError`; sleeps wait in the calling
      process, within `max_total_sleep_secs`.
    * `:inputs` — `%{"name" => value}` variables for the code.
    * `:limits` — see `ExMonty.Limits`.
    * `:callback_timeout` — milliseconds a callback may take (default 10 000);
      past it the call raises `TimeoutError` in Python.
    * `:return_os` — when true, the result carries the final `:os` state as
      a fourth element: `{:ok, value, output, fs}` / `{:error, exception, fs}`,
      so files written by Python are not lost.
    * `:script_name` — the file name shown in tracebacks.
    * `:cwd` — the working directory (defaults to the `PseudoFS`'s, or `/`).
    * `:mounts` — an `ExMonty.Mount`: real directories that answer file
      calls under their virtual paths; everything else goes to `:os`.

  ## Callbacks never crash the caller

  Each callback runs in its own process. One that raises, throws, exits,
  times out or returns something other than the forms above becomes a Python
  `RuntimeError` (or `TimeoutError`) at the call site, with the Elixir reason
  in its message; Python can catch it.

  ## Async

  When Python awaits host calls, for example
  `await asyncio.gather(fetch(a), fetch(b))`, functions registered as
  `{:async, fun}` (or for which `c:handle_function/3` returns
  `{:async, fun0}`) start at once in their own processes and Python keeps
  running; when every Python task is waiting, the sandbox collects the results
  together. Ten such calls that each take 100 ms finish in about 100 ms.

  Functions that are not declared async return their value directly, so they
  can be called from synchronous code.
  """

  alias ExMonty.{Exception, FunctionCall, OsCall, PseudoFS, Snapshot}

  @typedoc "What a callback returns."
  @type callback_result :: {:ok, term()} | {:error, atom(), String.t()}

  @doc "Answers a call to an external function."
  @callback handle_function(name :: String.t(), args :: [term()], kwargs :: map()) ::
              callback_result() | {:async, (() -> callback_result())}

  @doc "Answers an OS request (see `ExMonty.OsCall` for the function atoms)."
  @callback handle_os(function :: atom(), args :: [term()], kwargs :: map()) ::
              callback_result() | :not_handled

  @doc "Gives the value of an undefined name, or `:undefined` (NameError)."
  @callback handle_name_lookup(name :: String.t()) :: {:ok, term()} | :undefined

  @optional_callbacks handle_function: 3, handle_os: 3, handle_name_lookup: 1

  @default_callback_timeout 10_000

  defmodule State do
    @moduledoc false
    defstruct functions: %{},
              handler: nil,
              os: nil,
              timeout: 10_000,
              sleep_left: nil,
              output: [],
              tasks: %{}
  end

  @doc """
  Runs `code`, answering host calls as configured by `opts` (see the module doc).
  """
  @spec run(String.t(), keyword()) ::
          {:ok, term(), String.t()}
          | {:error, Exception.t()}
          | {:ok, term(), String.t(), term()}
          | {:error, Exception.t(), term()}
  def run(code, opts \\ []) do
    state = %State{
      functions: check_functions!(Keyword.get(opts, :functions, %{})),
      handler: check_handler!(Keyword.get(opts, :handler)),
      os: Keyword.get(opts, :os),
      timeout: Keyword.get(opts, :callback_timeout, @default_callback_timeout),
      sleep_left: ExMonty.Limits.normalize!(Keyword.get(opts, :limits)).max_total_sleep_secs
    }

    inputs = Keyword.get(opts, :inputs, %{})
    names = if is_map(inputs), do: Map.keys(inputs), else: inputs
    compile_opts = [inputs: names] ++ Keyword.take(opts, [:script_name])

    start_opts = Keyword.take(opts, [:limits, :cwd, :mounts])

    start_opts =
      case state.os do
        %PseudoFS{cwd: cwd} -> Keyword.put_new(start_opts, :cwd, cwd)
        _ -> start_opts
      end

    {result, state} =
      with {:ok, runner} <- ExMonty.compile(code, compile_opts),
           {:ok, progress} <- ExMonty.start(runner, inputs, start_opts) do
        loop(progress, state)
      else
        error -> {error, state}
      end

    shutdown_tasks(state)

    case {result, Keyword.get(opts, :return_os, false)} do
      {{:ok, value, output}, true} -> {:ok, value, output, state.os}
      {{:error, exception}, true} -> {:error, exception, state.os}
      {result, _} -> result
    end
  end

  defp check_functions!(functions) when is_map(functions) do
    Enum.each(functions, fn
      {name, fun} when is_binary(name) and is_function(fun, 2) ->
        :ok

      {name, {:async, fun}} when is_binary(name) and is_function(fun, 2) ->
        :ok

      other ->
        raise ArgumentError,
              "functions are \"name\" => fn args, kwargs -> ... end, got: #{inspect(other)}"
    end)

    functions
  end

  defp check_functions!(other),
    do: raise(ArgumentError, ":functions must be a map, got: #{inspect(other)}")

  defp check_handler!(nil), do: nil

  defp check_handler!(module) when is_atom(module) do
    case Code.ensure_loaded(module) do
      {:module, _} -> module
      _ -> raise ArgumentError, "handler #{inspect(module)} is not an available module"
    end
  end

  defp check_handler!(other),
    do: raise(ArgumentError, "handler must be a module, got: #{inspect(other)}")

  # ---------------------------------------------------------------------------
  # The loop
  # ---------------------------------------------------------------------------

  defp loop({:complete, value, output}, state) do
    {{:ok, value, collect(state, output)}, state}
  end

  defp loop({:function_call, %FunctionCall{} = call, snapshot, output}, state) do
    state = %{state | output: [state.output | output]}

    {answer, state} =
      case function_for(call, state) do
        {:sync, fun} ->
          {invoke(fn -> fun.(call.args, call.kwargs) end, state.timeout), state}

        {:async, fun} ->
          {:pending, start_task(state, call.call_id, fn -> fun.(call.args, call.kwargs) end)}

        {:deferred, fun0} ->
          {:pending, start_task(state, call.call_id, fun0)}

        {:answer, answer} ->
          {answer, state}

        :undefined ->
          {:undefined, state}
      end

    step(ExMonty.resume(snapshot, answer), state)
  end

  defp loop({:name_lookup, name, snapshot, output}, state) do
    state = %{state | output: [state.output | output]}

    answer =
      cond do
        Map.has_key?(state.functions, name) ->
          {:ok, {:function, name}}

        state.handler && function_exported?(state.handler, :handle_name_lookup, 1) ->
          case invoke(
                 fn -> lookup_result(state.handler.handle_name_lookup(name)) end,
                 state.timeout
               ) do
            {:ok, _} = ok -> ok
            {:error, _, _} = error -> error
          end

        state.handler && function_exported?(state.handler, :handle_function, 3) ->
          # A handler module may serve any name as a function.
          :undefined

        true ->
          :undefined
      end

    answer = if answer == {:ok, :__undefined__}, do: :undefined, else: answer
    step(ExMonty.resume(snapshot, answer), state)
  end

  defp loop({:os_call, %OsCall{} = call, snapshot, output}, state) do
    state = %{state | output: [state.output | output]}
    {answer, state} = os_answer(call, state)
    step(ExMonty.resume(snapshot, answer), state)
  end

  defp loop({:resolve_futures, ids, %Snapshot{} = snapshot, output}, state) do
    state = %{state | output: [state.output | output]}
    {results, state} = await_tasks(ids, state)
    step(ExMonty.resume_futures(snapshot, results), state)
  end

  defp step({:ok, progress}, state), do: loop(progress, state)
  defp step({:error, _} = error, state), do: {error, state}

  defp collect(state, output), do: IO.iodata_to_binary([state.output | output])

  defp lookup_result({:ok, value}), do: {:ok, value}
  defp lookup_result(:undefined), do: {:ok, :__undefined__}
  defp lookup_result(other), do: other

  defp function_for(%FunctionCall{name: name, args: args, kwargs: kwargs}, state) do
    case Map.fetch(state.functions, name) do
      {:ok, {:async, fun}} ->
        {:async, fun}

      {:ok, fun} ->
        {:sync, fun}

      :error ->
        if state.handler && function_exported?(state.handler, :handle_function, 3) do
          handler = state.handler

          case invoke_raw(fn -> handler.handle_function(name, args, kwargs) end, state.timeout) do
            {:returned, {:async, fun0}} when is_function(fun0, 0) -> {:deferred, fun0}
            {:returned, result} -> {:answer, normalize(result)}
            {:failed, answer} -> {:answer, answer}
          end
        else
          :undefined
        end
    end
  end

  # ---------------------------------------------------------------------------
  # OS calls
  # ---------------------------------------------------------------------------

  defp os_answer(%OsCall{function: function} = call, state)
       when function in [:system_sleep, :system_async_sleep] do
    seconds =
      case call.args do
        [s | _] when is_number(s) -> s
        _ -> 0
      end

    case state.sleep_left do
      left when is_number(left) and seconds > left ->
        {{:error, :timeout_error, "total sleep limit (max_total_sleep_secs) exceeded"}, state}

      left ->
        Process.sleep(round(seconds * 1000))
        {{:ok, nil}, %{state | sleep_left: if(is_number(left), do: left - seconds, else: left)}}
    end
  end

  defp os_answer(%OsCall{} = call, %State{os: %PseudoFS{} = fs} = state) do
    case PseudoFS.handle(fs, call.function, call.args, call.kwargs) do
      {:not_handled, fs} -> {default_os(call), %{state | os: fs}}
      {answer, fs} -> {answer, %{state | os: fs}}
    end
  end

  defp os_answer(%OsCall{} = call, %State{os: os} = state) when is_map(os) do
    case Map.fetch(os, call.function) do
      {:ok, fun} when is_function(fun, 2) ->
        {invoke(fn -> fun.(call.args, call.kwargs) end, state.timeout), state}

      _ ->
        handler_os(call, state)
    end
  end

  defp os_answer(%OsCall{} = call, %State{os: module} = state)
       when is_atom(module) and module != nil do
    if function_exported?(module, :handle_os, 3) do
      {os_invoke(module, call, state), state}
    else
      handler_os(call, state)
    end
  end

  defp os_answer(call, state), do: handler_os(call, state)

  defp handler_os(call, state) do
    if state.handler && function_exported?(state.handler, :handle_os, 3) do
      {os_invoke(state.handler, call, state), state}
    else
      {default_os(call), state}
    end
  end

  defp os_invoke(module, call, state) do
    case invoke_raw(
           fn -> module.handle_os(call.function, call.args, call.kwargs) end,
           state.timeout
         ) do
      {:returned, :not_handled} -> default_os(call)
      {:returned, result} -> normalize(result)
      {:failed, answer} -> answer
    end
  end

  @doc false
  # What an unanswered OS call raises: CPython-like denials.
  def default_os(%OsCall{function: :import, args: [name | _]}),
    do: {:error, :module_not_found_error, "No module named #{quote_path(name)}"}

  def default_os(%OsCall{function: :urandom} = call) do
    case call.args do
      [size | _] when is_integer(size) and size >= 0 and size <= 1_048_576 ->
        {:ok, {:bytes, :crypto.strong_rand_bytes(size)}}

      _ ->
        {:error, :value_error, "os.urandom size is capped at 1 MiB in the sandbox"}
    end
  end

  def default_os(%OsCall{function: function, python_name: name, args: args}) do
    case args do
      [{:path, path} | _] ->
        {:error, :permission_error, "[Errno 13] Permission denied: #{quote_path(path)}"}

      _ when function in [:getenv, :get_environ] ->
        {:error, :permission_error, "environment access is not allowed in this sandbox"}

      _ ->
        {:error, :permission_error, "#{name} is not allowed in this sandbox"}
    end
  end

  defp quote_path(path), do: "'" <> String.replace(path, "'", "\\'") <> "'"

  # ---------------------------------------------------------------------------
  # Running callbacks safely
  # ---------------------------------------------------------------------------

  defp invoke(fun, timeout) do
    case invoke_raw(fun, timeout) do
      {:returned, result} -> normalize(result)
      {:failed, answer} -> answer
    end
  end

  # Runs `fun` in its own process: a raise, throw, exit or timeout becomes a
  # Python exception instead of a crash of the caller.
  defp invoke_raw(fun, timeout) do
    {pid, ref} =
      spawn_monitor(fn ->
        result =
          try do
            {:returned, fun.()}
          rescue
            e ->
              {:failed,
               {:error, :runtime_error, "host callback raised: " <> Elixir.Exception.message(e)}}
          catch
            kind, reason ->
              {:failed,
               {:error, :runtime_error, "host callback #{kind}: #{inspect(reason, limit: 20)}"}}
          end

        exit({:ex_monty_callback, result})
      end)

    receive do
      {:DOWN, ^ref, :process, ^pid, {:ex_monty_callback, result}} ->
        result

      {:DOWN, ^ref, :process, ^pid, reason} ->
        {:failed, {:error, :runtime_error, "host callback exited: #{inspect(reason, limit: 20)}"}}
    after
      timeout ->
        Process.demonitor(ref, [:flush])
        Process.exit(pid, :kill)
        {:failed, {:error, :timeout_error, "host callback timed out after #{timeout} ms"}}
    end
  end

  defp normalize({:ok, _} = ok), do: ok

  defp normalize({:error, type, message} = error) when is_atom(type) and is_binary(message) do
    if Map.has_key?(Exception.python_types(), type) or decimal_type?(type) do
      error
    else
      {:error, :runtime_error, "#{type}: #{message}"}
    end
  end

  defp normalize(other),
    do:
      {:error, :runtime_error,
       "host callback returned #{inspect(other, limit: 10)}; expected {:ok, value} or {:error, type, message}"}

  defp decimal_type?(type), do: String.starts_with?(Atom.to_string(type), "decimal_")

  # ---------------------------------------------------------------------------
  # Async host calls
  # ---------------------------------------------------------------------------

  defp start_task(state, call_id, fun) do
    parent = self()
    timeout = state.timeout

    {pid, ref} =
      spawn_monitor(fn ->
        send(parent, {:ex_monty_future, self(), invoke(fun, timeout)})
      end)

    %{state | tasks: Map.put(state.tasks, call_id, {pid, ref})}
  end

  defp await_tasks(ids, state) do
    deadline = System.monotonic_time(:millisecond) + state.timeout

    Enum.reduce(ids, {[], state}, fn id, {acc, state} ->
      case Map.pop(state.tasks, id) do
        {nil, _} ->
          {[{id, {:error, :runtime_error, "no pending host call with id #{id}"}} | acc], state}

        {{pid, ref}, tasks} ->
          left = max(deadline - System.monotonic_time(:millisecond), 0)

          answer =
            receive do
              {:ex_monty_future, ^pid, answer} ->
                Process.demonitor(ref, [:flush])
                answer

              {:DOWN, ^ref, :process, ^pid, reason} ->
                {:error, :runtime_error, "host callback exited: #{inspect(reason, limit: 20)}"}
            after
              left ->
                Process.demonitor(ref, [:flush])
                Process.exit(pid, :kill)
                {:error, :timeout_error, "host callback timed out after #{state.timeout} ms"}
            end

          {[{id, answer} | acc], %{state | tasks: tasks}}
      end
    end)
    |> then(fn {results, state} -> {Enum.reverse(results), state} end)
  end

  defp shutdown_tasks(%State{tasks: tasks}) do
    Enum.each(tasks, fn {_id, {pid, ref}} ->
      Process.demonitor(ref, [:flush])
      Process.exit(pid, :kill)
    end)
  end
end
