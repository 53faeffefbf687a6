defmodule ExMonty.Runner do
  @moduledoc """
  Python code compiled by `ExMonty.compile/2`.

  A runner is immutable and can be run any number of times, from any number of
  processes at once: each run gets its own interpreter heap inside its own
  WebAssembly instance.
  """

  @enforce_keys [:resource, :script_name, :input_names]
  defstruct [:resource, :script_name, :input_names, untrusted: false]

  @typedoc """
  `untrusted`: loaded from an unsigned dump (see `ExMonty.Dump`): it runs in
  new instances of its own, never in pooled ones, and its dumps say so.
  """
  @type t :: %__MODULE__{
          resource: reference(),
          script_name: String.t(),
          input_names: [String.t()],
          untrusted: boolean()
        }

  defimpl Inspect do
    def inspect(runner, _opts) do
      "#ExMonty.Runner<#{runner.script_name}, inputs: #{inspect(runner.input_names)}>"
    end
  end
end
