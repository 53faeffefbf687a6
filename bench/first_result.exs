# Helper for bench/run.exs: NIF load → first result, in this (fresh) VM.
# Run as `mix run --no-start bench/first_result.exs [preload|lazy]`, so that
# nothing of ExMonty is loaded yet. The applications ExMonty depends on
# (logger, crypto) are started first: they are not ExMonty's cost.
#
# `preload` first loads every module of ExMonty except `ExMonty.Native` (whose
# loading loads the NIF, the first thing timed), as a release does at boot
# (embedded mode); `lazy` (the default) leaves them to be loaded on first use,
# as `mix run` and tests do (interactive mode).
Code.require_file("support.exs", __DIR__)

{:ok, _} = Application.ensure_all_started(:logger)
{:ok, _} = Application.ensure_all_started(:crypto)

mode =
  case System.argv() do
    ["preload"] -> :preload
    _ -> :lazy
  end

if mode == :preload do
  _ = Application.load(:ex_monty)
  {:ok, modules} = :application.get_key(:ex_monty, :modules)
  for module <- modules, module != ExMonty.Native, do: {:module, _} = Code.ensure_loaded(module)
  # What ExMonty's start and first eval use from OTP itself.
  for module <- [:pg, :timer], do: {:module, _} = Code.ensure_loaded(module)
end

preloaded = :code.is_loaded(ExMonty.Native) != false
t0 = System.monotonic_time(:microsecond)
# dlopen of the NIF library and its load callback
{:module, _} = Code.ensure_loaded(ExMonty.Native)
t1 = System.monotonic_time(:microsecond)
# runtime_init: the engine, the compiled guest (from the on-disk cache when
# warm), the worker threads
{:ok, _} = Application.ensure_all_started(:ex_monty)
t2 = System.monotonic_time(:microsecond)
{:ok, 4, ""} = ExMonty.eval("2 + 2")
t3 = System.monotonic_time(:microsecond)

Bench.FreshVM.report(
  nif_load_us: t1 - t0,
  init_us: t2 - t1,
  first_eval_us: t3 - t2,
  total_us: t3 - t0,
  loaded_from: Application.get_env(:ex_monty, :guest_loaded_from) |> String.replace(" ", "_"),
  preloaded: preloaded,
  mode: mode
)
