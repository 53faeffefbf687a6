defmodule ExMonty.OsCallTest do
  use ExUnit.Case, async: true

  doctest ExMonty.OsCall

  test "an OS call arrives as the struct with its function atom" do
    {:ok, runner} = ExMonty.compile("from pathlib import Path\nPath('/a').read_text()")

    assert {:ok,
            {:os_call, %ExMonty.OsCall{function: :read_text, python_name: "Path.read_text"} = call,
             _, ""}} = ExMonty.start(runner)

    assert call.args == [{:path, "/a"}]
  end
end
