defmodule ExMonty.Exception do
  @moduledoc """
  A Python exception, or a failure of the sandbox itself.

  Fields:

    * `:type` — the Python exception class as a snake_case atom
      (`:zero_division_error`, `:os_error`, `:json_decode_error`,
      `:binascii_error`, `:decimal_invalid_operation`, ...). See
      `python_types/0` for the full table.
    * `:message` — the exception's message (`""` when it has none).
    * `:traceback` — a list of `ExMonty.StackFrame`, outermost call first.
    * `:python_type` — the Python class name as Python prints it.
    * `:rendered` — the traceback as CPython would print it, when Python raised.
    * `:output` — everything the code printed before the error (`""` when
      nothing was): for `ExMonty.eval/2`, `ExMonty.run/3` and
      `ExMonty.Sandbox.run/2` since the run began; for `ExMonty.start/3` and
      `ExMonty.resume/2`, what the failing step printed. For exceptions that
      are Python *values* (`ExMonty.eval("ValueError('x')")`) it is not
      meaningful.

  Besides Python's own classes, the sandbox reports these types:

    * `:timeout_error` — the execution ran past `max_duration_secs`;
    * `:memory_error` — it exceeded `max_memory` or `max_allocations`;
    * `:cancelled` — the caller cancelled it or died;
    * `:sandbox_crashed` — the interpreter trapped inside WebAssembly (the
      instance was discarded; the next execution is unaffected);
    * `:invalid_input` — an argument could not be used (a term with no Python
      meaning, a corrupt dump, ...);
    * `:snapshot_consumed` — the snapshot was already resumed;
    * `:type_check_error` — the code was refused before it ran because the
      type checker found problems (`type_check: true`, see
      `ExMonty.type_check/2`); `:diagnostics` lists them as
      `ExMonty.TypeDiagnostic` and `:rendered` shows them as ty prints them.

  `:diagnostics` is `[]` for every other error.

  It is a real Elixir exception: `ExMonty.eval!/2` and `ExMonty.run!/3` raise
  it, and its message looks like a Python traceback.

  ## Examples

      iex> {:error, error} = ExMonty.eval("1 / 0")
      iex> error.type
      :zero_division_error
      iex> error.message
      "division by zero"
      iex> Exception.message(error) =~ "ZeroDivisionError: division by zero"
      true
  """

  defexception type: :exception,
               message: "",
               traceback: [],
               python_type: "Exception",
               rendered: nil,
               output: "",
               diagnostics: []

  @type t :: %__MODULE__{
          type: atom(),
          message: String.t(),
          traceback: [ExMonty.StackFrame.t()],
          python_type: String.t(),
          rendered: String.t() | nil,
          output: String.t(),
          diagnostics: [ExMonty.TypeDiagnostic.t()]
        }

  @impl true
  def message(%__MODULE__{rendered: rendered}) when is_binary(rendered) and rendered != "",
    do: rendered

  def message(%__MODULE__{python_type: python_type, message: ""}), do: python_type

  def message(%__MODULE__{python_type: python_type, message: message}),
    do: "#{python_type}: #{message}"

  @doc false
  # `{:error, %ExMonty.Exception{type: :invalid_input}}`: data (inputs,
  # dumps, answers) that cannot be used. Programmer errors raise instead.
  @spec invalid(String.t()) :: {:error, t()}
  def invalid(message) do
    {:error, %__MODULE__{type: :invalid_input, message: message, python_type: "ValueError"}}
  end

  @doc false
  # Prepends what earlier steps printed to an exception's output.
  @spec prepend_output(t(), String.t()) :: t()
  def prepend_output(%__MODULE__{output: output} = exception, earlier) when is_binary(earlier) do
    %{exception | output: earlier <> output}
  end

  # Every exception class Monty 1.4 defines, with its atom.
  @python_types %{
    exception: "Exception",
    base_exception: "BaseException",
    system_exit: "SystemExit",
    keyboard_interrupt: "KeyboardInterrupt",
    arithmetic_error: "ArithmeticError",
    overflow_error: "OverflowError",
    zero_division_error: "ZeroDivisionError",
    lookup_error: "LookupError",
    index_error: "IndexError",
    key_error: "KeyError",
    runtime_error: "RuntimeError",
    not_implemented_error: "NotImplementedError",
    recursion_error: "RecursionError",
    attribute_error: "AttributeError",
    frozen_instance_error: "FrozenInstanceError",
    name_error: "NameError",
    unbound_local_error: "UnboundLocalError",
    value_error: "ValueError",
    unicode_decode_error: "UnicodeDecodeError",
    unicode_encode_error: "UnicodeEncodeError",
    json_decode_error: "json.JSONDecodeError",
    toml_decode_error: "tomllib.TOMLDecodeError",
    import_error: "ImportError",
    module_not_found_error: "ModuleNotFoundError",
    os_error: "OSError",
    file_not_found_error: "FileNotFoundError",
    file_exists_error: "FileExistsError",
    is_a_directory_error: "IsADirectoryError",
    not_a_directory_error: "NotADirectoryError",
    permission_error: "PermissionError",
    unsupported_operation: "io.UnsupportedOperation",
    timeout_error: "TimeoutError",
    assertion_error: "AssertionError",
    memory_error: "MemoryError",
    stop_iteration: "StopIteration",
    syntax_error: "SyntaxError",
    type_error: "TypeError",
    pattern_error: "re.PatternError",
    binascii_error: "binascii.Error",
    binascii_incomplete: "binascii.Incomplete",
    csv_error: "_csv.Error"
  }

  @doc """
  The Python exception classes Monty defines, as `%{atom => "PythonName"}`
  (decimal signals such as `:decimal_invalid_operation` are accepted too).

  ## Examples

      iex> ExMonty.Exception.python_types()[:value_error]
      "ValueError"
  """
  @spec python_types() :: %{atom() => String.t()}
  def python_types, do: @python_types
end
