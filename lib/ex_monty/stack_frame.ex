defmodule ExMonty.StackFrame do
  @moduledoc """
  One frame of a Python traceback.

  Lines and columns are 1-based (columns count characters). `name` is the
  function name, `nil` for module-level code; `source_line` is the text of the
  line when Monty has it.
  """

  @enforce_keys [:filename, :line]
  defstruct [:filename, :line, :column, :end_line, :end_column, :name, :source_line]

  @type t :: %__MODULE__{
          filename: String.t(),
          line: pos_integer(),
          column: non_neg_integer() | nil,
          end_line: non_neg_integer() | nil,
          end_column: non_neg_integer() | nil,
          name: String.t() | nil,
          source_line: String.t() | nil
        }
end
