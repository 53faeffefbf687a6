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
    * `:handler` — a loaded module implementing this behaviour. `:functions`
      are looked up first.
    * `:os` — answers file and environment requests: an `ExMonty.PseudoFS`,
      a map `%{function_atom => fn args, kwargs -> ... end}` (the atoms of
      `ExMonty.OsCall`), or a loaded module exporting `c:handle_os/3`.
      Without it (or for calls it does not handle) file and environment
      access raise `PermissionError` with CPython's messages
      (`[Errno 13] Permission denied: '/etc/passwd'`). Clocks are read in the
      sandbox; sleeps wait in the calling process, within
      `max_total_sleep_secs`.
    * `:inputs` — `%{"name" => value}` variables for the code (names as for
      `ExMonty.eval/2`).
    * `:limits` — see `ExMonty.Limits`.
    * `:callback_timeout` — milliseconds a callback may take, a positive
      integer or `:infinity` (default 10 000); past it the call raises
      `TimeoutError` in Python.
    * `:return_os` — when true, the result carries the final `:os` state as
      a fourth element: `{:ok, value, output, fs}` / `{:error, exception, fs}`,
      so files written by Python are not lost.
    * `:script_name` — the file name shown in tracebacks (a non-empty string
      of at most 256 bytes).
    * `:cwd` — the working directory (defaults to the `PseudoFS`'s, or `/`).
    * `:mounts` — an `ExMonty.Mount`: real directories that answer file
      calls under their virtual paths; everything else goes to `:os`.

  Options are checked before anything runs: an unknown option or an invalid
  value raises `ArgumentError` naming it.

      iex> ExMonty.Sandbox.run("1", function: %{})
      ** (ArgumentError) unknown option :function for ExMonty.Sandbox.run/2; valid options: :callback_timeout, :cwd, :functions, :handler, :inputs, :limits, :mounts, :os, :return_os, :script_name

  When the code raises, the exception's `output` holds everything printed
  since the run began.

  ## Names served by a handler

  Calling an undefined name (`fetch(url)`) is a function call that
  `:functions` or `c:handle_function/3` answers. *Reading* a name without
  calling it (`g = fetch`) is a name lookup: a name in
  `:functions` is found automatically; a handler module serves it by
  returning `{:ok, {:function, name}}` from `c:handle_name_lookup/1`, after
  which calls go to `c:handle_function/3` under that name.

  ## OS answers are checked

  A value returned for an OS call must have the type Python expects:
  `read_text` a string, `read_bytes` `{:bytes, b}`, `exists`/`is_file`/
  `is_dir`/`is_symlink` a boolean, `iterdir` a list of `{:path, p}`, `getenv`
  a string or `nil` (or the default Python passed), `get_environ` a map of
  strings, the writes a byte/character count, `mkdir`/`unlink`/`rmdir` `nil`,
  `rename`/`resolve`/`absolute` a `{:path, p}`. Anything else raises
  `TypeError` in Python at the call site, naming the call and the value.

      iex> ExMonty.Sandbox.run("from pathlib import Path\\nPath('/x').read_text()",
      ...>   os: %{read_text: fn _args, _kwargs -> {:ok, 5} end}
      ...> ) |> elem(1) |> Map.take([:type, :message])
      %{type: :type_error, message: "the host answered Path.read_text() with 5; expected a string (str)"}

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

  @doc """
  Gives the value of an undefined name that Python reads, or `:undefined`
  (NameError). Return `{:ok, {:function, name}}` to make the name a host
  function answered by `c:handle_function/3`.
  """
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

  Returns `{:ok, value, output}` or `{:error, %ExMonty.Exception{}}` (with
  `return_os: true`, the final `:os` state as an extra element).

  ## Examples

      iex> {:error, error} = ExMonty.Sandbox.run("print('a')\\nf()\\nprint('b')\\n1/0",
      ...>   functions: %{"f" => fn _, _ -> {:ok, 1} end})
      iex> error.type
      :zero_division_error
      iex> String.starts_with?(error.output, "a\\n")
      true
  """
  @spec run(String.t(), keyword()) ::
          {:ok, term(), String.t()}
          | {:error, Exception.t()}
          | {:ok, term(), String.t(), term()}
          | {:error, Exception.t(), term()}
  def run(code, opts \\ []) do
    opts = ExMonty.Options.validate!(opts, :sandbox)

    unless is_binary(code) do
      raise ArgumentError,
            "ExMonty.Sandbox.run/2 expects Python source (a string), got: #{inspect(code, limit: 5)}"
    end

    state = %State{
      functions: Keyword.get(opts, :functions, %{}),
      handler: Keyword.get(opts, :handler),
      os: Keyword.get(opts, :os),
      timeout: callback_timeout(Keyword.get(opts, :callback_timeout, @default_callback_timeout)),
      sleep_left: ExMonty.Limits.normalize!(Keyword.get(opts, :limits)).max_total_sleep_secs
    }

    inputs = Keyword.get(opts, :inputs, %{})
    compile_opts = [inputs: Map.keys(inputs)] ++ Keyword.take(opts, [:script_name])

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

    # What earlier steps printed goes in front of what the failing step printed.
    result =
      case result do
        {:error, %Exception{} = exception} ->
          {:error, Exception.prepend_output(exception, IO.iodata_to_binary(state.output))}

        other ->
          other
      end

    shutdown_tasks(state)

    case {result, Keyword.get(opts, :return_os, false)} do
      {{:ok, value, output}, true} -> {:ok, value, output, state.os}
      {{:error, exception}, true} -> {:error, exception, state.os}
      {result, _} -> result
    end
  end

  # A receive timeout cannot exceed 2^32 - 1 ms (about 49 days): :infinity
  # is that, so the callback code keeps working with an integer.
  defp callback_timeout(:infinity), do: 4_294_967_295
  defp callback_timeout(ms), do: ms

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
    answer = check_os_answer(call, answer)
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

  # An OS call answered with a value of the wrong type would hand Python
  # something Path.read_text() can never return: it raises TypeError at the
  # call site instead. (stat, open, scan and import answers are not checked.)
  defp check_os_answer(%OsCall{function: function} = call, {:ok, value} = answer) do
    case os_answer_type(function, value, call.args) do
      :ok ->
        answer

      {:expected, expected} ->
        {:error, :type_error,
         "the host answered #{call.python_name}() with #{inspect(value, limit: 5, printable_limit: 50)}; " <>
           "expected #{expected}"}
    end
  end

  defp check_os_answer(_call, answer), do: answer

  defp os_answer_type(function, value, _args) when function in [:read_text],
    do: if(is_binary(value), do: :ok, else: {:expected, "a string (str)"})

  defp os_answer_type(function, value, _args) when function in [:read_bytes, :urandom],
    do:
      if(match?({:bytes, b} when is_binary(b), value),
        do: :ok,
        else: {:expected, "{:bytes, binary}"}
      )

  defp os_answer_type(function, value, _args)
       when function in [:exists, :is_file, :is_dir, :is_symlink],
       do: if(is_boolean(value), do: :ok, else: {:expected, "a boolean"})

  defp os_answer_type(:iterdir, value, _args) do
    if is_list(value) and Enum.all?(value, &path?/1),
      do: :ok,
      else: {:expected, "a list of {:path, string}"}
  end

  defp os_answer_type(:getenv, value, args) do
    default = Enum.at(args, 1)

    if is_binary(value) or value == nil or value == default,
      do: :ok,
      else: {:expected, "a string or nil"}
  end

  defp os_answer_type(:get_environ, value, _args) do
    if is_map(value) and Enum.all?(value, fn {k, v} -> is_binary(k) and is_binary(v) end),
      do: :ok,
      else: {:expected, "a map of string => string"}
  end

  defp os_answer_type(function, value, _args)
       when function in [:write_text, :write_bytes, :append_text, :append_bytes],
       do:
         if(is_integer(value) and value >= 0, do: :ok, else: {:expected, "a non-negative integer"})

  defp os_answer_type(function, value, _args) when function in [:mkdir, :unlink, :rmdir],
    do: if(value == nil, do: :ok, else: {:expected, "nil"})

  defp os_answer_type(function, value, _args) when function in [:rename, :resolve, :absolute],
    do: if(path?(value), do: :ok, else: {:expected, "{:path, string}"})

  defp os_answer_type(_function, _value, _args), do: :ok

  defp path?({:path, p}) when is_binary(p), do: true
  defp path?(_), do: false

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
