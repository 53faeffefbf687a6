defmodule Mix.ExMonty do
  @moduledoc false
  # What ExMonty's Mix tasks share.

  @doc false
  # Starts the application quietly: the program owns standard output, so
  # Mix's compile notices and ExMonty's log messages go to standard error or
  # nowhere.
  @spec start_app() :: :ok
  def start_app do
    Logger.configure_backend(:console, device: :standard_error)
    shell = Mix.shell()
    Mix.shell(Mix.Shell.Quiet)

    try do
      Mix.Task.run("app.start")
      :ok
    after
      Mix.shell(shell)
    end
  end
end
