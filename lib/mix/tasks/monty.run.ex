defmodule Mix.Tasks.Monty.Run do
  @shortdoc "Runs a Python file (or -e CODE) in the ExMonty sandbox"
  @moduledoc """
  Runs Python code in the ExMonty sandbox and prints its output and result.

      mix monty.run examples/hello.py
      mix monty.run -e "sum(range(10))"

  Options:

    * `-e CODE` / `--eval CODE` — run `CODE` instead of a file;
    * `--timeout SECONDS` — `max_duration_secs` (default 30);
    * `--max-memory BYTES` — `max_memory`.

  Exits with status 1 when the code raises.
  """
  use Mix.Task

  @impl true
  def run(args) do
    {opts, files, _} =
      OptionParser.parse(args,
        strict: [eval: :string, timeout: :float, max_memory: :integer],
        aliases: [e: :eval]
      )

    {code, script} =
      case {opts[:eval], files} do
        {code, _} when is_binary(code) ->
          {code, "<string>"}

        {nil, [file | _]} ->
          {File.read!(file), Path.basename(file)}

        _ ->
          Mix.raise("usage: mix monty.run FILE.py | mix monty.run -e CODE")
      end

    Mix.Task.run("app.start")

    limits =
      %{}
      |> put_if(:max_duration_secs, opts[:timeout])
      |> put_if(:max_memory, opts[:max_memory])

    case ExMonty.eval(code, script_name: script, limits: limits) do
      {:ok, value, output} ->
        IO.write(output)
        if value != nil, do: IO.puts(inspect(value, pretty: true, limit: :infinity))

      {:error, exception} ->
        IO.puts(:stderr, Exception.message(exception))
        exit({:shutdown, 1})
    end
  end

  defp put_if(map, _key, nil), do: map
  defp put_if(map, key, value), do: Map.put(map, key, value)
end
