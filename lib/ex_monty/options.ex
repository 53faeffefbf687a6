defmodule ExMonty.Options do
  @moduledoc false
  # The options of every public function, checked before anything runs.
  #
  # A bad option is a programmer error: an unknown key, a wrong value or
  # options that are not a keyword list raise ArgumentError naming the
  # function, the key, the value and what is expected. Nothing is ignored and
  # nothing silently falls back to a default.

  @schemas %{
    eval:
      {"ExMonty.eval/2",
       [
         :cwd,
         :inputs,
         :limits,
         :mounts,
         :node,
         :on_output,
         :os_policy,
         :script_name,
         :timeout,
         :type_check
       ]},
    compile: {"ExMonty.compile/2", [:inputs, :script_name, :type_check]},
    run: {"ExMonty.run/3", [:cwd, :limits, :mounts, :node, :on_output, :os_policy, :timeout]},
    start: {"ExMonty.start/3", [:cwd, :limits, :mounts, :node, :on_output, :os_policy]},
    sandbox:
      {"ExMonty.Sandbox.run/2",
       [
         :callback_timeout,
         :cwd,
         :functions,
         :handler,
         :inputs,
         :limits,
         :modules,
         :mounts,
         :node,
         :on_output,
         :os,
         :os_policy,
         :return_os,
         :script_name,
         :type_check
       ]},
    mount: {"ExMonty.Mount.new/1", [:memory_usage_limit, :write_bytes_limit]},
    session:
      {"ExMonty.Session.start_link/1",
       [
         :callback_timeout,
         :cwd,
         :functions,
         :handler,
         :hibernate_after,
         :inputs,
         :key,
         :limits,
         :load,
         :max_bytes,
         :modules,
         :mounts,
         :name,
         :node,
         :on_output,
         :os,
         :os_policy,
         :owner,
         :script_name,
         :type_check
       ]},
    resume: {"ExMonty.resume/3", [:on_output, :timeout]},
    resume_futures: {"ExMonty.resume_futures/3", [:on_output, :timeout]},
    session_eval: {"ExMonty.Session.eval/3", [:inputs, :limits, :timeout]},
    session_call: {"ExMonty.Session.call/4", [:limits, :timeout]},
    type_check:
      {"ExMonty.type_check/2", [:inputs, :max_memory, :modules, :script_name, :stubs, :timeout]},
    type_check_option: {"option :type_check", [:inputs, :max_memory, :modules, :stubs, :timeout]}
  }

  @doc false
  # The valid option keys of a schema.
  @spec keys(atom()) :: [atom()]
  def keys(schema), do: @schemas |> Map.fetch!(schema) |> elem(1)

  @doc false
  # Validates `opts` against `schema` (see @schemas) and returns them.
  # `:inputs` is checked per function: a map for eval and Sandbox.run, a list
  # of names for compile.
  @spec validate!(term(), atom()) :: keyword()
  def validate!([], _schema), do: []

  def validate!(opts, schema) do
    {fun, keys} = Map.fetch!(@schemas, schema)

    unless is_list(opts) and Keyword.keyword?(opts) do
      raise ArgumentError,
            "options of #{fun} must be a keyword list, got: #{inspect(opts, limit: 10)}"
    end

    Enum.each(opts, fn {key, value} ->
      unless key in keys do
        raise ArgumentError,
              "unknown option #{inspect(key)} for #{fun}; valid options: " <>
                Enum.map_join(keys, ", ", &inspect/1)
      end

      check!(schema, fun, key, value)
    end)

    opts
  end

  defp check!(_schema, _fun, :limits, value) do
    ExMonty.Limits.normalize!(value)
    :ok
  end

  defp check!(_schema, fun, :type_check, value), do: ExMonty.TypeCheck.validate!(value, fun)

  defp check!(schema, fun, key, value)
       when schema in [:type_check, :type_check_option] and
              key in [:inputs, :max_memory, :modules, :stubs, :timeout],
       do: check_type_check!(fun, key, value)

  defp check!(schema, fun, :inputs, value)
       when schema in [:eval, :sandbox, :session, :session_eval] do
    expect!(is_map(value), fun, :inputs, value, "a map of input name => value")
  end

  defp check!(:compile, fun, :inputs, value) do
    expect!(is_list(value), fun, :inputs, value, "a list of input names")
  end

  defp check!(_schema, fun, :script_name, value) do
    expect!(
      is_binary(value) and byte_size(value) in 1..256 and String.valid?(value),
      fun,
      :script_name,
      value,
      "a non-empty UTF-8 string of at most 256 bytes"
    )
  end

  defp check!(_schema, fun, :cwd, value) do
    expect!(
      value == nil or
        (is_binary(value) and String.starts_with?(value, "/") and
           String.valid?(value) and not String.contains?(value, <<0>>)),
      fun,
      :cwd,
      value,
      "an absolute path (a string starting with \"/\")"
    )
  end

  defp check!(_schema, fun, :mounts, value) do
    expect!(
      value == nil or is_struct(value, ExMonty.Mount),
      fun,
      :mounts,
      value,
      "an %ExMonty.Mount{} (see ExMonty.Mount.new/1)"
    )
  end

  defp check!(_schema, fun, :timeout, value) do
    expect!(
      value == :infinity or (is_integer(value) and value >= 0),
      fun,
      :timeout,
      value,
      "a non-negative integer (milliseconds) or :infinity"
    )
  end

  defp check!(_schema, fun, :node, value) do
    expect!(
      value in [nil, :auto] or (is_atom(value) and String.contains?(Atom.to_string(value), "@")),
      fun,
      :node,
      value,
      "a node name (an atom such as :\"b@host\"), :auto or nil (see ExMonty.Cluster)"
    )
  end

  defp check!(_schema, fun, :callback_timeout, value) do
    expect!(
      value == :infinity or (is_integer(value) and value > 0 and value <= 4_294_967_295),
      fun,
      :callback_timeout,
      value,
      "a positive integer (milliseconds, at most 4294967295) or :infinity"
    )
  end

  defp check!(_schema, fun, :return_os, value) do
    expect!(is_boolean(value), fun, :return_os, value, "a boolean")
  end

  defp check!(_schema, fun, :handler, value) do
    expect!(
      value == nil or loaded_module?(value),
      fun,
      :handler,
      value,
      "a loaded module implementing ExMonty.Sandbox"
    )
  end

  defp check!(_schema, fun, :functions, value) when is_map(value) do
    Enum.each(value, fn
      {name, fun2} when is_binary(name) and is_function(fun2, 2) ->
        :ok

      {name, {:async, fun2}} when is_binary(name) and is_function(fun2, 2) ->
        :ok

      {name, other} ->
        raise ArgumentError,
              "invalid entry #{inspect(name)} => #{inspect(other, limit: 10)} in option :functions of #{fun}; " <>
                "expected \"name\" => fn args, kwargs -> ... end or \"name\" => {:async, fn args, kwargs -> ... end}"
    end)
  end

  defp check!(_schema, fun, :functions, value),
    do: expect!(false, fun, :functions, value, "a map of \"name\" => fn args, kwargs -> ... end")

  defp check!(_schema, fun, :os, value), do: check_os!(fun, value)

  defp check!(_schema, fun, :modules, value) do
    identifier = &(is_binary(&1) and Regex.match?(~r/\A[A-Za-z_][A-Za-z0-9_]*\z/, &1))

    ok =
      is_map(value) and
        Enum.all?(value, fn {name, attrs} ->
          is_binary(name) and name |> String.split(".") |> Enum.all?(identifier) and
            is_map(attrs) and Enum.all?(Map.keys(attrs), identifier)
        end)

    expect!(ok, fun, :modules, value, ~s(a map of "module" => %{"attribute" => value or function}))
  end

  defp check!(_schema, fun, :on_output, value) do
    expect!(
      is_pid(value) or is_function(value, 2),
      fun,
      :on_output,
      value,
      "a pid (sent {:ex_monty_output, stream, text}) or a function (stream, text)"
    )
  end

  defp check!(_schema, fun, :os_policy, value) do
    ExMonty.OsPolicy.normalize!(value)
    :ok
  rescue
    e in ArgumentError -> reraise ArgumentError, "#{fun}: #{Exception.message(e)}", __STACKTRACE__
  end

  defp check!(:session, fun, :load, value),
    do: expect!(is_binary(value), fun, :load, value, "a binary from ExMonty.Session.dump/2")

  defp check!(:session, fun, :hibernate_after, value),
    do:
      expect!(
        value == :infinity or (is_integer(value) and value >= 0),
        fun,
        :hibernate_after,
        value,
        "a non-negative integer (milliseconds) or :infinity"
      )

  defp check!(:session, fun, :owner, value),
    do: expect!(is_pid(value), fun, :owner, value, "a pid")

  defp check!(:session, fun, :name, value) do
    ok =
      is_atom(value) or match?({:global, _}, value) or
        match?({:via, mod, _} when is_atom(mod), value)

    expect!(ok, fun, :name, value, "a GenServer name")
  end

  # Checked where they are used (ExMonty.Dump).
  defp check!(:session, _fun, key, _value) when key in [:key, :max_bytes], do: :ok

  defp check!(:mount, fun, key, value) when key in [:write_bytes_limit, :memory_usage_limit] do
    expect!(
      value == :infinity or (is_integer(value) and value > 0),
      fun,
      key,
      value,
      "a positive integer (bytes) or :infinity"
    )
  end

  @identifier ~r/\A[A-Za-z_][A-Za-z0-9_]*\z/

  defp check_type_check!(fun, :stubs, value),
    do:
      expect!(
        is_binary(value) and String.valid?(value),
        fun,
        :stubs,
        value,
        "Python stub source (a UTF-8 string)"
      )

  defp check_type_check!(fun, :inputs, value) do
    ok =
      is_map(value) and
        Enum.all?(value, fn {name, type} ->
          is_binary(name) and Regex.match?(@identifier, name) and is_binary(type) and
            String.valid?(type) and type != "" and not String.contains?(type, ["\n", "\r"])
        end)

    expect!(
      ok,
      fun,
      :inputs,
      value,
      ~s[a map of "name" => "Python type" (such as %{"url" => "str"})]
    )
  end

  defp check_type_check!(fun, :modules, value) do
    ok =
      is_map(value) and
        Enum.all?(value, fn {name, source} ->
          is_binary(name) and name |> String.split(".") |> Enum.all?(&Regex.match?(@identifier, &1)) and
            is_binary(source) and String.valid?(source)
        end)

    expect!(ok, fun, :modules, value, ~s(a map of "module" => "Python stub source"))
  end

  defp check_type_check!(fun, :max_memory, value),
    do:
      expect!(
        is_integer(value) and value >= 32 * 1024 * 1024 and value <= 4 * 1024 * 1024 * 1024,
        fun,
        :max_memory,
        value,
        "an integer number of bytes from 33554432 (32 MiB) to 4294967296 (4 GiB)"
      )

  defp check_type_check!(fun, :timeout, value),
    do:
      expect!(
        is_integer(value) and value > 0 and value <= 3_600_000,
        fun,
        :timeout,
        value,
        "a positive integer (milliseconds, at most 3600000)"
      )

  defp check_os!(_fun, nil), do: :ok
  defp check_os!(_fun, %ExMonty.PseudoFS{}), do: :ok

  defp check_os!(fun, os) when is_map(os) and not is_struct(os) do
    functions = ExMonty.OsCall.functions()

    Enum.each(os, fn {key, value} ->
      unless is_atom(key) and key in functions do
        raise ArgumentError,
              "invalid key #{inspect(key)} in option :os of #{fun}; the keys are ExMonty.OsCall " <>
                "function atoms: " <> Enum.map_join(functions, ", ", &inspect/1)
      end

      unless is_function(value, 2) do
        raise ArgumentError,
              "invalid handler for #{inspect(key)} in option :os of #{fun}: expected " <>
                "fn args, kwargs -> ... end (arity 2), got: #{inspect(value, limit: 10)}"
      end
    end)
  end

  defp check_os!(fun, os) do
    expect!(
      loaded_module?(os) and function_exported?(os, :handle_os, 3),
      fun,
      :os,
      os,
      "an %ExMonty.PseudoFS{}, a map of ExMonty.OsCall function atom => fn args, kwargs -> ... end, " <>
        "or a loaded module exporting handle_os/3"
    )
  end

  defp loaded_module?(value) do
    is_atom(value) and value not in [nil, true, false] and
      match?({:module, _}, Code.ensure_loaded(value))
  end

  defp expect!(true, _fun, _key, _value, _expected), do: :ok

  defp expect!(false, fun, key, value, expected) do
    raise ArgumentError,
          "invalid value for option #{inspect(key)} of #{fun}: expected #{expected}, got: " <>
            inspect(value, limit: 10, printable_limit: 100)
  end
end
