defmodule ExMonty.Mount do
  @moduledoc """
  Real host directories, mounted into the sandbox at virtual paths.

      {:ok, mount} = ExMonty.Mount.new([{"/data", "/srv/tenant-42/data", :read_only}])
      ExMonty.Sandbox.run("open('/data/input.csv').read()", mounts: mount)

  Each mount has a mode:

    * `:read_only` — Python can read, list and stat; writes raise
      `PermissionError: [Errno 30] Read-only file system`.
    * `:read_write` — reads and writes go to the host directory, up to
      `:write_bytes_limit` bytes written in total (100 MiB by default).
    * `:overlay` — reads fall through to the host directory; writes, deletes
      and renames stay in memory (up to `:memory_usage_limit` bytes,
      50 MB — monty-fs's default — unless given). Read them back with
      `read_file/2` and `ls/2`; drop the mount to discard them. The host
      directory is never modified.

  Options per mount (`{virtual, host, mode, opts}`):

    * `:write_bytes_limit` — `:read_write` only: a positive integer (bytes
      written over the mount's life) or `:infinity` (no limit). Default
      `#{100 * 1024 * 1024}` (100 MiB).
    * `:memory_usage_limit` — `:overlay` only: a positive integer (bytes
      the overlay may hold in memory) or `:infinity` (no limit — the overlay
      lives in the host's memory, outside the wasm caps). Default 50 MB.

  An unknown option, an invalid value or an option that does not apply to
  the mode is a programmer error and raises `ArgumentError`; a directory that
  cannot be opened or overlapping mounts return an error.

  Confinement is done by the `monty-fs` crate on top of cap-std: every path is
  resolved inside the mounted directory's handle, so `..` at any depth,
  absolute paths, symlinks that lead outside (including ones swapped during a
  call), NUL bytes and overlong paths cannot reach anything outside the mount.
  File calls are served on ExMonty's worker threads, never on a BEAM
  scheduler. A mount is shared by every execution it is given to; its calls
  are serialised.
  """

  @enforce_keys [:resource]
  defstruct [:resource]

  @type mode :: :read_only | :read_write | :overlay
  @type spec ::
          {String.t(), Path.t(), mode()} | {String.t(), Path.t(), mode(), keyword()}
  @type t :: %__MODULE__{resource: reference()}

  alias ExMonty.Native

  @default_write_bytes_limit 100 * 1024 * 1024
  @u64_max 18_446_744_073_709_551_615

  @doc """
  Mounts host directories. Returns `{:error, %ExMonty.Exception{}}` when a
  directory cannot be opened, two mounts overlap, or a spec is invalid;
  raises `ArgumentError` for an unknown or invalid per-mount option.

  ## Examples

      iex> ExMonty.Mount.new([{"/data", System.tmp_dir!(), :read_only, write_limit: 5}])
      ** (ArgumentError) unknown option :write_limit for ExMonty.Mount.new/1; valid options: :memory_usage_limit, :write_bytes_limit
  """
  @spec new([spec()]) :: {:ok, t()} | {:error, ExMonty.Exception.t()}
  def new(specs) when is_list(specs) do
    with {:ok, native} <- native_specs(specs) do
      case Native.mounts_new(native) do
        {:ok, resource} -> {:ok, %__MODULE__{resource: resource}}
        {:error, message} -> ExMonty.Exception.invalid(message)
      end
    end
  end

  def new(other),
    do:
      ExMonty.Exception.invalid(
        "mounts are a list of {virtual, host, mode}, got: #{inspect(other)}"
      )

  @doc "Like `new/1`, but raises `ArgumentError` on error."
  @spec new!([spec()]) :: t()
  def new!(specs) do
    case new(specs) do
      {:ok, mount} -> mount
      {:error, exception} -> raise ArgumentError, exception.message
    end
  end

  @doc """
  Reads a file as Python would see it (an overlay shows its in-memory writes).
  """
  @spec read_file(t(), String.t()) :: {:ok, binary()} | {:error, ExMonty.Exception.t()}
  def read_file(%__MODULE__{resource: resource}, path) when is_binary(path) do
    case Native.mounts_read(resource, path) do
      {:ok, {:bytes, content}} -> {:ok, content}
      other -> other
    end
  end

  @doc "Lists a directory as Python would see it (full virtual paths, sorted)."
  @spec ls(t(), String.t()) :: {:ok, [String.t()]} | {:error, ExMonty.Exception.t()}
  def ls(%__MODULE__{resource: resource}, path) when is_binary(path) do
    case Native.mounts_list(resource, path) do
      {:ok, entries} -> {:ok, entries |> Enum.map(fn {:path, p} -> p end) |> Enum.sort()}
      other -> other
    end
  end

  @doc "Whether `path` exists as Python would see it."
  @spec exists?(t(), String.t()) :: boolean()
  def exists?(%__MODULE__{resource: resource}, path) when is_binary(path) do
    Native.mounts_exists(resource, path) == {:ok, true}
  end

  @doc "The mounts, as `[{virtual_path, host_path, mode}]`."
  @spec info(t()) :: [{String.t(), String.t(), mode()}]
  def info(%__MODULE__{resource: resource}) do
    for {virtual, host, mode} <- Native.mounts_info(resource),
        do: {virtual, host, mode_atom(mode)}
  end

  defp native_specs(specs) do
    Enum.reduce_while(specs, {:ok, []}, fn spec, {:ok, acc} ->
      case native_spec(spec) do
        {:ok, native} -> {:cont, {:ok, [native | acc]}}
        error -> {:halt, error}
      end
    end)
    |> case do
      {:ok, natives} -> {:ok, Enum.reverse(natives)}
      error -> error
    end
  end

  defp native_spec({virtual, host, mode}), do: native_spec({virtual, host, mode, []})

  defp native_spec({"/" <> _ = virtual, host, mode, opts})
       when is_binary(host) and is_list(opts) do
    opts = ExMonty.Options.validate!(opts, :mount)

    with {:ok, mode_name} <- mode_string(mode) do
      check_applies!(opts, :write_bytes_limit, mode, :read_write)
      check_applies!(opts, :memory_usage_limit, mode, :overlay)

      write_limit =
        case Keyword.get(opts, :write_bytes_limit) do
          nil when mode == :read_write -> @default_write_bytes_limit
          :infinity -> nil
          limit -> limit
        end

      # nil: monty-fs's default (50 MB).
      memory_limit =
        case Keyword.get(opts, :memory_usage_limit) do
          :infinity -> @u64_max
          limit -> limit
        end

      {:ok, {virtual, Path.expand(host), mode_name, write_limit, memory_limit}}
    end
  end

  defp native_spec(other),
    do:
      ExMonty.Exception.invalid(
        "a mount is {\"/virtual/path\", \"host/dir\", :read_only | :read_write | :overlay}, got: #{inspect(other)}"
      )

  defp mode_string(:read_only), do: {:ok, "read-only"}
  defp mode_string(:read_write), do: {:ok, "read-write"}
  defp mode_string(:overlay), do: {:ok, "overlay"}
  defp mode_string(other), do: ExMonty.Exception.invalid("unknown mount mode #{inspect(other)}")

  defp mode_atom("read-only"), do: :read_only
  defp mode_atom("read-write"), do: :read_write
  defp mode_atom("overlay"), do: :overlay

  defp check_applies!(opts, _key, mode, mode) when is_list(opts), do: :ok

  defp check_applies!(opts, key, mode, for_mode) do
    if Keyword.has_key?(opts, key) do
      raise ArgumentError,
            "option #{inspect(key)} of ExMonty.Mount.new/1 applies to #{inspect(for_mode)} mounts " <>
              "only, not to #{inspect(mode)}"
    end
  end

  defimpl Inspect do
    def inspect(mount, _opts) do
      mounts =
        ExMonty.Mount.info(mount) |> Enum.map_join(", ", fn {v, h, m} -> "#{v} -> #{h} (#{m})" end)

      "#ExMonty.Mount<#{mounts}>"
    end
  end
end
