defmodule ExMonty.Application do
  @moduledoc false
  use Application

  require Logger

  @impl true
  def start(_type, _args) do
    priv = :code.priv_dir(:ex_monty) |> to_string()
    wasm = Path.join(priv, "ex_monty_guest.wasm")
    cache_dir = Application.get_env(:ex_monty, :cache_dir, Path.join(priv, "cache"))
    workers = Application.get_env(:ex_monty, :workers, System.schedulers_online())
    max_live_paused = Application.get_env(:ex_monty, :max_live_paused, 256)
    # Worker threads run at a lower OS priority than the schedulers (nice
    # 0..19): runaway Python cannot keep the VM off the CPU.
    worker_nice = Application.get_env(:ex_monty, :worker_nice, 19)

    with :ok <- check(:workers, workers, &(is_integer(&1) and &1 in 1..256)),
         :ok <- check(:max_live_paused, max_live_paused, &(is_integer(&1) and &1 >= 0)),
         :ok <- check(:worker_nice, worker_nice, &(is_integer(&1) and &1 in 0..19)) do
      init(wasm, cache_dir, workers, max_live_paused, worker_nice)
    end
  end

  # A misspelled or out-of-range setting must not silently mean a default.
  defp check(key, value, valid?) do
    if valid?.(value), do: :ok, else: {:error, {:invalid_config, key, value}}
  end

  defp init(wasm, cache_dir, workers, max_live_paused, worker_nice) do
    case ExMonty.Native.runtime_init(wasm, cache_dir, workers, max_live_paused, worker_nice) do
      {:ok, {source, _workers}} ->
        # Where the compiled guest came from ("cache", "compiled", or
        # "compiled (cache not trusted: ...)"), for operators and tests.
        Application.put_env(:ex_monty, :guest_loaded_from, source)
        Logger.debug("ExMonty guest loaded (#{source})")

        Supervisor.start_link([ExMonty.Cluster.Supervisor],
          strategy: :one_for_one,
          name: ExMonty.Supervisor
        )

      {:error, reason} ->
        {:error, {:ex_monty_init_failed, reason}}
    end
  end
end
