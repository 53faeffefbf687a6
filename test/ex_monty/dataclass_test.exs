defmodule ExMonty.DataclassTest do
  use ExUnit.Case, async: true

  alias ExMonty.{Dataclass, Exception, FunctionCall, Sandbox}

  doctest ExMonty.Dataclass

  @point_class "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: int\n"

  defp point(x, y, opts \\ []), do: Dataclass.new("Point", [x: x, y: y], opts)

  describe "Python's dataclasses come out" do
    test "with fields in declaration order" do
      code = @point_class <> "P(y=2, x=1)"

      assert {:ok, %Dataclass{name: "P", fields: fields, field_names: ["x", "y"], frozen: false},
              ""} = ExMonty.eval(code)

      assert fields == %{"x" => 1, "y" => 2}
    end

    test "with more than 32 fields, order kept" do
      names = for i <- 40..1//-1, do: "f#{i}"
      body = Enum.map_join(names, "\n", &"    #{&1}: int = 0")
      code = "from dataclasses import dataclass\n@dataclass\nclass Wide:\n#{body}\nWide()"
      assert {:ok, %Dataclass{field_names: ^names, fields: fields}, ""} = ExMonty.eval(code)
      assert map_size(fields) == 40
    end

    test "sandbox class objects next to their instances do not crash the export" do
      assert {:ok, [{:class, "P"}, %Dataclass{name: "P"}], ""} =
               ExMonty.eval(@point_class <> "[P, P(1, 2)]")
    end
  end

  describe "host objects go into Python" do
    test "as inputs: fields, repr in field order, equality, type" do
      p = Dataclass.new("Point", y: 2, x: 1)

      code = """
      [p.x, p.y, repr(p), p == q, p == r, type(p).__name__, str(p)]
      """

      q = Dataclass.new("Point", y: 2, x: 1)
      r = Dataclass.new("Point", y: 2, x: 5)

      assert {:ok, [1, 2, "Point(y=2, x=1)", true, false, "Point", "Point(y=2, x=1)"], ""} =
               ExMonty.eval(code, inputs: %{"p" => p, "q" => q, "r" => r})
    end

    test "dataclasses.is_dataclass is true" do
      assert {:ok, true, ""} =
               ExMonty.eval("import dataclasses\ndataclasses.is_dataclass(p)",
                 inputs: %{"p" => point(1, 2)}
               )
    end

    test "a struct literal works, its fields sorted, without identity" do
      p = %Dataclass{name: "Cfg", fields: %{"b" => 2, "a" => 1}}

      assert {:ok, {"Cfg(a=1, b=2)", %Dataclass{id: nil, field_names: ["a", "b"]}}, ""} =
               ExMonty.eval("(repr(p), p)", inputs: %{"p" => p})
    end

    test "nested in lists, dicts and other dataclasses" do
      line = Dataclass.new("Line", start: point(0, 0), stop: point(3, 4))

      code = """
      [line.stop.x + line.stop.y, len(items), items[1].y, lookup["b"].x, repr(line)]
      """

      items = [point(1, 2), point(3, 4)]
      lookup = %{"a" => point(5, 6), "b" => point(7, 8)}

      assert {:ok, [7, 2, 4, 7, "Line(start=Point(x=0, y=0), stop=Point(x=3, y=4))"], ""} =
               ExMonty.eval(code, inputs: %{"line" => line, "items" => items, "lookup" => lookup})
    end

    test "they come back whole, nested, with their identities" do
      line = Dataclass.new("Line", start: point(0, 0), stop: point(3, 4))
      assert {:ok, [back], ""} = ExMonty.eval("[line]", inputs: %{"line" => line})
      assert back == line
    end

    test "a missing attribute is AttributeError" do
      assert {:error, %Exception{type: :attribute_error, message: message}} =
               ExMonty.eval("p.z", inputs: %{"p" => point(1, 2)})

      assert message =~ "z"

      assert {:ok, false, ""} = ExMonty.eval("hasattr(p, 'z')", inputs: %{"p" => point(1, 2)})
    end

    test "host objects are unhashable, like eq dataclasses" do
      assert {:error, %Exception{type: :type_error}} =
               ExMonty.eval("{p: 1}", inputs: %{"p" => point(1, 2)})
    end
  end

  describe "mutable and frozen" do
    test "assignment and setattr change the object, and the change comes back" do
      p = point(1, 2)

      assert {:ok, back, ""} =
               ExMonty.eval("p.x = 10\nsetattr(p, 'y', 20)\np.label = 'new'\np",
                 inputs: %{"p" => p}
               )

      assert back.fields == %{"x" => 10, "y" => 20, "label" => "new"}
      assert back.field_names == ["x", "y", "label"]
      assert Dataclass.same?(back, p)
      assert back.id == p.id
    end

    test "a frozen object refuses assignment with FrozenInstanceError, catchable" do
      p = point(1, 2, frozen: true)

      code = """
      import dataclasses
      try:
          p.x = 5
      except dataclasses.FrozenInstanceError as e:
          caught = str(e)
      try:
          setattr(p, 'new', 1)
      except dataclasses.FrozenInstanceError as e:
          caught2 = str(e)
      (caught, caught2, p)
      """

      assert {:ok, {"cannot assign to field 'x'", "cannot assign to field 'new'", back}, ""} =
               ExMonty.eval(code, inputs: %{"p" => p})

      assert back == p
      assert back.frozen
    end

    test "an uncaught FrozenInstanceError ends the run" do
      assert {:error, %Exception{python_type: "FrozenInstanceError"}} =
               ExMonty.eval("p.y = 1", inputs: %{"p" => point(1, 2, frozen: true)})
    end

    test "a frozen and a mutable class of the same name are distinct classes" do
      assert {:ok, [false, true], ""} =
               ExMonty.eval("[type(a) == type(b), type(a) == type(c)]",
                 inputs: %{
                   "a" => point(1, 2, frozen: true),
                   "b" => point(1, 2),
                   "c" => point(3, 4, frozen: true)
                 }
               )
    end
  end

  describe "identity" do
    test "the same object passed twice comes back as the same struct twice" do
      p = point(1, 2)

      assert {:ok, [a, b], ""} = ExMonty.eval("[p, q]", inputs: %{"p" => p, "q" => p})
      assert Dataclass.same?(a, p) and Dataclass.same?(b, p)
    end

    test "distinct objects with equal fields stay distinct" do
      assert {:ok, [a, b], ""} =
               ExMonty.eval("[p, q]", inputs: %{"p" => point(1, 2), "q" => point(1, 2)})

      refute Dataclass.same?(a, b)
    end

    test "a Python dataclass handed back while paused is the very same object" do
      code = @point_class <> "p = P(1, 2)\nq = echo(p)\n(q is p, q)"

      assert {:ok, {true, %Dataclass{name: "P", fields: %{"x" => 1, "y" => 2}}}, ""} =
               Sandbox.run(code, functions: %{"echo" => fn [p], _ -> {:ok, p} end})
    end

    test "a Python dataclass sent into a later run is a host object with its fields" do
      {:ok, p, ""} = ExMonty.eval(@point_class <> "P(1, 2)")

      assert {:ok, [3, "P(x=1, y=2)"], ""} =
               ExMonty.eval("[p.x + p.y, repr(p)]", inputs: %{"p" => p})
    end
  end

  describe "from every direction" do
    test "a function result" do
      assert {:ok, 3, ""} =
               Sandbox.run("u = get_user(1)\nu.age + 1",
                 functions: %{
                   "get_user" => fn [id], _ -> {:ok, Dataclass.new("User", id: id, age: 2)} end
                 }
               )
    end

    test "a resume answer" do
      {:ok, runner} = ExMonty.compile("u = fetch()\nu.name.upper()")
      {:ok, {:function_call, %FunctionCall{name: "fetch"}, snapshot, ""}} = ExMonty.start(runner)

      assert {:ok, {:complete, "ADA", ""}} =
               ExMonty.resume(snapshot, {:ok, Dataclass.new("User", name: "ada")})
    end

    test "a session feed, kept across feeds" do
      {:ok, session} = ExMonty.Session.start_link()
      u = Dataclass.new("User", name: "ada", visits: 1)
      assert {:ok, nil, ""} = ExMonty.Session.eval(session, "user = u", inputs: %{"u" => u})
      assert {:ok, nil, ""} = ExMonty.Session.eval(session, "user.visits += 1")
      assert {:ok, back, ""} = ExMonty.Session.eval(session, "user")
      assert back.fields["visits"] == 2 and Dataclass.same?(back, u)
      ExMonty.Session.stop(session)
    end
  end

  describe "methods run on the host" do
    test "a method call pauses with method_call and the object first" do
      {:ok, runner} = ExMonty.compile("p.x = 7\np.scale(2, around=0)", inputs: ["p"])
      p = point(1, 2)

      assert {:ok, {:function_call, call, snapshot, ""}} = ExMonty.start(runner, %{"p" => p})

      assert %FunctionCall{name: "scale", method_call: true, args: [self, 2], kwargs: kwargs} = call

      assert kwargs == %{"around" => 0}
      assert Dataclass.same?(self, p) and self.fields["x"] == 7
      assert {:ok, {:complete, 99, ""}} = ExMonty.resume(snapshot, {:ok, 99})
    end

    test "Sandbox dispatches \"Class.method\" before a bare name" do
      functions = %{
        "Point.norm" => fn [p], _ -> {:ok, p.fields["x"] + p.fields["y"]} end,
        "norm" => fn _, _ -> {:ok, :wrong} end,
        "shift" => fn [p, dx], %{"dy" => dy} -> {:ok, [p.fields["x"] + dx, p.fields["y"] + dy]} end
      }

      assert {:ok, [3, [11, 22]], ""} =
               Sandbox.run("[p.norm(), p.shift(10, dy=20)]",
                 inputs: %{"p" => point(1, 2)},
                 functions: functions
               )
    end

    test "in a session, across feeds" do
      {:ok, s} =
        ExMonty.Session.start_link(
          functions: %{"Cart.total" => fn [c], _ -> {:ok, Enum.sum(c.fields["prices"])} end}
        )

      cart = Dataclass.new("Cart", prices: [1, 2])
      assert {:ok, nil, ""} = ExMonty.Session.eval(s, "cart = c", inputs: %{"c" => cart})
      assert {:ok, nil, ""} = ExMonty.Session.eval(s, "cart.prices.append(10)")
      assert {:ok, 13, ""} = ExMonty.Session.eval(s, "cart.total()")
      ExMonty.Session.stop(s)
    end

    test "async methods" do
      functions = %{"Point.slow" => {:async, fn [p], _ -> {:ok, p.fields["x"] * 10} end}}

      code =
        "import asyncio\nasync def main():\n    return await asyncio.gather(p.slow(), q.slow())\nawait main()"

      assert {:ok, [10, 30], ""} =
               Sandbox.run(code,
                 inputs: %{"p" => point(1, 2), "q" => point(3, 4)},
                 functions: functions
               )
    end

    test "a method's exception is catchable in Python" do
      functions = %{"Point.check" => fn _, _ -> {:error, :value_error, "bad point"} end}

      code = "try:\n    p.check()\nexcept ValueError as e:\n    r = 'caught: ' + str(e)\nr"

      assert {:ok, "caught: bad point", ""} =
               Sandbox.run(code, inputs: %{"p" => point(1, 2)}, functions: functions)
    end

    test "a method nobody serves is AttributeError, catchable" do
      assert {:error, %Exception{type: :attribute_error, message: message}} =
               Sandbox.run("p.fly()", inputs: %{"p" => point(1, 2)})

      assert message =~ "'Point' object has no attribute 'fly'"

      assert {:ok, "no", ""} =
               Sandbox.run("try:\n    p.fly()\nexcept AttributeError:\n    r = 'no'\nr",
                 inputs: %{"p" => point(1, 2)}
               )
    end

    test "calling the object or its class is TypeError unless served" do
      assert {:error, %Exception{type: :type_error, message: "'Point' object is not callable"}} =
               Sandbox.run("p()", inputs: %{"p" => point(1, 2)})

      assert {:error, %Exception{type: :type_error}} =
               Sandbox.run("type(p)(1, 2)", inputs: %{"p" => point(1, 2)})

      assert {:ok, "called with 5", ""} =
               Sandbox.run("p(5)",
                 inputs: %{"p" => point(1, 2)},
                 functions: %{"Point.__call__" => fn [_p, x], _ -> {:ok, "called with #{x}"} end}
               )
    end

    defmodule Geometry do
      @behaviour ExMonty.Sandbox
      alias ExMonty.Dataclass

      @impl true
      def handle_function("Point.norm", [%Dataclass{fields: %{"x" => x, "y" => y}}], _),
        do: {:ok, :math.sqrt(x * x + y * y)}

      def handle_function("make_point", [x, y], _), do: {:ok, Dataclass.new("Point", x: x, y: y)}
      def handle_function(name, _, _), do: {:error, :attribute_error, "no #{name}"}
    end

    test "a handler module receives \"Class.method\"" do
      assert {:ok, 5.0, ""} = Sandbox.run("make_point(3, 4).norm()", handler: Geometry)
    end

    test "calling an eager attribute that is not callable is TypeError" do
      assert {:error, %Exception{type: :type_error}} =
               Sandbox.run("p.x()", inputs: %{"p" => point(1, 2)})
    end
  end

  describe "dumps" do
    test "a paused run holding host objects dumps, loads and resumes" do
      p = point(1, 2, frozen: true)
      code = "m = p.norm()\n[m, p.x, repr(p), p]"
      {:ok, runner} = ExMonty.compile(code, inputs: ["p"])

      {:ok, {:function_call, %FunctionCall{method_call: true}, snapshot, ""}} =
        ExMonty.start(runner, %{"p" => p})

      {:ok, bytes} = ExMonty.dump_snapshot(snapshot)
      {:ok, loaded} = ExMonty.load_snapshot(bytes)

      assert {:ok, {:complete, [5.0, 1, "Point(x=1, y=2)", back], ""}} =
               ExMonty.resume(loaded, {:ok, 5.0})

      assert back == p
    end

    test "a session holding a host object dumps and loads" do
      {:ok, s} = ExMonty.Session.start_link()
      p = point(1, 2)
      {:ok, nil, ""} = ExMonty.Session.eval(s, "keep = p", inputs: %{"p" => p})
      {:ok, bytes} = ExMonty.Session.dump(s)
      {:ok, s2} = ExMonty.Session.start_link(load: bytes)
      assert {:ok, %Dataclass{} = back, ""} = ExMonty.Session.eval(s2, "keep.x = 9\nkeep")
      assert back.fields["x"] == 9 and Dataclass.same?(back, p)
      ExMonty.Session.stop(s)
      ExMonty.Session.stop(s2)
    end
  end

  describe "hostile structs end in clear errors" do
    defp refused(value) do
      assert {:error, %Exception{type: :invalid_input, message: message}} =
               ExMonty.eval("x", inputs: %{"x" => value})

      message
    end

    test "wrong field types" do
      assert refused(%Dataclass{name: "P", fields: [1, 2]}) =~ ":fields must be a map"
      assert refused(%Dataclass{name: :p, fields: %{}}) =~ "must be a binary"
      assert refused(%Dataclass{name: "not a name", fields: %{}}) =~ "is not a class name"
      assert refused(%Dataclass{name: "P", fields: %{1 => 2}}) =~ "must be a binary"
      assert refused(%Dataclass{name: "P", fields: %{"a b" => 2}}) =~ "is not a field name"

      assert refused(%Dataclass{name: "P", fields: %{}, frozen: :yes}) =~
               ":frozen must be true or false"

      assert refused(%Dataclass{name: "P", fields: %{}, id: "nope"}) =~ ":id must be nil or a UUID"

      assert refused(%Dataclass{name: "P", fields: %{"a" => 1}, field_names: ["b"]}) =~
               ":field_names names \"b\""

      assert refused(%Dataclass{name: "P", fields: %{"a" => 1}, field_names: ["a", "a"]}) =~
               ":field_names must be nil or a list of the keys"

      assert refused(%Dataclass{name: "P", fields: %{"a" => self()}}) =~ ~s(inputs["x"]["a"])
      assert refused(Map.delete(%Dataclass{name: "P"}, :frozen)) =~ "lacks its :frozen field"
    end

    test "a field path is named in the error" do
      line =
        Dataclass.new("Line",
          start: point(0, 0),
          stop: %Dataclass{name: "P", fields: %{"x" => make_ref()}}
        )

      assert refused([line]) =~ ~s(inputs["x"][0]["stop"]["x"])
    end

    test "100k fields go in and come out, or the limit says no" do
      fields = Map.new(1..100_000, &{"f#{&1}", &1})
      big = %Dataclass{name: "Big", fields: fields}

      assert {:ok, {100_001, back}, ""} =
               ExMonty.eval("(b.f1 + b.f100000, b)", inputs: %{"b" => big})

      assert back.fields == fields and length(back.field_names) == 100_000

      assert {:error, %Exception{type: :memory_error}} =
               ExMonty.eval("b", inputs: %{"b" => big}, limits: %{max_memory: 1_000_000})
    end

    test "the same object nested inside itself (a cycle by identity) is fine" do
      inner = point(1, 2)
      outer = %{inner | fields: Map.put(inner.fields, "me", inner), field_names: ["x", "y", "me"]}

      assert {:ok, "Point(x=1, y=2, me=Point(x=1, y=2))", ""} =
               ExMonty.eval("repr(p)", inputs: %{"p" => outer})
    end

    test "deeply nested host objects are refused or round-trip, never crash" do
      deep =
        Enum.reduce(1..5_000, nil, fn i, acc ->
          %Dataclass{name: "N", fields: %{"i" => i, "next" => acc}}
        end)

      case ExMonty.eval("n", inputs: %{"n" => deep}) do
        {:ok, back, ""} -> assert back.fields["i"] == 5_000
        {:error, %Exception{type: type}} -> assert type in [:recursion_error, :invalid_input]
      end

      assert {:ok, true, ""} = ExMonty.eval("1 == 1")
    end
  end

  describe "stub/2" do
    test "declares nested classes first, once, with inferred types" do
      line =
        Dataclass.new("Line", start: point(0, 0), stop: point(1, 1), tags: ["a"], at: ~D[2024-01-01])

      assert Dataclass.stub([line, point(5, 5)]) == """
             import datetime
             import decimal
             import pathlib
             from dataclasses import dataclass
             from typing import Any

             @dataclass
             class Point:
                 x: int
                 y: int

             @dataclass
             class Line:
                 start: Point
                 stop: Point
                 tags: list[str]
                 at: datetime.date
             """
    end

    test "nested: false declares only the classes given" do
      line = Dataclass.new("Line", start: point(0, 0))
      stub = Dataclass.stub(line, nested: false)
      assert stub =~ "class Line:" and stub =~ "start: Point"
      refute stub =~ "class Point:"
    end

    test "the stub is valid Python that defines the classes" do
      stub = Dataclass.stub(Dataclass.new("Empty", []))
      assert {:ok, "Empty()", ""} = ExMonty.eval(stub <> "\nrepr(Empty())")
    end
  end

  describe "new/3" do
    test "validates its arguments" do
      assert_raise ArgumentError, ~r/field names repeat/, fn ->
        Dataclass.new("P", [{"a", 1}, {:a, 2}])
      end

      assert_raise ArgumentError, ~r/:frozen must be a boolean/, fn ->
        Dataclass.new("P", [], frozen: 1)
      end

      assert_raise ArgumentError, ~r/unknown keys/, fn -> Dataclass.new("P", [], froze: true) end
      assert_raise ArgumentError, ~r/expects a class name/, fn -> Dataclass.new(:p, []) end
    end

    test "ids are UUIDs Monty accepts, distinct per object" do
      ids = for _ <- 1..100, do: Dataclass.new("P", []).id
      assert length(Enum.uniq(ids)) == 100

      assert Enum.all?(
               ids,
               &Regex.match?(
                 ~r/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
                 &1
               )
             )
    end
  end
end
