defmodule ExMonty.Cluster.Supervisor do
  @moduledoc false
  # ExMonty's part of the cluster on this node: the :pg scope `:ex_monty`
  # and the server that publishes this node's load and runs executions for
  # callers on other nodes (see ExMonty.Cluster).
  use Supervisor

  @spec start_link(term()) :: Supervisor.on_start()
  def start_link(arg), do: Supervisor.start_link(__MODULE__, arg, name: __MODULE__)

  @impl true
  def init(_arg) do
    children = [
      %{id: :pg, start: {:pg, :start_link, [ExMonty.Cluster.scope()]}},
      ExMonty.Cluster.Server
    ]

    Supervisor.init(children, strategy: :rest_for_one)
  end
end
