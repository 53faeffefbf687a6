defmodule ExMonty.StackSafetyTest do
  # Guest code runs on ExMonty's worker threads (16 MiB stacks) with wasm's
  # stack capped at 4 MiB, so nothing here can overflow a BEAM thread: each
  # case ends in a value or a Python error, and the VM keeps running.
  use ExUnit.Case, async: true

  defp nested(depth), do: "x = []\nfor i in range(#{depth}):\n    x = [x]\n"

  defp depth_of(list, acc \\ 0)
  defp depth_of([inner], acc), do: depth_of(inner, acc + 1)
  defp depth_of([], acc), do: {acc, :whole}
  # Monty exports values up to max_recursion_depth levels, then marks the cut.
  defp depth_of({:repr, "<deeply nested>"}, acc), do: {acc, :cut}

  test "Python recursion past the limit is a RecursionError" do
    assert {:error, %ExMonty.Exception{type: :recursion_error}} =
             ExMonty.eval("def f(n):\n    return f(n + 1)\nf(0)")
  end

  test "mutual recursion is a RecursionError" do
    code = "def a(n):\n    return b(n)\ndef b(n):\n    return a(n)\na(0)"
    assert {:error, %ExMonty.Exception{type: :recursion_error}} = ExMonty.eval(code)
  end

  test "nested values come back whole up to the recursion limit, then are refused, never cut" do
    assert {:ok, value, ""} = ExMonty.eval(nested(990) <> "x")
    assert depth_of(value) == {990, :whole}

    for depth <- [5_000, 100_000] do
      assert {:error, %ExMonty.Exception{type: :recursion_error, message: message}} =
               ExMonty.eval(nested(depth) <> "x")

      assert message =~ "max_recursion_depth"
    end

    assert {:ok, value, ""} =
             ExMonty.eval(nested(5_000) <> "x", limits: %{max_recursion_depth: 6_000})

    assert depth_of(value) == {5_000, :whole}
  end

  test "repr of a deeply nested value" do
    assert {:ok, 1982, ""} = ExMonty.eval(nested(990) <> "len(repr(x))")
    assert {:ok, n, ""} = ExMonty.eval(nested(100_000) <> "len(repr(x))")
    assert is_integer(n)
  end

  test "comparing deeply nested values ends in a RecursionError" do
    code = "x = []\ny = []\nfor i in range(100000):\n    x = [x]\n    y = [y]\nx == y"
    assert {:error, %ExMonty.Exception{type: :recursion_error}} = ExMonty.eval(code)
  end

  test "deeply nested source is a SyntaxError" do
    for depth <- [1_000, 2_040, 100_000] do
      source = String.duplicate("[", depth) <> String.duplicate("]", depth)
      assert {:error, %ExMonty.Exception{type: :syntax_error}} = ExMonty.eval(source)
      # Parentheses add no nesting to the tree: Monty may accept them.
      source = String.duplicate("(", depth) <> "1" <> String.duplicate(")", depth)

      assert ExMonty.eval(source) in [{:ok, 1, ""}] or
               match?({:error, %ExMonty.Exception{type: :syntax_error}}, ExMonty.eval(source))
    end
  end

  test "deeply nested Elixir input goes in, and comes back whole or not at all" do
    deep = Enum.reduce(1..100_000, [], fn _, acc -> [acc] end)
    assert {:ok, 1, ""} = ExMonty.eval("len(x)", inputs: %{"x" => deep})

    assert {:error, %ExMonty.Exception{type: :recursion_error}} =
             ExMonty.eval("x", inputs: %{"x" => deep})

    # As an argument of a host call: the call raises where it is made.
    {:ok, runner} =
      ExMonty.compile("try:\n    f(x)\nexcept RecursionError:\n    r = 'refused'\nr", inputs: ["x"])

    assert {:ok, {:complete, "refused", ""}} = ExMonty.start(runner, %{"x" => deep})

    deep = Enum.reduce(1..10_000, [], fn _, acc -> [acc] end)

    assert {:ok, ^deep, ""} =
             ExMonty.eval("x", inputs: %{"x" => deep}, limits: %{max_recursion_depth: 10_100})

    {:ok, runner} = ExMonty.compile("f(x)", inputs: ["x"])

    assert {:ok, {:function_call, %{args: [^deep]}, snapshot, ""}} =
             ExMonty.start(runner, %{"x" => deep}, limits: %{max_recursion_depth: 10_100})

    assert {:ok, {:complete, ^deep, ""}} = ExMonty.resume(snapshot, {:ok, deep})
  end

  test "at the highest recursion limit, deep values still export" do
    assert {:ok, value, ""} =
             ExMonty.eval(nested(9_990) <> "x", limits: %{max_recursion_depth: 10_000})

    assert depth_of(value) == {9_990, :whole}
  end

  test "the sandbox still answers after all of the above" do
    assert {:ok, 3, ""} = ExMonty.eval("1 + 2")
  end
end
