defmodule ExMonty.ValuesTest do
  use ExUnit.Case, async: true

  # {Python expression, Elixir value}: every row is checked in both directions —
  # Python -> Elixir (eval of the expression) and Elixir -> Python (the value
  # goes in as an input and must equal the expression inside Python).
  @both_ways [
    {"None", nil},
    {"True", true},
    {"False", false},
    {"0", 0},
    {"-42", -42},
    {"2**63 - 1", 9_223_372_036_854_775_807},
    {"2**200", 1_606_938_044_258_990_275_541_962_092_341_162_602_522_202_993_782_792_835_301_376},
    {"-(2**100)", -1_267_650_600_228_229_401_496_703_205_376},
    {"1.5", 1.5},
    {"-0.25", -0.25},
    {"float('inf')", :infinity},
    {"float('-inf')", :neg_infinity},
    {"'héllo ✓'", "héllo ✓"},
    {"''", ""},
    {"b'\\x00\\xff'", {:bytes, <<0, 255>>}},
    {"[1, 'a', None]", [1, "a", nil]},
    {"[]", []},
    {"(1, 2)", {1, 2}},
    {"()", {}},
    {"{'a': 1}", %{"a" => 1}},
    {"{(1, 2): 'tuple key', 3: 'int key', 1.5: 'float key'}",
     %{{1, 2} => "tuple key", 3 => "int key", 1.5 => "float key"}},
    {"{1, 2, 3}", MapSet.new([1, 2, 3])},
    {"...", :ellipsis},
    {"pathlib.Path('/tmp/file')", {:path, "/tmp/file"}},
    {"datetime.date(2024, 2, 29)", ~D[2024-02-29]},
    {"datetime.datetime(2024, 1, 2, 3, 4, 5, 6)", ~N[2024-01-02 03:04:05.000006]},
    {"datetime.time(13, 14, 15)", ~T[13:14:15]},
    {"datetime.time(13, 14, 15, 250000)", ~T[13:14:15.250]},
    {"datetime.datetime(2024, 1, 2, 3, 4, 5)", ~N[2024-01-02 03:04:05]},
    {"datetime.timedelta(days=1, seconds=2, microseconds=3)", {:timedelta, 1, 2, 3}},
    {"decimal.Decimal('1.20')", {:decimal, "1.20"}},
    {"complex(1, 2)", {:complex, 1.0, 2.0}}
  ]

  @prelude "import datetime\nimport decimal\nimport pathlib\n"

  describe "Python -> Elixir" do
    for {expr, value} <- @both_ways do
      test "#{expr}" do
        assert {:ok, result, ""} = ExMonty.eval(@prelude <> unquote(expr))
        assert result === unquote(Macro.escape(value))
      end
    end

    test "nan" do
      assert {:ok, :nan, ""} = ExMonty.eval("float('nan')")
    end

    test "frozenset, and a frozenset as a dict key" do
      assert {:ok, set, ""} = ExMonty.eval("frozenset({1, 2})")
      assert set == MapSet.new([1, 2])
      assert {:ok, %{} = map, ""} = ExMonty.eval("{frozenset({1}): 'x'}")
      assert map == %{MapSet.new([1]) => "x"}
    end

    test "named tuple keeps field order" do
      code = "from collections import namedtuple\nP = namedtuple('P', ['y', 'x'])\nP(1, 2)"
      assert {:ok, {:named_tuple, "P", [{"y", 1}, {"x", 2}]}, ""} = ExMonty.eval(code)
    end

    test "dataclass" do
      code =
        "from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int\n    y: int\nPoint(1, 2)"

      assert {:ok, %ExMonty.Dataclass{name: "Point", fields: %{"x" => 1, "y" => 2}}, ""} =
               ExMonty.eval(code)
    end

    test "exception as a value" do
      assert {:ok, %ExMonty.Exception{type: :value_error, message: "bad"}, ""} =
               ExMonty.eval("ValueError('bad')")
    end

    test "aware datetime" do
      code = "import datetime\ndatetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)"
      assert {:ok, %DateTime{} = dt, ""} = ExMonty.eval(code)
      assert DateTime.to_iso8601(dt) == "2024-01-02T03:04:05Z"

      code =
        "import datetime\ndatetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))"

      assert {:ok, %DateTime{utc_offset: 7200}, ""} = ExMonty.eval(code)
    end

    test "other values keep a natural tagged form" do
      assert {:ok, {:builtin_function, "len"}, ""} = ExMonty.eval("len")
      # A function defined in Python has no Elixir form: Python's repr.
      assert {:ok, {:repr, "<function 'f'" <> _}, ""} = ExMonty.eval("def f():\n    pass\nf")
      assert {:ok, {:type, "int"}, ""} = ExMonty.eval("int")

      assert {:ok, {:timezone, 3600, _}, ""} =
               ExMonty.eval("import datetime\ndatetime.timezone(datetime.timedelta(hours=1))")

      assert {:ok, {:cycle, _} = _, ""} = ExMonty.eval("x = []\nx.append(x)\nx") |> first_item()
    end

    test "arbitrary precision: a 1 MB decimal number arrives exactly" do
      {:ok, value, ""} = ExMonty.eval("10**1000000 + 7", limits: %{max_duration_secs: 30.0})
      assert rem(value, 10) == 7
      assert byte_size(Integer.to_string(value)) == 1_000_001
    end

    test "wide containers" do
      assert {:ok, list, ""} = ExMonty.eval("list(range(1000000))")
      assert length(list) == 1_000_000 and List.last(list) == 999_999
      assert {:ok, map, ""} = ExMonty.eval("{i: str(i) for i in range(100000)}")
      assert map_size(map) == 100_000 and map[99_999] == "99999"
    end

    test "large dicts and sets, also as call arguments" do
      assert {:ok, map, ""} = ExMonty.eval("{i: i for i in range(1000)}")
      assert map_size(map) == 1000
      assert {:ok, set, ""} = ExMonty.eval("set(range(1000))")
      assert MapSet.size(set) == 1000
      {:ok, runner} = ExMonty.compile("f(d, **{('k%d' % i): i for i in range(40)})", inputs: ["d"])
      big = Map.new(1..100, &{&1, &1})
      assert {:ok, {:function_call, call, _, _}} = ExMonty.start(runner, %{"d" => big})
      assert call.args == [big]
      assert map_size(call.kwargs) == 40
    end

    test "a large string" do
      assert {:ok, s, ""} = ExMonty.eval("'ab' * 5_000_000")
      assert byte_size(s) == 10_000_000
    end

    defp first_item({:ok, [item], out}), do: {:ok, item, out}
    defp first_item(other), do: other
  end

  test "dates and times go in and come back identical (===), precision included" do
    values = [
      ~N[2024-01-02 03:04:05],
      ~N[2024-01-02 03:04:05.123],
      ~N[2024-01-02 03:04:05.123456],
      ~T[13:14:15],
      ~U[2024-01-02 03:04:05Z],
      DateTime.truncate(~U[2024-01-02 03:04:05.123456Z], :second),
      DateTime.truncate(~U[2024-01-02 03:04:05.123456Z], :millisecond),
      ~D[2024-02-29]
    ]

    for value <- values do
      assert {:ok, back, ""} = ExMonty.eval("x", inputs: %{"x" => value})
      assert back === value, "#{inspect(value)} came back as #{inspect(back)}"
    end

    # Precision is read off the digits: a millisecond value whose milliseconds
    # are 0 comes back as whole seconds (equal, not identical).
    assert {:ok, back, ""} = ExMonty.eval("x", inputs: %{"x" => ~U[2024-01-02 03:04:05.000Z]})

    assert back === ~U[2024-01-02 03:04:05Z] and
             DateTime.compare(back, ~U[2024-01-02 03:04:05.000Z]) == :eq
  end

  describe "Elixir -> Python" do
    for {expr, value} <- @both_ways, expr != "float('nan')" do
      test "#{expr}" do
        assert {:ok, true, ""} =
                 ExMonty.eval(
                   @prelude <> "x == (#{unquote(expr)}) and type(x) == type(#{unquote(expr)})",
                   inputs: %{"x" => unquote(Macro.escape(value))}
                 )
      end
    end

    test "builtin types and functions go back in" do
      assert {:ok, 3, ""} =
               ExMonty.eval("f([1, 2, 3])", inputs: %{"f" => {:builtin_function, "len"}})

      assert {:ok, "5", ""} = ExMonty.eval("t(5)", inputs: %{"t" => {:type, "str"}})

      assert {:error, %{type: :invalid_input}} =
               ExMonty.eval("1", inputs: %{"t" => {:type, "nope"}})
    end

    test "nan goes in as a float nan" do
      assert {:ok, true, ""} = ExMonty.eval("x != x", inputs: %{"x" => :nan})
    end

    test "a MapSet as a dict key or set element becomes a frozenset" do
      assert {:ok, "frozenset", ""} =
               ExMonty.eval("type(list(x.keys())[0]).__name__",
                 inputs: %{"x" => %{MapSet.new([1]) => 2}}
               )

      assert {:ok, "set", ""} = ExMonty.eval("type(x).__name__", inputs: %{"x" => MapSet.new([1])})
    end

    test "named tuples go in with their fields" do
      assert {:ok, {2, 1}, ""} =
               ExMonty.eval("(x.b, x.a)",
                 inputs: %{"x" => {:named_tuple, "T", [{"a", 1}, {"b", 2}]}}
               )
    end

    test "host functions go in by name" do
      {:ok, runner} = ExMonty.compile("f(3)", inputs: ["f"])

      assert {:ok, {:function_call, %{name: "tool", args: [3]}, _, _}} =
               ExMonty.start(runner, %{"f" => {:function, "tool"}})
    end

    test "a 1 MB integer and a 100 MB string go in" do
      big = Integer.pow(10, 1_000_000) + 3
      assert {:ok, 3, ""} = ExMonty.eval("x % 10", inputs: %{"x" => big})

      s = String.duplicate("x", 100_000_000)

      assert {:ok, 100_000_000, ""} =
               ExMonty.eval("len(x)", inputs: %{"x" => s}, limits: %{max_memory: 512 * 1024 * 1024})
    end

    test "wide inputs: a million items convert, ten million convert or fail cleanly" do
      assert {:ok, 1_000_000, ""} =
               ExMonty.eval("len(x)", inputs: %{"x" => Enum.to_list(1..1_000_000)})

      result =
        ExMonty.eval("len(x)",
          inputs: %{"x" => Enum.to_list(1..10_000_000)},
          limits: %{max_memory: 2 * 1024 * 1024 * 1024, max_duration_secs: 60.0}
        )

      # The wasm32 guest has 4 GiB of address space: past what fits, a clear error.
      assert result == {:ok, 10_000_000, ""} or
               match?({:error, %ExMonty.Exception{type: :memory_error}}, result)

      assert {:ok, 2, ""} = ExMonty.eval("1 + 1")
    end
  end

  describe "terms with no Python meaning" do
    for {label, term, fragment} <- [
          {"pid", quote(do: self()), "#PID"},
          {"reference", quote(do: make_ref()), "#Reference"},
          {"function", quote(do: fn -> :ok end), "#Function"},
          {"improper list", quote(do: [1 | 2]), "improper list"},
          {"atom", quote(do: :hello), ":hello"},
          {"invalid UTF-8", quote(do: <<0xFF>>), "not valid UTF-8"}
        ] do
      test "#{label} is refused with its path" do
        input = %{"x" => [1, 2, %{"k" => unquote(term)}]}

        assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
                 ExMonty.eval("x", inputs: input)

        assert message =~ unquote(fragment)
        assert message =~ ~s(inputs["x"][2]["k"])
      end
    end

    test "a refused top-level input is named by its input" do
      for term <- [<<0xFF>>, <<"ok", 0xFF>>, String.duplicate("é", 600) <> <<0xFF>>, :hello] do
        assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
                 ExMonty.eval("x", inputs: %{"x" => term})

        assert message =~ ~s(inputs["x"])
      end
    end

    test "what a refusal shows of an input is bounded by the message, not by the input" do
      refused = fn input ->
        assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
                 ExMonty.eval("x", inputs: %{"x" => input})

        assert byte_size(message) < 400
        message
      end

      # 16 MiB that are not UTF-8: its first bytes, as Elixir shows them.
      message = refused.(:binary.copy(<<0xFF, 0>>, 8 * 1024 * 1024))
      assert message =~ "binary <<255, 0, 255, 0, 255, "
      assert message =~ "... is not valid UTF-8"

      # A string cut inside a character is shown as bytes, not as the text
      # before the cut.
      assert refused.(<<"abc", 0xE2, 0x82>>) =~ "binary <<97, 98, 99, 226, 130>> is not"

      # A struct holding a million-element list, walked only as far as shown.
      message = refused.(%URI{path: List.duplicate(7, 1_000_000)})
      assert message =~ "struct %URI{authority: nil, fragment: nil, host: nil, path: [7, 7, 7"

      # A huge integer in a key is described by its size, not printed.
      key = {"k", Bitwise.bsl(1, 200_000)}
      message = refused.(%{key => self()})
      assert message =~ ~s|inputs["x"][{"k", (an integer of more than 256 bits)}]|
    end

    test "scalar inputs arrive whole, on either side of the direct conversion" do
      # Integers up to 64 bits, floats and strings under 1 KiB are converted
      # directly; larger ones take the general path. Both give the same values.
      {:ok, runner} = ExMonty.compile("(type(x).__name__, x)", inputs: ["x"])

      for value <- [
            0,
            -1,
            9_223_372_036_854_775_807,
            -9_223_372_036_854_775_808,
            9_223_372_036_854_775_808,
            -9_223_372_036_854_775_809,
            0.0,
            -0.0,
            1.0e308,
            5.0e-324,
            "",
            "héllo",
            String.duplicate("a", 1023),
            String.duplicate("a", 1024),
            String.duplicate("ü", 700)
          ] do
        type = if is_integer(value), do: "int", else: if(is_float(value), do: "float", else: "str")
        assert {:ok, {^type, returned}, ""} = ExMonty.run(runner, %{"x" => value})
        assert returned === value
      end
    end

    test "keys that collide in Python are an error, not an overwrite" do
      for map <- [
            %{1 => :a, 1.0 => :b},
            %{1 => :a, true => :b},
            %{{1, 2} => :a, {1.0, 2} => :b},
            %{{1, nil} => :a, {1.0, nil} => :b},
            %{{1, {:bytes, "k"}} => :a, {true, {:bytes, "k"}} => :b}
          ] do
        map = Map.new(map, fn {k, v} -> {k, Atom.to_string(v)} end)

        assert {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
                 ExMonty.eval("x", inputs: %{"x" => map})

        assert message =~ "collide"
      end

      assert {:error, %{message: message}} =
               ExMonty.eval("x", inputs: %{"x" => MapSet.new([1, 1.0])})

      assert message =~ "collide"
    end

    test "the answer to a call is checked the same way" do
      {:ok, runner} = ExMonty.compile("f()")
      {:ok, {:function_call, _, snapshot, _}} = ExMonty.start(runner)

      assert {:error, %{type: :invalid_input, message: message}} =
               ExMonty.resume(snapshot, {:ok, %{"a" => [self()]}})

      assert message =~ ~s(result["a"][0])
    end
  end

  describe "round trip" do
    test "property: every generated value comes back unchanged" do
      property =
        :proper.forall(value_gen(3), fn value ->
          case ExMonty.eval("x", inputs: %{"x" => value}) do
            {:ok, back, ""} -> back === value or (is_float(value) and back == value)
            other -> IO.inspect({value, other}, label: "round trip failed") && false
          end
        end)

      assert :proper.quickcheck(property, [{:numtests, 300}, :quiet, {:to_file, :user}]) == true
    end

    defp leaf_gen do
      :proper_types.oneof([
        :proper_types.integer(),
        :proper_types.bind(
          :proper_types.integer(64, 200),
          fn bits -> Integer.pow(2, bits) + 1 end,
          false
        ),
        :proper_types.float(),
        :proper_types.bind(
          :proper_types.list(:proper_types.range(32, 0x2FFF)),
          &List.to_string/1,
          false
        ),
        :proper_types.bind(:proper_types.binary(), fn b -> {:bytes, b} end, false),
        :proper_types.oneof([nil, true, false, :ellipsis, :infinity, :neg_infinity])
      ])
    end

    defp value_gen(0), do: leaf_gen()

    defp value_gen(depth) do
      inner = value_gen(depth - 1)

      :proper_types.frequency([
        {4, leaf_gen()},
        {1, :proper_types.list(inner)},
        {1, :proper_types.bind(:proper_types.list(inner), &List.to_tuple/1, false)},
        {1,
         :proper_types.bind(
           :proper_types.list(
             {:proper_types.bind(:proper_types.binary(4), &Base.encode16/1, false), inner}
           ),
           &Map.new/1,
           false
         )},
        {1, :proper_types.bind(:proper_types.list(:proper_types.integer()), &MapSet.new/1, false)}
      ])
    end
  end

  describe "differential: repr against CPython" do
    @exprs [
      "[1, 2.5, 'a', None, True]",
      "(1, (2, (3,)))",
      "{'a': [1, {'b': (2, 3)}], 'c': None}",
      "b'\\x00abc\\xff'",
      "2**100",
      "-0.0",
      "1e300 * 10",
      "'quote\\'s and \"double\" and \\n newline'",
      "{1}",
      "...",
      "[[], (), {}]"
    ]

    test "values that went through Elixir print like CPython's" do
      python = System.find_executable("python3") || flunk("python3 is needed for this test")

      for expr <- @exprs do
        {cpython, 0} = System.cmd(python, ["-c", "print(repr(#{expr}))"])
        assert {:ok, value, ""} = ExMonty.eval(expr)
        assert {:ok, repr, ""} = ExMonty.eval("repr(x)", inputs: %{"x" => value})
        assert repr == String.trim_trailing(cpython, "\n"), "repr of #{expr}"
      end
    end
  end
end
