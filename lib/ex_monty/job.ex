defmodule ExMonty.Job do
  @moduledoc false
  # Runs a native call that queues work for the sandbox workers and waits for
  # its answer. The caller is monitored by the NIF: if it dies, the execution
  # is cancelled and its worker freed within a few milliseconds.
  #
  # While it waits, live output of the job (`{:ex_monty_output, job, stream,
  # text}`, sent before the answer) goes to `on_output`: a pid (sent
  # `{:ex_monty_output, stream, text}`), a 2-arity fun, or nowhere (nil).
  # Either way it never stays in the caller's mailbox.

  alias ExMonty.Native

  @type on_output :: pid() | (atom(), String.t() -> any()) | nil
  # A caller's timeout as the deadline it set (monotonic ms) and its length,
  # for steps that share one timeout (see `ExMonty.Driver`).
  @type until :: {integer(), non_neg_integer()} | :infinity

  @doc false
  # `{nif, dirty_nif}`: two functions of `ExMonty.Native`, called with
  # `args`, that return {:ok, job} | {:done, result} | {:error, _} | :dirty
  # (the first answers :dirty when the work belongs on a dirty scheduler). A
  # short execution answers within the NIF call itself ({:done, result}: it
  # ran on this process's scheduler for one to two milliseconds at most); the
  # rest answer by message. With a `timeout` (ms, or `{deadline, timeout}`
  # for a timeout that started earlier), an execution still running then is
  # cancelled and reported as a :timeout_error.
  #
  # Names and arguments rather than closures: on OTP 25 making a closure
  # updates a counter shared by all schedulers, which two callers running
  # executions side by side contend for.
  def run({nif, dirty_nif}, args, timeout \\ :infinity, on_output \\ nil) do
    case apply(Native, nif, args) do
      :dirty -> await(apply(Native, dirty_nif, args), timeout, on_output)
      other -> await(other, timeout, on_output)
    end
  end

  @doc false
  def await(submitted, timeout \\ :infinity, on_output \\ nil)

  def await({:ok, job}, {deadline, timeout}, on_output), do: wait(job, deadline, timeout, on_output)

  def await({:ok, job}, timeout, on_output) do
    deadline = if timeout == :infinity, do: :infinity, else: now() + timeout
    wait(job, deadline, timeout, on_output)
  end

  def await({:done, result}, _timeout, _on_output), do: finish(result)

  def await({:error, _} = error, _timeout, _on_output), do: error

  defp wait(job, deadline, timeout, on_output) do
    receive do
      {:ex_monty_output, ^job, stream, text} ->
        deliver(on_output, stream, text)
        wait(job, deadline, timeout, on_output)

      {:ex_monty, ^job, result} ->
        finish(result)
    after
      left(deadline) ->
        Native.job_cancel(job)
        cancelled(job, timeout, on_output)
    end
  end

  defp cancelled(job, timeout, on_output) do
    receive do
      {:ex_monty_output, ^job, stream, text} ->
        deliver(on_output, stream, text)
        cancelled(job, timeout, on_output)

      {:ex_monty, ^job, {:error, %ExMonty.Exception{type: :cancelled}}} ->
        {:error, timed_out(timeout)}

      {:ex_monty, ^job, result} ->
        finish(result)
    end
  end

  defp now, do: System.monotonic_time(:millisecond)

  @doc false
  # The error of an execution cancelled at its caller's timeout.
  @spec timed_out(timeout()) :: ExMonty.Exception.t()
  def timed_out(timeout) do
    %ExMonty.Exception{
      type: :timeout_error,
      python_type: "TimeoutError",
      message: "execution exceeded the caller's timeout of #{timeout} ms"
    }
  end

  defp left(:infinity), do: :infinity
  defp left(deadline), do: max(deadline - now(), 0)

  defp deliver(nil, _stream, _text), do: :ok
  defp deliver(pid, stream, text) when is_pid(pid), do: send(pid, {:ex_monty_output, stream, text})

  defp deliver(fun, stream, text) when is_function(fun, 2) do
    # A failing output callback must not take the execution down with it.
    try do
      fun.(stream, text)
    catch
      _kind, _reason -> :ok
    end
  end

  # Values holding large maps are built here, on a dirty scheduler: the VM
  # builds large maps only on its own threads.
  defp finish({:deferred, pending}), do: Native.job_materialize(pending)

  defp finish(result), do: result
end
