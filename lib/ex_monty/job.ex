defmodule ExMonty.Job do
  @moduledoc false
  # Runs a native call that queues work for the sandbox workers and waits for
  # its answer. The caller is monitored by the NIF: if it dies, the execution
  # is cancelled and its worker freed within a few milliseconds.

  alias ExMonty.Native

  @doc false
  # `call` and `dirty_call` take no arguments and return {:ok, job} | {:error, _} | :dirty.
  # With a `timeout` (ms), an execution still running then is cancelled and
  # reported as a :timeout_error.
  def run(call, dirty_call, timeout \\ :infinity) do
    case call.() do
      :dirty -> await(dirty_call.(), timeout)
      other -> await(other, timeout)
    end
  end

  @doc false
  def await(submitted, timeout \\ :infinity)

  def await({:ok, job}, :infinity) do
    receive do
      {:ex_monty, ^job, result} -> finish(result)
    end
  end

  def await({:ok, job}, timeout) when is_integer(timeout) and timeout >= 0 do
    receive do
      {:ex_monty, ^job, result} -> finish(result)
    after
      timeout ->
        Native.job_cancel(job)

        receive do
          {:ex_monty, ^job, {:error, %ExMonty.Exception{type: :cancelled}}} ->
            {:error,
             %ExMonty.Exception{
               type: :timeout_error,
               python_type: "TimeoutError",
               message: "execution exceeded the caller's timeout of #{timeout} ms"
             }}

          {:ex_monty, ^job, result} ->
            finish(result)
        end
    end
  end

  def await({:error, _} = error, _timeout), do: error

  # Values holding large maps are built here, on a dirty scheduler: the VM
  # builds large maps only on its own threads.
  defp finish({:deferred, pending}), do: Native.job_materialize(pending)

  defp finish(result), do: result
end
