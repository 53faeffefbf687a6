defmodule ExMonty.TypeCheckTest do
  # The checker's first use compiles its component (or loads it from the
  # cache); the tests share it. Not async: the sessions here would change the
  # instance counts other tests measure.
  use ExUnit.Case, async: false

  alias ExMonty.{Exception, Sandbox, Session, TypeDiagnostic}

  doctest ExMonty.TypeDiagnostic

  @moduletag timeout: 300_000

  # test/support/type_check_tools.ex: functions with @specs.
  alias ExMonty.Test.TypedTools, as: Tools

  @fetch_stub "def fetch(url: str) -> str: ...\n"

  defp rules({:error, diagnostics}) when is_list(diagnostics), do: Enum.map(diagnostics, & &1.rule)
  defp rules(other), do: flunk("expected diagnostics, got: #{inspect(other)}")

  describe "mistakes LLMs make" do
    test "a host function called with the wrong argument type" do
      assert {:error, [d]} = ExMonty.type_check("page = fetch(42)\n", stubs: @fetch_stub)
      assert %TypeDiagnostic{rule: "invalid-argument-type", severity: :error} = d
      assert {d.file, d.line, d.column} == {"main.py", 1, 14}
      assert {d.end_line, d.end_column} == {1, 16}
      assert d.source_line == "page = fetch(42)"
      assert d.message =~ "str"
      assert d.rendered =~ "error[invalid-argument-type]"
      assert d.rendered =~ "main.py:1:14"
      assert d.rendered =~ "page = fetch(42)"
    end

    test "a missing await" do
      stubs = "async def fetch(url: str) -> str: ...\n"

      code = """
      async def main():
          page = fetch("https://example.com")
          return page.upper()
      """

      assert rules(ExMonty.type_check(code, stubs: stubs)) == ["unresolved-attribute"]

      fixed = String.replace(code, "page = fetch", "page = await fetch")
      assert :ok = ExMonty.type_check(fixed, stubs: stubs)
    end

    test "a misspelled attribute, of a builtin, a host module and a class" do
      assert rules(ExMonty.type_check("'abc'.uper()")) == ["unresolved-attribute"]

      modules = %{"tools" => @fetch_stub}
      code = "import tools\ntools.fecth('a')\n"
      assert {:error, [d]} = ExMonty.type_check(code, modules: modules)
      assert {d.rule, d.line} == {"unresolved-attribute", 2}
      assert d.message =~ "fecth"

      code = """
      from dataclasses import dataclass

      @dataclass
      class User:
          name: str

      u = User("ada")
      print(u.nmae)
      """

      assert {:error, [d]} = ExMonty.type_check(code)
      assert {d.rule, d.line, d.source_line} == {"unresolved-attribute", 8, "print(u.nmae)"}
    end

    test "a wrong use of a return value" do
      # list.sort() returns None
      code = "items = [3, 1, 2]\nfirst = items.sort()[0]\n"
      assert {:error, [d]} = ExMonty.type_check(code)
      assert d.line == 2

      code = "def total(xs: list[int]) -> int:\n    return str(sum(xs))\n"
      assert rules(ExMonty.type_check(code)) == ["invalid-return-type"]

      # a host function's result used as the wrong type
      assert rules(ExMonty.type_check("n: int = fetch('a')", stubs: @fetch_stub)) ==
               ["invalid-assignment"]
    end

    test "an undefined name and an unsupported module" do
      assert rules(ExMonty.type_check("print(undefined_thing)")) == ["unresolved-reference"]
      assert rules(ExMonty.type_check("import socket")) == ["unresolved-import"]
    end

    test "a syntax error is a diagnostic" do
      assert {:error, [d | _]} = ExMonty.type_check("def f(:\n    pass\n")
      assert d.rule == "invalid-syntax"
      assert d.line == 1
    end
  end

  describe "clean code" do
    test "a 20-line agent script with host functions, modules and inputs passes" do
      # The script bench/type_check.exs times, with its host module's stubs.
      code = File.read!("bench/fixtures/agent_script.py")
      modules = %{"tools" => File.read!("bench/fixtures/agent_tools.pyi")}

      assert :ok =
               ExMonty.type_check(code,
                 modules: modules,
                 inputs: %{"topics" => "list[str]", "max_words" => "int"}
               )
    end

    test "declared classes and constants in stubs" do
      stubs = """
      class Order:
          id: int
          total: float
          def refund(self, amount: float) -> bool: ...

      def load_order(id: int) -> Order: ...
      CURRENCY: str
      """

      assert :ok =
               ExMonty.type_check(
                 "o = load_order(7)\nok = o.refund(o.total / 2)\nlabel = CURRENCY + str(o.id)",
                 stubs: stubs
               )

      assert rules(ExMonty.type_check("load_order('7')", stubs: stubs)) == ["invalid-argument-type"]
    end
  end

  describe "adversarial source ends in a diagnostic or a clear error" do
    test "deeply nested brackets" do
      code = String.duplicate("(", 100_000) <> "1" <> String.duplicate(")", 100_000)
      assert_diagnostic_or_error(ExMonty.type_check(code))
    end

    test "deeply nested lists and blocks" do
      code = String.duplicate("[", 5_000) <> String.duplicate("]", 5_000)
      assert_diagnostic_or_error(ExMonty.type_check("x: int = " <> code))

      blocks =
        Enum.map_join(0..300, fn depth -> String.duplicate("    ", depth) <> "if True:\n" end) <>
          String.duplicate("    ", 301) <> "y: int = 'a'\n"

      assert_diagnostic_or_error(ExMonty.type_check(blocks))

      calls = String.duplicate("str(", 3_000) <> "1" <> String.duplicate(")", 3_000)
      assert_diagnostic_or_error(ExMonty.type_check("z: int = " <> calls))
    end

    test "huge source" do
      code = Enum.map_join(1..20_000, fn i -> "v#{i}: int = #{i} + 'x'\n" end)
      result = ExMonty.type_check(code, timeout: 120_000)
      assert_diagnostic_or_error(result)
    end

    test "pathological types" do
      union = Enum.map_join(1..300, " | ", fn i -> "Literal[#{i}]" end)

      code = """
      from typing import Literal
      def f(x: #{union}) -> int:
          return x
      y: str = f(1)
      """

      assert_diagnostic_or_error(ExMonty.type_check(code))

      chain = Enum.map_join(1..200, "\n", fn i -> "class C#{i}(C#{i - 1}): pass" end)
      assert_diagnostic_or_error(ExMonty.type_check("class C0: pass\n" <> chain <> "\nC200().x"))
    end

    test "a check past its time limit is stopped" do
      code = Enum.map_join(1..20_000, fn i -> "v#{i} = [#{i}] * #{i}\n" end)

      assert {:error, %Exception{type: :timeout_error, message: message}} =
               ExMonty.type_check(code, timeout: 1)

      assert message =~ "type check"
      # the checker still works afterwards
      assert :ok = ExMonty.type_check("1 + 1")
    end

    test "a check whose caller dies is cancelled and frees its worker" do
      # Long checks (seconds each) on every worker thread, whose callers die.
      code = Enum.map_join(1..80_000, fn i -> "v#{i} = [#{i}] * #{i}\n" end)

      callers =
        for _ <- 1..ExMonty.stats().workers do
          spawn(fn -> ExMonty.type_check(code, timeout: 600_000) end)
        end

      Process.sleep(300)
      Enum.each(callers, &Process.exit(&1, :kill))
      # Cancelled at the next epoch tick: the workers are free for this one.
      {micros, :ok} = :timer.tc(fn -> ExMonty.type_check("x: int = 1") end)
      assert micros < 1_500_000
    end

    test "a check past its memory cap is stopped" do
      code = Enum.map_join(1..3_000, fn i -> "v#{i}: int = #{i} + 'x'\n" end)

      assert {:error, %Exception{type: :memory_error, message: message}} =
               ExMonty.type_check(code, max_memory: 32 * 1024 * 1024)

      assert message =~ "type check"
      assert {:error, [_ | _]} = ExMonty.type_check(code)
    end

    test "source that is not UTF-8 and an unusable module stub are errors" do
      assert {:error, %Exception{type: :invalid_input}} = ExMonty.type_check(<<0xFF>>)

      # json is a module the sandbox provides itself
      assert {:error, %Exception{type: :invalid_input, message: message}} =
               ExMonty.type_check("import json", modules: %{"json" => "x: int"})

      assert message =~ "json"
    end
  end

  defp assert_diagnostic_or_error(result) do
    case result do
      {:error, [%TypeDiagnostic{} | _]} ->
        :ok

      {:error, %Exception{type: type}}
      when type in [:sandbox_crashed, :memory_error, :timeout_error] ->
        :ok

      other ->
        flunk("expected diagnostics or a clear error, got: #{inspect(other, limit: 5)}")
    end

    # the VM and the checker are fine
    assert :ok = ExMonty.type_check("x: int = 1")
  end

  describe "options" do
    test "are validated" do
      assert_raise ArgumentError, ~r/unknown option :stub for ExMonty.type_check\/2/, fn ->
        ExMonty.type_check("1", stub: "")
      end

      assert_raise ArgumentError, ~r/option :inputs/, fn ->
        ExMonty.type_check("1", inputs: %{"x" => :int})
      end

      assert_raise ArgumentError, ~r/option :inputs/, fn ->
        ExMonty.type_check("1", inputs: %{"x" => "int\nimport os"})
      end

      assert_raise ArgumentError, ~r/option :modules/, fn ->
        ExMonty.type_check("1", modules: %{"a-b" => ""})
      end

      assert_raise ArgumentError, ~r/option :timeout/, fn ->
        ExMonty.type_check("1", timeout: 0)
      end

      assert_raise ArgumentError, ~r/option :max_memory/, fn ->
        ExMonty.type_check("1", max_memory: 1024)
      end

      assert_raise ArgumentError, ~r/option :type_check/, fn ->
        ExMonty.eval("1", type_check: :yes)
      end

      assert_raise ArgumentError, ~r/unknown option :script_name for option :type_check/, fn ->
        ExMonty.eval("1", type_check: [script_name: "a.py"])
      end

      assert_raise ArgumentError, fn -> ExMonty.type_check(:code) end
    end

    test "script_name names the file" do
      assert {:error, [d]} = ExMonty.type_check("1 + 'a'", script_name: "agent.py")
      assert d.file == "agent.py"
      assert d.rendered =~ "agent.py:1:1"
    end
  end

  describe "type_check: true" do
    test "exceptions that are not refusals carry no diagnostics" do
      assert {:error, %Exception{type: :zero_division_error, diagnostics: []}} =
               ExMonty.eval("1 / 0")

      assert {:ok, %Exception{type: :value_error, diagnostics: []}, ""} =
               ExMonty.eval("ValueError('x')")
    end

    test "eval refuses ill-typed code without running it" do
      code = "print('ran')\nx: int = 'a'"

      assert {:error, %Exception{type: :type_check_error} = e} =
               ExMonty.eval(code, type_check: true)

      assert e.output == ""
      assert [%TypeDiagnostic{rule: "invalid-assignment", line: 2}] = e.diagnostics
      assert Exception.message(e) =~ "error[invalid-assignment]"
      assert e.message =~ "main.py:2:"

      assert {:ok, nil, "ran\n"} = ExMonty.eval("print('ran')", type_check: true)
      # without the option it runs (Python does not check annotations)
      assert {:ok, nil, "ran\n"} = ExMonty.eval(code)
    end

    test "eval declares inputs with the types of their values" do
      assert {:ok, 3, ""} = ExMonty.eval("len(xs)", inputs: %{"xs" => [1, 2, 3]}, type_check: true)

      assert {:error, %Exception{type: :type_check_error}} =
               ExMonty.eval("xs + 1", inputs: %{"xs" => [1, 2, 3]}, type_check: true)

      assert {:ok, "AB", ""} = ExMonty.eval("name.upper()", inputs: %{name: "ab"}, type_check: true)
    end

    test "compile refuses ill-typed code; declared input types are used" do
      assert {:error, %Exception{type: :type_check_error}} =
               ExMonty.compile("x.upper()", inputs: ["x"], type_check: [inputs: %{"x" => "int"}])

      assert {:ok, runner} =
               ExMonty.compile("x.upper()", inputs: ["x"], type_check: [inputs: %{"x" => "str"}])

      assert {:ok, "A", ""} = ExMonty.run(runner, %{"x" => "a"})
      # undeclared inputs are of any type
      assert {:ok, _} = ExMonty.compile("x.anything()", inputs: ["x"], type_check: true)
    end

    test "Sandbox.run declares functions from their @specs and never calls a refused program" do
      me = self()

      functions = %{
        "fetch" => &Tools.fetch/2,
        "add" => &Tools.add/2,
        "untyped" => &Tools.untyped/2,
        "notify" => fn args, _ -> send(me, {:notified, args}) && {:ok, nil} end
      }

      assert {:ok, "BODY OF A", ""} =
               Sandbox.run("notify('x')\nfetch('a').upper()", functions: functions, type_check: true)

      assert_received {:notified, ["x"]}

      assert {:error, %Exception{type: :type_check_error, diagnostics: [d]}} =
               Sandbox.run("notify('x')\nfetch(42)", functions: functions, type_check: true)

      assert d.rule == "invalid-argument-type"
      refute_received {:notified, _}

      # the spec's return type: add returns int
      assert {:error, %Exception{type: :type_check_error, diagnostics: [d]}} =
               Sandbox.run("add(1, 2).upper()", functions: functions, type_check: true)

      assert d.rule == "unresolved-attribute"
      assert {:ok, 3, ""} = Sandbox.run("add(1, 2)", functions: functions, type_check: true)
      # no spec: anything goes
      assert {:ok, nil, ""} = Sandbox.run("untyped(1, x=2)", functions: functions, type_check: true)
    end

    test "Sandbox.run: declared stubs win, async functions must be awaited, modules from values" do
      functions = %{"fetch" => {:async, fn [url], _ -> {:ok, "body of " <> url} end}}

      assert {:error, %Exception{type: :type_check_error, diagnostics: [d]}} =
               Sandbox.run("page = fetch('a')\npage.upper()",
                 functions: functions,
                 type_check: true
               )

      assert d.rule == "unresolved-attribute"

      assert {:ok, "BODY OF A", ""} =
               Sandbox.run("page = await fetch('a')\npage.upper()",
                 functions: functions,
                 type_check: [stubs: "async def fetch(url: str) -> str: ..."]
               )

      modules = %{"cfg" => %{"VERSION" => "1.2", "get" => fn [k], _ -> {:ok, k} end}}

      assert {:error, %Exception{type: :type_check_error}} =
               Sandbox.run("import cfg\ncfg.VERSION + 1", modules: modules, type_check: true)

      assert {:ok, "1.2!", ""} =
               Sandbox.run("import cfg\ncfg.VERSION + '!'", modules: modules, type_check: true)
    end
  end

  describe "host objects" do
    alias ExMonty.Dataclass

    test "their classes are declared from the values: fields, nested objects, host methods" do
      line = Dataclass.new("Line", start: Dataclass.new("Point", x: 1, y: 2), label: "a")
      functions = %{"Point.norm" => fn [_p], _ -> {:ok, 2.0} end}

      assert {:ok, 3.0, ""} =
               Sandbox.run("line.start.x + line.start.norm()",
                 inputs: %{"line" => line},
                 functions: functions,
                 type_check: true
               )

      # a misspelled field, a misspelled method, a wrong field type use
      for code <- ["line.start.z", "line.start.nrom()", "line.label + 1"] do
        assert {:error, %Exception{type: :type_check_error, diagnostics: [_ | _]}} =
                 Sandbox.run(code, inputs: %{"line" => line}, functions: functions, type_check: true),
               code
      end
    end

    test "lists of host objects and eval" do
      points = [Dataclass.new("Point", x: 1, y: 2), Dataclass.new("Point", x: 3, y: 4)]

      assert {:ok, 4, ""} =
               ExMonty.eval("sum(p.x for p in ps)", inputs: %{"ps" => points}, type_check: true)

      assert {:error, %Exception{type: :type_check_error}} =
               ExMonty.eval("ps[0].q", inputs: %{"ps" => points}, type_check: true)
    end

    test "sessions declare each class once, across feeds" do
      {:ok, s} =
        Session.start_link(
          type_check: true,
          inputs: %{"p" => Dataclass.new("Point", x: 1, y: 2)},
          functions: %{"Point.norm" => fn [_], _ -> {:ok, 5} end}
        )

      assert {:ok, 5, ""} = Session.eval(s, "p.norm()")

      assert {:ok, 4, ""} =
               Session.eval(s, "q.x + p.y", inputs: %{"q" => Dataclass.new("Point", x: 2, y: 0)})

      assert {:error, %Exception{type: :type_check_error}} = Session.eval(s, "q.nope")
      Session.stop(s)
    end
  end

  describe "sessions" do
    test "each snippet is checked against what earlier snippets defined" do
      {:ok, s} =
        Session.start_link(
          type_check: [stubs: @fetch_stub],
          functions: %{"fetch" => &Tools.fetch/2}
        )

      assert {:ok, nil, ""} =
               Session.eval(
                 s,
                 "import json\nx = 20\ndef add(a: int, b: int) -> int:\n    return a + b"
               )

      assert {:error, %Exception{type: :type_check_error, diagnostics: [d]}} =
               Session.eval(s, "add(x, 'a')")

      assert {d.rule, d.line} == {"invalid-argument-type", 1}
      assert {:ok, 42, ""} = Session.eval(s, "add(x, 22)")
      # imports of earlier snippets are visible
      assert {:ok, "[20]", ""} = Session.eval(s, "json.dumps([x])")
      assert {:ok, "body of a", ""} = Session.eval(s, "fetch('a')")

      assert {:error, %Exception{type: :type_check_error}} = Session.eval(s, "fetch(x)")

      # a snippet that failed at run time defines nothing for the checker
      assert {:error, %Exception{type: :zero_division_error}} = Session.eval(s, "y = 1 / 0")

      assert {:error,
              %Exception{type: :type_check_error, diagnostics: [%{rule: "unresolved-reference"}]}} =
               Session.eval(s, "y")

      # per-snippet inputs are declared by their values
      assert {:ok, 25, ""} = Session.eval(s, "x + z", inputs: %{"z" => 5})
      assert {:ok, 25, ""} = Session.eval(s, "x + z")
    end

    test "a refused first snippet leaves the session's inputs for the next" do
      {:ok, s} = Session.start_link(type_check: true, inputs: %{"n" => 2})
      assert {:error, %Exception{type: :type_check_error}} = Session.eval(s, "n.upper()")
      assert {:ok, 4, ""} = Session.eval(s, "n * 2")
    end

    test "a hibernated session keeps its declarations" do
      {:ok, s} = Session.start_link(type_check: true, hibernate_after: 0)
      assert {:ok, nil, ""} = Session.eval(s, "def f(a: int) -> int:\n    return a")
      Process.sleep(50)
      assert {:error, %Exception{type: :type_check_error}} = Session.eval(s, "f('a')")
      assert {:ok, 1, ""} = Session.eval(s, "f(1)")
    end

    test ":type_check with :load is refused" do
      assert_raise ArgumentError, ~r/:type_check cannot be combined with :load/, fn ->
        Session.start_link(type_check: true, load: "x")
      end
    end
  end
end
