defmodule ExMonty.Native do
  @moduledoc false
  # NIF stubs only. Everything here is implemented in host_nif/src/api.rs.
  # Calls that run Python return {:ok, job} at once; the result arrives as
  # {:ex_monty, job, result}. A normal-scheduler call whose arguments are too
  # large to convert quickly returns :dirty and is repeated through the
  # `_dirty` variant (see ExMonty.Job).

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

  def init(_wasm_path, _cache_dir, _workers, _max_live_paused), do: err()
  def stats, do: err()
  def drain_pool, do: err()
  def cancel(_job), do: err()
  def materialize(_pending), do: err()
  def compile(_code, _script_name, _input_names), do: err()
  def compile_dirty(_code, _script_name, _input_names), do: err()
  def start(_runner, _inputs, _limits, _interactive), do: err()
  def start_dirty(_runner, _inputs, _limits, _interactive), do: err()
  def eval(_code, _script_name, _input_names, _inputs, _limits, _interactive), do: err()
  def eval_dirty(_code, _script_name, _input_names, _inputs, _limits, _interactive), do: err()
  def resume(_snapshot, _answer), do: err()
  def resume_dirty(_snapshot, _answer), do: err()
  def resume_futures(_snapshot, _results), do: err()
  def resume_futures_dirty(_snapshot, _results), do: err()
  def runner_meta(_runner), do: err()
  def runner_program(_runner), do: err()
  def load_runner(_program), do: err()
  def load_runner_dirty(_program), do: err()
  def dump_snapshot(_snapshot), do: err()
  def load_snapshot(_bytes, _limits), do: err()
  def load_snapshot_dirty(_bytes, _limits), do: err()
  def mounts_new(_specs), do: err()
  def mounts_read(_mounts, _path), do: err()
  def mounts_list(_mounts, _path), do: err()
  def mounts_exists(_mounts, _path), do: err()
  def mounts_info(_mounts), do: err()
end
