defmodule ExMonty.Repr do
  @moduledoc """
  Renders a Python value (as ExMonty returns it) the way CPython's `repr`
  shows it.

      iex> ExMonty.Repr.repr([1, "a", nil, {2}])
      "[1, 'a', None, (2,)]"

  Every form of the type table in `ExMonty` is covered. Where the Elixir
  form has lost information, the closest Python form is used: a `MapSet` is
  shown as a `set` (a `frozenset` comes back as a `MapSet` too), dict keys
  appear in Elixir's map order, and objects whose CPython repr holds an
  address (`<function f at 0x...>`) are shown without one. Non-ASCII
  characters that CPython would escape are escaped for the common cases
  (C1 controls, unusual spaces, format characters, private use); rarer
  unassigned code points are shown as they are.
  """

  @doc """
  The Python `repr` of `value`.

  ## Examples

      iex> ExMonty.Repr.repr(nil)
      "None"
      iex> ExMonty.Repr.repr(true)
      "True"
      iex> ExMonty.Repr.repr(2 ** 70)
      "1180591620717411303424"
      iex> ExMonty.Repr.repr(1.0)
      "1.0"
      iex> ExMonty.Repr.repr(1.0e20)
      "1e+20"
      iex> ExMonty.Repr.repr(1.0e-5)
      "1e-05"
      iex> ExMonty.Repr.repr(123456789.125)
      "123456789.125"
      iex> ExMonty.Repr.repr(:infinity)
      "inf"
      iex> ExMonty.Repr.repr(:nan)
      "nan"
      iex> ExMonty.Repr.repr("it's")
      ~s("it's")
      iex> ExMonty.Repr.repr("tab\\there\\n")
      "'tab\\\\there\\\\n'"
      iex> ExMonty.Repr.repr({:bytes, <<0, ?a, 255>>})
      "b'\\\\x00a\\\\xff'"
      iex> ExMonty.Repr.repr({1, 2})
      "(1, 2)"
      iex> ExMonty.Repr.repr({})
      "()"
      iex> ExMonty.Repr.repr(%{"a" => [1.5]})
      "{'a': [1.5]}"
      iex> ExMonty.Repr.repr(MapSet.new([1, 2]))
      "{1, 2}"
      iex> ExMonty.Repr.repr(MapSet.new())
      "set()"
      iex> ExMonty.Repr.repr(:ellipsis)
      "Ellipsis"
      iex> ExMonty.Repr.repr({:path, "/tmp/x"})
      "PosixPath('/tmp/x')"
      iex> ExMonty.Repr.repr(~D[2024-01-02])
      "datetime.date(2024, 1, 2)"
      iex> ExMonty.Repr.repr(~N[2024-01-02 03:04:00])
      "datetime.datetime(2024, 1, 2, 3, 4)"
      iex> ExMonty.Repr.repr(~U[2024-01-02 03:04:05Z])
      "datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)"
      iex> ExMonty.Repr.repr(~T[10:30:00.250000])
      "datetime.time(10, 30, 0, 250000)"
      iex> ExMonty.Repr.repr({:timedelta, 1, 5, 0})
      "datetime.timedelta(days=1, seconds=5)"
      iex> ExMonty.Repr.repr({:timezone, 7200, nil})
      "datetime.timezone(datetime.timedelta(seconds=7200))"
      iex> ExMonty.Repr.repr({:decimal, "1.20"})
      "Decimal('1.20')"
      iex> ExMonty.Repr.repr({:complex, 1.0, -2.0})
      "(1-2j)"
      iex> ExMonty.Repr.repr({:named_tuple, "Point", [{"x", 1}, {"y", 2}]})
      "Point(x=1, y=2)"
      iex> ExMonty.Repr.repr(%ExMonty.Dataclass{name: "P", fields: %{"x" => 1}})
      "P(x=1)"
      iex> ExMonty.Repr.repr(%ExMonty.Exception{type: :value_error, python_type: "ValueError", message: "bad"})
      "ValueError('bad')"
      iex> ExMonty.Repr.repr({:type, "int"})
      "<class 'int'>"
      iex> ExMonty.Repr.repr({:builtin_function, "len"})
      "<built-in function len>"
      iex> ExMonty.Repr.repr({:repr, "<function 'f' at 0x10>"})
      "<function 'f' at 0x10>"
  """
  @spec repr(term()) :: String.t()
  def repr(value), do: value |> to_iodata() |> IO.iodata_to_binary()

  defp to_iodata(nil), do: "None"
  defp to_iodata(true), do: "True"
  defp to_iodata(false), do: "False"
  defp to_iodata(:ellipsis), do: "Ellipsis"
  defp to_iodata(:not_implemented), do: "NotImplemented"
  defp to_iodata(:infinity), do: "inf"
  defp to_iodata(:neg_infinity), do: "-inf"
  defp to_iodata(:nan), do: "nan"
  defp to_iodata(i) when is_integer(i), do: Integer.to_string(i)
  defp to_iodata(f) when is_float(f), do: float(f, true)
  defp to_iodata(s) when is_binary(s), do: string(s)
  defp to_iodata(list) when is_list(list), do: ["[", join(list), "]"]

  defp to_iodata(%MapSet{} = set) do
    if MapSet.size(set) == 0, do: "set()", else: ["{", join(MapSet.to_list(set)), "}"]
  end

  defp to_iodata(%Date{} = d), do: ["datetime.date(", ints([d.year, d.month, d.day]), ")"]

  defp to_iodata(%NaiveDateTime{} = dt),
    do: ["datetime.datetime(", ints([dt.year, dt.month, dt.day]), ", ", clock(dt), ")"]

  defp to_iodata(%DateTime{} = dt) do
    [
      "datetime.datetime(",
      ints([dt.year, dt.month, dt.day]),
      ", ",
      clock(dt),
      ", tzinfo=",
      timezone(dt.utc_offset + dt.std_offset, zone_name(dt)),
      ")"
    ]
  end

  defp to_iodata(%Time{} = t), do: ["datetime.time(", clock(t), ")"]

  defp to_iodata(%ExMonty.Dataclass{name: name} = dataclass),
    do: [name, "(", keywords(ExMonty.Dataclass.to_list(dataclass)), ")"]

  defp to_iodata(%ExMonty.Exception{python_type: type, message: message}) do
    if message in [nil, ""], do: [type, "()"], else: [type, "(", string(message), ")"]
  end

  defp to_iodata(map) when is_map(map) and not is_struct(map) do
    ["{", Enum.map_intersperse(map, ", ", fn {k, v} -> [to_iodata(k), ": ", to_iodata(v)] end), "}"]
  end

  defp to_iodata({:bytes, b}) when is_binary(b), do: bytes(b)
  defp to_iodata({:path, p}) when is_binary(p), do: ["PosixPath(", string(p), ")"]
  defp to_iodata({:decimal, d}) when is_binary(d), do: ["Decimal(", string(d), ")"]
  defp to_iodata({:repr, s}) when is_binary(s), do: s
  defp to_iodata({:cycle, s}) when is_binary(s), do: s
  defp to_iodata({:type, name}) when is_binary(name), do: ["<class ", string(name), ">"]
  defp to_iodata({:class, name}) when is_binary(name), do: ["<class ", string(name), ">"]
  defp to_iodata({:function, name}) when is_binary(name), do: ["<function ", name, ">"]

  defp to_iodata({:builtin_function, name}) when is_binary(name),
    do: ["<built-in function ", name, ">"]

  defp to_iodata({:module, name, _attrs}) when is_binary(name), do: ["<module ", string(name), ">"]

  defp to_iodata({:instance, class, _attrs}) when is_binary(class),
    do: ["<", class, " object>"]

  defp to_iodata({:file, path, mode, _pos}) when is_binary(path) and is_binary(mode) do
    cond do
      not String.contains?(mode, "b") ->
        ["<_io.TextIOWrapper name=", string(path), " mode=", string(mode), " encoding='utf-8'>"]

      String.contains?(mode, "+") ->
        ["<_io.BufferedRandom name=", string(path), ">"]

      String.contains?(mode, "r") ->
        ["<_io.BufferedReader name=", string(path), ">"]

      true ->
        ["<_io.BufferedWriter name=", string(path), ">"]
    end
  end

  defp to_iodata({:named_tuple, type, fields}) when is_binary(type) and is_list(fields),
    do: [type, "(", keywords(fields), ")"]

  defp to_iodata({:timedelta, d, s, us}) when is_integer(d) and is_integer(s) and is_integer(us),
    do: timedelta(d, s, us)

  defp to_iodata({:timezone, offset, name}) when is_integer(offset), do: timezone(offset, name)

  defp to_iodata({:time, %Time{} = t, {:timezone, offset, name}}),
    do: ["datetime.time(", clock(t), ", tzinfo=", timezone(offset, name), ")"]

  defp to_iodata({:complex, re, im}), do: complex(re, im)
  defp to_iodata({}), do: "()"
  defp to_iodata({single}), do: ["(", to_iodata(single), ",)"]
  defp to_iodata(tuple) when is_tuple(tuple), do: ["(", join(Tuple.to_list(tuple)), ")"]
  defp to_iodata(other), do: inspect(other)

  defp join(items), do: Enum.map_intersperse(items, ", ", &to_iodata/1)
  defp ints(ints), do: Enum.map_intersperse(ints, ", ", &Integer.to_string/1)

  defp keywords(pairs),
    do: Enum.map_intersperse(pairs, ", ", fn {k, v} -> [to_string(k), "=", to_iodata(v)] end)

  # hour, minute always; second when second or microsecond is set; microsecond when set.
  defp clock(%{hour: h, minute: m, second: s, microsecond: {us, _}}) do
    cond do
      us != 0 -> ints([h, m, s, us])
      s != 0 -> ints([h, m, s])
      true -> ints([h, m])
    end
  end

  # ---------------------------------------------------------------------------
  # datetime.timedelta / datetime.timezone
  # ---------------------------------------------------------------------------

  # A zone abbreviation that is just the offset's default name ("UTC",
  # "UTC+02:00") stands for an unnamed datetime.timezone.
  defp zone_name(%DateTime{zone_abbr: abbr} = dt) do
    offset = dt.utc_offset + dt.std_offset
    if abbr == default_zone_name(offset), do: nil, else: abbr
  end

  defp default_zone_name(0), do: "UTC"

  defp default_zone_name(offset) do
    sign = if offset < 0, do: "-", else: "+"
    abs = abs(offset)
    pad = &String.pad_leading(Integer.to_string(&1), 2, "0")
    hm = "UTC" <> sign <> pad.(div(abs, 3600)) <> ":" <> pad.(div(rem(abs, 3600), 60))
    if rem(abs, 60) == 0, do: hm, else: hm <> ":" <> pad.(rem(abs, 60))
  end

  defp timedelta(d, s, us) do
    # Normalise as CPython does: 0 <= seconds < 86400, 0 <= microseconds < 10**6.
    total = (d * 86_400 + s) * 1_000_000 + us
    days = Integer.floor_div(total, 86_400_000_000)
    rest = total - days * 86_400_000_000
    seconds = div(rest, 1_000_000)
    micros = rem(rest, 1_000_000)

    parts =
      for {name, n} <- [days: days, seconds: seconds, microseconds: micros],
          n != 0,
          do: [Atom.to_string(name), "=", Integer.to_string(n)]

    if parts == [],
      do: "datetime.timedelta(0)",
      else: ["datetime.timedelta(", Enum.intersperse(parts, ", "), ")"]
  end

  defp timezone(0, nil), do: "datetime.timezone.utc"

  defp timezone(offset, nil),
    do: ["datetime.timezone(", timedelta(0, offset, 0), ")"]

  defp timezone(offset, name) when is_binary(name),
    do: ["datetime.timezone(", timedelta(0, offset, 0), ", ", string(name), ")"]

  # ---------------------------------------------------------------------------
  # Numbers
  # ---------------------------------------------------------------------------

  # Python's repr(float): the shortest digits that round-trip, in positional
  # notation when the decimal point falls within -4 < decpt <= 16, else in
  # scientific notation with at least two exponent digits. `point` adds ".0"
  # to integral values (complex parts are shown without it).
  defp float(f, point) do
    {sign, digits, decpt} = decompose(f)

    body =
      cond do
        digits == "0" ->
          if point, do: "0.0", else: "0"

        decpt <= -4 or decpt > 16 ->
          exp = decpt - 1
          {first, rest} = String.split_at(digits, 1)
          mantissa = if rest == "", do: first, else: first <> "." <> rest
          exp_sign = if exp < 0, do: "-", else: "+"
          mantissa <> "e" <> exp_sign <> String.pad_leading(Integer.to_string(abs(exp)), 2, "0")

        decpt <= 0 ->
          "0." <> String.duplicate("0", -decpt) <> digits

        decpt >= byte_size(digits) ->
          digits <>
            String.duplicate("0", decpt - byte_size(digits)) <> if(point, do: ".0", else: "")

        true ->
          {int, frac} = String.split_at(digits, decpt)
          int <> "." <> frac
      end

    sign <> body
  end

  # f = 0.DIGITS * 10^decpt, with DIGITS the shortest round-trip digits.
  defp decompose(f) do
    text = Float.to_string(f)

    {sign, text} =
      if String.starts_with?(text, "-"),
        do: {"-", binary_part(text, 1, byte_size(text) - 1)},
        else: {"", text}

    {mantissa, exp} =
      case String.split(text, "e") do
        [m, e] -> {m, String.to_integer(e)}
        [m] -> {m, 0}
      end

    [int, frac] = String.split(mantissa, ".")
    all = int <> frac
    decpt = byte_size(int) + exp
    trimmed = String.trim_leading(all, "0")
    decpt = decpt - (byte_size(all) - byte_size(trimmed))

    case String.trim_trailing(trimmed, "0") do
      "" -> {sign, "0", 1}
      digits -> {sign, digits, decpt}
    end
  end

  defp complex(re, im) do
    imag = part(im, false)
    imag = if String.starts_with?(imag, "-"), do: imag, else: "+" <> imag

    if re == 0 and not negative_zero?(re) and is_number(re) do
      [String.trim_leading(imag, "+"), "j"]
    else
      ["(", part(re, false), imag, "j)"]
    end
  end

  defp part(:infinity, _), do: "inf"
  defp part(:neg_infinity, _), do: "-inf"
  defp part(:nan, _), do: "nan"
  defp part(n, point) when is_integer(n), do: float(n / 1, point)
  defp part(f, point) when is_float(f), do: float(f, point)

  defp negative_zero?(f) when is_float(f), do: <<f::float>> == <<-0.0::float>>
  defp negative_zero?(_), do: false

  # ---------------------------------------------------------------------------
  # str / bytes
  # ---------------------------------------------------------------------------

  defp string(s) do
    quote = quote_char(s)
    [quote, escape_chars(s, quote, []), quote]
  end

  defp bytes(b) do
    quote = quote_char(b)
    ["b", quote, for(<<byte <- b>>, do: escape_byte(byte, quote)), quote]
  end

  # Single quotes unless the text holds a ' and no ".
  defp quote_char(s) do
    if :binary.match(s, "'") != :nomatch and :binary.match(s, "\"") == :nomatch,
      do: "\"",
      else: "'"
  end

  defp escape_chars(<<>>, _quote, acc), do: Enum.reverse(acc)

  defp escape_chars(<<c::utf8, rest::binary>>, quote, acc),
    do: escape_chars(rest, quote, [escape_char(c, quote) | acc])

  # Not UTF-8 (cannot come from Python): shown as \x escapes.
  defp escape_chars(<<byte, rest::binary>>, quote, acc),
    do: escape_chars(rest, quote, [hex("\\x", byte, 2) | acc])

  defp escape_char(?\\, _), do: "\\\\"
  defp escape_char(?\n, _), do: "\\n"
  defp escape_char(?\r, _), do: "\\r"
  defp escape_char(?\t, _), do: "\\t"
  defp escape_char(?', "'"), do: "\\'"
  defp escape_char(?", "\""), do: "\\\""
  defp escape_char(c, _) when c < 0x20 or c == 0x7F, do: hex("\\x", c, 2)
  defp escape_char(c, _) when c < 0x7F, do: <<c>>

  defp escape_char(c, _) do
    if printable?(c) do
      <<c::utf8>>
    else
      cond do
        c <= 0xFF -> hex("\\x", c, 2)
        c <= 0xFFFF -> hex("\\u", c, 4)
        true -> hex("\\U", c, 8)
      end
    end
  end

  # CPython's str.isprintable() is false for other/separator categories: C1
  # controls, spaces other than ' ', format characters, line/paragraph
  # separators, private use and noncharacters.
  defp printable?(c)
       when c in 0x80..0xA0 or c == 0xAD or c == 0x1680 or c in 0x2000..0x200F or
              c in 0x2028..0x202F or c in 0x205F..0x2064 or c in 0x2066..0x206F or
              c == 0x3000 or c == 0xFEFF or c in 0xE000..0xF8FF or c in 0xFFF9..0xFFFB or
              c in 0xFFFE..0xFFFF or c >= 0xF0000 or c in 0x600..0x605 or c == 0x61C or
              c == 0x6DD or c == 0x70F or c == 0x180E or c in 0xE0001..0xE007F,
       do: false

  defp printable?(_c), do: true

  defp escape_byte(?\\, _), do: "\\\\"
  defp escape_byte(?\n, _), do: "\\n"
  defp escape_byte(?\r, _), do: "\\r"
  defp escape_byte(?\t, _), do: "\\t"
  defp escape_byte(?', "'"), do: "\\'"
  defp escape_byte(?", "\""), do: "\\\""
  defp escape_byte(b, _) when b < 0x20 or b >= 0x7F, do: hex("\\x", b, 2)
  defp escape_byte(b, _), do: <<b>>

  defp hex(prefix, n, width),
    do: [prefix, n |> Integer.to_string(16) |> String.downcase() |> String.pad_leading(width, "0")]
end
