defmodule ExMonty.PseudoFS do
  @moduledoc """
  An in-memory filesystem and environment for sandboxed Python code.

  A `PseudoFS` is an immutable value: build it, hand it to
  `ExMonty.Sandbox.run/2` as `os: fs`, and (with `return_os: true`) get the
  filesystem back as Python left it.

      iex> alias ExMonty.PseudoFS
      iex> fs = PseudoFS.new() |> PseudoFS.put_file("/data/in.txt", "hello") |> PseudoFS.mkdir("/out")
      iex> code = "from pathlib import Path\\nt = Path('/data/in.txt').read_text()\\nPath('/out/up.txt').write_text(t.upper())"
      iex> {:ok, 5, "", fs} = ExMonty.Sandbox.run(code, os: fs, return_os: true)
      iex> PseudoFS.read_file(fs, "/out/up.txt")
      {:ok, "HELLO"}

  Python sees CPython's semantics and exceptions: a missing file raises
  `FileNotFoundError: [Errno 2] No such file or directory: '/x'`, writing into
  a missing directory raises `FileNotFoundError`, reading a directory raises
  `IsADirectoryError`, `rmdir` of a non-empty directory raises `OSError`, and
  so on. Paths are normalised (`.`, `..`, repeated slashes), and relative paths
  resolve against the working directory (`cwd/2`, default `/`).

  ## Budget

  A `PseudoFS` lives in the caller's heap, so Python cannot grow it without
  bound. `new/1` takes these limits:

    * `:max_bytes` — bytes stored: file contents plus path names (default
      32 MiB, well under the default `max_memory`);
    * `:max_entries` — files and directories, `/` included (default 10 000);
    * `:max_path_bytes` — bytes of a path, as given or resolved (default
      4096, CPython's `PATH_MAX`);
    * `:max_depth` — components of a resolved path (default 64).

  Past `:max_bytes` or `:max_entries`, Python gets
  `OSError: [Errno 28] No space left on device: '/path'`; a longer or deeper
  path raises `OSError: [Errno 36] File name too long`. Both are checked
  before anything is built, so no single call can make the filesystem
  transiently larger than its budget. `put_file/3` and `mkdir/2` obey the
  same budget and raise `ArgumentError`. Every operation costs at most time
  proportional to the size of the filesystem.

      iex> fs = ExMonty.PseudoFS.new(max_bytes: 1_000)
      iex> {:error, %{type: :os_error, message: msg}, _fs} =
      ...>   ExMonty.Sandbox.run("from pathlib import Path\\nPath('/big').write_bytes(b'x' * 2_000)",
      ...>     os: fs, return_os: true)
      iex> msg
      "[Errno 28] No space left on device: '/big'"
  """

  @defaults [
    max_bytes: 32 * 1024 * 1024,
    max_entries: 10_000,
    max_path_bytes: 4096,
    max_depth: 64
  ]

  defstruct [entries: %{"/" => {:dir, 0}}, env: %{}, cwd: "/", used: 1] ++ @defaults

  @typedoc "A path's entry: a file's contents and mtime, or a directory's mtime."
  @type entry :: {:file, binary(), integer()} | {:dir, integer()}

  @type t :: %__MODULE__{
          entries: %{String.t() => entry()},
          env: %{String.t() => String.t()},
          cwd: String.t(),
          used: non_neg_integer(),
          max_bytes: pos_integer(),
          max_entries: pos_integer(),
          max_path_bytes: pos_integer(),
          max_depth: pos_integer()
        }

  @doc """
  An empty filesystem (just `/`) with an empty environment.

  Options (see "Budget" above): `:max_bytes`, `:max_entries`,
  `:max_path_bytes` and `:max_depth`, each a positive integer. An unknown
  option or a bad value raises `ArgumentError`.

      iex> fs = ExMonty.PseudoFS.new(max_entries: 2) |> ExMonty.PseudoFS.put_file("/a", "x")
      iex> ExMonty.PseudoFS.files(fs)
      %{"/a" => "x"}
      iex> ExMonty.PseudoFS.put_file(fs, "/b", "y")
      ** (ArgumentError) PseudoFS budget exceeded: creating /b would exceed max_entries (2)
  """
  @spec new(keyword()) :: t()
  def new(opts \\ []) do
    unless is_list(opts),
      do: raise(ArgumentError, "PseudoFS.new/1 takes a keyword list, got: #{inspect(opts)}")

    opts = Keyword.validate!(opts, @defaults)

    for {key, value} <- opts, not (is_integer(value) and value > 0) do
      raise ArgumentError,
            "PseudoFS option #{inspect(key)} must be a positive integer, got: #{inspect(value)}"
    end

    struct!(__MODULE__, [entries: %{"/" => {:dir, now()}}, used: 1] ++ opts)
  end

  @doc """
  Adds (or replaces) a file, creating its parent directories. `content` is a
  string or `{:bytes, binary}`. Raises `ArgumentError` when the file does not
  fit the budget, its path is too long or deep, or a parent is a file.
  """
  @spec put_file(t(), String.t(), binary() | {:bytes, binary()}) :: t()
  def put_file(%__MODULE__{} = fs, path, {:bytes, content}) when is_binary(content),
    do: put_file(fs, path, content)

  def put_file(%__MODULE__{} = fs, path, content) when is_binary(content) do
    path = resolve!(fs, path)
    dirs = missing_dirs!(fs, parent(path))

    if match?({:dir, _}, Map.get(fs.entries, path)),
      do: raise(ArgumentError, "#{path} is a directory")

    {new, old} =
      case Map.get(fs.entries, path) do
        {:file, old, _} -> {0, byte_size(old)}
        nil -> {1, 0}
      end

    delta = dir_bytes(dirs) + byte_size(content) - old + new * byte_size(path)
    fits!(fs, length(dirs) + new, delta, path)
    fs |> add_dirs(dirs) |> put_entry(path, {:file, content, now()})
  end

  @doc """
  Creates a directory and its parents (like `mkdir -p`). Raises
  `ArgumentError` as `put_file/3` does.
  """
  @spec mkdir(t(), String.t()) :: t()
  def mkdir(%__MODULE__{} = fs, path) do
    path = resolve!(fs, path)
    dirs = missing_dirs!(fs, path)
    fits!(fs, length(dirs), dir_bytes(dirs), path)
    add_dirs(fs, dirs)
  end

  defp resolve!(fs, path) do
    case resolve(fs, path) do
      {:ok, path} -> path
      {:error, _, message} -> raise ArgumentError, message
    end
  end

  defp missing_dirs!(fs, path) do
    case missing_dirs(fs, path) do
      {:ok, dirs} -> dirs
      {:blocked, file} -> raise ArgumentError, "#{file} is a file"
    end
  end

  defp fits!(fs, new_entries, delta, path) do
    case fits(fs, new_entries, delta) do
      :ok ->
        :ok

      {:over, limit} ->
        raise ArgumentError,
              "PseudoFS budget exceeded: creating #{path} would exceed #{limit} (#{Map.fetch!(fs, limit)})"
    end
  end

  @doc "Sets an environment variable seen by `os.getenv` and `os.environ`."
  @spec put_env(t(), String.t(), String.t()) :: t()
  def put_env(%__MODULE__{} = fs, key, value) when is_binary(key) and is_binary(value),
    do: %{fs | env: Map.put(fs.env, key, value)}

  @doc "Sets the working directory relative paths resolve against."
  @spec cwd(t(), String.t()) :: t()
  def cwd(%__MODULE__{} = fs, path), do: %{fs | cwd: resolve!(fs, path)}

  @doc "Reads a file."
  @spec read_file(t(), String.t()) :: {:ok, binary()} | {:error, :enoent | :eisdir}
  def read_file(%__MODULE__{} = fs, path) do
    case Map.get(fs.entries, normalize(path, fs.cwd)) do
      {:file, content, _} -> {:ok, content}
      {:dir, _} -> {:error, :eisdir}
      nil -> {:error, :enoent}
    end
  end

  @doc "Lists a directory's entry names, sorted."
  @spec ls(t(), String.t()) :: {:ok, [String.t()]} | {:error, :enoent | :enotdir}
  def ls(%__MODULE__{} = fs, path) do
    path = normalize(path, fs.cwd)

    case Map.get(fs.entries, path) do
      {:dir, _} -> {:ok, fs |> children(path) |> Enum.map(&Path.basename/1) |> Enum.sort()}
      {:file, _, _} -> {:error, :enotdir}
      nil -> {:error, :enoent}
    end
  end

  @doc "Whether `path` exists."
  @spec exists?(t(), String.t()) :: boolean()
  def exists?(%__MODULE__{} = fs, path), do: Map.has_key?(fs.entries, normalize(path, fs.cwd))

  @doc "Whether `path` is a directory."
  @spec dir?(t(), String.t()) :: boolean()
  def dir?(%__MODULE__{} = fs, path),
    do: match?({:dir, _}, Map.get(fs.entries, normalize(path, fs.cwd)))

  @doc "Every file as `%{path => contents}`."
  @spec files(t()) :: %{String.t() => binary()}
  def files(%__MODULE__{} = fs) do
    for {path, {:file, content, _}} <- fs.entries, into: %{}, do: {path, content}
  end

  @doc """
  Normalises a path against a working directory: `.`, `..` and repeated
  slashes are resolved; `..` never climbs above `/`.

      iex> ExMonty.PseudoFS.normalize("a/../b//./c", "/work")
      "/work/b/c"
      iex> ExMonty.PseudoFS.normalize("/../../etc", "/")
      "/etc"
  """
  @spec normalize(String.t(), String.t()) :: String.t()
  def normalize(path, cwd \\ "/") when is_binary(path) do
    full = if String.starts_with?(path, "/"), do: path, else: cwd <> "/" <> path

    full
    |> String.split("/", trim: true)
    |> Enum.reduce([], fn
      ".", acc -> acc
      "..", [] -> []
      "..", [_ | rest] -> rest
      part, acc -> [part | acc]
    end)
    |> Enum.reverse()
    |> case do
      [] -> "/"
      parts -> "/" <> Enum.join(parts, "/")
    end
  end

  # ---------------------------------------------------------------------------
  # OS calls
  # ---------------------------------------------------------------------------

  @doc """
  Answers one OS call (see `ExMonty.OsCall`). Returns `{answer, fs}`, or
  `{:not_handled, fs}` for calls that are not about files or the environment.
  """
  @spec handle(t(), atom(), list(), map()) :: {term(), t()}
  def handle(fs, function, args, kwargs) do
    case Enum.find_value(args, &path_error(fs, &1)) do
      nil -> dispatch(fs, function, args, kwargs)
      error -> if handled?(function), do: {error, fs}, else: {:not_handled, fs}
    end
  end

  @handled [:exists, :is_file, :is_dir, :is_symlink, :read_text, :read_bytes, :write_text] ++
             [:append_text, :write_bytes, :append_bytes, :open, :mkdir, :unlink, :rmdir] ++
             [:iterdir, :stat, :rename, :resolve, :absolute, :scan, :getenv, :get_environ]

  defp handled?(function), do: function in @handled

  defp path_error(fs, {:path, p}) when is_binary(p) do
    case resolve(fs, p) do
      {:ok, _} -> nil
      error -> error
    end
  end

  defp path_error(_fs, _arg), do: nil

  defp dispatch(fs, :exists, [{:path, p} | _], _),
    do: {{:ok, Map.has_key?(fs.entries, abs(fs, p))}, fs}

  defp dispatch(fs, :is_file, [{:path, p} | _], _),
    do: {{:ok, match?({:file, _, _}, get(fs, p))}, fs}

  defp dispatch(fs, :is_dir, [{:path, p} | _], _), do: {{:ok, match?({:dir, _}, get(fs, p))}, fs}
  defp dispatch(fs, :is_symlink, [{:path, _} | _], _), do: {{:ok, false}, fs}

  defp dispatch(fs, :read_text, [{:path, p} | _], _) do
    with {:ok, content} <- read(fs, p) do
      if String.valid?(content) do
        {:ok, content}
      else
        {:error, :unicode_decode_error,
         "'utf-8' codec can't decode the contents of #{q(abs(fs, p))}"}
      end
    end
    |> reply(fs)
  end

  defp dispatch(fs, :read_bytes, [{:path, p} | _], _) do
    case read(fs, p) do
      {:ok, content} -> {:ok, {:bytes, content}}
      error -> error
    end
    |> reply(fs)
  end

  defp dispatch(fs, function, [{:path, p}, data | _], _)
       when function in [:write_text, :append_text] and is_binary(data),
       do: write(fs, p, data, function == :append_text, String.length(data))

  defp dispatch(fs, function, [{:path, p}, {:bytes, data} | _], _)
       when function in [:write_bytes, :append_bytes],
       do: write(fs, p, data, function == :append_bytes, byte_size(data))

  defp dispatch(fs, :open, [{:path, p}, mode | _], _) when is_binary(mode),
    do: open(fs, abs(fs, p), mode)

  defp dispatch(fs, :mkdir, [{:path, p} | _], kwargs) do
    path = abs(fs, p)
    parents = Map.get(kwargs, "parents", false)
    exist_ok = Map.get(kwargs, "exist_ok", false)

    case {Map.get(fs.entries, path), get_abs(fs, parent(path))} do
      {{:dir, _}, _} when exist_ok ->
        {{:ok, nil}, fs}

      {nil, {:dir, _}} ->
        with_space(fs, path, 1, byte_size(path), fn -> {nil, put_entry(fs, path, {:dir, now()})} end)

      {nil, _} when parents ->
        mkdir_parents(fs, path)

      {nil, {:file, _, _}} ->
        {errno(:not_a_directory_error, 20, "Not a directory", parent(path)), fs}

      {nil, nil} ->
        {errno(:file_not_found_error, 2, "No such file or directory", path), fs}

      {_, _} ->
        {errno(:file_exists_error, 17, "File exists", path), fs}
    end
  end

  defp dispatch(fs, :unlink, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:file, _, _} -> {{:ok, nil}, delete_entry(fs, path)}
      {:dir, _} -> {errno(:is_a_directory_error, 21, "Is a directory", path), fs}
      nil -> {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  defp dispatch(fs, :rmdir, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:dir, _} when path == "/" ->
        {errno(:permission_error, 13, "Permission denied", path), fs}

      {:dir, _} ->
        if children(fs, path) == [] do
          {{:ok, nil}, delete_entry(fs, path)}
        else
          {errno(:os_error, 39, "Directory not empty", path), fs}
        end

      {:file, _, _} ->
        {errno(:not_a_directory_error, 20, "Not a directory", path), fs}

      nil ->
        {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  defp dispatch(fs, :iterdir, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:dir, _} -> {{:ok, fs |> children(path) |> Enum.sort() |> Enum.map(&{:path, &1})}, fs}
      {:file, _, _} -> {errno(:not_a_directory_error, 20, "Not a directory", path), fs}
      nil -> {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  defp dispatch(fs, :stat, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:file, content, mtime} -> {{:ok, stat(0o100644, byte_size(content), mtime, 1)}, fs}
      {:dir, mtime} -> {{:ok, stat(0o040755, 4096, mtime, 2)}, fs}
      nil -> {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  defp dispatch(fs, :rename, [{:path, src}, {:path, dst} | _], _) do
    src = abs(fs, src)
    dst = abs(fs, dst)

    cond do
      not Map.has_key?(fs.entries, src) ->
        {errno(:file_not_found_error, 2, "No such file or directory", src), fs}

      not match?({:dir, _}, get_abs(fs, parent(dst))) ->
        {errno(:file_not_found_error, 2, "No such file or directory", dst), fs}

      src == "/" or String.starts_with?(dst, src <> "/") ->
        {{:error, :os_error, "[Errno 22] Invalid argument: #{q(src)} -> #{q(dst)}"}, fs}

      match?({:dir, _}, get_abs(fs, dst)) and children(fs, dst) != [] ->
        {errno(:os_error, 39, "Directory not empty", dst), fs}

      match?({:dir, _}, get_abs(fs, dst)) and match?({:file, _, _}, get_abs(fs, src)) ->
        {errno(:is_a_directory_error, 21, "Is a directory", dst), fs}

      true ->
        case move(fs, src, dst) do
          {:ok, fs} -> {{:ok, {:path, dst}}, fs}
          error -> {error, fs}
        end
    end
  end

  defp dispatch(fs, function, [{:path, p} | _], _) when function in [:resolve, :absolute],
    do: {{:ok, {:path, abs(fs, p)}}, fs}

  defp dispatch(fs, :getenv, [key | rest], _) when is_binary(key) do
    default =
      case rest do
        [d | _] -> d
        [] -> nil
      end

    {{:ok, Map.get(fs.env, key, default)}, fs}
  end

  defp dispatch(fs, :get_environ, _args, _), do: {{:ok, fs.env}, fs}

  defp dispatch(fs, :scan, [{:path, p} | _], kwargs) do
    root = abs(fs, p)
    max_depth = Map.get(kwargs, "max_depth")

    case Map.get(fs.entries, root) do
      {:dir, _} ->
        entries =
          for {path, entry} <- fs.entries,
              path == root or String.starts_with?(path, prefix(root)),
              relative = relative(root, path),
              max_depth == nil or depth(relative) <= max_depth do
            {relative, match?({:dir, _}, entry), match?({:file, _, _}, entry), false}
          end

        {{:ok, Enum.sort(entries)}, fs}

      {:file, _, _} ->
        {errno(:not_a_directory_error, 20, "Not a directory", root), fs}

      nil ->
        {errno(:file_not_found_error, 2, "No such file or directory", root), fs}
    end
  end

  defp dispatch(fs, _function, _args, _kwargs), do: {:not_handled, fs}

  # ---------------------------------------------------------------------------

  defp reply(answer, fs), do: {answer, fs}

  defp abs(fs, path), do: normalize(path, fs.cwd)
  defp get(fs, path), do: Map.get(fs.entries, abs(fs, path))
  defp get_abs(fs, path), do: Map.get(fs.entries, path)

  defp read(fs, p) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:file, content, _} -> {:ok, content}
      {:dir, _} -> errno(:is_a_directory_error, 21, "Is a directory", path)
      nil -> errno(:file_not_found_error, 2, "No such file or directory", path)
    end
  end

  defp write(fs, p, data, append?, count) do
    path = abs(fs, p)

    case {Map.get(fs.entries, path), get_abs(fs, parent(path))} do
      {{:dir, _}, _} ->
        {errno(:is_a_directory_error, 21, "Is a directory", path), fs}

      {entry, {:dir, _}} ->
        {old, new} =
          case entry do
            {:file, content, _} -> {content, 0}
            nil -> {"", 1}
          end

        kept = if append?, do: old, else: ""
        # Checked before the new contents are built.
        delta = byte_size(kept) + byte_size(data) - byte_size(old) + new * byte_size(path)

        with_space(fs, path, new, delta, fn ->
          {count, put_entry(fs, path, {:file, kept <> data, now()})}
        end)

      {_, {:file, _, _}} ->
        {errno(:not_a_directory_error, 20, "Not a directory", path), fs}

      {_, nil} ->
        {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  defp open(fs, path, mode) do
    base = String.replace(mode, ["b", "t", "+"], "")
    entry = Map.get(fs.entries, path)
    parent_ok = match?({:dir, _}, get_abs(fs, parent(path)))
    handle = {:file, path, mode, 0}

    cond do
      match?({:dir, _}, entry) ->
        {errno(:is_a_directory_error, 21, "Is a directory", path), fs}

      base == "r" and entry == nil ->
        {errno(:file_not_found_error, 2, "No such file or directory", path), fs}

      base == "r" ->
        {{:ok, handle}, fs}

      not parent_ok ->
        {errno(:file_not_found_error, 2, "No such file or directory", path), fs}

      base == "x" and entry != nil ->
        {errno(:file_exists_error, 17, "File exists", path), fs}

      base in ["w", "x"] ->
        {new, delta} =
          case entry do
            {:file, old, _} -> {0, -byte_size(old)}
            nil -> {1, byte_size(path)}
          end

        with_space(fs, path, new, delta, fn ->
          {handle, put_entry(fs, path, {:file, "", now()})}
        end)

      base == "a" and entry == nil ->
        with_space(fs, path, 1, byte_size(path), fn ->
          {handle, put_entry(fs, path, {:file, "", now()})}
        end)

      base == "a" ->
        {{:ok, handle}, fs}

      true ->
        {{:error, :value_error, "invalid mode: #{q(mode)}"}, fs}
    end
  end

  defp mkdir_parents(fs, path) do
    case missing_dirs(fs, path) do
      {:blocked, file} ->
        {errno(:not_a_directory_error, 20, "Not a directory", file), fs}

      {:ok, dirs} ->
        with_space(fs, path, length(dirs), dir_bytes(dirs), fn -> {nil, add_dirs(fs, dirs)} end)
    end
  end

  # Moving a tree renames every entry under it: the new names must fit the
  # path limits and the byte budget, checked before anything is built.
  defp move(fs, src, dst) do
    {moved, kept} =
      Enum.split_with(fs.entries, fn {path, _} ->
        path == src or String.starts_with?(path, src <> "/")
      end)

    grow = byte_size(dst) - byte_size(src)
    deeper = depth_of(dst) - depth_of(src)

    too_long =
      Enum.any?(moved, fn {path, _} ->
        byte_size(path) + grow > fs.max_path_bytes or depth_of(path) + deeper > fs.max_depth
      end)

    replaced = if dst != src, do: Map.get(fs.entries, dst)
    freed = if replaced, do: entry_size(dst, replaced), else: 0

    cond do
      too_long ->
        errno(:os_error, 36, "File name too long", dst)

      fits(fs, 0, length(moved) * grow - freed) != :ok ->
        errno(:os_error, 28, "No space left on device", dst)

      true ->
        kept = kept |> Map.new() |> Map.delete(dst)

        entries =
          Enum.reduce(moved, kept, fn {path, entry}, acc ->
            Map.put(acc, dst <> String.replace_prefix(path, src, ""), entry)
          end)

        {:ok, %{fs | entries: entries, used: fs.used + length(moved) * grow - freed}}
    end
  end

  # ---------------------------------------------------------------------------
  # Budget
  # ---------------------------------------------------------------------------

  # Resolves a path, refusing one longer than max_path_bytes (as given, before
  # any work proportional to it, or resolved) or deeper than max_depth.
  defp resolve(fs, raw) do
    path = if byte_size(raw) <= fs.max_path_bytes, do: normalize(raw, fs.cwd)

    if path && byte_size(path) <= fs.max_path_bytes && depth_of(path) <= fs.max_depth do
      {:ok, path}
    else
      shown = if byte_size(raw) > 256, do: String.slice(raw, 0, 200) <> "...", else: raw
      errno(:os_error, 36, "File name too long", shown)
    end
  end

  defp depth_of("/"), do: 0
  defp depth_of(path), do: length(:binary.matches(path, "/"))

  # :ok, or {:over, limit} when adding `new_entries` entries and `delta` bytes
  # would exceed the budget (shrinking is always allowed).
  defp fits(fs, new_entries, delta) do
    cond do
      new_entries > 0 and map_size(fs.entries) + new_entries > fs.max_entries ->
        {:over, :max_entries}

      delta > 0 and fs.used + delta > fs.max_bytes ->
        {:over, :max_bytes}

      true ->
        :ok
    end
  end

  # Runs `build` (returning {value, fs}) only when the change fits.
  defp with_space(fs, path, new_entries, delta, build) do
    case fits(fs, new_entries, delta) do
      :ok ->
        {value, fs} = build.()
        {{:ok, value}, fs}

      {:over, _} ->
        {errno(:os_error, 28, "No space left on device", path), fs}
    end
  end

  # The directories `mkdir -p path` would create, or the file in the way.
  defp missing_dirs(fs, path) do
    path
    |> ancestors()
    |> Enum.reduce_while({:ok, []}, fn dir, {:ok, acc} ->
      case Map.get(fs.entries, dir) do
        {:dir, _} -> {:cont, {:ok, acc}}
        {:file, _, _} -> {:halt, {:blocked, dir}}
        nil -> {:cont, {:ok, [dir | acc]}}
      end
    end)
    |> case do
      {:ok, dirs} -> {:ok, Enum.reverse(dirs)}
      blocked -> blocked
    end
  end

  defp dir_bytes(dirs), do: Enum.reduce(dirs, 0, &(byte_size(&1) + &2))

  defp add_dirs(fs, dirs) do
    time = now()
    Enum.reduce(dirs, fs, &put_entry(&2, &1, {:dir, time}))
  end

  defp entry_size(path, {:file, content, _}), do: byte_size(path) + byte_size(content)
  defp entry_size(path, {:dir, _}), do: byte_size(path)

  defp put_entry(fs, path, entry) do
    old = Map.get(fs.entries, path)
    freed = if old, do: entry_size(path, old), else: 0

    %{
      fs
      | entries: Map.put(fs.entries, path, entry),
        used: fs.used + entry_size(path, entry) - freed
    }
  end

  defp delete_entry(fs, path) do
    case Map.fetch(fs.entries, path) do
      {:ok, entry} ->
        %{fs | entries: Map.delete(fs.entries, path), used: fs.used - entry_size(path, entry)}

      :error ->
        fs
    end
  end

  defp children(fs, dir) do
    pre = prefix(dir)

    for {path, _} <- fs.entries,
        path != dir,
        String.starts_with?(path, pre),
        not String.contains?(String.replace_prefix(path, pre, ""), "/"),
        do: path
  end

  defp prefix("/"), do: "/"
  defp prefix(dir), do: dir <> "/"

  defp relative(root, root), do: ""
  defp relative(root, path), do: String.replace_prefix(path, prefix(root), "")

  defp depth(""), do: 0
  defp depth(relative), do: length(String.split(relative, "/"))

  defp parent("/"), do: "/"
  defp parent(path), do: Path.dirname(path)

  defp ancestors("/"), do: ["/"]

  defp ancestors(path) do
    path
    |> String.split("/", trim: true)
    |> Enum.map_reduce("", fn part, acc -> {acc <> "/" <> part, acc <> "/" <> part} end)
    |> elem(0)
  end

  defp stat(mode, size, mtime, nlink) do
    {:named_tuple, "os.stat_result",
     [
       {"st_mode", mode},
       {"st_ino", 0},
       {"st_dev", 0},
       {"st_nlink", nlink},
       {"st_uid", 0},
       {"st_gid", 0},
       {"st_size", size},
       {"st_atime", mtime / 1},
       {"st_mtime", mtime / 1},
       {"st_ctime", mtime / 1}
     ]}
  end

  defp errno(type, code, text, path), do: {:error, type, "[Errno #{code}] #{text}: #{q(path)}"}

  defp q(text), do: "'" <> String.replace(text, "'", "\\'") <> "'"

  defp now, do: System.os_time(:second)
end
