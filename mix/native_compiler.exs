defmodule Mix.Tasks.Compile.ExMontyNative do
  @moduledoc """
  Builds ExMonty's native parts with cargo and places them in `priv/`:

    * `priv/ex_monty_guest.wasm`: the guest component (`guest/`, target `wasm32-wasip2`,
      cargo profile `monty`: release optimised as one unit, as Monty's own
      releases are);
    * `priv/libex_monty_nif.so`: the Rustler NIF (`host_nif/`, cargo profile
      `nif`: release optimised as one unit, see `Cargo.toml`);
    * `priv/ex_monty_typecheck.wasm`: the type checker component
      (`typecheck/`, a cargo workspace of its own, target `wasm32-wasip2`).

  Cargo runs only when a Rust, WIT or Cargo file is newer than the artifacts
  (or `EX_MONTY_FORCE_BUILD=1`); a failed build prints cargo's own error and
  fails the compilation. Honours `CARGO_TARGET_DIR`.
  """
  use Mix.Task.Compiler

  @sources [
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    "wit",
    "guest",
    "host_nif",
    "typecheck",
    "patches"
  ]

  @impl true
  def run(_args) do
    root = File.cwd!()
    priv = Path.join(root, "priv")
    guest = Path.join(priv, "ex_monty_guest.wasm")
    nif = Path.join(priv, "libex_monty_nif.so")
    typecheck = Path.join(priv, "ex_monty_typecheck.wasm")

    if System.get_env("EX_MONTY_FORCE_BUILD") in ["1", "true"] or
         stale?(root, [guest, nif, typecheck]) do
      build(root, priv, guest, nif, typecheck)
    else
      {:noop, []}
    end
  end

  defp stale?(root, artifacts) do
    case Enum.map(artifacts, &mtime/1) do
      times when is_list(times) ->
        if Enum.any?(times, &is_nil/1) do
          true
        else
          oldest = Enum.min(times)
          newest_source(root) > oldest
        end
    end
  end

  defp mtime(path) do
    case File.stat(path, time: :posix) do
      {:ok, %{mtime: mtime}} -> mtime
      _ -> nil
    end
  end

  defp newest_source(root) do
    @sources
    |> Enum.flat_map(fn source ->
      path = Path.join(root, source)
      if File.dir?(path), do: Path.wildcard(Path.join(path, "**/*")), else: [path]
    end)
    |> Enum.reject(&String.contains?(&1, "/target/"))
    |> Enum.map(&mtime/1)
    |> Enum.reject(&is_nil/1)
    |> Enum.max(fn -> 0 end)
  end

  defp build(root, priv, guest, nif, typecheck) do
    target_dir = System.get_env("CARGO_TARGET_DIR") || Path.join(root, "target")
    # The workspace builds Monty with the fixes in patches/.
    {_, 0} = System.cmd(Path.join(root, "scripts/patch-monty.sh"), [], stderr_to_stdout: true)

    with :ok <-
           cargo(root, [
             "build",
             "--locked",
             "--profile",
             "monty",
             "-p",
             "ex_monty_guest",
             "--target",
             "wasm32-wasip2"
           ]),
         :ok <- cargo(root, ["build", "--locked", "--profile", "nif", "-p", "ex_monty_nif"]),
         :ok <-
           cargo(root, [
             "build",
             "--locked",
             "--release",
             "--manifest-path",
             "typecheck/Cargo.toml",
             "--target-dir",
             target_dir,
             "--target",
             "wasm32-wasip2"
           ]) do
      File.mkdir_p!(priv)
      wasm_dir = Path.join([target_dir, "wasm32-wasip2", "release"])
      install(Path.join([target_dir, "wasm32-wasip2", "monty", "ex_monty_guest.wasm"]), guest)
      install(Path.join([target_dir, "nif", library_name()]), nif)
      install(Path.join(wasm_dir, "ex_monty_typecheck.wasm"), typecheck)
      # Links _build/<env>/lib/ex_monty/priv to priv/ now that it exists.
      Mix.Project.build_structure()
      {:ok, []}
    else
      {:error, message} ->
        diagnostic = %Mix.Task.Compiler.Diagnostic{
          compiler_name: "ex_monty_native",
          file: Path.join(root, "Cargo.toml"),
          message: message,
          position: nil,
          severity: :error
        }

        Mix.shell().error(message)
        {:error, [diagnostic]}
    end
  end

  defp library_name do
    case :os.type() do
      {:unix, :darwin} -> "libex_monty_nif.dylib"
      {:win32, _} -> "ex_monty_nif.dll"
      _ -> "libex_monty_nif.so"
    end
  end

  # Remove before copying: overwriting a loaded shared object in place can
  # crash the VM that has it mapped.
  defp install(from, to) do
    File.rm(to)
    File.cp!(from, to)
  end

  defp cargo(root, args) do
    Mix.shell().info("cargo " <> Enum.join(args, " "))

    case System.cmd("cargo", args, cd: root, stderr_to_stdout: true, into: IO.stream(:stdio, :line)) do
      {_, 0} -> :ok
      {_, status} -> {:error, "cargo #{Enum.join(args, " ")} failed with exit status #{status}"}
    end
  rescue
    e in ErlangError ->
      {:error,
       "cannot run cargo (is Rust installed? run scripts/setup.sh): #{Exception.message(e)}"}
  end
end
