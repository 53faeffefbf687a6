defmodule ExMonty.Application do
  @moduledoc false
  use Application

  require Logger

  # Every key of `config :ex_monty` (a misspelled one must not silently
  # leave a default in place). `:dump_key`, `:max_dump_bytes` and
  # `:cluster_capacity` are read where they are used (and checked there
  # too, since they may be changed at run time); `:guest_loaded_from` is
  # written at start.
  @known [
    :cache_dir,
    :workers,
    :max_live_paused,
    :worker_nice,
    :dump_key,
    :max_dump_bytes,
    :cluster_capacity,
    :guest_loaded_from
  ]

  @impl true
  def start(_type, _args) do
    priv = :code.priv_dir(:ex_monty) |> to_string()
    wasm = Path.join(priv, "ex_monty_guest.wasm")

    case config(Application.get_all_env(:ex_monty), priv) do
      {:ok, config} -> init(wasm, config)
      {:error, _} = error -> error
    end
  end

  @doc false
  # The runtime's settings from the application environment, checked:
  # `{:ok, map}` or `{:error, {:invalid_config, key, value}}` /
  # `{:error, {:unknown_config, key, known}}`.
  @spec config(keyword(), String.t()) :: {:ok, map()} | {:error, term()}
  def config(env, priv) do
    get = &Keyword.get(env, &1, &2)

    config = %{
      cache_dir: get.(:cache_dir, Path.join(priv, "cache")),
      workers: get.(:workers, System.schedulers_online()),
      max_live_paused: get.(:max_live_paused, 256),
      # Worker threads run at a lower OS priority than the schedulers
      # (:idle, Linux's SCHED_IDLE, or a nice value 0..19): runaway Python
      # cannot keep the VM off the CPU.
      worker_nice: get.(:worker_nice, :idle)
    }

    with :ok <- known(env),
         :ok <- check(:cache_dir, config.cache_dir, &(is_binary(&1) and &1 != "")),
         :ok <- check(:workers, config.workers, &(is_integer(&1) and &1 in 1..256)),
         :ok <- check(:max_live_paused, config.max_live_paused, &(is_integer(&1) and &1 >= 0)),
         :ok <- check(:worker_nice, config.worker_nice, &(&1 == :idle or &1 in 0..19)),
         :ok <- check_optional(env, :dump_key, &(is_binary(&1) and &1 != "")),
         :ok <- check_optional(env, :max_dump_bytes, &(is_integer(&1) and &1 > 0)),
         :ok <- check_optional(env, :cluster_capacity, &(is_integer(&1) and &1 > 0)) do
      {:ok, config}
    end
  end

  defp check_optional(env, key, valid?) do
    case Keyword.fetch(env, key) do
      {:ok, nil} -> :ok
      {:ok, value} -> check(key, value, valid?)
      :error -> :ok
    end
  end

  defp known(env) do
    case Enum.find(Keyword.keys(env), &(&1 not in @known)) do
      nil -> :ok
      key -> {:error, {:unknown_config, key, @known}}
    end
  end

  # A misspelled or out-of-range setting must not silently mean a default.
  defp check(key, value, valid?) do
    if valid?.(value), do: :ok, else: {:error, {:invalid_config, key, value}}
  end

  defp init(wasm, config) do
    case ExMonty.Native.runtime_init(
           wasm,
           config.cache_dir,
           config.workers,
           config.max_live_paused,
           config.worker_nice
         ) do
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
