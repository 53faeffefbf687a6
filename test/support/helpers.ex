defmodule ExMonty.TestHelpers do
  @moduledoc false

  @doc "Starts a process that answers pings, and returns a function measuring its reply time."
  def pinger do
    pid =
      spawn(fn ->
        loop = fn loop ->
          receive do
            {:ping, from, ref} ->
              send(from, {:pong, ref})
              loop.(loop)

            :stop ->
              :ok
          end
        end

        loop.(loop)
      end)

    ping = fn ->
      ref = make_ref()

      {micros, :ok} =
        :timer.tc(fn ->
          send(pid, {:ping, self(), ref})

          receive do
            {:pong, ^ref} -> :ok
          after
            5_000 -> :timeout
          end
          |> case do
            :ok -> :ok
            :timeout -> raise "ping not answered within 5 s"
          end
        end)

      micros
    end

    {pid, ping}
  end

  @doc "The guest component's path."
  def guest_wasm, do: Path.join(:code.priv_dir(:ex_monty), "ex_monty_guest.wasm")

  @doc """
  `true` once `done?` holds for `ExMonty.stats/0` (work that follows an
  answer, such as clearing a dropped pause, runs on a worker). Fails after 2 s.
  """
  def stats_until(done?, tries \\ 200) do
    stats = ExMonty.stats()

    cond do
      done?.(stats) -> true
      tries == 0 -> raise "still #{inspect(stats)} after 2 s"
      true -> Process.sleep(10) && stats_until(done?, tries - 1)
    end
  end

  @doc """
  The number of paused executions holding an instance, once it is at most
  `cap`: a pause beyond `max_live_paused` is hibernated right after its
  answer is out, so the count may exceed the cap for an instant. Fails if it
  stays above `cap` for a second.
  """
  def live_paused_within(cap, tries \\ 100) do
    case ExMonty.stats().live_paused do
      live when live <= cap ->
        live

      live when tries == 0 ->
        raise "#{live} paused executions keep an instance (cap #{cap})"

      _ ->
        Process.sleep(10)
        live_paused_within(cap, tries - 1)
    end
  end
end
