defmodule ExMonty.Native do
  @moduledoc false
  # NIF stubs only, named by the resource they act on (host_nif/src/<resource>.rs).
  # Calls that run Python return {:done, result} when they finished within
  # their first slice on the calling scheduler, else {:ok, job}; the result
  # then arrives as {:ex_monty, job, result} (see ExMonty.Job). A normal-scheduler call whose
  # arguments are too large to convert quickly returns :dirty and is repeated
  # through its `_dirty` twin.

  @on_load :load_nif

  @doc false
  def load_nif do
    path = :filename.join(:code.priv_dir(:ex_monty), ~c"libex_monty_nif")

    case :erlang.load_nif(path, 0) do
      :ok -> :ok
      {:error, {:reload, _}} -> :ok
      {:error, reason} -> raise "ExMonty could not load its NIF from #{path}: #{inspect(reason)}"
    end
  end

  defp err, do: :erlang.nif_error(:nif_not_loaded)

  # runtime.rs
  def runtime_init(_wasm_path, _cache_dir, _workers, _max_live_paused, _worker_nice), do: err()
  def runtime_stats, do: err()
  def runtime_drain, do: err()
  def runtime_exception_types, do: err()
  # step.rs
  def runtime_os_functions, do: err()
  def runtime_settings_layout, do: err()
  # job.rs
  def job_cancel(_job), do: err()
  def job_materialize(_pending), do: err()
  # runner.rs
  def runner_compile(_code, _script_name, _input_names), do: err()
  def runner_compile_dirty(_code, _script_name, _input_names), do: err()
  def runner_load(_program, _untrusted), do: err()
  def runner_load_dirty(_program, _untrusted), do: err()
  def runner_program(_runner), do: err()
  def runner_start(_runner, _inputs, _settings), do: err()
  def runner_start_dirty(_runner, _inputs, _settings), do: err()
  def runner_eval(_source, _inputs, _settings), do: err()
  def runner_eval_dirty(_source, _inputs, _settings), do: err()
  # snapshot.rs
  def snapshot_resume(_snapshot, _answer), do: err()
  def snapshot_resume_dirty(_snapshot, _answer), do: err()
  def snapshot_resume_futures(_snapshot, _results), do: err()
  def snapshot_resume_futures_dirty(_snapshot, _results), do: err()
  def snapshot_dump(_snapshot), do: err()
  def snapshot_hibernate(_snapshot), do: err()
  def snapshot_abandon(_snapshot), do: err()
  def snapshot_load(_bytes, _limits, _signed), do: err()
  def snapshot_load_dirty(_bytes, _limits, _signed), do: err()
  # session.rs
  def session_new(_script_name, _settings), do: err()
  def session_load(_bytes, _settings, _signed), do: err()
  def session_load_dirty(_bytes, _settings, _signed), do: err()
  def session_feed(_session, _code, _inputs, _limits), do: err()
  def session_feed_dirty(_session, _code, _inputs, _limits), do: err()
  def session_call(_session, _name, _args, _limits), do: err()
  def session_call_dirty(_session, _name, _args, _limits), do: err()
  def session_continuation(_code), do: err()
  # typecheck.rs
  def typecheck_new, do: err()
  def typecheck_release(_checker), do: err()
  def typecheck_check(_checker, _request, _settings), do: err()
  # mounts.rs
  def mounts_new(_specs), do: err()
  def mounts_read(_mounts, _path), do: err()
  def mounts_list(_mounts, _path), do: err()
  def mounts_exists(_mounts, _path), do: err()
  def mounts_info(_mounts), do: err()
end
