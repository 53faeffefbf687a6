defmodule ExMonty do
  @moduledoc """
  Run untrusted Python from Elixir, inside WebAssembly.

  ExMonty runs [Monty](https://github.com/pydantic/monty), a sandboxed
  interpreter for a subset of Python, compiled to a WebAssembly component and
  hosted by wasmtime inside a NIF. Python code never runs in the VM's own
  memory or on a BEAM thread's stack: every execution runs in a wasm instance,
  under Monty's limits *and* wasmtime's — a short one on the calling
  scheduler for at most one to two milliseconds (on a stack of its own), the
  rest on ExMonty's worker threads. A
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
  | `@dataclass` instance | `%ExMonty.Dataclass{name, fields, field_names, frozen, id}` |
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

  Python keeps no sub-second precision, so times come back with Elixir
  precision 0 when they are whole seconds, 3 when whole milliseconds and 6
  otherwise: `~N[2024-01-02 03:04:05]` goes in and comes back `===`.

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
      host call, like any undefined function);
    * `{:module, name, %{attr => value}}` — a host module (what
      `ExMonty.Sandbox`'s `:modules` hands to `import`);
    * `%ExMonty.Dataclass{}` — a host object: a dataclass instance whose
      methods run on the host (see `ExMonty.Dataclass`).

  These come out but do not go back in: `{:class, name}`,
  `{:instance, class, attrs}`, aware times
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
      ** (ArgumentError) unknown option :limit for ExMonty.eval/2; valid options: :cwd, :inputs, :limits, :mounts, :node, :on_output, :os_policy, :script_name, :timeout, :type_check
  """

  alias ExMonty.{Exception, Execution, FunctionCall, OsCall, Runner, Snapshot}

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
    * `:os_policy` — clocks, time zone, `random` and sleeps; see
      `ExMonty.OsPolicy`.
    * `:on_output` — receives what Python prints while it runs: a pid (sent
      `{:ex_monty_output, :stdout | :stderr, text}`) or a function
      `(stream, text)`. The result's `output` still holds all of it.
    * `:type_check` — `true`, or a keyword list of `type_check/2`'s
      `:stubs`, `:inputs`, `:modules`, `:timeout`, `:max_memory`: type check the code first
      and refuse it, without running it, with
      `{:error, %ExMonty.Exception{type: :type_check_error, diagnostics: [...]}}`
      when the checker finds a problem. The inputs are declared with the
      types of their values unless `:inputs` declares them.

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
  defdelegate eval(code, opts \\ []), to: Execution

  @doc """
  Like `eval/2`, but returns the value and raises `ExMonty.Exception` on error.

  ## Examples

      iex> ExMonty.eval!("'a' * 3")
      "aaa"
  """
  @spec eval!(String.t(), keyword()) :: value()
  defdelegate eval!(code, opts \\ []), to: Execution

  @doc """
  Type checks `code` without running it: `:ok`, or
  `{:error, [%ExMonty.TypeDiagnostic{}]}` listing what the checker found
  (any finding, of any severity). `{:error, %ExMonty.Exception{}}` when the
  check itself could not be done (`:invalid_input` for source that is not
  UTF-8 or an unusable module stub, `:timeout_error`, `:memory_error`,
  `:sandbox_crashed`).

  The checker is [ty](https://docs.astral.sh/ty/) (through Monty's
  `monty-type-checking`), checking against the part of the standard library
  Monty implements. It runs inside WebAssembly like the code itself — its own
  component (`priv/ex_monty_typecheck.wasm`), compiled on first use, a fresh
  instance per check, on ExMonty's worker threads, under a memory cap and a
  deadline, cancelled if the caller dies — so source crafted to break it ends
  in an error, never in a crash.

  ## Options

    * `:stubs` — Python stub source declaring what the host provides: functions
      (`def fetch(url: str) -> str: ...`, `async def` for awaitables),
      classes, constants. Its public names are visible to the code.
    * `:inputs` — the inputs' types, `%{"name" => "python type"}`
      (`%{"url" => "str", "ids" => "list[int]"}`).
    * `:modules` — host modules, `%{"tools" => "def fetch(url: str) -> str: ..."}`:
      `import tools` and `from tools import fetch` resolve to these stubs.
    * `:script_name` — the file name diagnostics carry (`"main.py"`).
    * `:timeout` — milliseconds the check may take (default 30 000); past it
      `{:error, %ExMonty.Exception{type: :timeout_error}}`.
    * `:max_memory` — the checker's linear-memory cap in bytes (default
      256 MiB, at least 32 MiB); past it
      `{:error, %ExMonty.Exception{type: :memory_error}}`.

  `compile/2`, `eval/2`, `ExMonty.Sandbox.run/2` and `ExMonty.Session`
  take `type_check: true` (or these options as a keyword list) to refuse
  ill-typed code before it runs.

  There, host functions given as captures of module functions with a
  `@spec` are declared from it: with
  `@spec fetch([String.t()], map()) :: {:ok, String.t()} | {:error, atom(), String.t()}`,
  `"fetch" => &Tools.fetch/2` is `def fetch(*args: str, **kwargs: Any) -> str`
  (the argument list's element type for every positional argument, the
  kwargs map's value type for every keyword argument, the `{:ok, t}`
  members of the return type for the result). Other functions take and
  return anything (`async def` for `{:async, fun}`), unless `:stubs`
  declares them.

  ## Examples

      iex> ExMonty.type_check("def f(x: int) -> int:\\n    return x * 2\\n\\nf(21)")
      :ok

      iex> {:error, [diagnostic]} =
      ...>   ExMonty.type_check("fetch(42)", stubs: "def fetch(url: str) -> str: ...")
      iex> {diagnostic.rule, diagnostic.line, diagnostic.column}
      {"invalid-argument-type", 1, 7}

      iex> ExMonty.type_check("import tools\\ntools.fetch(url).upper()",
      ...>   modules: %{"tools" => "def fetch(url: str) -> str: ..."},
      ...>   inputs: %{"url" => "str"})
      :ok
  """
  @spec type_check(String.t(), keyword()) ::
          :ok | {:error, [ExMonty.TypeDiagnostic.t()]} | {:error, Exception.t()}
  defdelegate type_check(code, opts \\ []), to: ExMonty.TypeCheck, as: :check

  @doc """
  Compiles `code` into a reusable `ExMonty.Runner`.

  ## Options

    * `:inputs` — the names of the input variables (a list of strings or
      atoms; each must be a Python identifier and not a keyword, else
      `{:error, %ExMonty.Exception{type: :invalid_input}}`).
    * `:script_name` — the file name shown in tracebacks (`"main.py"`).
    * `:type_check` — as for `eval/2`: the code is refused with
      `{:error, %ExMonty.Exception{type: :type_check_error}}` when the type
      checker finds a problem. The inputs are of any type unless the
      keyword list's `:inputs` declares them (`%{"x" => "int"}`).

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
  defdelegate compile(code, opts \\ []), to: Execution

  @doc """
  Runs a compiled runner with `inputs` (a map with one value per input name).

  ## Options

    * `:limits` — see `ExMonty.Limits`.
    * `:cwd` — the working directory relative paths resolve against (`"/"`).
    * `:mounts` — as for `eval/2`.
    * `:timeout` — as for `eval/2`.
    * `:node`, `:os_policy`, `:on_output` — as for `eval/2`.

  ## Examples

      iex> {:ok, runner} = ExMonty.compile("x * 2", inputs: ["x"])
      iex> ExMonty.run(runner, %{"x" => 21})
      {:ok, 42, ""}
  """
  @spec run(Runner.t(), map(), keyword()) :: result()
  defdelegate run(runner, inputs \\ %{}, opts \\ []), to: Execution

  @doc """
  Like `run/3`, but returns the value and raises `ExMonty.Exception` on error.
  """
  @spec run!(Runner.t(), map(), keyword()) :: value()
  defdelegate run!(runner, inputs \\ %{}, opts \\ []), to: Execution

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
    * `:os_policy`, `:on_output` — as for `eval/2`.

  An unknown option or an invalid value raises `ArgumentError`.
  """
  @spec start(Runner.t(), map(), keyword()) :: {:ok, progress()} | {:error, Exception.t()}
  defdelegate start(runner, inputs \\ %{}, opts \\ []), to: Execution

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
  defdelegate resume(snapshot, answer, opts \\ []), to: Execution

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
  defdelegate resume_futures(snapshot, results, opts \\ []), to: Execution

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
  defdelegate dump(runner, opts \\ []), to: Execution

  @doc """
  Restores a runner from `dump/2`. Corrupt, foreign, tampered or oversized
  binaries return `{:error, %ExMonty.Exception{type: :invalid_input}}`.

  Options: `:key` (the signing key, or `:unsigned`) and `:max_bytes` (see
  `ExMonty.Dump`); any other raises `ArgumentError`.
  """
  @spec load_runner(binary(), keyword()) :: {:ok, Runner.t()} | {:error, Exception.t()}
  defdelegate load_runner(binary, opts \\ []), to: Execution

  @doc """
  Serializes a paused execution. The snapshot itself stays usable. Takes the
  `:key` option of `dump/2`.
  """
  @spec dump_snapshot(Snapshot.t(), keyword()) :: {:ok, binary()} | {:error, Exception.t()}
  defdelegate dump_snapshot(snapshot, opts \\ []), to: Execution

  @doc """
  Restores a paused execution from `dump_snapshot/2` and returns it with what
  it waits for, as `{:ok, snapshot}`. A dump whose signature was verified
  (see `ExMonty.Dump`) goes into a warm wasm instance; an unsigned one into a
  new instance that no other execution uses, before or after it, so that
  bytes anyone could have crafted never share memory with other executions
  (~0.3–0.5 ms more).

  ## Options

    * `:limits` — tightens the limits the execution was started with.
    * `:key` — the signing key, or `:unsigned` (see `ExMonty.Dump`).
    * `:max_bytes` — the largest binary accepted (see `ExMonty.Dump`).

  Any other option raises `ArgumentError`.
  """
  @spec load_snapshot(binary(), keyword()) :: {:ok, Snapshot.t()} | {:error, Exception.t()}
  defdelegate load_snapshot(binary, opts \\ []), to: Execution

  @doc """
  Like `load_snapshot/2`, but returns the pause itself
  (`{:ok, {:function_call, call, snapshot, ""}}` ...).
  """
  @spec load_progress(binary(), keyword()) :: {:ok, progress()} | {:error, Exception.t()}
  defdelegate load_progress(binary, opts \\ []), to: Execution

  @doc """
  Counters of the sandbox runtime:

    * `:workers` — threads that run Python;
    * `:idle_instances` — warm wasm instances waiting for an execution;
    * `:live_instances` — instances alive (idle, running or holding a pause);
    * `:live_paused` — paused executions that hold an instance. At most
      `config :ex_monty, max_live_paused:` (256) do; beyond it a paused
      execution is kept as its dump bytes (a few KB) and woken into any
      instance when it is resumed;
    * `:instance_max_uses` — executions (or session snippets) an instance
      serves before it is replaced by a new one.

  ## Examples

      iex> %{workers: workers, instance_max_uses: uses} = ExMonty.stats()
      iex> workers > 0 and uses > 0
      true
  """
  @spec stats() :: %{
          workers: pos_integer(),
          idle_instances: non_neg_integer(),
          live_instances: non_neg_integer(),
          live_paused: non_neg_integer(),
          instance_max_uses: pos_integer()
        }
  defdelegate stats(), to: Execution

  @doc false
  @spec invalid(String.t()) :: {:error, Exception.t()}
  defdelegate invalid(message), to: Exception
end
