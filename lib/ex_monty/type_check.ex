defmodule ExMonty.TypeCheck do
  @moduledoc false
  # Static type checking of Python source before it runs (ExMonty.type_check/2
  # and the `type_check:` option of compile, eval, Sandbox.run and sessions).
  #
  # The checker is ty (through the monty-type-checking crate) compiled to its
  # own WebAssembly component (priv/ex_monty_typecheck.wasm), run by the NIF
  # on the worker threads like an execution: under a memory cap and a
  # deadline, cancelled when the caller dies, a trap an error. This module
  # validates the options, writes the declarations the code is checked
  # against (stubs), queues the check and turns the answer into
  # %ExMonty.TypeDiagnostic{} or a refusal.

  alias ExMonty.{Exception, Job, Native, Options, TypeDiagnostic}

  @default_timeout 30_000
  # The checker's default linear-memory cap: a small check fits in 32 MiB, a
  # 20 000-line file with 20 000 errors needs about 150 MiB; pathological
  # source is stopped here.
  @memory_cap 256 * 1024 * 1024
  @stubs_header "from typing import Any\nimport datetime\nimport decimal\nimport pathlib\n"
  @identifier ~r/\A[A-Za-z_][A-Za-z0-9_]*\z/

  @typedoc "The declarations a check uses (see `ExMonty.type_check/2`)."
  @type context :: %{
          stubs: String.t(),
          modules: [{String.t(), String.t()}],
          prelude: String.t(),
          script_name: String.t(),
          timeout: pos_integer(),
          max_memory: pos_integer()
        }

  # ---------------------------------------------------------------------------
  # ExMonty.type_check/2
  # ---------------------------------------------------------------------------

  @doc false
  @spec check(String.t(), keyword()) ::
          :ok | {:error, [TypeDiagnostic.t()]} | {:error, Exception.t()}
  def check(code, opts \\ []) do
    opts = Options.validate!(opts, :type_check)

    unless is_binary(code) do
      raise ArgumentError,
            "ExMonty.type_check/2 expects Python source (a string), got: #{inspect(code, limit: 5)}"
    end

    context = context(opts, Keyword.get(opts, :script_name, "main.py"), %{}, %{})

    case run(nil, code, context, false) do
      {:ok, [], _imports} -> :ok
      {:ok, diagnostics, _imports} -> {:error, diagnostics}
      {:error, %Exception{}} = error -> error
    end
  end

  # ---------------------------------------------------------------------------
  # The `type_check:` option
  # ---------------------------------------------------------------------------

  @doc false
  # Validates the value of a `type_check:` option (`true`, `false` or a
  # keyword list of :stubs, :inputs, :modules, :timeout, :max_memory); raises
  # ArgumentError naming `fun`.
  @spec validate!(term(), String.t()) :: :ok
  def validate!(value, _fun) when is_boolean(value), do: :ok

  def validate!(value, fun) do
    unless is_list(value) and Keyword.keyword?(value) do
      raise ArgumentError,
            "invalid value for option :type_check of #{fun}: expected true, false or a keyword " <>
              "list of :stubs, :inputs, :modules, :timeout, :max_memory, got: " <>
              inspect(value, limit: 10)
    end

    Options.validate!(value, :type_check_option)
    :ok
  end

  @doc false
  # The check's options when `opts` asks for one (`type_check:` true or a
  # keyword list), else nil.
  @spec requested(keyword()) :: keyword() | nil
  def requested(opts) do
    case Keyword.get(opts, :type_check, false) do
      false -> nil
      true -> []
      check_opts -> check_opts
    end
  end

  @doc false
  # Refuses `code` when `opts` asks for a type check and the code is ill
  # typed: :ok, or {:error, %Exception{type: :type_check_error}} (or the
  # checker's own error). `inputs` are the inputs: {:values, %{name =>
  # value}} (declared with the types of their values) or {:names, names}
  # (of any type); `host` the Sandbox's functions and modules. Nothing is
  # computed unless a check is asked for.
  @spec gate(String.t(), keyword(), {:values, map()} | {:names, list()}, map()) ::
          :ok | {:error, Exception.t()}
  def gate(code, opts, inputs, host \\ %{}) do
    case requested(opts) do
      nil ->
        :ok

      check_opts ->
        script = Keyword.get(opts, :script_name, "main.py")

        {input_types, classes} =
          case inputs do
            {:values, values} ->
              {value_types(values), class_stubs(values, host, check_opts, MapSet.new())}

            {:names, names} ->
              {any_types(names), {"", MapSet.new()}}
          end

        context = context(check_opts, script, input_types, host)
        context = %{context | stubs: context.stubs <> elem(classes, 0)}

        case run(nil, code, context, false) do
          {:ok, [], _} -> :ok
          {:ok, diagnostics, _} -> {:error, refusal(diagnostics)}
          {:error, _} = error -> error
        end
    end
  end

  @doc false
  # The declarations of inputs given as values (eval, Sandbox.run): the
  # Python type of each value.
  @spec value_types(map()) :: %{String.t() => String.t()}
  def value_types(inputs) when is_map(inputs) do
    for {name, value} <- inputs, is_binary(name) or is_atom(name), into: %{} do
      {to_string(name), python_type(value, 4)}
    end
  end

  def value_types(_inputs), do: %{}

  @doc false
  # Inputs given by name only (compile): of any type.
  @spec any_types([String.t() | atom()]) :: %{String.t() => String.t()}
  def any_types(names), do: Map.new(names, &{to_string(&1), "Any"})

  @doc false
  # The exception a refused program is answered with.
  @spec refusal([TypeDiagnostic.t()]) :: Exception.t()
  def refusal([first | _] = diagnostics) do
    count = length(diagnostics)
    noun = if count == 1, do: "problem", else: "problems"

    %Exception{
      type: :type_check_error,
      python_type: "TypeCheckError",
      message:
        "the type checker found #{count} #{noun}; the code was not run " <>
          "(first: #{first.file}:#{first.line}:#{first.column}: [#{first.rule}] #{first.message})",
      rendered: TypeDiagnostic.render(diagnostics),
      diagnostics: diagnostics
    }
  end

  # ---------------------------------------------------------------------------
  # Sessions: each snippet against what earlier ones defined
  # ---------------------------------------------------------------------------

  @doc false
  # The type-check state of a session started with `type_check:`, or nil.
  @spec session_new(keyword()) :: map() | nil
  def session_new(opts) do
    case requested(opts) do
      nil ->
        nil

      check_opts ->
        host = Map.new(Keyword.take(opts, [:functions, :modules]))
        script = Keyword.get(opts, :script_name, "main.py")
        context = context(check_opts, script, %{}, host)
        # Inputs declared by the option keep their declared types.
        typed = check_opts |> Keyword.get(:inputs, %{}) |> Map.keys()
        # The session's inputs exist from its first snippet on.
        values = Keyword.get(opts, :inputs, %{})
        {classes, declared} = class_stubs(values, host, check_opts, MapSet.new())
        inputs = classes <> declarations(Map.drop(value_types(values), typed))

        %{
          checker: Native.typecheck_new(),
          context: context,
          committed: inputs,
          typed: typed,
          host: host,
          check_opts: check_opts,
          classes: declared
        }
    end
  end

  @doc false
  # Checks a snippet of a session: {:ok, pending} (what to commit once it
  # ran) or {:error, exception}.
  @spec session_check(map() | nil, String.t(), map()) ::
          {:ok, term()} | {:error, Exception.t()}
  def session_check(nil, _code, _inputs), do: {:ok, nil}

  def session_check(state, code, inputs) do
    {classes, names} = class_stubs(inputs, state.host, state.check_opts, state.classes)
    declared = classes <> declarations(Map.drop(value_types(inputs), state.typed))
    context = %{state.context | stubs: state.context.stubs <> state.committed <> declared}

    case run(state.checker, code, context, true) do
      {:ok, [], imports} -> {:ok, {declared <> code <> "\n", imports || "", names}}
      {:ok, diagnostics, _} -> {:error, refusal(diagnostics)}
      {:error, _} = error -> error
    end
  end

  @doc false
  # After a snippet ran to completion: later snippets see what it defined.
  @spec session_commit(map() | nil, term()) :: map() | nil
  def session_commit(nil, _pending), do: nil
  def session_commit(state, nil), do: state

  def session_commit(state, {source, imports, classes}) do
    context = %{state.context | prelude: state.context.prelude <> imports}
    %{state | committed: state.committed <> source, context: context, classes: classes}
  end

  @doc false
  # An idle session gives its checker's instance back (the next check makes
  # a new one; the session's declarations are kept here).
  @spec session_release(map() | nil) :: :ok
  def session_release(nil), do: :ok
  def session_release(%{checker: checker}), do: Native.typecheck_release(checker)

  # ---------------------------------------------------------------------------
  # The check
  # ---------------------------------------------------------------------------

  defp run(checker, code, context, imports?) do
    if String.valid?(code) do
      request = %{
        code: code,
        script_name: context.script_name,
        stubs: context.stubs,
        modules: context.modules,
        prelude: context.prelude
      }

      priv = :code.priv_dir(:ex_monty) |> to_string()

      settings = %{
        wasm_path: Path.join(priv, "ex_monty_typecheck.wasm"),
        cache_dir: Application.get_env(:ex_monty, :cache_dir, Path.join(priv, "cache")),
        max_duration_ms: context.timeout,
        memory_cap: context.max_memory,
        imports: imports?
      }

      case Job.run({:typecheck_check, :typecheck_check}, [checker, request, settings]) do
        {:ok, {diagnostics, imports}} ->
          {:ok, Enum.map(diagnostics, &TypeDiagnostic.from_native/1), imports}

        {:error, %Exception{}} = error ->
          error
      end
    else
      Exception.invalid("Python source must be valid UTF-8")
    end
  end

  # The declarations the code is checked against: the user's stubs, the
  # inputs, and the host's functions and modules unless the stubs declare
  # them.
  defp context(check_opts, script_name, input_types, host) do
    user_stubs = Keyword.get(check_opts, :stubs, "")
    input_types = Map.merge(input_types, Keyword.get(check_opts, :inputs, %{}))
    user_modules = Keyword.get(check_opts, :modules, %{})

    generated =
      host
      |> Map.get(:functions, %{})
      |> Enum.reject(fn {name, _} -> declared?(user_stubs, name) end)
      |> Enum.map_join(fn {name, fun} -> function_stub(name, fun) end)

    inputs =
      input_types
      |> Enum.reject(fn {name, _} -> declared?(user_stubs, name) end)
      |> Map.new()
      |> declarations()

    host_modules =
      host
      |> Map.get(:modules, %{})
      |> Enum.reject(fn {name, _} -> Map.has_key?(user_modules, name) end)
      |> Enum.map(fn {name, attrs} -> {name, module_stub(attrs)} end)

    %{
      stubs: @stubs_header <> inputs <> generated <> user_stubs <> "\n",
      modules: Enum.sort(host_modules ++ Map.to_list(user_modules)),
      prelude: "",
      script_name: script_name,
      timeout: Keyword.get(check_opts, :timeout, @default_timeout),
      max_memory: Keyword.get(check_opts, :max_memory, @memory_cap)
    }
  end

  # Host objects (ExMonty.Dataclass) among the input values, nested ones
  # included: their classes, each declared once (`known` holds the names
  # already declared; the user's stubs win), with the methods the host
  # serves as "Class.method" in :functions. Returns {source, known}.
  defp class_stubs(values, host, check_opts, known) when is_map(values) do
    user_stubs = Keyword.get(check_opts, :stubs, "")

    dataclasses =
      values
      |> Map.values()
      |> Enum.flat_map(&dataclasses_in(&1, 8))
      |> Enum.uniq_by(& &1.name)
      |> Enum.reject(&(MapSet.member?(known, &1.name) or declared?(user_stubs, &1.name)))

    if dataclasses == [] do
      {"", known}
    else
      names = MapSet.new(dataclasses, & &1.name)

      methods =
        for {name, fun} <- Map.get(host, :functions, %{}),
            [class, method] <- [String.split(name, ".", parts: 2)],
            MapSet.member?(names, class) and Regex.match?(@identifier, method),
            reduce: %{} do
          acc ->
            line = "#{async_prefix(fun)}def #{method}(self, *args: Any, **kwargs: Any) -> Any: ..."
            Map.update(acc, class, [line], &[line | &1])
        end

      # `dataclasses` already holds the nested ones not declared before.
      stub = ExMonty.Dataclass.stub(dataclasses, methods: methods, nested: false)
      {stub, MapSet.union(known, names)}
    end
  end

  defp class_stubs(_values, _host, _check_opts, known), do: {"", known}

  defp async_prefix({:async, _}), do: "async "
  defp async_prefix(_), do: ""

  defp dataclasses_in(_value, 0), do: []

  # Only well-formed ones: a malformed struct is refused when the code runs.
  defp dataclasses_in(%ExMonty.Dataclass{name: name, fields: fields} = dataclass, depth)
       when is_binary(name) and is_map(fields) do
    nested = fields |> Map.values() |> Enum.flat_map(&dataclasses_in(&1, depth - 1))

    if Regex.match?(@identifier, name) and Enum.all?(Map.keys(fields), &field_name?/1) and
         is_list(dataclass.field_names || []) do
      # Nested classes first: they are the field types of the outer one.
      nested ++ [%{dataclass | field_names: nil}]
    else
      nested
    end
  end

  defp dataclasses_in(list, depth) when is_list(list),
    do: list |> proper_take(1000, []) |> Enum.flat_map(&dataclasses_in(&1, depth - 1))

  defp dataclasses_in(map, depth) when is_map(map) and not is_struct(map),
    do: map |> Map.values() |> Enum.take(1000) |> Enum.flat_map(&dataclasses_in(&1, depth - 1))

  defp dataclasses_in(_value, _depth), do: []

  defp field_name?(name), do: is_binary(name) and Regex.match?(@identifier, name)

  defp proper_take([head | tail], n, acc) when n > 0, do: proper_take(tail, n - 1, [head | acc])
  defp proper_take(_rest, _n, acc), do: acc

  # Names that are not identifiers are refused when the code runs; they
  # declare nothing.
  defp declarations(types) do
    types
    |> Enum.filter(fn {name, _type} -> Regex.match?(@identifier, name) end)
    |> Enum.sort()
    |> Enum.map_join(fn {name, type} -> "#{name}: #{type}\n" end)
  end

  defp declared?(stubs, name) do
    Regex.match?(@identifier, name) and
      Regex.match?(
        ~r/^(?:\s*(?:async\s+)?def\s+#{name}\b|#{name}\s*[:=]|class\s+#{name}\b)/m,
        stubs
      )
  end

  # A host function: from its @spec when it is a capture of a module
  # function with one, else taking and returning anything.
  defp function_stub(name, fun) do
    if Regex.match?(@identifier, name) do
      {async, fun} =
        case fun do
          {:async, fun} -> {"async ", fun}
          fun -> {"", fun}
        end

      {params, returns} = ExMonty.TypeCheck.Specs.signature(fun)
      "#{async}def #{name}(#{params}) -> #{returns}: ...\n"
    else
      ""
    end
  end

  defp module_stub(attrs) do
    body =
      attrs
      |> Enum.sort()
      |> Enum.filter(fn {attr, _} -> Regex.match?(@identifier, attr) end)
      |> Enum.map_join(fn
        {attr, fun} when is_function(fun, 2) -> function_stub(attr, fun)
        {attr, {:async, fun}} when is_function(fun, 2) -> function_stub(attr, {:async, fun})
        {attr, value} -> "#{attr}: #{python_type(value, 4)}\n"
      end)

    @stubs_header <> body
  end

  @doc false
  # The Python type of an Elixir value as ExMonty converts it (see the README's
  # Values table); `depth` bounds how far into containers it looks.
  @spec python_type(term(), non_neg_integer()) :: String.t()
  def python_type(_value, 0), do: "Any"
  def python_type(nil, _depth), do: "None"
  def python_type(value, _depth) when is_boolean(value), do: "bool"
  def python_type(value, _depth) when is_integer(value), do: "int"
  def python_type(value, _depth) when is_float(value), do: "float"
  def python_type(value, _depth) when value in [:infinity, :neg_infinity, :nan], do: "float"
  def python_type(value, _depth) when is_binary(value), do: "str"
  def python_type({:bytes, _}, _depth), do: "bytes"
  def python_type({:path, _}, _depth), do: "pathlib.Path"
  def python_type({:decimal, _}, _depth), do: "decimal.Decimal"
  def python_type({:complex, _, _}, _depth), do: "complex"
  def python_type({:timedelta, _, _, _}, _depth), do: "datetime.timedelta"
  def python_type(%Date{}, _depth), do: "datetime.date"
  def python_type(%NaiveDateTime{}, _depth), do: "datetime.datetime"
  def python_type(%DateTime{}, _depth), do: "datetime.datetime"
  def python_type(%Time{}, _depth), do: "datetime.time"
  def python_type(%ExMonty.Dataclass{name: name}, _depth) when is_binary(name), do: name
  def python_type(%MapSet{} = set, depth), do: "set[#{common_type(set, depth)}]"
  def python_type(list, depth) when is_list(list), do: "list[#{common_type(list, depth)}]"

  def python_type(map, depth) when is_map(map) and not is_struct(map) do
    "dict[#{common_type(Map.keys(map), depth)}, #{common_type(Map.values(map), depth)}]"
  end

  # A tuple tagged with an atom is one of ExMonty's forms ({:function, name}, ...).
  def python_type(tuple, _depth) when is_tuple(tuple) and is_atom(elem(tuple, 0)), do: "Any"

  def python_type(tuple, depth) when is_tuple(tuple) and tuple_size(tuple) in 1..16 do
    tuple
    |> Tuple.to_list()
    |> Enum.map_join(", ", &python_type(&1, depth - 1))
    |> then(&"tuple[#{&1}]")
  end

  def python_type(_value, _depth), do: "Any"

  # The one type of every element (of the first 1000), else Any (a union
  # would reject appends of any other type). Improper lists are Any.
  defp common_type(%MapSet{} = set, depth), do: common_type(Enum.take(set, 1000), depth)

  defp common_type(elements, depth) do
    case first_types(elements, depth - 1, 1000, []) do
      [type] -> type
      _ -> "Any"
    end
  end

  defp first_types([], _depth, _left, types), do: Enum.uniq(types)
  defp first_types(_rest, _depth, 0, types), do: Enum.uniq(types)

  defp first_types([element | rest], depth, left, types),
    do: first_types(rest, depth, left - 1, [python_type(element, depth) | types])

  defp first_types(_improper, _depth, _left, _types), do: []
end
