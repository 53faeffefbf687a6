# test/cluster_test.exs needs a distributed VM for its :peer nodes.
exclude =
  case ExMonty.Test.ClusterDist.start() do
    :ok ->
      []

    {:error, why} ->
      IO.puts(:stderr, "Skipping the cluster tests (tag :cluster): #{why}")
      [:cluster]
  end

# The type checker's component is compiled on its first use (up to a minute
# on a fresh 2-core machine, where no cached artifact exists yet): compile it
# now, so that no test's timeout includes it.
:ok = ExMonty.type_check("x = 1", timeout: 600_000)

# Tests of what Linux shows of the VM's threads (tag :linux).
exclude = if match?({:unix, :linux}, :os.type()), do: exclude, else: [:linux | exclude]

ExUnit.start(capture_log: true, exclude: exclude)
