defmodule ExMonty.Snapshot do
  @moduledoc """
  A paused execution, waiting for the host's answer.

  A snapshot is resumed once (`ExMonty.resume/2` or `ExMonty.resume_futures/2`);
  resuming it again returns `{:error, %ExMonty.Exception{type: :snapshot_consumed}}`.
  To keep it, or move it to another node, use `ExMonty.dump_snapshot/1`.
  A snapshot that is dropped without being resumed frees its sandbox.
  """

  @enforce_keys [:resource]
  defstruct [:resource]

  @type t :: %__MODULE__{resource: reference()}

  defimpl Inspect do
    def inspect(_snapshot, _opts), do: "#ExMonty.Snapshot<>"
  end
end
