defmodule Mix.Tasks.Monty.Repl do
  @shortdoc "An interactive Python prompt on an ExMonty session"
  @moduledoc """
  An interactive Python prompt, like `python` with no arguments, running in
  an `ExMonty.Session` inside the sandbox:

      mix monty.repl
      mix monty.repl --load session.bin --dump session.bin

  What one line defines, the next one uses. Multi-line blocks (`def`,
  `for`, open brackets) continue with `... ` as CPython's prompt decides
  (`ExMonty.Session.continuation/1`); a blank line ends a block. Printed
  output appears as the code runs; the value of an expression is shown as
  Python's `repr` (`ExMonty.Repr`); an exception prints its traceback to
  standard error and the session keeps its state.

  Options:

    * `--load FILE` — continue a session dumped earlier;
    * `--dump FILE` — dump the session to `FILE` when input ends (Ctrl-D);
    * `--timeout SECONDS` — `max_duration_secs` of each snippet (default 30);
    * `--max-memory BYTES` — `max_memory` of the session;
    * `-h` / `--help` — print this usage.

  Exit status: 0 at the end of input, 2 for a usage error or a file that
  cannot be read or written.
  """
  use Mix.Task

  @usage "usage: mix monty.repl [--load FILE] [--dump FILE] [--timeout SECONDS] [--max-memory BYTES]\n"

  @impl true
  def run(args) do
    case main(args) do
      0 -> :ok
      status -> exit({:shutdown, status})
    end
  end

  @doc false
  # Runs the prompt on the current group leader's input and output; returns
  # the exit status.
  @spec main([String.t()]) :: 0 | 2
  def main(args) do
    with {:ok, opts} <- parse(args),
         {:ok, session_opts} <- session_opts(opts) do
      Mix.ExMonty.start_app()
      stdout = Process.group_leader()
      on_output = fn _stream, text -> IO.write(stdout, text) end

      case ExMonty.Session.start(session_opts ++ [on_output: on_output]) do
        {:ok, session} -> loop(session, opts)
        {:error, reason} -> fail("cannot start the session: #{inspect(reason)}")
      end
    end
  end

  defp parse(args) do
    case OptionParser.parse(args,
           strict: [
             load: :string,
             dump: :string,
             timeout: :string,
             max_memory: :string,
             help: :boolean
           ],
           aliases: [h: :help]
         ) do
      {opts, [], []} ->
        if opts[:help], do: usage(nil, 0), else: {:ok, opts}

      {_opts, [extra | _], []} ->
        usage("unexpected argument #{inspect(extra)}", 2)

      {_opts, _rest, [{flag, _} | _]} ->
        usage("invalid option #{flag}", 2)
    end
  end

  defp session_opts(opts) do
    with {:ok, limits} <- limits(opts) do
      case opts[:load] do
        nil ->
          {:ok, [limits: limits]}

        file ->
          case File.read(file) do
            {:ok, binary} -> {:ok, [limits: limits, load: binary]}
            {:error, reason} -> fail("cannot read #{file}: #{:file.format_error(reason)}")
          end
      end
    end
  end

  defp limits(opts) do
    with {:ok, limits} <- number(opts[:timeout], :max_duration_secs, %{}, &Float.parse/1),
         {:ok, limits} <- number(opts[:max_memory], :max_memory, limits, &Integer.parse/1) do
      {:ok, limits}
    end
  end

  defp number(nil, _key, limits, _parse), do: {:ok, limits}

  defp number(text, key, limits, parse) do
    case parse.(text) do
      {value, ""} when value > 0 -> {:ok, Map.put(limits, key, value)}
      _ -> usage("invalid value for --#{String.replace(to_string(key), "_", "-")}: #{text}", 2)
    end
  end

  # `buffer` holds the lines of a snippet still being typed; `block` says
  # whether it opened an indented block, which only a blank line ends.
  defp loop(session, opts, buffer \\ "", block \\ false) do
    prompt = if buffer == "", do: ">>> ", else: "... "

    case IO.gets(prompt) do
      eof when eof in [:eof, nil] ->
        IO.write("\n")
        finish(session, opts)

      {:error, _} ->
        finish(session, opts)

      line ->
        line = String.trim_trailing(line, "\n")
        blank? = String.trim(line) == ""

        cond do
          buffer == "" and blank? ->
            loop(session, opts)

          buffer != "" and blank? and block ->
            execute(session, buffer)
            loop(session, opts)

          true ->
            code = if buffer == "", do: line, else: buffer <> "\n" <> line

            case ExMonty.Session.continuation(code) do
              :complete when not block ->
                execute(session, code)
                loop(session, opts)

              :block ->
                loop(session, opts, code, true)

              _ ->
                loop(session, opts, code, block)
            end
        end
    end
  end

  defp execute(session, code) do
    case ExMonty.Session.eval(session, code) do
      {:ok, nil, _output} -> :ok
      {:ok, value, _output} -> IO.puts(ExMonty.Repr.repr(value))
      {:error, exception} -> IO.puts(:stderr, Exception.message(exception))
    end
  end

  defp finish(session, opts) do
    case opts[:dump] do
      nil ->
        0

      file ->
        with {:ok, binary} <- ExMonty.Session.dump(session),
             :ok <- File.write(file, binary) do
          0
        else
          {:error, %ExMonty.Exception{} = e} -> fail("cannot dump the session: #{e.message}")
          {:error, reason} -> fail("cannot write #{file}: #{:file.format_error(reason)}")
        end
    end
  end

  defp usage(nil, status) do
    IO.write(@usage)
    status
  end

  defp usage(message, status) do
    IO.write(:stderr, "mix monty.repl: #{message}\n" <> @usage)
    status
  end

  defp fail(message) do
    IO.puts(:stderr, "mix monty.repl: " <> message)
    2
  end
end
