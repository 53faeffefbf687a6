defmodule ExMonty.Execution do
  @moduledoc false
  # What `ExMonty`'s functions do (their documentation lives there): check
  # the arguments, convert them into what the NIF takes, queue the job and
  # wait for its answer (`ExMonty.Job`), and drive eval/run through their
  # sleeps (`ExMonty.Driver`).

  alias ExMonty.{Driver, Exception, Job, Limits, Native, Options, Runner, Snapshot, TypeCheck}

  @default_script "main.py"

  # ---------------------------------------------------------------------------
  # One-shot evaluation
  # ---------------------------------------------------------------------------

  def eval(code, opts \\ []) do
    opts = Options.validate!(opts, :eval)

    with :local <- ExMonty.Cluster.Remote.dispatch(:eval, [code], opts),
         {:ok, code} <- check_code(code, "ExMonty.eval/2"),
         {:ok, inputs} <- check_inputs(Keyword.get(opts, :inputs, %{})),
         :ok <- TypeCheck.gate(code, opts, {:values, Map.new(inputs)}),
         {:ok, limits} <- limits(opts) do
      {names, values} = unzip(inputs, [], [])
      source = %{code: code, script_name: script_name(opts), input_names: names}
      settings = settings(opts, limits, false)
      until = Driver.until(timeout(opts))

      Job.run(
        {:runner_eval, :runner_eval_dirty},
        [source, values, settings],
        until,
        on_output(opts)
      )
      |> Driver.drive(limits, on_output(opts), until)
    end
  end

  def eval!(code, opts \\ []) do
    case eval(code, opts) do
      {:ok, value, _output} -> value
      {:error, exception} -> raise exception
    end
  end

  # ---------------------------------------------------------------------------
  # Compile and run
  # ---------------------------------------------------------------------------

  def compile(code, opts \\ []) do
    opts = Options.validate!(opts, :compile)

    with {:ok, code} <- check_code(code, "ExMonty.compile/2"),
         {:ok, names} <- check_names(Keyword.get(opts, :inputs, [])),
         :ok <- TypeCheck.gate(code, opts, {:names, names}) do
      script = script_name(opts)

      Job.run({:runner_compile, :runner_compile_dirty}, [code, script, names])
    end
  end

  def run(runner, inputs \\ %{}, opts \\ [])

  def run(%Runner{} = runner, inputs, opts) do
    opts = Options.validate!(opts, :run)

    with :local <- ExMonty.Cluster.Remote.dispatch(:run, [runner, inputs], opts),
         {:ok, values} <- runner_inputs(runner, inputs),
         {:ok, limits} <- limits(opts) do
      settings = settings(opts, limits, false)
      until = Driver.until(timeout(opts))

      Job.run(
        {:runner_start, :runner_start_dirty},
        [runner.resource, values, settings],
        until,
        on_output(opts)
      )
      |> Driver.drive(limits, on_output(opts), until)
    end
  end

  def run(other, _inputs, _opts), do: not_a!("ExMonty.run/3", "an ExMonty.Runner", other)

  def run!(runner, inputs \\ %{}, opts \\ []) do
    case run(runner, inputs, opts) do
      {:ok, value, _output} -> value
      {:error, exception} -> raise exception
    end
  end

  # ---------------------------------------------------------------------------
  # Interactive execution
  # ---------------------------------------------------------------------------

  def start(runner, inputs \\ %{}, opts \\ [])

  def start(%Runner{} = runner, inputs, opts) do
    opts = Options.validate!(opts, :start)

    with :local <- ExMonty.Cluster.Remote.dispatch(:start, [runner, inputs], opts),
         {:ok, values} <- runner_inputs(runner, inputs),
         {:ok, limits} <- limits(opts) do
      settings = settings(opts, limits, true)

      Job.run(
        {:runner_start, :runner_start_dirty},
        [runner.resource, values, settings],
        :infinity,
        on_output(opts)
      )
    end
  end

  def start(other, _inputs, _opts), do: not_a!("ExMonty.start/3", "an ExMonty.Runner", other)

  def resume(snapshot, answer, opts \\ [])

  def resume(%Snapshot{resource: resource}, answer, opts) do
    opts = Options.validate!(without_nil_on_output(opts), :resume)
    Driver.resume(%Snapshot{resource: resource}, answer, timeout(opts), on_output(opts))
  end

  def resume(other, _answer, _opts), do: not_a!("ExMonty.resume/3", "an ExMonty.Snapshot", other)

  def resume_futures(snapshot, results, opts \\ [])

  def resume_futures(%Snapshot{resource: resource}, results, opts)
      when is_map(results) or is_list(results) do
    opts = Options.validate!(without_nil_on_output(opts), :resume_futures)

    results
    |> Enum.reduce_while({:ok, []}, fn
      {id, answer}, {:ok, acc} when is_integer(id) and id >= 0 ->
        {:cont, {:ok, [{id, answer} | acc]}}

      other, _ ->
        raise ArgumentError,
              "ExMonty.resume_futures/2 takes {call_id, answer} pairs (call_id a non-negative " <>
                "integer), got: #{inspect(other, limit: 10)}"
    end)
    |> case do
      {:ok, natives} ->
        natives = Enum.reverse(natives)

        Job.run(
          {:snapshot_resume_futures, :snapshot_resume_futures_dirty},
          [resource, natives],
          timeout(opts),
          on_output(opts)
        )

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

  # ---------------------------------------------------------------------------
  # Serialization
  # ---------------------------------------------------------------------------

  def dump(runner, opts \\ [])

  def dump(%Runner{resource: resource} = runner, opts) do
    opts = validate_opts!(opts, [:key])
    # A runner from an unsigned dump stays marked so, signed or not.
    ExMonty.Dump.encode(:runner, Native.runner_program(resource), opts, runner.untrusted == true)
  end

  def dump(other, _opts), do: not_a!("ExMonty.dump/2", "an ExMonty.Runner", other)

  def load_runner(binary, opts \\ []) do
    opts = validate_opts!(opts, [:key, :max_bytes])

    with {:ok, program, signed} <- ExMonty.Dump.decode(:runner, binary, opts) do
      Job.run({:runner_load, :runner_load_dirty}, [program, signed == :unsigned])
    end
  end

  def dump_snapshot(snapshot, opts \\ [])

  def dump_snapshot(%Snapshot{resource: resource}, opts) do
    opts = validate_opts!(opts, [:key])

    case Job.await(Native.snapshot_dump(resource)) do
      {:ok, {bytes, _kind, untrusted}} -> ExMonty.Dump.encode(:snapshot, bytes, opts, untrusted)
      {:error, _} = error -> error
    end
  end

  def dump_snapshot(other, _opts),
    do: not_a!("ExMonty.dump_snapshot/2", "an ExMonty.Snapshot", other)

  def load_snapshot(binary, opts \\ []) do
    opts = validate_opts!(opts, [:key, :max_bytes, :limits])

    with {:ok, bytes, signed} <- ExMonty.Dump.decode(:snapshot, binary, opts),
         {:ok, limits} <- limits(opts),
         {:ok, {_kind, _call, %Snapshot{} = snapshot, _output}} <-
           load_native(bytes, limits, signed) do
      {:ok, snapshot}
    end
  end

  def load_progress(binary, opts \\ []) do
    opts = validate_opts!(opts, [:key, :max_bytes, :limits])

    with {:ok, bytes, signed} <- ExMonty.Dump.decode(:snapshot, binary, opts),
         {:ok, limits} <- limits(opts) do
      load_native(bytes, limits, signed)
    end
  end

  # A dump whose signature was verified was written by ExMonty: it may be
  # loaded into a warm instance. Any other starts in a new instance, so that
  # crafted bytes never share memory with what earlier executions left.
  defp load_native(bytes, limits, signed) do
    Job.run(
      {:snapshot_load, :snapshot_load_dirty},
      [bytes, Limits.to_native(limits), signed == :signed]
    )
  end

  # ---------------------------------------------------------------------------
  # Argument checks
  # ---------------------------------------------------------------------------

  # Source that is not a string is a programmer error; source that is not
  # UTF-8 is data (it may come from anywhere): an error result.
  defp check_code(code, _fun) when is_binary(code) do
    if String.valid?(code),
      do: {:ok, code},
      else: Exception.invalid("Python source must be valid UTF-8")
  end

  defp check_code(code, fun), do: not_a!(fun, "Python source (a string)", code)

  defp not_a!(fun, expected, got) do
    raise ArgumentError, "#{fun} expects #{expected}, got: #{inspect(got, limit: 5)}"
  end

  # `Enum.unzip/1` without a closure (see `ExMonty.Job.run/4`).
  defp unzip([], names, values), do: {Enum.reverse(names), Enum.reverse(values)}

  defp unzip([{name, value} | rest], names, values),
    do: unzip(rest, [name | names], [value | values])

  defp check_inputs(inputs) when map_size(inputs) == 0, do: {:ok, []}

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
          else: Exception.invalid("input names collide after conversion to strings")

      error ->
        error
    end
  end

  defp check_inputs(other),
    do: Exception.invalid("inputs must be a map of name => value, got: #{inspect(other)}")

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
          else: Exception.invalid("input names must be unique")

      error ->
        error
    end
  end

  defp check_names(other),
    do: Exception.invalid("inputs must be a list of names, got: #{inspect(other)}")

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
        Exception.invalid("input name #{inspect(name)} is not a valid Python identifier")

      name in @keywords ->
        Exception.invalid("input name #{inspect(name)} is a Python keyword")

      true ->
        {:ok, name}
    end
  end

  defp input_name(other),
    do: Exception.invalid("input names must be strings, got: #{inspect(other)}")

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
    do: Exception.invalid("inputs must be a map of name => value, got: #{inspect(other)}")

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
          Exception.invalid("missing input(s): #{Enum.join(missing, ", ")}")

        extra != [] ->
          Exception.invalid(
            "unknown input(s): #{Enum.join(extra, ", ")} (the runner declares #{inspect(names)})"
          )

        true ->
          {:ok, Enum.map(names, &Map.fetch!(given, &1))}
      end
    end
  end

  # `on_output: nil` (no listener) has always been accepted by resume.
  defp without_nil_on_output(opts) when is_list(opts),
    do: Enum.reject(opts, &match?({:on_output, nil}, &1))

  defp without_nil_on_output(opts), do: opts

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
  # The clauses for `[]` (no options, the common call) give the same answers
  # as the general ones without walking the list: every execution pays them.
  defp limits([]), do: {:ok, Limits.defaults()}
  defp limits(opts), do: {:ok, Limits.normalize!(Keyword.get(opts, :limits))}

  defp timeout([]), do: :infinity
  defp timeout(opts), do: Keyword.get(opts, :timeout, :infinity)

  defp on_output([]), do: nil

  defp on_output(opts) do
    case Keyword.get(opts, :on_output) do
      on_output when is_pid(on_output) or is_function(on_output, 2) or is_nil(on_output) ->
        on_output

      other ->
        raise ArgumentError,
              "invalid value for option :on_output: expected a pid or a 2-arity function " <>
                "(stream, text), got: #{inspect(other)}"
    end
  end

  # What the NIF runs an execution with: a tuple in `settings_fields/0`
  # order (the NIF's `SETTINGS_FIELDS`; a test compares the two). Every
  # execution passes one, and a tuple decodes far faster than a map.
  @settings_fields [:limits, :interactive, :cwd, :mounts, :os_policy, :live_output]

  @doc false
  @spec settings_fields() :: [atom()]
  def settings_fields, do: @settings_fields

  @doc false
  @spec native_settings(Limits.t(), boolean(), String.t() | nil, term(), term(), boolean()) ::
          tuple()
  def native_settings(limits, interactive, cwd, mounts, os_policy, live_output),
    do: {Limits.to_native(limits), interactive, cwd, mounts, os_policy, live_output}

  defp settings([], limits, interactive),
    do: native_settings(limits, interactive, nil, nil, nil, false)

  defp settings(opts, limits, interactive) do
    mounts =
      case Keyword.get(opts, :mounts) do
        nil -> nil
        %ExMonty.Mount{resource: resource} -> resource
      end

    native_settings(
      limits,
      interactive,
      Keyword.get(opts, :cwd),
      mounts,
      ExMonty.OsPolicy.normalize!(Keyword.get(opts, :os_policy)),
      on_output(opts) != nil
    )
  end

  defp script_name(opts), do: Keyword.get(opts, :script_name, @default_script)

  @spec stats() :: map()
  def stats do
    {workers, idle, live, paused, max_uses} = Native.runtime_stats()

    %{
      workers: workers,
      idle_instances: idle,
      live_instances: live,
      live_paused: paused,
      instance_max_uses: max_uses
    }
  end
end
