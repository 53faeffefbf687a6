defmodule Mix.Tasks.Monty.Run do
  @shortdoc "Runs a Python file (or -e CODE) in the ExMonty sandbox"
  @moduledoc """
  Runs Python code in the ExMonty sandbox, like `python FILE.py`.

      mix monty.run examples/hello.py
      mix monty.run -e "sum(range(10))"

  Options:

    * `-e CODE` / `--eval CODE` — run `CODE` instead of a file;
    * `--timeout SECONDS` — `max_duration_secs` (default 30);
    * `--max-memory BYTES` — `max_memory`;
    * `-h` / `--help` — print this usage.

  Standard output is the program's: what it prints, then the value of its
  last expression (unless `None`) as Python's `repr` shows it
  (`[1, 'a', None, (2,)]`, see `ExMonty.Repr`). Diagnostics go to standard
  error (ExMonty's log messages too).

  Exit status: 0 when the code ran; 1 when it raised (what it printed before
  the error goes to standard output, the traceback to standard error); 2 for
  a usage error (unknown option, bad value, extra arguments, unreadable file).
  """
  use Mix.Task

  @usage """
  usage: mix monty.run [--timeout SECONDS] [--max-memory BYTES] FILE.py
         mix monty.run [--timeout SECONDS] [--max-memory BYTES] -e CODE
  """

  @impl true
  def run(args) do
    case main(args) do
      0 -> :ok
      status -> exit({:shutdown, status})
    end
  end

  @doc false
  # Runs the task and returns its exit status (0, 1 or 2), writing to the
  # current group leader (stdout) and :standard_error.
  @spec main([String.t()]) :: 0 | 1 | 2
  def main(args) do
    with {:ok, opts, source} <- parse(args),
         {:ok, code, script} <- read(source),
         {:ok, limits} <- limits(opts) do
      Mix.ExMonty.start_app()
      execute(code, script, limits)
    end
  end

  defp parse(args) do
    case OptionParser.parse(args,
           strict: [eval: :string, timeout: :string, max_memory: :string, help: :boolean],
           aliases: [e: :eval, h: :help]
         ) do
      {opts, rest, []} ->
        cond do
          opts[:help] -> usage(nil, 0)
          opts[:eval] && rest == [] -> {:ok, opts, {:eval, opts[:eval]}}
          opts[:eval] -> usage("unexpected argument(s) with -e: #{Enum.join(rest, " ")}")
          match?([_], rest) -> {:ok, opts, {:file, hd(rest)}}
          rest == [] -> usage("no file or -e CODE given")
          true -> usage("unexpected argument(s): #{Enum.join(tl(rest), " ")}")
        end

      {_opts, _rest, invalid} ->
        usage(
          "invalid option(s): " <>
            Enum.map_join(invalid, ", ", fn
              {name, nil} -> name
              {name, value} -> "#{name} #{value}"
            end)
        )
    end
  end

  defp read({:eval, code}), do: {:ok, code, "<string>"}

  defp read({:file, path}) do
    case File.read(path) do
      {:ok, code} ->
        {:ok, code, Path.basename(path)}

      {:error, reason} ->
        IO.puts(
          :standard_error,
          "mix monty.run: cannot read #{path}: #{:file.format_error(reason)}"
        )

        2
    end
  end

  defp limits(opts) do
    with {:ok, limits} <- number(opts, :timeout, :max_duration_secs, &Float.parse/1),
         {:ok, limits} <- number(opts, :max_memory, :max_memory, &Integer.parse/1, limits) do
      try do
        ExMonty.Limits.normalize!(limits)
        {:ok, limits}
      rescue
        e in ArgumentError -> usage(Exception.message(e))
      end
    end
  end

  defp number(opts, key, limit, parse, acc \\ %{}) do
    case opts[key] do
      nil ->
        {:ok, acc}

      text ->
        case parse.(text) do
          {n, ""} -> {:ok, Map.put(acc, limit, n)}
          _ -> usage("invalid value for --#{String.replace(to_string(key), "_", "-")}: #{text}")
        end
    end
  end

  defp usage(nil, status) do
    IO.write(@usage)
    status
  end

  defp usage(message) do
    IO.puts(:standard_error, "mix monty.run: " <> message)
    IO.write(:standard_error, @usage)
    2
  end

  defp execute(code, script, limits) do
    case ExMonty.eval(code, script_name: script, limits: limits) do
      {:ok, value, output} ->
        IO.write(output)
        if value != nil, do: IO.puts(ExMonty.Repr.repr(value))
        0

      {:error, exception} ->
        IO.write(Map.get(exception, :output, ""))
        IO.puts(:standard_error, Exception.message(exception))
        1
    end
  end
end
