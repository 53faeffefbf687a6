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
    * `:modules` — host modules Python can import:
      `%{"tools" => %{"fetch" => fun, "VERSION" => "1.2"}}` makes
      `import tools`, `tools.fetch(u)` and `from tools import fetch, VERSION`
      work; functions (plain or `{:async, fun}`) are served like
      `:functions` under the name `"tools.fetch"`, other values are
      attributes, dotted names (`"pkg.sub"`) are submodules. A handler
      serves modules with `c:handle_import/1`. Unknown modules stay
      `ModuleNotFoundError`.
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
    * `:node` — run the Python on another node (a node name, or `:auto`);
      callbacks still run on this one (see `ExMonty.Cluster`).
    * `:type_check` — `true` or a keyword list of `ExMonty.type_check/2`'s
      `:stubs`, `:inputs`, `:modules`, `:timeout`, `:max_memory`: the code is type checked
      first and refused, without running, with
      `{:error, %ExMonty.Exception{type: :type_check_error}}` when the
      checker finds a problem. `:functions` are declared for the checker
      from their `@spec` when given as captures (`&Tools.fetch/2`, see
      `ExMonty.type_check/2`), else as taking and returning anything
      (`async def` for `{:async, fun}`); `:modules` and `:inputs` from their
      values; `:stubs` declarations take precedence.

  Options are checked before anything runs: an unknown option or an invalid
  value raises `ArgumentError` naming it.

      iex> ExMonty.Sandbox.run("1", function: %{})
      ** (ArgumentError) unknown option :function for ExMonty.Sandbox.run/2; valid options: :callback_timeout, :cwd, :functions, :handler, :inputs, :limits, :modules, :mounts, :node, :on_output, :os, :os_policy, :return_os, :script_name, :type_check

  When the code raises, the exception's `output` holds everything printed
  since the run began.

  ## Names served by a handler

  Calling an undefined name (`fetch(url)`) is a function call that
  `:functions` or `c:handle_function/3` answers. *Reading* a name without
  calling it (`g = fetch`) is a name lookup: a name in
  `:functions` is found automatically; a handler module serves it by
  returning `{:ok, {:function, name}}` from `c:handle_name_lookup/1`, after
  which calls go to `c:handle_function/3` under that name.

  ## Host objects and their methods

  An `ExMonty.Dataclass` given to Python (as an input or returned by a
  function) is a host object: Python reads and sets its fields, and calling a
  method on it runs Elixir. `p.norm()` is answered by `"Point.norm"` from
  `:functions` if present, else by a plain `"norm"`, else by the handler's
  `c:handle_function/3` under `"Point.norm"`; the object (as Python holds it
  now) is the first argument. With no answer Python gets `AttributeError`.

      iex> point = ExMonty.Dataclass.new("Point", x: 3, y: 4)
      iex> norm = fn [p], _ -> {:ok, :math.sqrt(p.fields["x"] ** 2 + p.fields["y"] ** 2)} end
      iex> ExMonty.Sandbox.run("p.x = 6\\np.y = 8\\np.norm()",
      ...>   inputs: %{"p" => point}, functions: %{"Point.norm" => norm})
      {:ok, 10.0, ""}

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

  ## The run's deadline

  `max_duration_secs` (see `ExMonty.Limits`) bounds the whole run in
  wall-clock time, including the time spent in callbacks and OS handlers
  (sleeps are governed by `max_total_sleep_secs` instead and are not
  counted). Every wait for a callback is cut at the deadline; past it the run
  ends with `{:error, %ExMonty.Exception{type: :timeout_error}}`, which Python
  cannot catch.

  ## Callbacks never crash the caller

  Each callback runs in its own process. One that raises, throws, exits,
  times out or returns something other than the forms above becomes a Python
  `RuntimeError` (or `TimeoutError`) at the call site, with the Elixir reason
  in its message; Python can catch it. A result whose value cannot be sent to
  Python (a pid, a reference, ...) raises `TypeError` there; an error message
  that is not UTF-8 is passed `inspect`ed, and an unknown exception type
  becomes `RuntimeError: type: message`.

  A callback's process never outlives its run: it is killed when it times
  out, when the run ends (futures Python never awaited included) and when the
  process that called `run/2` dies, even by `:kill`. Nothing is linked to the
  caller.

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

  alias ExMonty.{Exception, FunctionCall, OsCall, PseudoFS, Snapshot, TypeCheck}

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

  @doc """
  Gives the attributes of a host module Python imports (`import tools`), or
  `:not_found` (`ModuleNotFoundError`). An attribute whose value is
  `:function` is a host function answered by `c:handle_function/3` under
  the name `"module.attribute"`; any other value is the attribute's value.
  """
  @callback handle_import(name :: String.t()) :: {:ok, %{String.t() => term()}} | :not_found

  @optional_callbacks handle_function: 3, handle_os: 3, handle_name_lookup: 1, handle_import: 1

  @default_callback_timeout 10_000

  defmodule State do
    @moduledoc false
    defstruct functions: %{},
              handler: nil,
              os: nil,
              timeout: 10_000,
              sleep_left: nil,
              on_output: nil,
              modules: %{},
              deadline: nil,
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

    case ExMonty.Cluster.Remote.dispatch(:sandbox, [code], opts) do
      :local -> run_here(code, opts)
      remote -> remote
    end
  end

  defp run_here(code, opts) do
    inputs = Keyword.get(opts, :inputs, %{})
    compile_opts = [inputs: Map.keys(inputs)] ++ Keyword.take(opts, [:script_name])
    start_opts = Keyword.take(opts, [:limits, :cwd, :mounts, :os_policy, :on_output])

    start_opts =
      case Keyword.get(opts, :os) do
        %PseudoFS{cwd: cwd} -> Keyword.put_new(start_opts, :cwd, cwd)
        _ -> start_opts
      end

    host = Map.new(Keyword.take(opts, [:functions, :modules]))

    first = fn ->
      with :ok <- TypeCheck.gate(code, opts, {:values, inputs}, host),
           {:ok, runner} <- ExMonty.compile(code, compile_opts) do
        ExMonty.start(runner, inputs, start_opts)
      end
    end

    {result, os} = serve(first, opts)

    case {result, Keyword.get(opts, :return_os, false)} do
      {{:ok, value, output}, true} -> {:ok, value, output, os}
      {{:error, exception}, true} -> {:error, exception, os}
      {result, _} -> result
    end
  end

  @doc false
  # The loop behind `run/2` and `ExMonty.Session`: `first` runs the first
  # step; host calls are answered as `opts` (validated) configure. Returns
  # the result and the `:os` state as Python left it.
  @spec serve((() -> {:ok, ExMonty.progress()} | {:error, Exception.t()}), keyword()) ::
          {ExMonty.result(), term()}
  def serve(first, opts) do
    limits = ExMonty.Limits.normalize!(Keyword.get(opts, :limits))

    state = %State{
      functions: Map.merge(module_functions(opts), Keyword.get(opts, :functions, %{})),
      modules: Keyword.get(opts, :modules, %{}),
      handler: Keyword.get(opts, :handler),
      os: Keyword.get(opts, :os),
      timeout: callback_timeout(Keyword.get(opts, :callback_timeout, @default_callback_timeout)),
      sleep_left: limits.max_total_sleep_secs,
      deadline: run_deadline(limits),
      on_output: Keyword.get(opts, :on_output)
    }

    {result, state} =
      case first.() do
        {:ok, progress} -> loop(progress, state)
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
    {result, state.os}
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
    call = %{call | name: dispatch_name(call, state)}

    {answer, state} =
      case function_for(call, state) do
        {:sync, fun} ->
          {invoke(fn -> fun.(call.args, call.kwargs) end, state), state}

        {:async, fun} ->
          {:pending,
           start_task(state, call.call_id, call.name, fn -> fun.(call.args, call.kwargs) end)}

        {:deferred, fun0} ->
          {:pending, start_task(state, call.call_id, call.name, fun0)}

        {:answer, answer} ->
          {answer, state}

        :undefined when call.method_call ->
          {no_method(call), state}

        :undefined ->
          {:undefined, state}
      end

    resume(snapshot, answer, "host function #{call.name}", state)
  end

  defp loop({:name_lookup, name, snapshot, output}, state) do
    state = %{state | output: [state.output | output]}

    answer =
      cond do
        Map.has_key?(state.functions, name) ->
          {:ok, {:function, name}}

        state.handler && function_exported?(state.handler, :handle_name_lookup, 1) ->
          case invoke(fn -> lookup_result(state.handler.handle_name_lookup(name)) end, state) do
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
    resume(snapshot, answer, "host name lookup for #{name}", state)
  end

  defp loop({:os_call, %OsCall{} = call, snapshot, output}, state) do
    state = %{state | output: [state.output | output]}
    {answer, state} = os_answer(call, state)
    answer = check_os_answer(call, answer)
    resume(snapshot, answer, "host OS handler for #{call.python_name}", state)
  end

  defp loop({:resolve_futures, ids, %Snapshot{} = snapshot, output}, state) do
    state = %{state | output: [state.output | output]}
    {results, names, state} = await_tasks(ids, state)
    resume_futures(snapshot, results, names, state)
  end

  # Resumes with `answer` (built from what `source` returned), unless the run's
  # deadline has passed. An answer the NIF refuses leaves the snapshot
  # unconsumed: it is resumed again with a TypeError Python can catch.
  defp resume(snapshot, answer, source, state) do
    with {:ok, left} <- time_left(state, snapshot) do
      case ExMonty.resume(snapshot, answer, timeout: left, on_output: state.on_output) do
        {:error, %Exception{type: :invalid_input, message: reason}} = refused ->
          retry = {:error, :type_error, unsendable(source, reason)}

          with {:ok, left} <- time_left(state, snapshot) do
            case ExMonty.resume(snapshot, retry, timeout: left, on_output: state.on_output) do
              {:error, %Exception{type: type}} when type in [:invalid_input, :snapshot_consumed] ->
                abandon(snapshot)
                step(refused, state)

              other ->
                step(other, state)
            end
          end

        other ->
          step(other, state)
      end
    end
  end

  # A paused execution the loop will not resume (its deadline passed, or it
  # refused every answer) is given up at once.
  defp abandon(snapshot), do: ExMonty.Driver.abandon(snapshot)

  # `names`: call id => the host function that answered it.
  defp resume_futures(snapshot, results, names, state) do
    with {:ok, left} <- time_left(state, snapshot) do
      case ExMonty.resume_futures(snapshot, results, timeout: left, on_output: state.on_output) do
        {:error, %Exception{type: :invalid_input}} = refused ->
          # The NIF does not say which answer it refused: find them one by one.
          fixed = Enum.map(results, &sendable_future(&1, names))

          with true <- fixed != results, {:ok, left} <- time_left(state, snapshot) do
            case ExMonty.resume_futures(snapshot, fixed, timeout: left, on_output: state.on_output) do
              {:error, %Exception{type: type}} when type in [:invalid_input, :snapshot_consumed] ->
                abandon(snapshot)
                step(refused, state)

              other ->
                step(other, state)
            end
          else
            false ->
              abandon(snapshot)
              step(refused, state)

            timeout ->
              timeout
          end

        other ->
          step(other, state)
      end
    end
  end

  defp sendable_future({id, {:ok, value}} = result, names) do
    # Converting the value as an input applies the same checks as an answer.
    case ExMonty.eval("None", inputs: %{"v" => value}) do
      {:error, %Exception{type: :invalid_input, message: reason}} ->
        source = "host function #{Map.get(names, id, "")}"
        {id, {:error, :type_error, unsendable(source, reason)}}

      _ ->
        result
    end
  end

  defp sendable_future(result, _names), do: result

  defp unsendable(source, reason),
    do: "#{source} returned a value that cannot be sent to Python: #{reason}"

  defp step({:ok, progress}, state), do: loop(progress, state)

  defp step({:error, %Exception{type: :timeout_error}} = error, state) do
    case time_left(state) do
      {:ok, _} -> {error, state}
      deadline_passed -> deadline_passed
    end
  end

  defp step({:error, _} = error, state), do: {error, state}

  # ---------------------------------------------------------------------------
  # The run's deadline: max_duration_secs of wall-clock time, host callbacks
  # and OS handlers included, sleeps excluded.
  # ---------------------------------------------------------------------------

  defp run_deadline(limits) do
    case limits.max_duration_secs do
      nil -> nil
      secs -> {System.monotonic_time(:millisecond) + round(secs * 1000), secs}
    end
  end

  # The time left before the run's deadline; past it, the paused execution
  # `snapshot` is given up.
  defp time_left(state, snapshot) do
    case time_left(state) do
      {:ok, _} = left ->
        left

      expired ->
        abandon(snapshot)
        expired
    end
  end

  defp time_left(%State{deadline: nil}), do: {:ok, :infinity}

  defp time_left(%State{deadline: {deadline, secs}} = state) do
    case deadline - System.monotonic_time(:millisecond) do
      left when left > 0 ->
        {:ok, left}

      _ ->
        error = %Exception{
          type: :timeout_error,
          python_type: "TimeoutError",
          message:
            "the run exceeded max_duration_secs (#{secs} s), counting time spent in host callbacks"
        }

        {{:error, error}, state}
    end
  end

  # How long to wait for a callback: its timeout, cut at the run's deadline.
  defp wait_for(state, timeout) do
    case time_left(state) do
      {:ok, :infinity} -> timeout
      {:ok, left} -> min(timeout, left)
      _ -> 0
    end
  end

  defp collect(state, output), do: IO.iodata_to_binary([state.output | output])

  defp lookup_result({:ok, value}), do: {:ok, value}
  defp lookup_result(:undefined), do: {:ok, :__undefined__}
  defp lookup_result(other), do: other

  # A method call on a host object (`p.norm()`, the object first in `args`)
  # is served as "Point.norm" when `:functions` has it or a handler serves
  # calls, else as a plain "norm" from `:functions`.
  defp dispatch_name(
         %FunctionCall{method_call: true, name: name, args: [%ExMonty.Dataclass{name: class} | _]},
         state
       ) do
    qualified = class <> "." <> name

    cond do
      Map.has_key?(state.functions, qualified) -> qualified
      Map.has_key?(state.functions, name) -> name
      true -> qualified
    end
  end

  defp dispatch_name(%FunctionCall{name: name}, _state), do: name

  # What Python raises for a method nobody serves: calling the object itself
  # (`p()`, `Point(...)`) is a TypeError, a missing method an AttributeError.
  defp no_method(%FunctionCall{name: name, args: args}) do
    class =
      case args do
        [%ExMonty.Dataclass{name: class} | _] -> class
        _ -> nil
      end

    case {name |> String.split(".") |> List.last(), class} do
      {"__call__", nil} ->
        {:error, :type_error, "host classes cannot be instantiated in Python"}

      {"__call__", class} ->
        {:error, :type_error, "'#{class}' object is not callable"}

      {method, nil} ->
        {:error, :attribute_error, "the host object has no method '#{method}'"}

      {method, class} ->
        {:error, :attribute_error,
         "'#{class}' object has no attribute '#{method}' (no host function #{inspect(name)} or #{inspect(method)})"}
    end
  end

  defp function_for(%FunctionCall{name: name, args: args, kwargs: kwargs}, state) do
    case Map.fetch(state.functions, name) do
      {:ok, {:async, fun}} ->
        {:async, fun}

      {:ok, fun} ->
        {:sync, fun}

      :error ->
        if state.handler && function_exported?(state.handler, :handle_function, 3) do
          handler = state.handler

          case invoke_raw(fn -> handler.handle_function(name, args, kwargs) end, state) do
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
  # Host modules
  # ---------------------------------------------------------------------------

  # `modules: %{"tools" => %{"fetch" => fun}}` serves `tools.fetch(...)` as
  # the host function "tools.fetch".
  defp module_functions(opts) do
    for {module, attrs} <- Keyword.get(opts, :modules, %{}),
        {attr, value} <- attrs,
        function?(value),
        into: %{},
        do: {module <> "." <> attr, value}
  end

  defp function?(fun) when is_function(fun, 2), do: true
  defp function?({:async, fun}) when is_function(fun, 2), do: true
  defp function?(_), do: false

  # The module value for `import name`: its attributes (functions as host
  # functions) and its submodules (`pkg.sub` is attribute `sub` of `pkg`).
  defp import_module(name, state) do
    own =
      case Map.fetch(state.modules, name) do
        {:ok, attrs} ->
          {:ok,
           Map.new(attrs, fn {attr, value} ->
             {attr, if(function?(value), do: {:function, name <> "." <> attr}, else: value)}
           end)}

        :error ->
          handler_import(name, state)
      end

    subs =
      for {sub, _} <- state.modules,
          String.starts_with?(sub, name <> "."),
          not String.contains?(String.replace_prefix(sub, name <> ".", ""), "."),
          {:ok, module} = import_module(sub, state),
          into: %{},
          do: {String.replace_prefix(sub, name <> ".", ""), module}

    case {own, subs} do
      {:not_found, subs} when subs == %{} -> :not_found
      {:not_found, subs} -> {:ok, {:module, name, subs}}
      {{:ok, attrs}, subs} -> {:ok, {:module, name, Map.merge(attrs, subs)}}
    end
  end

  defp handler_import(name, %State{handler: handler} = state) when handler != nil do
    if function_exported?(handler, :handle_import, 1) do
      case invoke_raw(fn -> handler.handle_import(name) end, state) do
        {:returned, {:ok, attrs}} when is_map(attrs) ->
          {:ok,
           Map.new(attrs, fn
             {attr, :function} -> {attr, {:function, name <> "." <> attr}}
             {attr, value} -> {attr, value}
           end)}

        _ ->
          :not_found
      end
    else
      :not_found
    end
  end

  defp handler_import(_name, _state), do: :not_found

  # ---------------------------------------------------------------------------
  # OS calls
  # ---------------------------------------------------------------------------

  defp os_answer(%OsCall{function: :import, args: [name | _]}, state)
       when is_binary(name) and (state.modules != %{} or state.handler != nil) do
    case import_module(name, state) do
      {:ok, module} -> {{:ok, module}, state}
      :not_found -> {default_os(%OsCall{function: :import, args: [name]}), state}
    end
  end

  defp os_answer(%OsCall{} = call, state)
       when call.function in [:system_sleep, :system_async_sleep] do
    {answer, left, slept} = ExMonty.Driver.sleep(call, state.sleep_left)
    {answer, %{state | sleep_left: left, deadline: extend(state.deadline, slept)}}
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
        {invoke(fn -> fun.(call.args, call.kwargs) end, state), state}

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
    case invoke_raw(fn -> module.handle_os(call.function, call.args, call.kwargs) end, state) do
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
  #
  # Every callback runs under a watchdog: the watchdog monitors the caller,
  # runs `fun` in a process linked to it, enforces the timeout itself and sends
  # the result to the caller, which monitors only the watchdog (nothing is
  # linked to the caller). When the callback times out, the caller dies (even
  # by :kill) or the run ends, the watchdog kills the process running `fun`
  # and waits for it to be gone.
  # ---------------------------------------------------------------------------

  defp invoke(fun, state) do
    case invoke_raw(fun, state) do
      {:returned, result} -> normalize(result)
      {:failed, answer} -> answer
    end
  end

  # Runs `fun` under a watchdog and waits for it, at most until the callback
  # timeout or the run's deadline: a raise, throw, exit or timeout becomes a
  # Python exception instead of a crash of the caller.
  defp invoke_raw(fun, state) do
    {watchdog, ref} = spawn_callback(fun, wait_for(state, state.timeout), state.timeout)
    await_callback(watchdog, ref)
  end

  defp spawn_callback(fun, wait, timeout) do
    caller = self()
    spawn_monitor(fn -> watchdog(caller, fun, wait, timeout) end)
  end

  defp watchdog(caller, fun, wait, timeout) do
    Process.flag(:trap_exit, true)
    caller_ref = Process.monitor(caller)
    runner = spawn_link(fn -> exit({:ex_monty_callback, run_callback(fun)}) end)

    result =
      receive do
        {:EXIT, ^runner, {:ex_monty_callback, result}} ->
          result

        {:EXIT, ^runner, reason} ->
          {:failed, {:error, :runtime_error, "host callback exited: #{inspect(reason, limit: 20)}"}}

        {:DOWN, ^caller_ref, :process, _, _} ->
          stop_runner(runner)
          exit(:normal)

        :ex_monty_cancel ->
          stop_runner(runner)
          exit(:normal)
      after
        wait ->
          stop_runner(runner)
          {:failed, {:error, :timeout_error, "host callback timed out after #{timeout} ms"}}
      end

    send(caller, {:ex_monty_callback, self(), result})
  end

  defp run_callback(fun) do
    {:returned, fun.()}
  rescue
    e ->
      {:failed, {:error, :runtime_error, "host callback raised: " <> Elixir.Exception.message(e)}}
  catch
    kind, reason ->
      {:failed, {:error, :runtime_error, "host callback #{kind}: #{inspect(reason, limit: 20)}"}}
  end

  # :kill cannot be trapped; the link tells when the runner is gone.
  defp stop_runner(runner) do
    Process.exit(runner, :kill)

    receive do
      {:EXIT, ^runner, _} -> :ok
    end
  end

  defp await_callback(watchdog, ref) do
    receive do
      {:ex_monty_callback, ^watchdog, result} ->
        Process.demonitor(ref, [:flush])
        result

      {:DOWN, ^ref, :process, ^watchdog, reason} ->
        {:failed, {:error, :runtime_error, "host callback exited: #{inspect(reason, limit: 20)}"}}
    end
  end

  # Stops a callback and waits until its processes are gone; its result, if
  # already sent, is dropped.
  defp cancel_callback(watchdog, ref) do
    send(watchdog, :ex_monty_cancel)
    await_down(watchdog, ref)
  end

  defp await_down(watchdog, ref) do
    receive do
      {:DOWN, ^ref, :process, ^watchdog, _} -> :ok
    after
      5_000 ->
        Process.exit(watchdog, :kill)
        Process.demonitor(ref, [:flush])
    end

    receive do
      {:ex_monty_callback, ^watchdog, _} -> :ok
    after
      0 -> :ok
    end
  end

  defp normalize({:ok, _} = ok), do: ok

  defp normalize({:error, type, message}) when is_atom(type) and is_binary(message) do
    # The NIF takes only UTF-8 messages and known exception types.
    message = if String.valid?(message), do: message, else: inspect(message)

    if Map.has_key?(Exception.python_types(), type) or decimal_type?(type) do
      {:error, type, message}
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

  defp start_task(state, call_id, name, fun) do
    task = spawn_callback(fun, state.timeout, state.timeout)
    %{state | tasks: Map.put(state.tasks, call_id, {task, name})}
  end

  defp await_tasks(ids, state) do
    deadline = System.monotonic_time(:millisecond) + wait_for(state, state.timeout)

    Enum.reduce(ids, {[], %{}, state}, fn id, {acc, names, state} ->
      case Map.pop(state.tasks, id) do
        {nil, _} ->
          answer = {:error, :runtime_error, "no pending host call with id #{id}"}
          {[{id, answer} | acc], names, state}

        {{{watchdog, ref}, name}, tasks} ->
          left = max(deadline - System.monotonic_time(:millisecond), 0)

          answer =
            receive do
              {:ex_monty_callback, ^watchdog, result} ->
                Process.demonitor(ref, [:flush])

                case result do
                  {:returned, result} -> normalize(result)
                  {:failed, answer} -> answer
                end

              {:DOWN, ^ref, :process, ^watchdog, reason} ->
                {:error, :runtime_error, "host callback exited: #{inspect(reason, limit: 20)}"}
            after
              left ->
                cancel_callback(watchdog, ref)
                {:error, :timeout_error, "host callback timed out after #{state.timeout} ms"}
            end

          {[{id, answer} | acc], Map.put(names, id, name), %{state | tasks: tasks}}
      end
    end)
    |> then(fn {results, names, state} -> {Enum.reverse(results), names, state} end)
  end

  defp shutdown_tasks(%State{tasks: tasks}) when map_size(tasks) == 0, do: :ok

  defp shutdown_tasks(%State{tasks: tasks}) do
    Enum.each(tasks, fn {_id, {{watchdog, _ref}, _name}} -> send(watchdog, :ex_monty_cancel) end)
    Enum.each(tasks, fn {_id, {{watchdog, ref}, _name}} -> await_down(watchdog, ref) end)
  end

  defp extend(nil, _ms), do: nil
  defp extend({deadline, secs}, ms), do: {deadline + ms, secs}
end
