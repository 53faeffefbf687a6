defmodule ExMonty.Test.TypedTools do
  @moduledoc false
  # Host functions with @specs, compiled to disk so that their specs can be
  # read (ExMonty.TypeCheck.Specs; specs of modules defined in .exs files
  # are not kept).

  @spec fetch([String.t()], map()) :: {:ok, String.t()} | {:error, atom(), String.t()}
  def fetch([url], _kwargs), do: {:ok, "body of " <> url}

  @spec add([integer()], map()) :: {:ok, integer()}
  def add(args, _kwargs), do: {:ok, Enum.sum(args)}

  def untyped(_args, _kwargs), do: {:ok, nil}
end
