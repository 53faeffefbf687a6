defmodule ExMonty.ReprTest do
  use ExUnit.Case, async: true

  alias ExMonty.Repr

  doctest ExMonty.Repr

  # Each expression is evaluated by ExMonty, rendered by ExMonty.Repr and
  # compared with what CPython prints for repr() of the same expression.
  @exprs [
    "None",
    "[True, False]",
    "2**100",
    "-7",
    "1.0",
    "-0.0",
    "0.1",
    "1/3",
    "1e16",
    "1e15",
    "123456789012345680.0",
    "1e-4",
    "1e-5",
    "2.5e-300",
    "1e300 * 10",
    "-1e300 * 10",
    "float('nan')",
    "'plain'",
    "\"it's\"",
    "'say \"hi\"'",
    "'both \\' and \"'",
    "'tab\\t nl\\n cr\\r bs\\\\ bell\\x07 del\\x7f'",
    "'caf\\u00e9 \\u4e2d \\U0001F600'",
    "'nbsp\\xa0 shy\\xad c1\\x85 zwsp\\u200b ls\\u2028 bom\\ufeff pua\\ue000'",
    "b''",
    "b'\\x00abc\\xff'",
    "b\"it's\"",
    "b'\\t\\n\\\\'",
    "[]",
    "()",
    "(1,)",
    "(1, (2, (3,)))",
    "{}",
    "{'a': [1, {'b': (2, 3)}]}",
    "{1, 2, 3}",
    "set()",
    "...",
    "NotImplemented",
    "[[], (), {}]",
    "complex(1, 2)",
    "complex(0, 1)",
    "complex(1.5, -2.25)",
    "complex(-1, 0)",
    "complex(1e20, 1)",
    "ValueError('bad')",
    "KeyError()",
    "len",
    "int"
  ]

  @datetime_exprs [
    "datetime.date(2024, 1, 2)",
    "datetime.datetime(2024, 1, 2)",
    "datetime.datetime(2024, 1, 2, 3, 4, 5)",
    "datetime.datetime(2024, 1, 2, 3, 4, 0, 7)",
    "datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)",
    "datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))",
    "datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=1), 'CET'))",
    "datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone(datetime.timedelta(hours=-3, minutes=-30)))",
    "datetime.time(10, 30)",
    "datetime.time(10, 30, 1, 5)",
    "datetime.timedelta(0)",
    "datetime.timedelta(days=1, seconds=5, microseconds=7)",
    "datetime.timedelta(seconds=-1)",
    "datetime.timezone.utc",
    "datetime.timezone(datetime.timedelta(hours=-5))",
    "datetime.timezone(datetime.timedelta(hours=1), 'CET')"
  ]

  setup_all do
    python = System.find_executable("python3") || raise "python3 is needed for this test"
    {:ok, python: python}
  end

  # CPython's repr of each expression (one line each: a repr holds no raw
  # newline), from one python3 run.
  defp cpython(python, prelude, exprs) do
    script = prelude <> Enum.map_join(exprs, "", &"print(repr(#{&1}))\n")
    {out, 0} = System.cmd(python, ["-c", script], env: [{"PYTHONIOENCODING", "utf-8"}])
    lines = String.split(out, "\n", trim: true)
    assert length(lines) == length(exprs)
    lines
  end

  test "renders values like CPython's repr", %{python: python} do
    expected = cpython(python, "", @exprs)

    for {expr, cpython} <- Enum.zip(@exprs, expected) do
      assert {:ok, value, ""} = ExMonty.eval(expr), expr
      assert Repr.repr(value) == cpython, "repr of #{expr}"
    end
  end

  test "renders dates, times and timezones like CPython's repr", %{python: python} do
    expected = cpython(python, "import datetime\n", @datetime_exprs)

    for {expr, cpython} <- Enum.zip(@datetime_exprs, expected) do
      assert {:ok, value, ""} = ExMonty.eval("import datetime\n" <> expr), expr
      assert Repr.repr(value) == cpython, "repr of #{expr}"
    end
  end

  test "other forms" do
    assert Repr.repr({:path, "/a'b"}) == ~s[PosixPath("/a'b")]
    assert Repr.repr({:decimal, "1.20"}) == "Decimal('1.20')"
    assert Repr.repr({:named_tuple, "T", [{"a", 1}]}) == "T(a=1)"
    assert Repr.repr({:cycle, "[...]"}) == "[...]"
    assert Repr.repr({:class, "Foo"}) == "<class 'Foo'>"
    assert Repr.repr({:instance, "Foo", %{}}) == "<Foo object>"
    assert Repr.repr({:module, "math", %{}}) == "<module 'math'>"

    assert Repr.repr({:file, "/x", "r", 0}) ==
             "<_io.TextIOWrapper name='/x' mode='r' encoding='utf-8'>"

    assert Repr.repr({:file, "/x", "rb", 0}) == "<_io.BufferedReader name='/x'>"

    assert Repr.repr({:time, ~T[10:30:00], {:timezone, 0, nil}}) ==
             "datetime.time(10, 30, tzinfo=datetime.timezone.utc)"
  end
end
