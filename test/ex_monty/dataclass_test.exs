defmodule ExMonty.DataclassTest do
  use ExUnit.Case, async: true

  doctest ExMonty.Dataclass

  test "a @dataclass instance comes back as the struct" do
    code =
      "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: int\nP(1, 2)"

    assert {:ok, %ExMonty.Dataclass{name: "P", fields: fields}, ""} = ExMonty.eval(code)
    assert fields == %{"x" => 1, "y" => 2}
  end
end
