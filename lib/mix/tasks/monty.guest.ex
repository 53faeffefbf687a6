defmodule Mix.Tasks.Monty.Guest do
  @shortdoc "Exports the guest component (.wasm, .wit, checksums, version) to a directory"
  @moduledoc """
  Exports the ExMonty guest component as a versioned, portable artifact for
  hosts outside Elixir (see `guest/README.md`):

      mix monty.guest DIR

  writes into `DIR` (created if needed, files overwritten):

    * `ex_monty_guest.wasm` — the `wasm32-wasip2` component (built by
      `mix compile`, which this task runs first);
    * `ex-monty.wit` — its interface, package `ex-monty:sandbox@VERSION`;
    * `VERSION` — the WIT package version (the compatibility rules in
      `guest/README.md` are stated in terms of it);
    * `manifest.json` — name, WIT package and world, the versions of the
      WIT package, Monty and ExMonty, the dump and program formats, and the
      SHA-256 of each file;
    * `SHA256SUMS` — the checksums in `sha256sum -c` format;
    * `ex_monty_typecheck.wasm` and `ex-monty-types.wit` — the type checker
      component (ty, package `ex-monty:types`, world `typecheck`; see the
      README's *Type checking*), listed in the manifest's `typecheck`.

  Exit status: 0 on success, 2 for a usage error, 1 when the component is
  missing or a file cannot be written.
  """
  use Mix.Task

  @root Path.expand("../../..", __DIR__)
  @wit Path.join(@root, "wit/ex-monty.wit")
  @external_resource @wit
  @wasm_name "ex_monty_guest.wasm"
  @wit_name "ex-monty.wit"
  @types_wit Path.join(@root, "wit/types/ex-monty-types.wit")
  @external_resource @types_wit
  @types_wasm_name "ex_monty_typecheck.wasm"
  @types_wit_name "ex-monty-types.wit"
  # ExMonty's dump header version (ExMonty.Dump) and the guest's compiled
  # program format (guest/src/codec.rs, PROGRAM_FORMAT).
  @dump_format 1
  @program_format 1

  @impl true
  def run(args) do
    case args do
      [dir] when dir not in ["-h", "--help"] ->
        Mix.Task.run("compile", [])

        case export(dir) do
          {:ok, manifest} ->
            Mix.shell().info("exported ex-monty:sandbox@#{manifest.version} to #{dir}")

          {:error, message} ->
            Mix.shell().error(message)
            exit({:shutdown, 1})
        end

      _ ->
        Mix.shell().error("usage: mix monty.guest DIR")
        exit({:shutdown, 2})
    end
  end

  @doc """
  Writes the artifact into `dir` and returns its manifest (without running
  `mix compile`).
  """
  @spec export(Path.t()) :: {:ok, map()} | {:error, String.t()}
  def export(dir) do
    wasm = Path.join(:code.priv_dir(:ex_monty), @wasm_name)
    types_wasm = Path.join(:code.priv_dir(:ex_monty), @types_wasm_name)

    with {:ok, wasm_bytes} <- read(wasm, "the guest component (run mix compile)"),
         {:ok, wit_bytes} <- read(@wit, "the WIT"),
         {:ok, version} <- wit_version(wit_bytes),
         {:ok, types_wasm_bytes} <- read(types_wasm, "the type-check component (run mix compile)"),
         {:ok, types_wit_bytes} <- read(@types_wit, "the type checker's WIT"),
         {:ok, types_version} <- types_wit_version(types_wit_bytes),
         :ok <- mkdir(dir) do
      files = [
        {@wasm_name, wasm_bytes},
        {@wit_name, wit_bytes},
        {@types_wasm_name, types_wasm_bytes},
        {@types_wit_name, types_wit_bytes}
      ]

      sums = Enum.map(files, fn {name, bytes} -> {name, sha256(bytes)} end)

      manifest = %{
        name: "ex_monty_guest",
        version: version,
        wit_package: "ex-monty:sandbox@#{version}",
        world: "guest",
        monty_version: monty_version(),
        ex_monty_version: to_string(Application.spec(:ex_monty, :vsn)),
        dump_format: @dump_format,
        program_format: @program_format,
        files: Map.new(sums),
        typecheck: %{
          name: "ex_monty_typecheck",
          version: types_version,
          wit_package: "ex-monty:types@#{types_version}",
          world: "typecheck"
        }
      }

      outputs =
        files ++
          [
            {"VERSION", version <> "\n"},
            {"SHA256SUMS", Enum.map_join(sums, fn {name, sum} -> "#{sum}  #{name}\n" end)},
            {"manifest.json", json(manifest) <> "\n"}
          ]

      Enum.reduce_while(outputs, {:ok, manifest}, fn {name, bytes}, acc ->
        case File.write(Path.join(dir, name), bytes) do
          :ok ->
            {:cont, acc}

          {:error, reason} ->
            {:halt, {:error, "cannot write #{name}: #{:file.format_error(reason)}"}}
        end
      end)
    end
  end

  defp read(path, what) do
    case File.read(path) do
      {:ok, bytes} -> {:ok, bytes}
      {:error, reason} -> {:error, "cannot read #{what} at #{path}: #{:file.format_error(reason)}"}
    end
  end

  defp mkdir(dir) do
    case File.mkdir_p(dir) do
      :ok -> :ok
      {:error, reason} -> {:error, "cannot create #{dir}: #{:file.format_error(reason)}"}
    end
  end

  @doc false
  @spec wit_version(binary()) :: {:ok, String.t()} | {:error, String.t()}
  def wit_version(wit) do
    case Regex.run(~r/^package ex-monty:sandbox@(\d+\.\d+\.\d+);/m, wit) do
      [_, version] -> {:ok, version}
      nil -> {:error, "the WIT declares no versioned ex-monty:sandbox package"}
    end
  end

  defp types_wit_version(wit) do
    case Regex.run(~r/^package ex-monty:types@(\d+\.\d+\.\d+);/m, wit) do
      [_, version] -> {:ok, version}
      nil -> {:error, "the type checker's WIT declares no versioned ex-monty:types package"}
    end
  end

  defp monty_version do
    cargo = Path.join(@root, "Cargo.toml")

    with {:ok, text} <- File.read(cargo),
         [_, version] <- Regex.run(~r/^monty = "=?([^"]+)"/m, text) do
      version
    else
      _ -> "unknown"
    end
  end

  defp sha256(bytes), do: Base.encode16(:crypto.hash(:sha256, bytes), case: :lower)

  # A JSON encoder for the manifest's maps of strings and integers.
  defp json(map) when is_map(map) do
    fields =
      map
      |> Enum.sort_by(fn {key, _} -> to_string(key) end)
      |> Enum.map_join(",", fn {key, value} -> json(to_string(key)) <> ":" <> json(value) end)

    "{" <> fields <> "}"
  end

  defp json(value) when is_integer(value), do: Integer.to_string(value)

  defp json(value) when is_binary(value) do
    escaped =
      for <<c::utf8 <- value>>, into: "" do
        case c do
          ?" -> "\\\""
          ?\\ -> "\\\\"
          c when c < 0x20 -> "\\u" <> String.pad_leading(Integer.to_string(c, 16), 4, "0")
          c -> <<c::utf8>>
        end
      end

    "\"" <> escaped <> "\""
  end
end
