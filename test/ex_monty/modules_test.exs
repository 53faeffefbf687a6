defmodule ExMonty.ModulesTest do
  use ExUnit.Case, async: true

  alias ExMonty.Sandbox

  @tools %{
    "tools" => %{
      "fetch" => &__MODULE__.fetch/2,
      "slow" => {:async, &__MODULE__.slow/2},
      "VERSION" => "1.2"
    },
    "tools.text" => %{"upper" => &__MODULE__.upper/2}
  }

  def fetch([url], _kwargs), do: {:ok, "body of " <> url}
  def slow([x], _kwargs), do: Process.sleep(50) && {:ok, x}
  def upper([s], _kwargs), do: {:ok, String.upcase(s)}

  defmodule Handler do
    @behaviour ExMonty.Sandbox
    @impl true
    def handle_import("db"), do: {:ok, %{"query" => :function, "NAME" => "main"}}
    def handle_import(_), do: :not_found
    @impl true
    def handle_function("db.query", [sql], _), do: {:ok, [sql]}
  end

  test "import, attribute calls, from-imports and constants" do
    code = """
    import tools
    from tools import fetch, VERSION
    (tools.fetch('a'), fetch('b'), VERSION, tools.VERSION)
    """

    assert {:ok, {"body of a", "body of b", "1.2", "1.2"}, ""} = Sandbox.run(code, modules: @tools)
  end

  test "submodules and async module functions" do
    code = """
    import asyncio
    import tools.text
    from tools import slow
    async def main():
        return await asyncio.gather(slow(1), slow(2))
    (tools.text.upper('x'), asyncio.run(main()))
    """

    assert {:ok, {"X", [1, 2]}, ""} = Sandbox.run(code, modules: @tools)
  end

  test "unknown modules stay ModuleNotFoundError" do
    code = "try:\n    import nope\nexcept ModuleNotFoundError as e:\n    r = str(e)\nr"
    assert {:ok, "No module named 'nope'", ""} = Sandbox.run(code, modules: @tools)
  end

  test "a handler serves modules" do
    assert {:ok, {["select 1"], "main"}, ""} =
             Sandbox.run("import db\n(db.query('select 1'), db.NAME)", handler: Handler)
  end

  test "a session keeps imported host modules between snippets" do
    {:ok, s} = ExMonty.Session.start_link(modules: @tools)
    assert {:ok, nil, ""} = ExMonty.Session.eval(s, "import tools")
    assert {:ok, "body of c", ""} = ExMonty.Session.eval(s, "tools.fetch('c')")
  end

  test "invalid module specs raise" do
    assert_raise ArgumentError, ~r/:modules/, fn -> Sandbox.run("1", modules: %{"1x" => %{}}) end

    assert_raise ArgumentError, ~r/:modules/, fn ->
      Sandbox.run("1", modules: %{"m" => %{"a b" => 1}})
    end

    assert_raise ArgumentError, ~r/:modules/, fn -> Sandbox.run("1", modules: [tools: %{}]) end
  end
end
