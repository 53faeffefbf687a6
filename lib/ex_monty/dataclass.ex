defmodule ExMonty.Dataclass do
  @moduledoc """
  An instance of a Python `@dataclass` returned by Python code.

  `name` is the class name and `fields` maps each attribute name (a string) to
  its value.

  ## Examples

      iex> {:ok, point, ""} = ExMonty.eval(\"""
      ...> from dataclasses import dataclass
      ...> @dataclass
      ...> class Point:
      ...>     x: int
      ...>     y: int
      ...> Point(1, 2)
      ...> \""")
      iex> point
      %ExMonty.Dataclass{name: "Point", fields: %{"x" => 1, "y" => 2}}
  """

  defstruct [:name, fields: %{}]

  @type t :: %__MODULE__{name: String.t(), fields: %{String.t() => term()}}
end
