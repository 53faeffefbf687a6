defmodule ExMonty.Limits do
  @moduledoc """
  Resource limits of an execution, checked in two layers.

  Monty enforces these inside the guest:

    * `:max_duration_secs` — wall-clock budget of the execution (all its
      steps). Monty does not count time spent in the host between steps;
      `ExMonty.Sandbox.run/2` does (callbacks and OS handlers, not sleeps).
      Default `30.0`.
    * `:max_memory` — bytes of Python heap. Counted exactly by the guest's
      allocator; exceeding it raises `MemoryError`. Default 256 MiB.
    * `:max_recursion_depth` — Python call depth; exceeding it raises a
      catchable `RecursionError`. Default 1000 (Monty's own), at most 10 100.
      It also bounds how deeply nested a value crossing to the host may be: a
      result nested deeper is refused with `:recursion_error` (never returned
      cut short), and a host call with such an argument raises
      `RecursionError` where it is made. At 10 100, values 10 000 levels deep
      round-trip whole.
    * `:max_allocations` — heap allocations of one execution (counted by the
      guest's allocator; exceeding it stops the execution with
      `:memory_error`), across all its pauses and resumes. Default: no limit.
    * `:max_suspensions` — host round trips (function calls, name lookups, OS
      calls) before the execution is stopped with an uncatchable
      `RuntimeError`. Default 10 000.
    * `:max_output_bytes` — bytes of `print` output kept; past it `print`
      raises `MemoryError`. Default 10 MiB.
    * `:max_total_sleep_secs` — total `time.sleep` the code may ask for.
      Default `30.0`.
    * `:gc_interval` — allocations between garbage collections (Monty default).

  Under them, wasmtime enforces its own caps: the instance's linear memory is
  capped a little above `max_memory`, and an epoch deadline a little after
  `max_duration_secs` stops even code that Monty's checks would miss. Those
  caps stay even with `limits: :unlimited`.

  Pass limits as a map or keyword list; keys not given keep their defaults.
  `:unlimited` lifts every Monty limit (the wasm caps remain).

  ## Examples

      iex> ExMonty.Limits.defaults().max_duration_secs
      30.0
      iex> ExMonty.Limits.normalize!(%{max_memory: 1024}).max_memory
      1024
  """

  @defaults %{
    max_duration_secs: 30.0,
    max_memory: 256 * 1024 * 1024,
    max_recursion_depth: 1000,
    max_allocations: nil,
    max_suspensions: 10_000,
    max_output_bytes: 10 * 1024 * 1024,
    max_total_sleep_secs: 30.0,
    gc_interval: nil
  }

  @unlimited %{
    max_duration_secs: nil,
    max_memory: nil,
    max_recursion_depth: nil,
    max_allocations: nil,
    max_suspensions: nil,
    max_output_bytes: 10 * 1024 * 1024,
    max_total_sleep_secs: nil,
    gc_interval: nil
  }

  @type t :: %{
          max_duration_secs: number() | nil,
          max_memory: pos_integer() | nil,
          max_recursion_depth: pos_integer() | nil,
          max_allocations: pos_integer() | nil,
          max_suspensions: non_neg_integer() | nil,
          max_output_bytes: non_neg_integer() | nil,
          max_total_sleep_secs: number() | nil,
          gc_interval: pos_integer() | nil
        }

  # The order the NIF reads a limits tuple in (its `LIMIT_FIELDS`; a test
  # compares the two).
  @native_fields [
    :max_duration_secs,
    :max_memory,
    :max_recursion_depth,
    :max_allocations,
    :max_suspensions,
    :max_output_bytes,
    :max_total_sleep_secs,
    :gc_interval
  ]

  @native_defaults @native_fields |> Enum.map(&Map.fetch!(@defaults, &1)) |> List.to_tuple()

  @doc "The limits used when none are given."
  @spec defaults() :: t()
  def defaults, do: @defaults

  @doc false
  # The field order of `to_native/1`'s tuple.
  @spec native_fields() :: [atom()]
  def native_fields, do: @native_fields

  @doc false
  # Normalized limits as the NIF takes them: a tuple in `native_fields/0`
  # order (every execution passes its limits; a tuple decodes far faster
  # than a map). The defaults are a literal, built at compile time.
  @spec to_native(t()) :: tuple()
  def to_native(limits) when limits === @defaults, do: @native_defaults

  def to_native(limits) when is_map(limits),
    do: @native_fields |> Enum.map(&Map.fetch!(limits, &1)) |> List.to_tuple()

  @doc """
  Validates user limits and merges them over the defaults.

  Raises `ArgumentError` for an unknown key or an invalid value.
  """
  @spec normalize!(nil | :unlimited | map() | keyword()) :: t()
  def normalize!(nil), do: @defaults
  def normalize!(:unlimited), do: @unlimited
  # Already normalized (a session's snippets pass their limits down several
  # layers): nothing to check.
  def normalize!(limits) when limits === @defaults, do: @defaults

  def normalize!(limits) when is_list(limits) do
    if Keyword.keyword?(limits) do
      normalize!(Map.new(limits))
    else
      raise ArgumentError,
            "limits must be a map, a keyword list or :unlimited, got: #{inspect(limits)}"
    end
  end

  def normalize!(limits) when is_map(limits) do
    Enum.reduce(limits, @defaults, fn {key, value}, acc ->
      unless Map.has_key?(@defaults, key) do
        raise ArgumentError,
              "unknown limit #{inspect(key)}; known limits: #{inspect(Map.keys(@defaults))}"
      end

      Map.put(acc, key, check!(key, value))
    end)
  end

  def normalize!(other) do
    raise ArgumentError,
          "limits must be a map, a keyword list or :unlimited, got: #{inspect(other)}"
  end

  @seconds [:max_duration_secs, :max_total_sleep_secs]
  @counts [:max_suspensions, :max_output_bytes]

  defp check!(_key, nil), do: nil

  defp check!(key, value) when key in @seconds do
    if is_number(value) and value > 0 and value <= 31_536_000 do
      value / 1
    else
      raise ArgumentError, "#{key} must be a positive number of seconds, got: #{inspect(value)}"
    end
  end

  defp check!(key, value) when key in @counts do
    if is_integer(value) and value >= 0 and value < 4_611_686_018_427_387_904 do
      value
    else
      raise ArgumentError, "#{key} must be a non-negative integer, got: #{inspect(value)}"
    end
  end

  defp check!(:max_recursion_depth, value) do
    if is_integer(value) and value > 0 and value <= 10_100 do
      value
    else
      raise ArgumentError,
            "max_recursion_depth must be an integer between 1 and 10100, got: #{inspect(value)}"
    end
  end

  defp check!(key, value) do
    if is_integer(value) and value > 0 and value < 4_611_686_018_427_387_904 do
      value
    else
      raise ArgumentError, "#{key} must be a positive integer, got: #{inspect(value)}"
    end
  end
end
