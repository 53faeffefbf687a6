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
end
