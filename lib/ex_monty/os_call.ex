defmodule ExMonty.OsCall do
  @moduledoc """
  A request from Python to the operating system (files, environment,
  randomness, sleeps, imports), which the host answers.

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
  | `os.urandom(n)` | `:urandom` |
  | `time.sleep(s)` | `:system_sleep` |
  | `asyncio.sleep(s)` | `:system_async_sleep` |
  | `import name` of an unknown module | `:import` |
  | `date.today()` (with `os_policy: [clock: :host]`) | `:date_today` |
  | `datetime.now(tz)` (with `os_policy: [clock: :host]`) | `:datetime_now` |
  | `time.time()`, `time.monotonic()`, ... (with `os_policy: [clock: :host]`; the caller in `args`) | `:time` |
  | `time.sleep(s)` (with `os_policy: [sleep: :host]`) | `:sleep` |
  | `asyncio.sleep(s)` (with `os_policy: [sleep: :host]`) | `:async_sleep` |

  Clocks (`time.time()`, `date.today()`, `datetime.now()`) are answered
  inside the sandbox (from the host clock, or as `ExMonty.OsPolicy` says)
  and reach the host only with `clock: :host`. Sleeps
  arrive as `:system_sleep` / `:system_async_sleep` (seconds in `args`);
  `ExMonty.Sandbox` and `ExMonty.eval/2` wait in the calling process, within
  `max_total_sleep_secs`.

  These atoms are the keys of an `:os` map given to `ExMonty.Sandbox.run/2`:

      iex> :read_text in ExMonty.OsCall.functions()
      true
      iex> :date_tomorrow in ExMonty.OsCall.functions()
      false
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
    "os.urandom" => :urandom,
    "date.today" => :date_today,
    "datetime.now" => :datetime_now,
    "time.time" => :time,
    "time.sleep" => :sleep,
    "asyncio.sleep" => :async_sleep,
    "system.sleep" => :system_sleep,
    "system.async_sleep" => :system_async_sleep,
    "import" => :import,
    "import_stubs" => :import_stubs
  }

  @function_atoms @functions |> Map.values() |> Enum.sort()

  @doc "The `function` atoms an OS call can carry (sorted)."
  @spec functions() :: [atom()]
  def functions, do: @function_atoms

  @doc false
  @spec function_atom(String.t()) :: atom()
  def function_atom(name), do: Map.get(@functions, name, :unknown)
end
