defmodule ExMonty.Job do
  @moduledoc false
  # Runs a native call that queues work for the sandbox workers and waits for
  # its answer. The caller is monitored by the NIF: if it dies, the execution
  # is cancelled and its worker freed within a few milliseconds.

  alias ExMonty.Native

  @doc false
  # `call` and `dirty_call` take no arguments and return {:ok, job} | {:error, _} | :dirty.
  def run(call, dirty_call) do
    case call.() do
      :dirty -> await(dirty_call.())
      other -> await(other)
    end
  end

  @doc false
  def await({:ok, job}) do
    receive do
      {:ex_monty, ^job, result} -> result
    end
  end

  def await({:error, _} = error), do: error

  @doc false
  def await_with_timeout({:ok, job}, timeout) do
    receive do
      {:ex_monty, ^job, result} -> result
    after
      timeout ->
        Native.cancel(job)

        receive do
          {:ex_monty, ^job, result} -> result
        end
    end
  end

  def await_with_timeout({:error, _} = error, _timeout), do: error
end
