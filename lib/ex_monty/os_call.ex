defmodule ExMonty.OsCall do
  @moduledoc """
  A request from Python to the operating system (files, environment, clocks,
  sleeps ...), which the host answers.

  `function` is one of the atoms below; `python_name` is Monty's own name for
  the call (`"Path.read_text"`). Paths arrive as `{:path, string}`, already
  normalised.

  | Python | `function` |
  | --- | --- |
  | `Path.exists()` | `:exists` |
  | `Path.is_file()` | `:is_file` |
  | `Path.is_dir()` | `:is_dir` |
  | `Path.is_symlink()` | `:is_symlink` |
  | `Path.read_text()` | `:read_text` |
  | `Path.read_bytes()` | `:read_bytes` |
  | `Path.write_text(data)` | `:write_text` |
  | `Path.write_bytes(data)` | `:write_bytes` |
  | append modes | `:append_text`, `:append_bytes` |
  | `open(path, mode)` | `:open` |
  | `Path.mkdir()` | `:mkdir` |
  | `Path.unlink()` | `:unlink` |
  | `Path.rmdir()` | `:rmdir` |
  | `Path.iterdir()` | `:iterdir` |
  | `Path.glob()`, `os.walk()`, `os.scandir()` | `:scan` |
  | `Path.stat()` | `:stat` |
  | `Path.rename(target)` | `:rename` |
  | `Path.resolve()` | `:resolve` |
  | `Path.absolute()` | `:absolute` |
  | `os.getenv(key)` | `:getenv` |
  | `os.environ` | `:get_environ` |
  | `date.today()` | `:date_today` |
  | `datetime.now()` | `:datetime_now` |
  | `os.urandom(n)` | `:urandom` |
  | `time.*` clocks | `:time` |
  | `time.sleep(s)` | `:sleep` (host policy) or `:system_sleep` |
  | `asyncio.sleep(s)` | `:async_sleep` or `:system_async_sleep` |
  | `import name` of an unknown module | `:import` |
  """

  defstruct [:function, :python_name, :call_id, args: [], kwargs: %{}]

  @type t :: %__MODULE__{
          function: atom(),
          python_name: String.t(),
          args: [term()],
          kwargs: %{String.t() => term()},
          call_id: non_neg_integer()
        }

  @functions %{
    "Path.exists" => :exists,
    "Path.is_file" => :is_file,
    "Path.is_dir" => :is_dir,
    "Path.is_symlink" => :is_symlink,
    "Path.read_text" => :read_text,
    "Path.read_bytes" => :read_bytes,
    "Path.stat" => :stat,
    "Path.iterdir" => :iterdir,
    "Path.scan" => :scan,
    "Path.resolve" => :resolve,
    "Path.absolute" => :absolute,
    "Path.write_text" => :write_text,
    "Path.append_text" => :append_text,
    "Path.write_bytes" => :write_bytes,
    "Path.append_bytes" => :append_bytes,
    "open" => :open,
    "Path.mkdir" => :mkdir,
    "Path.unlink" => :unlink,
    "Path.rmdir" => :rmdir,
    "Path.rename" => :rename,
    "os.getenv" => :getenv,
    "os.environ" => :get_environ,
    "date.today" => :date_today,
    "datetime.now" => :datetime_now,
    "os.urandom" => :urandom,
    "time.time" => :time,
    "time.sleep" => :sleep,
    "system.sleep" => :system_sleep,
    "asyncio.sleep" => :async_sleep,
    "system.async_sleep" => :system_async_sleep,
    "import" => :import,
    "import_stubs" => :import_stubs
  }

  @doc false
  @spec function_atom(String.t()) :: atom()
  def function_atom(name), do: Map.get(@functions, name, :unknown)
end
