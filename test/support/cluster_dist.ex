defmodule ExMonty.Test.ClusterDist do
  @moduledoc false
  # Makes the test VM a distributed node (starting epmd if needed) for
  # test/cluster_test.exs. Returns :ok, or why distribution cannot start on
  # this machine (the cluster tests are then excluded, saying so).

  @spec start() :: :ok | {:error, String.t()}
  def start do
    if Node.alive?() do
      :ok
    else
      if epmd = System.find_executable("epmd"),
        do: System.cmd(epmd, ["-daemon"], stderr_to_stdout: true)

      name = :"ex_monty_test_#{System.unique_integer([:positive])}"

      case :net_kernel.start([name, :shortnames]) do
        {:ok, _} -> :ok
        {:error, reason} -> {:error, "Erlang distribution cannot start: #{inspect(reason)}"}
      end
    end
  rescue
    e -> {:error, "Erlang distribution cannot start: #{Exception.message(e)}"}
  end
end
