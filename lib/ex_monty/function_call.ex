defmodule ExMonty.FunctionCall do
  @moduledoc """
  A call from Python to a function the host provides.

  `name` is the function's name, `args` the positional arguments, `kwargs` the
  keyword arguments (string keys), `call_id` identifies the call (futures are
  resolved by it) and `method_call` is true for a method call on a host object
  (`p.norm()` on an `ExMonty.Dataclass`): then `name` is the method's name
  and the first argument is the object itself, as Python holds it at the
  call.
  """

  defstruct [:name, :call_id, args: [], kwargs: %{}, method_call: false]

  @type t :: %__MODULE__{
          name: String.t(),
          args: [term()],
          kwargs: %{String.t() => term()},
          call_id: non_neg_integer(),
          method_call: boolean()
        }
end
