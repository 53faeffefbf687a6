defmodule ExMonty.ExceptionTest do
  use ExUnit.Case, async: true

  doctest ExMonty.Exception

  test "python_types/0 maps every atom to its Python class name" do
    types = ExMonty.Exception.python_types()
    assert types[:zero_division_error] == "ZeroDivisionError"
    assert types[:json_decode_error] == "json.JSONDecodeError"
    assert map_size(types) == types |> Map.values() |> Enum.uniq() |> length()
  end

  test "a Python error renders as a CPython traceback" do
    {:error, error} = ExMonty.eval("def f():\n    return 1 / 0\nf()")
    assert Exception.message(error) =~ "Traceback (most recent call last):"
    assert Exception.message(error) =~ "ZeroDivisionError: division by zero"
    assert [%ExMonty.StackFrame{name: "<module>"}, %ExMonty.StackFrame{name: "f"}] = error.traceback
  end
end
