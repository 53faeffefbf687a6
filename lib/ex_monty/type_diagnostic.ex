defmodule ExMonty.TypeDiagnostic do
  @moduledoc """
  One finding of the type checker (see `ExMonty.type_check/2`).

  Fields:

    * `:rule` — the rule that fired, as ty names it: `"invalid-argument-type"`,
      `"unresolved-attribute"`, `"unresolved-reference"`, `"invalid-syntax"`, ...
    * `:severity` — `:error`, `:warning`, `:info` or `:fatal`.
    * `:message` — the finding in one line.
    * `:file` — the file it is in: the checked code's `script_name`
      (`"main.py"` by default).
    * `:line`, `:column` — where it starts (1-based; columns count
      characters); `:end_line`, `:end_column` — where it ends. `0` when the
      finding has no position.
    * `:source_line` — the source line it starts on.
    * `:rendered` — the finding as ty prints it: headline, location, the
      source with the span marked, and notes. This is the text to show a
      person or to hand back to an LLM.

  ## Examples

      iex> {:error, [d]} = ExMonty.type_check("x: int = 'a'")
      iex> {d.rule, d.severity, d.line, d.column}
      {"invalid-assignment", :error, 1, 10}
      iex> d.source_line
      "x: int = 'a'"
      iex> d.rendered =~ "error[invalid-assignment]"
      true
  """

  defstruct rule: "",
            severity: :error,
            message: "",
            file: "main.py",
            line: 0,
            column: 0,
            end_line: 0,
            end_column: 0,
            source_line: "",
            rendered: ""

  @type severity :: :error | :warning | :info | :fatal

  @type t :: %__MODULE__{
          rule: String.t(),
          severity: severity(),
          message: String.t(),
          file: String.t(),
          line: non_neg_integer(),
          column: non_neg_integer(),
          end_line: non_neg_integer(),
          end_column: non_neg_integer(),
          source_line: String.t(),
          rendered: String.t()
        }

  @doc false
  # From the NIF's tuple.
  @spec from_native(tuple()) :: t()
  def from_native(
        {rule, severity, message, file, {line, column, end_line, end_column}, source, rendered}
      ) do
    %__MODULE__{
      rule: rule,
      severity: severity,
      message: message,
      file: file,
      line: line,
      column: column,
      end_line: end_line,
      end_column: end_column,
      source_line: source,
      rendered: rendered
    }
  end

  @doc """
  Renders diagnostics for a reader, one after the other (what
  `Exception.message/1` shows for a refused program).

  ## Examples

      iex> {:error, diagnostics} = ExMonty.type_check("len(1)")
      iex> ExMonty.TypeDiagnostic.render(diagnostics) =~ "main.py:1:5"
      true
  """
  @spec render([t()]) :: String.t()
  def render(diagnostics) when is_list(diagnostics) do
    Enum.map_join(diagnostics, "\n\n", & &1.rendered)
  end
end
