defmodule ExMonty.ApplicationTest do
  # `config :ex_monty, ...` is checked when the application starts: a
  # misspelled key or a value out of range stops the start with a reason
  # instead of leaving a default in place.
  use ExUnit.Case, async: true

  alias ExMonty.Application, as: App

  test "no settings: the defaults" do
    assert {:ok, config} = App.config([], "/priv")
    assert config.cache_dir == "/priv/cache"
    assert config.workers == System.schedulers_online()
    assert config.max_live_paused == 256
    assert config.worker_nice == :idle
  end

  test "settings given are used" do
    env = [workers: 3, max_live_paused: 0, worker_nice: 0, cache_dir: "/tmp/x", dump_key: "k"]

    assert {:ok, %{workers: 3, max_live_paused: 0, worker_nice: 0, cache_dir: "/tmp/x"}} =
             App.config(env, "/priv")
  end

  test "a misspelled key is refused, naming the known ones" do
    assert {:error, {:unknown_config, :max_live_pause, known}} =
             App.config([max_live_pause: 10], "/priv")

    assert :max_live_paused in known
  end

  test "values out of range are refused" do
    for {key, value} <- [
          workers: 0,
          workers: 257,
          workers: "2",
          max_live_paused: -1,
          worker_nice: 20,
          worker_nice: -1,
          worker_nice: 19.0,
          worker_nice: :low,
          cache_dir: ~c"/tmp",
          cache_dir: "",
          dump_key: "",
          dump_key: :secret,
          max_dump_bytes: 0,
          cluster_capacity: -1
        ] do
      assert {:error, {:invalid_config, ^key, ^value}} = App.config([{key, value}], "/priv")
    end
  end

  test "the running application's own environment passes the check" do
    assert {:ok, _} =
             App.config(Application.get_all_env(:ex_monty), to_string(:code.priv_dir(:ex_monty)))
  end
end
