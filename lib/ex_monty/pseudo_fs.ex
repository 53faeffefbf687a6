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
  """

  defstruct entries: %{"/" => {:dir, 0}}, env: %{}, cwd: "/"

  @typedoc "A path's entry: a file's contents and mtime, or a directory's mtime."
  @type entry :: {:file, binary(), integer()} | {:dir, integer()}

  @type t :: %__MODULE__{
          entries: %{String.t() => entry()},
          env: %{String.t() => String.t()},
          cwd: String.t()
        }

  @doc "An empty filesystem (just `/`) with an empty environment."
  @spec new() :: t()
  def new, do: %__MODULE__{entries: %{"/" => {:dir, now()}}}

  @doc """
  Adds (or replaces) a file, creating its parent directories. `content` is a
  string or `{:bytes, binary}`.
  """
  @spec put_file(t(), String.t(), binary() | {:bytes, binary()}) :: t()
  def put_file(%__MODULE__{} = fs, path, {:bytes, content}) when is_binary(content),
    do: put_file(fs, path, content)

  def put_file(%__MODULE__{} = fs, path, content) when is_binary(content) do
    path = normalize(path, fs.cwd)
    fs = mkdir(fs, parent(path))
    %{fs | entries: Map.put(fs.entries, path, {:file, content, now()})}
  end

  @doc "Creates a directory and its parents (like `mkdir -p`)."
  @spec mkdir(t(), String.t()) :: t()
  def mkdir(%__MODULE__{} = fs, path) do
    path = normalize(path, fs.cwd)

    path
    |> ancestors()
    |> Enum.reduce(fs, fn dir, fs ->
      case Map.get(fs.entries, dir) do
        {:dir, _} -> fs
        {:file, _, _} -> raise ArgumentError, "#{dir} is a file"
        nil -> %{fs | entries: Map.put(fs.entries, dir, {:dir, now()})}
      end
    end)
  end

  @doc "Sets an environment variable seen by `os.getenv` and `os.environ`."
  @spec put_env(t(), String.t(), String.t()) :: t()
  def put_env(%__MODULE__{} = fs, key, value) when is_binary(key) and is_binary(value),
    do: %{fs | env: Map.put(fs.env, key, value)}

  @doc "Sets the working directory relative paths resolve against."
  @spec cwd(t(), String.t()) :: t()
  def cwd(%__MODULE__{} = fs, path), do: %{fs | cwd: normalize(path, fs.cwd)}

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
  def handle(fs, function, args, kwargs)

  def handle(fs, :exists, [{:path, p} | _], _),
    do: {{:ok, Map.has_key?(fs.entries, abs(fs, p))}, fs}

  def handle(fs, :is_file, [{:path, p} | _], _), do: {{:ok, match?({:file, _, _}, get(fs, p))}, fs}
  def handle(fs, :is_dir, [{:path, p} | _], _), do: {{:ok, match?({:dir, _}, get(fs, p))}, fs}
  def handle(fs, :is_symlink, [{:path, _} | _], _), do: {{:ok, false}, fs}

  def handle(fs, :read_text, [{:path, p} | _], _) do
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

  def handle(fs, :read_bytes, [{:path, p} | _], _) do
    case read(fs, p) do
      {:ok, content} -> {:ok, {:bytes, content}}
      error -> error
    end
    |> reply(fs)
  end

  def handle(fs, function, [{:path, p}, data | _], _)
      when function in [:write_text, :append_text] and is_binary(data),
      do: write(fs, p, data, function == :append_text, String.length(data))

  def handle(fs, function, [{:path, p}, {:bytes, data} | _], _)
      when function in [:write_bytes, :append_bytes],
      do: write(fs, p, data, function == :append_bytes, byte_size(data))

  def handle(fs, :open, [{:path, p}, mode | _], _) when is_binary(mode),
    do: open(fs, abs(fs, p), mode)

  def handle(fs, :mkdir, [{:path, p} | _], kwargs) do
    path = abs(fs, p)
    parents = Map.get(kwargs, "parents", false)
    exist_ok = Map.get(kwargs, "exist_ok", false)

    case {Map.get(fs.entries, path), get_abs(fs, parent(path))} do
      {{:dir, _}, _} when exist_ok ->
        {{:ok, nil}, fs}

      {nil, {:dir, _}} ->
        {{:ok, nil}, put_entry(fs, path, {:dir, now()})}

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

  def handle(fs, :unlink, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:file, _, _} -> {{:ok, nil}, %{fs | entries: Map.delete(fs.entries, path)}}
      {:dir, _} -> {errno(:is_a_directory_error, 21, "Is a directory", path), fs}
      nil -> {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  def handle(fs, :rmdir, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:dir, _} when path == "/" ->
        {errno(:permission_error, 13, "Permission denied", path), fs}

      {:dir, _} ->
        if children(fs, path) == [] do
          {{:ok, nil}, %{fs | entries: Map.delete(fs.entries, path)}}
        else
          {errno(:os_error, 39, "Directory not empty", path), fs}
        end

      {:file, _, _} ->
        {errno(:not_a_directory_error, 20, "Not a directory", path), fs}

      nil ->
        {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  def handle(fs, :iterdir, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:dir, _} -> {{:ok, fs |> children(path) |> Enum.sort() |> Enum.map(&{:path, &1})}, fs}
      {:file, _, _} -> {errno(:not_a_directory_error, 20, "Not a directory", path), fs}
      nil -> {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  def handle(fs, :stat, [{:path, p} | _], _) do
    path = abs(fs, p)

    case Map.get(fs.entries, path) do
      {:file, content, mtime} -> {{:ok, stat(0o100644, byte_size(content), mtime, 1)}, fs}
      {:dir, mtime} -> {{:ok, stat(0o040755, 4096, mtime, 2)}, fs}
      nil -> {errno(:file_not_found_error, 2, "No such file or directory", path), fs}
    end
  end

  def handle(fs, :rename, [{:path, src}, {:path, dst} | _], _) do
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
        {{:ok, {:path, dst}}, move(fs, src, dst)}
    end
  end

  def handle(fs, function, [{:path, p} | _], _) when function in [:resolve, :absolute],
    do: {{:ok, {:path, abs(fs, p)}}, fs}

  def handle(fs, :getenv, [key | rest], _) when is_binary(key) do
    default =
      case rest do
        [d | _] -> d
        [] -> nil
      end

    {{:ok, Map.get(fs.env, key, default)}, fs}
  end

  def handle(fs, :get_environ, _args, _), do: {{:ok, fs.env}, fs}

  def handle(fs, :scan, [{:path, p} | _], kwargs) do
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

  def handle(fs, _function, _args, _kwargs), do: {:not_handled, fs}

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

      {_, {:dir, _}} ->
        old =
          case Map.get(fs.entries, path) do
            {:file, content, _} when append? -> content
            _ -> ""
          end

        {{:ok, count}, put_entry(fs, path, {:file, old <> data, now()})}

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
        {{:ok, handle}, put_entry(fs, path, {:file, "", now()})}

      base == "a" ->
        fs = if entry == nil, do: put_entry(fs, path, {:file, "", now()}), else: fs
        {{:ok, handle}, fs}

      true ->
        {{:error, :value_error, "invalid mode: #{q(mode)}"}, fs}
    end
  end

  defp mkdir_parents(fs, path) do
    blocked =
      path
      |> ancestors()
      |> Enum.find(&match?({:file, _, _}, Map.get(fs.entries, &1)))

    if blocked,
      do: {errno(:not_a_directory_error, 20, "Not a directory", blocked), fs},
      else: {{:ok, nil}, mkdir(fs, path)}
  end

  defp move(fs, src, dst) do
    {moved, kept} =
      Enum.split_with(fs.entries, fn {path, _} ->
        path == src or String.starts_with?(path, src <> "/")
      end)

    kept = kept |> Map.new() |> Map.reject(fn {path, _} -> path == dst end)

    entries =
      Enum.reduce(moved, kept, fn {path, entry}, acc ->
        Map.put(acc, dst <> String.replace_prefix(path, src, ""), entry)
      end)

    %{fs | entries: entries}
  end

  defp put_entry(fs, path, entry), do: %{fs | entries: Map.put(fs.entries, path, entry)}

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
    parts = String.split(path, "/", trim: true)
    for n <- 1..length(parts), do: "/" <> Enum.join(Enum.take(parts, n), "/")
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
