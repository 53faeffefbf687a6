defmodule ExMonty do
  @moduledoc """
  Run untrusted Python from Elixir, inside WebAssembly.

  ExMonty runs [Monty](https://github.com/pydantic/monty), a sandboxed
  interpreter for a subset of Python, compiled to a WebAssembly component and
  hosted by wasmtime inside a NIF. Python code never runs on a BEAM scheduler
  and never in the VM's own memory: every execution runs in a wasm instance on
  one of ExMonty's worker threads, under Monty's limits *and* wasmtime's. A
  crash of the interpreter (stack exhaustion, a failed allocation, a bug) is a
  wasm trap that becomes `{:error, %ExMonty.Exception{}}`; the VM keeps running.

  ## Results

  Every execution returns `{:ok, value, output}` — the value of the last
  expression and everything it printed — or `{:error, %ExMonty.Exception{}}`.

      iex> ExMonty.eval("2 + 2")
      {:ok, 4, ""}

      iex> ExMonty.eval("print('hello')")
      {:ok, nil, "hello\\n"}

      iex> ExMonty.eval("x + y", inputs: %{"x" => 10, "y" => 20})
      {:ok, 30, ""}

  ## Compile once, run many

      iex> {:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
      iex> ExMonty.run(runner, %{"x" => 5})
      {:ok, 10, ""}
      iex> ExMonty.run(runner, %{"x" => 100})
      {:ok, 200, ""}

  ## Interactive execution

  `start/3` runs until the Python code calls a function the host must
  provide, reads an undefined name, or asks the OS for something; it then
  returns a paused `ExMonty.Snapshot` that `resume/2` continues:

      iex> {:ok, runner} = ExMonty.compile("fetch('a') + 1")
      iex> {:ok, {:function_call, call, snapshot, ""}} = ExMonty.start(runner)
      iex> {call.name, call.args}
      {"fetch", ["a"]}
      iex> ExMonty.resume(snapshot, {:ok, 41})
      {:ok, {:complete, 42, ""}}

  See `ExMonty.Sandbox` for a loop that answers calls with Elixir functions,
  and `ExMonty.Limits` for limits and defaults.

  ## Type mapping

  | Python | Elixir |
  | --- | --- |
  | `None` | `nil` |
  | `True` / `False` | `true` / `false` |
  | `int` | integer (arbitrary precision) |
  | `float` | float; `inf`, `-inf`, `nan` as `:infinity`, `:neg_infinity`, `:nan` |
  | `str` | UTF-8 binary |
  | `bytes` | `{:bytes, binary}` |
  | `list` | list |
  | `tuple` | tuple |
  | `dict` | map (any key type) |
  | `set` / `frozenset` | `MapSet` (a `MapSet` sent as a dict key or set element becomes a `frozenset`) |
  | `...` | `:ellipsis` |
  | `NotImplemented` | `:not_implemented` |
  | `pathlib.Path` | `{:path, string}` |
  | named tuple | `{:named_tuple, type_name, [{field, value}, ...]}` |
  | `@dataclass` instance | `%ExMonty.Dataclass{name, fields}` |
  | other class instance | `{:instance, class_name, %{attr => value}}` |
  | exception value | `%ExMonty.Exception{}` |
  | `datetime.date` | `Date` |
  | `datetime.datetime` (naive / aware) | `NaiveDateTime` / `DateTime` |
  | `datetime.time` (naive / aware) | `Time` / `{:time, Time, {:timezone, offset_s, name}}` |
  | `datetime.timedelta` | `{:timedelta, days, seconds, microseconds}` |
  | `datetime.timezone` | `{:timezone, offset_seconds, name \\| nil}` |
  | `decimal.Decimal` | `{:decimal, "1.20"}` |
  | `complex` | `{:complex, real, imag}` |
  | function | `{:function, name}` |
  | builtin function | `{:builtin_function, name}` |
  | type object | `{:type, name}` |
  | class object | `{:class, name}` |
  | module | `{:module, name, attrs}` |
  | open file | `{:file, path, mode, position}` |
  | anything else | `{:repr, string}` (what Python's `repr` shows) |
  | reference cycle | `{:cycle, "[...]"}` |

  ### What goes in

  Inputs, answers to host calls and values returned by callbacks are converted
  the other way. These go in:

    * `nil`, `true`, `false`, `:ellipsis`, `:not_implemented`, integers,
      floats and `:infinity` / `:neg_infinity` / `:nan`, UTF-8 strings;
    * lists, tuples, maps (any key type) and `MapSet`s;
    * `{:bytes, b}`, `{:path, s}`, `{:decimal, s}`, `{:complex, re, im}`,
      `{:timedelta, d, s, us}`, `{:timezone, offset_s, name | nil}`,
      `{:named_tuple, type_name, [{field, value}, ...]}`,
      `{:file, path, mode, position}`;
    * `Date`, `Time` (naive), `NaiveDateTime`, `DateTime`;
    * `%ExMonty.Exception{}` (becomes an exception value of its class);
    * `{:type, name}` for a builtin type (`{:type, "int"}`) and
      `{:builtin_function, name}` (`{:builtin_function, "len"}`);
    * `{:function, name}` — a host function of that name (calling it is a
      host call, like any undefined function).

  These come out but do not go back in: `{:class, name}`, `{:module, name, attrs}`,
  `{:instance, class, attrs}`, `%ExMonty.Dataclass{}`, aware times
  (`{:time, Time, tz}`), `{:repr, s}` and `{:cycle, s}`. Neither do atoms other
  than those above, pids, references, functions, ports, improper lists and
  non-UTF-8 binaries not tagged `{:bytes, b}`. A value that cannot go in is
  refused with `{:error, %ExMonty.Exception{type: :invalid_input}}` naming the
  term and where it is (`inputs["x"][2]`).

      iex> ExMonty.eval("type(x).__name__", inputs: %{"x" => {:decimal, "1.5"}})
      {:ok, "Decimal", ""}
      iex> {:error, %ExMonty.Exception{type: :invalid_input}} =
      ...>   ExMonty.eval("x", inputs: %{"x" => {:class, "Foo"}})

  ## Errors

  Programmer errors — unknown or invalid options, arguments of the wrong
  type (`ExMonty.eval(:code)`, `ExMonty.run(:not_a_runner)`) — raise
  `ArgumentError` naming the function, the option and what was expected.
  Everything that comes from Python, from data (input values and names,
  source that is not UTF-8, answers that cannot be converted, dumps) or from
  the sandbox returns `{:error, %ExMonty.Exception{}}`; its `output` field
  holds what the code printed before the error.

      iex> ExMonty.eval("1", limit: %{max_memory: 1})
      ** (ArgumentError) unknown option :limit for ExMonty.eval/2; valid options: :cwd, :inputs, :limits, :mounts, :node, :script_name, :timeout
  """

  alias ExMonty.{Exception, FunctionCall, Job, Limits, Native, Options, OsCall, Runner, Snapshot}

  @typedoc "A Python value as Elixir data (see the type mapping above)."
  @type value :: term()

  @typedoc "Text printed by the Python code."
  @type output :: String.t()

  @type result :: {:ok, value(), output()} | {:error, Exception.t()}

  @type progress ::
          {:function_call, FunctionCall.t(), Snapshot.t(), output()}
          | {:name_lookup, String.t(), Snapshot.t(), output()}
          | {:os_call, OsCall.t(), Snapshot.t(), output()}
          | {:resolve_futures, [non_neg_integer()], Snapshot.t(), output()}
          | {:complete, value(), output()}

  @typedoc """
  The host's answer to a paused call:

    * `{:ok, value}` — the call returns `value` (for a name lookup, the name's value;
      `{:ok, {:function, name}}` makes the name a host function);
    * `{:error, type, message}` — the call raises the Python exception `type`
      (an atom such as `:value_error`, see `ExMonty.Exception.python_types/0`);
    * `:pending` — (function calls) the call returns a future, resolved later with
      `resume_futures/2`;
    * `:undefined` — (function calls and name lookups) the name is not defined:
      Python raises `NameError`.
  """
  @type answer :: {:ok, value()} | {:error, atom(), String.t()} | :pending | :undefined

  @default_script "main.py"

  # ---------------------------------------------------------------------------
  # One-shot evaluation
  # ---------------------------------------------------------------------------

  @doc """
  Compiles and runs `code`.

  ## Options

    * `:inputs` — a map of variable names (strings or atoms) to values. A
      name that is not a Python identifier, or is a keyword (`"class"`,
      `"None"`), is refused with `{:error, %ExMonty.Exception{type: :invalid_input}}`
      before anything runs.
    * `:limits` — see `ExMonty.Limits` (a map, a keyword list or `:unlimited`).
    * `:script_name` — the file name shown in tracebacks (`"main.py"`): a
      non-empty string of at most 256 bytes.
    * `:cwd` — the working directory relative paths resolve against (`"/"`):
      an absolute path.
    * `:mounts` — an `ExMonty.Mount`: real host directories that serve the
      code's file calls (others are denied).
    * `:timeout` — milliseconds the caller waits; past it the execution is
      cancelled and `{:error, %ExMonty.Exception{type: :timeout_error}}`
      returned (default `:infinity`; `max_duration_secs` still applies).
    * `:node` — run on another node of the cluster (a node name, or `:auto`
      for the least-loaded one); see `ExMonty.Cluster`.

  An unknown option or an invalid value raises `ArgumentError`; `nil` for
  `:cwd`, `:mounts` or `:limits` means the default.

  Calls to undefined functions raise `NameError` (use `start/3` or
  `ExMonty.Sandbox` to provide them). Outside `:mounts`, the code gets no
  OS, and is told so as CPython would (the same answers `ExMonty.Sandbox`
  gives without an `:os` handler): file access raises
  `PermissionError: [Errno 13] Permission denied: '/path'`, environment
  access (`os.getenv`, `os.environ`) raises
  `PermissionError: environment access is not allowed in this sandbox`, and
  `os.urandom` raises `RuntimeError`. Clocks (`time.time()`,
  `datetime.now()`) read the host clock and sleeps wait in the calling
  process, within `max_total_sleep_secs`.

  ## Examples

      iex> ExMonty.eval("[x**2 for x in range(5)]")
      {:ok, [0, 1, 4, 9, 16], ""}

      iex> {:error, %ExMonty.Exception{type: :recursion_error}} =
      ...>   ExMonty.eval("def f(): return f()\\nf()", limits: %{max_recursion_depth: 50})

      iex> {:error, %ExMonty.Exception{type: :permission_error, message: message}} =
      ...>   ExMonty.eval("open('/etc/passwd').read()")
      iex> message
      "[Errno 13] Permission denied: '/etc/passwd'"

      iex> {:error, %ExMonty.Exception{type: :permission_error, message: message}} =
      ...>   ExMonty.eval("import os\\nos.getenv('HOME')")
      iex> message
      "environment access is not allowed in this sandbox"

      iex> {:error, %ExMonty.Exception{type: :invalid_input}} =
      ...>   ExMonty.eval("1", inputs: %{"class" => 1})
  """
  @spec eval(String.t(), keyword()) :: result()
  def eval(code, opts \\ []) do
    opts = Options.validate!(opts, :eval)

    with :local <- ExMonty.Cluster.Remote.dispatch(:eval, [code], opts),
         {:ok, code} <- check_code(code, "ExMonty.eval/2"),
         {:ok, inputs} <- check_inputs(Keyword.get(opts, :inputs, %{})),
         {:ok, limits} <- limits(opts) do
      names = Enum.map(inputs, &elem(&1, 0))
      values = Enum.map(inputs, &elem(&1, 1))
      script = script_name(opts)
      native = Limits.to_native(limits)

      run_opts = run_options(opts, false)

      Job.run(
        fn -> Native.eval(code, script, names, values, native, run_opts) end,
        fn -> Native.eval_dirty(code, script, names, values, native, run_opts) end,
        timeout(opts)
      )
      |> drive(limits, "")
    end
  end

  @doc """
  Like `eval/2`, but returns the value and raises `ExMonty.Exception` on error.

  ## Examples

      iex> ExMonty.eval!("'a' * 3")
      "aaa"
  """
  @spec eval!(String.t(), keyword()) :: value()
  def eval!(code, opts \\ []) do
    case eval(code, opts) do
      {:ok, value, _output} -> value
      {:error, exception} -> raise exception
    end
  end

  # ---------------------------------------------------------------------------
  # Compile and run
  # ---------------------------------------------------------------------------

  @doc """
  Compiles `code` into a reusable `ExMonty.Runner`.

  ## Options

    * `:inputs` — the names of the input variables (a list of strings or
      atoms; each must be a Python identifier and not a keyword, else
      `{:error, %ExMonty.Exception{type: :invalid_input}}`).
    * `:script_name` — the file name shown in tracebacks (`"main.py"`).

  Limits, `:cwd` and `:mounts` are given to `run/3` or `start/3`; an unknown
  option raises `ArgumentError`.

  A syntax error is returned as `{:error, %ExMonty.Exception{type: :syntax_error}}`
  with its location in the traceback.

  ## Examples

      iex> {:ok, runner} = ExMonty.compile("x + 1", inputs: ["x"])
      iex> runner.input_names
      ["x"]
      iex> {:error, error} = ExMonty.compile("def (")
      iex> error.type
      :syntax_error
  """
  @spec compile(String.t(), keyword()) :: {:ok, Runner.t()} | {:error, Exception.t()}
  def compile(code, opts \\ []) do
    opts = Options.validate!(opts, :compile)

    with {:ok, code} <- check_code(code, "ExMonty.compile/2"),
         {:ok, names} <- check_names(Keyword.get(opts, :inputs, [])) do
      script = script_name(opts)

      case Job.run(
             fn -> Native.compile(code, script, names) end,
             fn -> Native.compile_dirty(code, script, names) end
           ) do
        {:ok, resource} ->
          {:ok, %Runner{resource: resource, script_name: script, input_names: names}}

        {:error, _} = error ->
          error
      end
    end
  end

  @doc """
  Runs a compiled runner with `inputs` (a map with one value per input name).

  ## Options

    * `:limits` — see `ExMonty.Limits`.
    * `:cwd` — the working directory relative paths resolve against (`"/"`).
    * `:mounts` — as for `eval/2`.
    * `:timeout` — as for `eval/2`.
    * `:node` — as for `eval/2`.

  ## Examples

      iex> {:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
      iex> ExMonty.run(runner, %{"x" => 21})
      {:ok, 42, ""}
  """
  @spec run(Runner.t(), map(), keyword()) :: result()
  def run(runner, inputs \\ %{}, opts \\ [])

  def run(%Runner{} = runner, inputs, opts) do
    opts = Options.validate!(opts, :run)

    with :local <- ExMonty.Cluster.Remote.dispatch(:run, [runner, inputs], opts),
         {:ok, values} <- runner_inputs(runner, inputs),
         {:ok, limits} <- limits(opts) do
      native = Limits.to_native(limits)
      run_opts = run_options(opts, false)

      Job.run(
        fn -> Native.start(runner.resource, values, native, run_opts) end,
        fn -> Native.start_dirty(runner.resource, values, native, run_opts) end,
        timeout(opts)
      )
      |> drive(limits, "")
    end
  end

  def run(other, _inputs, _opts), do: not_a!("ExMonty.run/3", "an ExMonty.Runner", other)

  @doc """
  Like `run/3`, but returns the value and raises `ExMonty.Exception` on error.
  """
  @spec run!(Runner.t(), map(), keyword()) :: value()
  def run!(runner, inputs \\ %{}, opts \\ []) do
    case run(runner, inputs, opts) do
      {:ok, value, _output} -> value
      {:error, exception} -> raise exception
    end
  end

  # In eval/run the guest answers every host call itself; only sleeps come
  # back, so that the wait happens here (in the caller) and not on a thread.
  defp drive({:ok, {:complete, value, output}}, _limits, acc), do: {:ok, value, acc <> output}

  defp drive({:ok, {:os_call, {name, args, _kwargs, _id}, resource, output}}, limits, acc)
       when name in ["system.sleep", "system.async_sleep"] do
    seconds =
      case args do
        [s | _] when is_number(s) -> s
        _ -> 0
      end

    {answer, limits} = sleep(seconds, limits)
    drive(resume_native(resource, answer, :infinity), limits, acc <> output)
  end

  defp drive({:ok, {_kind, _call, resource, _output}}, _limits, _acc) when is_reference(resource) do
    invalid("unexpected pause in a non-interactive run")
  end

  defp drive({:error, exception}, _limits, acc),
    do: {:error, Exception.prepend_output(exception, acc)}

  defp sleep(seconds, limits) do
    case limits.max_total_sleep_secs do
      left when is_number(left) and seconds > left ->
        {{:raise, :timeout_error, "total sleep limit (max_total_sleep_secs) exceeded"}, limits}

      left ->
        Process.sleep(round(seconds * 1000))
        left = if is_number(left), do: left - seconds, else: left
        {{:value, nil}, %{limits | max_total_sleep_secs: left}}
    end
  end

  # ---------------------------------------------------------------------------
  # Interactive execution
  # ---------------------------------------------------------------------------

  @doc """
  Starts a runner and returns at the first host call, name lookup or OS call.

  Returns `{:ok, progress}`, where `progress` is one of

    * `{:function_call, %ExMonty.FunctionCall{}, snapshot, output}`
    * `{:name_lookup, name, snapshot, output}`
    * `{:os_call, %ExMonty.OsCall{}, snapshot, output}`
    * `{:resolve_futures, call_ids, snapshot, output}` — async code awaits
      futures created by `:pending` answers
    * `{:complete, value, output}`

  `output` is what was printed since the previous step. When a step fails,
  `{:error, %ExMonty.Exception{}}` carries in its `output` what that step
  printed before the error (earlier steps' output was already returned with
  their progress).

  ## Options

    * `:limits` — see `ExMonty.Limits`.
    * `:cwd` — the working directory relative paths resolve against (`"/"`).
    * `:mounts` — as for `eval/2`.
    * `:node` — run this first step on another node; a pause comes back as a
      snapshot of this node (see `ExMonty.Cluster`).

  An unknown option or an invalid value raises `ArgumentError`.
  """
  @spec start(Runner.t(), map(), keyword()) :: {:ok, progress()} | {:error, Exception.t()}
  def start(runner, inputs \\ %{}, opts \\ [])

  def start(%Runner{} = runner, inputs, opts) do
    opts = Options.validate!(opts, :start)

    with :local <- ExMonty.Cluster.Remote.dispatch(:start, [runner, inputs], opts),
         {:ok, values} <- runner_inputs(runner, inputs),
         {:ok, limits} <- limits(opts) do
      native = Limits.to_native(limits)
      run_opts = run_options(opts, true)

      Job.run(
        fn -> Native.start(runner.resource, values, native, run_opts) end,
        fn -> Native.start_dirty(runner.resource, values, native, run_opts) end
      )
      |> progress()
    end
  end

  def start(other, _inputs, _opts), do: not_a!("ExMonty.start/3", "an ExMonty.Runner", other)

  @doc """
  Answers a paused call and runs to the next pause or the end.

  See `t:answer/0` for the answers. A snapshot resumes once; an answer that
  cannot be converted is reported without consuming the snapshot.

  Option: `:timeout` — milliseconds to wait for the next pause; past it the
  execution is cancelled and `{:error, %ExMonty.Exception{type: :timeout_error}}`
  returned (default `:infinity`).

  ## Examples

      iex> {:ok, runner} = ExMonty.compile("try:\\n    f()\\nexcept ValueError as e:\\n    r = str(e)\\nr")
      iex> {:ok, {:function_call, _call, snapshot, _}} = ExMonty.start(runner)
      iex> ExMonty.resume(snapshot, {:error, :value_error, "bad"})
      {:ok, {:complete, "bad", ""}}
  """
  @spec resume(Snapshot.t(), answer(), keyword()) :: {:ok, progress()} | {:error, Exception.t()}
  def resume(snapshot, answer, opts \\ [])

  def resume(%Snapshot{resource: resource}, answer, opts) do
    timeout = timeout(validate_opts!(opts, [:timeout]))

    case native_answer(answer) do
      {:ok, native} -> resume_native(resource, native, timeout) |> progress()
      {:error, _} = error -> error
    end
  end

  def resume(other, _answer, _opts), do: not_a!("ExMonty.resume/3", "an ExMonty.Snapshot", other)

  @doc """
  Resolves futures of a `:resolve_futures` pause: `results` is a list or map of
  `call_id => answer` (some or all of the pending ids). Takes the `:timeout`
  option of `resume/3`.

  `results` of another shape raises `ArgumentError`; an answer that cannot be
  converted, or an id the execution does not wait for, is reported as
  `{:error, %ExMonty.Exception{type: :invalid_input}}` without consuming the
  snapshot, as for `resume/3`.
  """
  @spec resume_futures(Snapshot.t(), map() | [{non_neg_integer(), answer()}], keyword()) ::
          {:ok, progress()} | {:error, Exception.t()}
  def resume_futures(snapshot, results, opts \\ [])

  def resume_futures(%Snapshot{resource: resource}, results, opts)
      when is_map(results) or is_list(results) do
    timeout = timeout(validate_opts!(opts, [:timeout]))

    results
    |> Enum.reduce_while({:ok, []}, fn
      {id, answer}, {:ok, acc} when is_integer(id) and id >= 0 ->
        case native_answer(answer) do
          {:ok, native} -> {:cont, {:ok, [{id, native} | acc]}}
          error -> {:halt, error}
        end

      other, _ ->
        raise ArgumentError,
              "ExMonty.resume_futures/2 takes {call_id, answer} pairs (call_id a non-negative " <>
                "integer), got: #{inspect(other, limit: 10)}"
    end)
    |> case do
      {:ok, natives} ->
        natives = Enum.reverse(natives)

        Job.run(
          fn -> Native.resume_futures(resource, natives) end,
          fn -> Native.resume_futures_dirty(resource, natives) end,
          timeout
        )
        |> progress()

      error ->
        error
    end
  end

  def resume_futures(%Snapshot{}, other, _opts) do
    raise ArgumentError,
          "ExMonty.resume_futures/3 takes a map or list of {call_id, answer}, got: " <>
            inspect(other, limit: 10)
  end

  def resume_futures(other, _results, _opts),
    do: not_a!("ExMonty.resume_futures/3", "an ExMonty.Snapshot", other)

  defp resume_native(resource, native, timeout) do
    Job.run(
      fn -> Native.resume(resource, native) end,
      fn -> Native.resume_dirty(resource, native) end,
      timeout
    )
  end

  defp native_answer({:ok, value}), do: {:ok, {:value, value}}

  defp native_answer({:error, type, message}) when is_atom(type) and is_binary(message),
    do: {:ok, {:raise, type, message}}

  defp native_answer(:pending), do: {:ok, :pending}
  defp native_answer(:undefined), do: {:ok, :undefined}

  defp native_answer(other) do
    invalid(
      "an answer is {:ok, value}, {:error, exception_type, message}, :pending or :undefined; got: " <>
        inspect(other, limit: 10)
    )
  end

  @doc false
  # Raw NIF progress -> public progress.
  @spec progress({:ok, tuple()} | {:error, Exception.t()}) ::
          {:ok, progress()} | {:error, Exception.t()}
  def progress({:ok, {:complete, value, output}}), do: {:ok, {:complete, value, output}}

  def progress({:ok, {:function_call, {name, args, kwargs, id, method}, resource, output}}) do
    call = %FunctionCall{name: name, args: args, kwargs: kwargs, call_id: id, method_call: method}
    {:ok, {:function_call, call, %Snapshot{resource: resource}, output}}
  end

  def progress({:ok, {:os_call, {name, args, kwargs, id}, resource, output}}) do
    call = %OsCall{
      function: OsCall.function_atom(name),
      python_name: name,
      args: args,
      kwargs: kwargs,
      call_id: id
    }

    {:ok, {:os_call, call, %Snapshot{resource: resource}, output}}
  end

  def progress({:ok, {:name_lookup, name, resource, output}}),
    do: {:ok, {:name_lookup, name, %Snapshot{resource: resource}, output}}

  def progress({:ok, {:resolve_futures, ids, resource, output}}),
    do: {:ok, {:resolve_futures, ids, %Snapshot{resource: resource}, output}}

  def progress({:error, _} = error), do: error

  # ---------------------------------------------------------------------------
  # Serialization
  # ---------------------------------------------------------------------------

  @doc """
  Serializes a runner (see `ExMonty.Dump` for the format and signing).

  Option: `:key` — the signing key, or `:unsigned` to write an unsigned dump
  even when `config :ex_monty, dump_key:` is set. Any other option raises
  `ArgumentError`.

  ## Examples

      iex> {:ok, runner} = ExMonty.compile("x + 1", inputs: ["x"])
      iex> {:ok, binary} = ExMonty.dump(runner)
      iex> {:ok, restored} = ExMonty.load_runner(binary)
      iex> ExMonty.run(restored, %{"x" => 1})
      {:ok, 2, ""}
  """
  @spec dump(Runner.t(), keyword()) :: {:ok, binary()} | {:error, Exception.t()}
  def dump(runner, opts \\ [])

  def dump(%Runner{resource: resource}, opts) do
    opts = validate_opts!(opts, [:key])
    ExMonty.Dump.encode(:runner, Native.runner_program(resource), opts)
  end

  def dump(other, _opts), do: invalid("expected an ExMonty.Runner, got: #{inspect(other)}")

  @doc """
  Restores a runner from `dump/2`. Corrupt, foreign, tampered or oversized
  binaries return `{:error, %ExMonty.Exception{type: :invalid_input}}`.

  Options: `:key` (the signing key, or `:unsigned`) and `:max_bytes` (see
  `ExMonty.Dump`); any other raises `ArgumentError`.
  """
  @spec load_runner(binary(), keyword()) :: {:ok, Runner.t()} | {:error, Exception.t()}
  def load_runner(binary, opts \\ []) do
    opts = validate_opts!(opts, [:key, :max_bytes])

    with {:ok, program} <- ExMonty.Dump.decode(:runner, binary, opts),
         {:ok, resource} <-
           Job.run(fn -> Native.load_runner(program) end, fn ->
             Native.load_runner_dirty(program)
           end) do
      {script, names} = Native.runner_meta(resource)
      {:ok, %Runner{resource: resource, script_name: script, input_names: names}}
    end
  end

  @doc """
  Serializes a paused execution. The snapshot itself stays usable. Takes the
  `:key` option of `dump/2`.
  """
  @spec dump_snapshot(Snapshot.t(), keyword()) :: {:ok, binary()} | {:error, Exception.t()}
  def dump_snapshot(snapshot, opts \\ [])

  def dump_snapshot(%Snapshot{resource: resource}, opts) do
    opts = validate_opts!(opts, [:key])

    case Job.await(Native.dump_snapshot(resource)) do
      {:ok, {bytes, _kind}} -> ExMonty.Dump.encode(:snapshot, bytes, opts)
      {:error, _} = error -> error
    end
  end

  def dump_snapshot(other, _opts),
    do: invalid("expected an ExMonty.Snapshot, got: #{inspect(other)}")

  @doc """
  Restores a paused execution from `dump_snapshot/2` into a fresh sandbox and
  returns it with what it waits for, as `{:ok, snapshot}`.

  ## Options

    * `:limits` — tightens the limits the execution was started with.
    * `:key` — the signing key, or `:unsigned` (see `ExMonty.Dump`).
    * `:max_bytes` — the largest binary accepted (see `ExMonty.Dump`).

  Any other option raises `ArgumentError`.
  """
  @spec load_snapshot(binary(), keyword()) :: {:ok, Snapshot.t()} | {:error, Exception.t()}
  def load_snapshot(binary, opts \\ []) do
    opts = validate_opts!(opts, [:key, :max_bytes, :limits])

    with {:ok, bytes} <- ExMonty.Dump.decode(:snapshot, binary, opts),
         {:ok, limits} <- limits(opts),
         {:ok, {_kind, _call, %Snapshot{} = snapshot, _output}} <-
           progress(load_native(bytes, limits)) do
      {:ok, snapshot}
    end
  end

  @doc """
  Like `load_snapshot/2`, but returns the pause itself
  (`{:ok, {:function_call, call, snapshot, ""}}` ...).
  """
  @spec load_progress(binary(), keyword()) :: {:ok, progress()} | {:error, Exception.t()}
  def load_progress(binary, opts \\ []) do
    opts = validate_opts!(opts, [:key, :max_bytes, :limits])

    with {:ok, bytes} <- ExMonty.Dump.decode(:snapshot, binary, opts),
         {:ok, limits} <- limits(opts) do
      progress(load_native(bytes, limits))
    end
  end

  defp load_native(bytes, limits) do
    native = Limits.to_native(limits)

    Job.run(
      fn -> Native.load_snapshot(bytes, native) end,
      fn -> Native.load_snapshot_dirty(bytes, native) end
    )
  end

  # ---------------------------------------------------------------------------
  # Argument checks
  # ---------------------------------------------------------------------------

  # Source that is not a string is a programmer error; source that is not
  # UTF-8 is data (it may come from anywhere): an error result.
  defp check_code(code, _fun) when is_binary(code) do
    if String.valid?(code), do: {:ok, code}, else: invalid("Python source must be valid UTF-8")
  end

  defp check_code(code, fun), do: not_a!(fun, "Python source (a string)", code)

  defp not_a!(fun, expected, got) do
    raise ArgumentError, "#{fun} expects #{expected}, got: #{inspect(got, limit: 5)}"
  end

  defp check_inputs(inputs) when is_map(inputs) do
    Enum.reduce_while(inputs, {:ok, []}, fn {name, value}, {:ok, acc} ->
      case input_name(name) do
        {:ok, name} -> {:cont, {:ok, [{name, value} | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, pairs} ->
        pairs = Enum.sort_by(pairs, &elem(&1, 0))

        if length(Enum.uniq_by(pairs, &elem(&1, 0))) == length(pairs),
          do: {:ok, pairs},
          else: invalid("input names collide after conversion to strings")

      error ->
        error
    end
  end

  defp check_inputs(other),
    do: invalid("inputs must be a map of name => value, got: #{inspect(other)}")

  defp check_names(names) when is_list(names) do
    Enum.reduce_while(names, {:ok, []}, fn name, {:ok, acc} ->
      case input_name(name) do
        {:ok, name} -> {:cont, {:ok, [name | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, names} ->
        names = Enum.reverse(names)

        if length(Enum.uniq(names)) == length(names),
          do: {:ok, names},
          else: invalid("input names must be unique")

      error ->
        error
    end
  end

  defp check_names(other), do: invalid("inputs must be a list of names, got: #{inspect(other)}")

  defp input_name(name) when is_atom(name) and name not in [nil, true, false],
    do: input_name(Atom.to_string(name))

  # Keywords cannot be assigned; the soft keywords (match, case, type, _)
  # can, as in CPython.
  @keywords ~w(False None True and as assert async await break class continue def del elif
               else except finally for from global if import in is lambda nonlocal not or
               pass raise return try while with yield)

  defp input_name(name) when is_binary(name) do
    cond do
      not Regex.match?(~r/\A[A-Za-z_][A-Za-z0-9_]*\z/, name) ->
        invalid("input name #{inspect(name)} is not a valid Python identifier")

      name in @keywords ->
        invalid("input name #{inspect(name)} is a Python keyword")

      true ->
        {:ok, name}
    end
  end

  defp input_name(other), do: invalid("input names must be strings, got: #{inspect(other)}")

  # The fast path: exactly the declared names, as strings.
  defp runner_inputs(%Runner{input_names: names}, inputs)
       when is_map(inputs) and map_size(inputs) == length(names) do
    case fetch_all(names, inputs, []) do
      {:ok, values} -> {:ok, values}
      :error -> runner_inputs_checked(names, inputs)
    end
  end

  defp runner_inputs(%Runner{input_names: names}, inputs) when is_map(inputs),
    do: runner_inputs_checked(names, inputs)

  defp runner_inputs(_runner, other),
    do: invalid("inputs must be a map of name => value, got: #{inspect(other)}")

  defp fetch_all([], _inputs, acc), do: {:ok, Enum.reverse(acc)}

  defp fetch_all([name | rest], inputs, acc) do
    case inputs do
      %{^name => value} -> fetch_all(rest, inputs, [value | acc])
      _ -> :error
    end
  end

  defp runner_inputs_checked(names, inputs) do
    with {:ok, pairs} <- check_inputs(inputs) do
      given = Map.new(pairs)
      missing = Enum.reject(names, &Map.has_key?(given, &1))
      extra = Map.keys(given) -- names

      cond do
        missing != [] ->
          invalid("missing input(s): #{Enum.join(missing, ", ")}")

        extra != [] ->
          invalid(
            "unknown input(s): #{Enum.join(extra, ", ")} (the runner declares #{inspect(names)})"
          )

        true ->
          {:ok, Enum.map(names, &Map.fetch!(given, &1))}
      end
    end
  end

  # Unknown options raise ArgumentError naming the valid ones.
  defp validate_opts!(opts, keys) when is_list(opts), do: Keyword.validate!(opts, keys)

  defp validate_opts!(opts, keys),
    do:
      raise(
        ArgumentError,
        "options must be a keyword list of #{inspect(keys)}, got: #{inspect(opts, limit: 5)}"
      )

  # Invalid limits are a programming error: they raise ArgumentError.
  # (The options were validated by ExMonty.Options; these only read them.)
  defp limits(opts), do: {:ok, Limits.normalize!(Keyword.get(opts, :limits))}

  defp timeout(opts), do: Keyword.get(opts, :timeout, :infinity)

  defp run_options(opts, interactive) do
    mounts =
      case Keyword.get(opts, :mounts) do
        nil -> nil
        %ExMonty.Mount{resource: resource} -> resource
      end

    {{interactive, Keyword.get(opts, :cwd)}, mounts}
  end

  defp script_name(opts), do: Keyword.get(opts, :script_name, @default_script)

  @doc """
  Counters of the sandbox runtime:

    * `:workers` — threads that run Python;
    * `:idle_instances` — warm wasm instances waiting for an execution;
    * `:live_instances` — instances alive (idle, running or holding a pause);
    * `:live_paused` — paused executions that hold an instance. At most
      `config :ex_monty, max_live_paused:` (256) do; beyond it a paused
      execution is kept as its dump bytes (a few KB) and woken into any
      instance when it is resumed.

  ## Examples

      iex> %{workers: workers} = ExMonty.stats()
      iex> workers > 0
      true
  """
  @spec stats() :: %{
          workers: pos_integer(),
          idle_instances: non_neg_integer(),
          live_instances: non_neg_integer(),
          live_paused: non_neg_integer()
        }
  def stats do
    {workers, idle, live, paused} = Native.stats()
    %{workers: workers, idle_instances: idle, live_instances: live, live_paused: paused}
  end

  @doc false
  @spec invalid(String.t()) :: {:error, Exception.t()}
  def invalid(message) do
    {:error, %Exception{type: :invalid_input, message: message, python_type: "ValueError"}}
  end
end
