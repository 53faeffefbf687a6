defmodule ExMonty.TypeCheck.Specs do
  @moduledoc false
  # Python signatures for host functions from their Elixir @specs.
  #
  # A host function is `fn args, kwargs -> {:ok, value} | {:error, type,
  # message} end`. Given as a capture of a module function with a @spec
  # (`&Tools.fetch/2`), its spec says what Python may pass and gets back:
  #
  #     @spec fetch([String.t()], map()) :: {:ok, String.t()} | {:error, atom(), String.t()}
  #
  # becomes `def fetch(*args: str, **kwargs: Any) -> str: ...`: the element
  # type of the argument list types every positional argument, the value
  # type of the kwargs map every keyword argument, and the `{:ok, t}` members
  # of the return type the result. Anything without a spec, or a spec this
  # does not understand, takes and returns anything.

  @anything {"*args: Any, **kwargs: Any", "Any"}

  @doc false
  # {parameters, return annotation} for a host function.
  @spec signature(term()) :: {String.t(), String.t()}
  def signature(fun) when is_function(fun, 2) do
    info = Function.info(fun)

    with :external <- info[:type],
         {:ok, specs} <- Code.Typespec.fetch_specs(info[:module]),
         {_, [spec | _]} <- List.keyfind(specs, {info[:name], 2}, 0),
         {:"::", _, [{_name, _, [args, kwargs]}, returns]} <-
           Code.Typespec.spec_to_quoted(info[:name], spec) do
      {"*args: #{element(args)}, **kwargs: #{map_value(kwargs)}", ok_type(returns)}
    else
      _ -> @anything
    end
  rescue
    # A module whose specs cannot be read declares nothing.
    _ -> @anything
  end

  def signature(_fun), do: @anything

  defp element([type]), do: python(type)
  defp element({:list, _, [type]}), do: python(type)
  defp element({:nonempty_list, _, [type]}), do: python(type)
  defp element(_), do: "Any"

  defp map_value({:%{}, _, [{{kind, _, [_key]}, value}]}) when kind in [:required, :optional],
    do: python(value)

  defp map_value({:%{}, _, [{_key, value}]}), do: python(value)
  defp map_value(_), do: "Any"

  # The value types of the `{:ok, value}` members of the return type.
  defp ok_type(returns) do
    returns
    |> members()
    |> Enum.flat_map(fn
      {:{}, _, [:ok, value]} -> [python(value)]
      _ -> []
    end)
    |> union()
  end

  defp members({:|, _, [left, right]}), do: members(left) ++ members(right)
  defp members(type), do: [type]

  defp union([]), do: "Any"
  defp union(types), do: types |> Enum.uniq() |> Enum.join(" | ")

  @ints [:integer, :non_neg_integer, :pos_integer, :neg_integer, :byte, :char, :arity]

  defp python({name, _, []}) when name in @ints, do: "int"
  defp python({:.., _, [_, _]}), do: "int"
  defp python({:float, _, []}), do: "float"
  defp python({:number, _, []}), do: "int | float"
  defp python({:boolean, _, []}), do: "bool"
  defp python(value) when is_boolean(value), do: "bool"
  defp python(nil), do: "None"
  defp python({name, _, []}) when name in [:binary, :bitstring, :nonempty_binary], do: "str"
  defp python({{:., _, [String, :t]}, _, []}), do: "str"
  defp python({:{}, _, [:bytes, _]}), do: "bytes"
  defp python({:{}, _, [:path, _]}), do: "pathlib.Path"
  defp python({{:., _, [Date, :t]}, _, []}), do: "datetime.date"

  defp python({{:., _, [module, :t]}, _, []}) when module in [DateTime, NaiveDateTime],
    do: "datetime.datetime"

  defp python({{:., _, [Time, :t]}, _, []}), do: "datetime.time"
  defp python({{:., _, [MapSet, :t]}, _, [type]}), do: "set[#{python(type)}]"
  defp python([]), do: "list[Any]"
  defp python([type]), do: "list[#{python(type)}]"
  defp python({name, _, []}) when name in [:list, :nonempty_list], do: "list[Any]"
  defp python({name, _, [type]}) when name in [:list, :nonempty_list], do: "list[#{python(type)}]"
  defp python({:map, _, []}), do: "dict[Any, Any]"

  defp python({:%{}, _, [{{kind, _, [key]}, value}]}) when kind in [:required, :optional],
    do: "dict[#{python(key)}, #{python(value)}]"

  defp python({:%{}, _, [{key, value}]}) when not is_atom(key),
    do: "dict[#{python(key)}, #{python(value)}]"

  defp python({:tuple, _, []}), do: "tuple[Any, ...]"

  defp python({:{}, _, elements}) when elements != [] do
    if is_atom(hd(elements)) and hd(elements) != nil,
      do: "Any",
      else: "tuple[#{Enum.map_join(elements, ", ", &python/1)}]"
  end

  defp python({:|, _, _} = union), do: union |> members() |> Enum.map(&python/1) |> union()
  defp python(_), do: "Any"
end
