# test/cluster_test.exs needs a distributed VM for its :peer nodes.
exclude =
  case ExMonty.Test.ClusterDist.start() do
    :ok ->
      []

    {:error, why} ->
      IO.puts(:stderr, "Skipping the cluster tests (tag :cluster): #{why}")
      [:cluster]
  end

ExUnit.start(capture_log: true, exclude: exclude)
