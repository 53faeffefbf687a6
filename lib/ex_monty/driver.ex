defmodule ExMonty.Driver do
  @moduledoc false
  # The host's side of the steps Python does not decide: sleeps, and the
  # resume that follows them. Used by `ExMonty.eval/2` / `run/3` (where the
  # guest answers every other host call itself) and by `ExMonty.Sandbox`.
  #
  # A sleep is waited in the calling process, never on a worker thread, and
  # charged to `max_total_sleep_secs`.

  alias ExMonty.{Exception, Job, OsCall, Snapshot}

  @sleeps [:system_sleep, :system_async_sleep]

  @doc false
  # Drives an eval/run result through its sleeps to `{:ok, value, output}`
  # or `{:error, exception}` (whose `output` holds everything printed).
  # `until`: the caller's `:timeout` as `{deadline, timeout}` (see
  # `until/1`, taken before the first step) or `:infinity`: the sleeps and
  # the steps after them count against it as the first step did.
  @spec drive(
          {:ok, ExMonty.progress()} | {:error, Exception.t()},
          ExMonty.Limits.t(),
          Job.on_output(),
          Job.until()
        ) :: ExMonty.result()
  def drive(result, limits, on_output \\ nil, until \\ :infinity),
    do: step(result, {limits.max_total_sleep_secs, until}, "", on_output)

  @doc false
  # A caller's `:timeout`, as the deadline it sets from now.
  @spec until(timeout()) :: Job.until()
  def until(:infinity), do: :infinity
  def until(timeout), do: {System.monotonic_time(:millisecond) + timeout, timeout}

  defp step({:ok, {:complete, value, output}}, _state, acc, _on_output),
    do: {:ok, value, acc <> output}

  defp step(
         {:ok, {:os_call, %OsCall{function: f} = call, snapshot, output}},
         {left, until},
         acc,
         on_output
       )
       when f in @sleeps do
    acc = acc <> output

    if outlasts?(call, until) do
      # The sleep would end past the caller's timeout: the run is cancelled
      # when the timeout comes, as a running one would be.
      {deadline, timeout} = until
      Process.sleep(max(deadline - System.monotonic_time(:millisecond), 0))
      abandon(snapshot)
      {:error, Exception.prepend_output(Job.timed_out(timeout), acc)}
    else
      {answer, left, _slept_ms} = sleep(call, left)
      step(resume(snapshot, answer, until, on_output), {left, until}, acc, on_output)
    end
  end

  defp step({:ok, _other}, _state, _acc, _on_output),
    do: Exception.invalid("unexpected pause in a non-interactive run")

  defp step({:error, exception}, _state, acc, _on_output),
    do: {:error, Exception.prepend_output(exception, acc)}

  defp outlasts?(_call, :infinity), do: false

  defp outlasts?(%OsCall{args: args}, {deadline, _timeout}),
    do: System.monotonic_time(:millisecond) + seconds(args) * 1000 >= deadline

  # The seconds a sleep asks for.
  defp seconds([s | _]) when is_number(s) and s > 0, do: s
  defp seconds(_args), do: 0

  @doc false
  # Gives up a paused execution nobody will resume at once, rather than when
  # its last term is garbage-collected (a session's paused snippet keeps the
  # session busy until then).
  @spec abandon(Snapshot.t()) :: :ok
  def abandon(%Snapshot{resource: resource}) do
    _ = Job.await(ExMonty.Native.snapshot_abandon(resource))
    :ok
  end

  @doc false
  # Whether an OS call is a sleep.
  @spec sleep?(OsCall.t()) :: boolean()
  def sleep?(%OsCall{function: function}), do: function in @sleeps

  @doc false
  # Waits for a sleep within what is left of `max_total_sleep_secs` (`nil`:
  # no limit). Returns the answer for the paused call, what is left, and the
  # milliseconds actually slept.
  @spec sleep(OsCall.t(), number() | nil) :: {ExMonty.answer(), number() | nil, non_neg_integer()}
  def sleep(%OsCall{args: args}, left) do
    seconds = seconds(args)

    if is_number(left) and seconds > left do
      {{:error, :timeout_error, "total sleep limit (max_total_sleep_secs) exceeded"}, left, 0}
    else
      started = System.monotonic_time(:millisecond)
      Process.sleep(round(seconds * 1000))
      slept = System.monotonic_time(:millisecond) - started
      {{:ok, nil}, if(is_number(left), do: left - seconds, else: left), slept}
    end
  end

  @doc false
  # Answers a paused execution (see `ExMonty.resume/3`).
  @spec resume(Snapshot.t(), ExMonty.answer(), timeout() | Job.until(), Job.on_output()) ::
          {:ok, ExMonty.progress()} | {:error, Exception.t()}
  def resume(%Snapshot{resource: resource}, answer, timeout, on_output \\ nil) do
    Job.run({:snapshot_resume, :snapshot_resume_dirty}, [resource, answer], timeout, on_output)
  end
end
