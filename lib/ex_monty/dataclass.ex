defmodule ExMonty.Dataclass do
  @moduledoc """
  A Python dataclass instance, in both directions.

  Python's `@dataclass` instances come back as this struct, and a struct
  built in Elixir goes into Python as a *host object*: an instance of a
  dataclass named `name` whose attributes are `fields`.

    * `name` — the class name (a Python identifier).
    * `fields` — attribute name (a string) => value.
    * `field_names` — the attribute names in declaration order (what
      `repr(p)` shows). `nil` on a struct you build means the keys of
      `fields`, sorted. Values from Python always carry it.
    * `frozen` — a frozen object refuses assignment in Python with
      `dataclasses.FrozenInstanceError` (default `false`: `p.x = 3` and
      `setattr` work, and the change comes back in the returned struct).
    * `id` — the object's identity (a UUID string) or `nil`. The same object
      comes back with the same `id`, with the changes Python made to it, so
      `same?/2` recognises it. `new/3` gives each object a fresh one.

  ## Host objects in Python

  `p.x`, `repr(p)` (fields in `field_names` order), `==` (same class and equal
  fields), `type(p).__name__`, `dataclasses.is_dataclass(p)`, use in lists,
  dicts and other dataclasses all work; objects are unhashable (like a
  dataclass with `eq=True`), so they cannot be dict keys or set elements.
  Reading a missing attribute raises `AttributeError`. (`dataclasses.fields`
  and `asdict` do not exist in Monty 1.4, for any dataclass.)

  **Methods run on the host.** Calling a method Python does not find among
  the fields, `p.norm()` or `p.scale(2, around=origin)`, pauses the run with
  an `ExMonty.FunctionCall` whose `method_call` is `true`, `name` the method
  name and whose first argument is the object as it is at that moment
  (changes made in Python included). `ExMonty.Sandbox` answers it with
  `"Point.norm"` from `:functions` (or `c:ExMonty.Sandbox.handle_function/3`),
  and falls back to a plain `"norm"`; when neither exists Python gets
  `AttributeError`. Exceptions a method returns are raised at the call site
  and can be caught. Methods are called, not read: `f = p.norm` is an
  `AttributeError`.

  With `type_check: true`, host objects among the inputs declare their
  classes to the checker (fields, and the methods `:functions` serves as
  `"Class.method"`); `stub/2` writes that declaration for `stubs:`.

  Instances of classes *defined in Python* come back as this struct too
  (`frozen: false`); sent back while the same run is paused they are the very
  same Python object, in a later run a host object with the same fields (its
  Python methods are gone).

  ## Examples

      iex> {:ok, point, ""} = ExMonty.eval(\"""
      ...> from dataclasses import dataclass
      ...> @dataclass
      ...> class Point:
      ...>     x: int
      ...>     y: int
      ...> Point(1, 2)
      ...> \""")
      iex> {point.name, point.fields, point.field_names}
      {"Point", %{"x" => 1, "y" => 2}, ["x", "y"]}

      iex> user = ExMonty.Dataclass.new("User", name: "Ada", age: 36)
      iex> {:ok, text, ""} = ExMonty.eval("repr(u)", inputs: %{"u" => user})
      iex> text
      "User(name='Ada', age=36)"
      iex> {:ok, older, ""} = ExMonty.eval("u.age += 1\\nu", inputs: %{"u" => user})
      iex> {older.fields["age"], ExMonty.Dataclass.same?(older, user)}
      {37, true}

      iex> point = ExMonty.Dataclass.new("Point", [x: 1, y: 2], frozen: true)
      iex> {:error, error} = ExMonty.eval("p.x = 5", inputs: %{"p" => point})
      iex> {error.python_type, error.message}
      {"FrozenInstanceError", "cannot assign to field 'x'"}
  """

  defstruct [:name, :field_names, :id, fields: %{}, frozen: false]

  @type t :: %__MODULE__{
          name: String.t(),
          fields: %{String.t() => term()},
          field_names: [String.t()] | nil,
          frozen: boolean(),
          id: String.t() | nil
        }

  @doc """
  Builds a dataclass instance with a fresh identity.

  `fields` is a keyword list or a list of `{name, value}` pairs (their order
  is the declaration order) or a map (sorted keys). Options: `:frozen`
  (default `false`) and `:id` (a UUID string, to rebuild a known object).

      iex> p = ExMonty.Dataclass.new("Point", x: 1, y: 2)
      iex> {p.name, p.fields, p.field_names, p.frozen, is_binary(p.id)}
      {"Point", %{"x" => 1, "y" => 2}, ["x", "y"], false, true}
  """
  @spec new(String.t(), keyword() | [{String.t(), term()}] | map(), keyword()) :: t()
  def new(name, fields, opts \\ [])

  def new(name, fields, opts) when is_binary(name) and (is_list(fields) or is_map(fields)) do
    opts = Keyword.validate!(opts, frozen: false, id: nil)

    unless is_boolean(opts[:frozen]) do
      raise ArgumentError,
            "ExMonty.Dataclass.new/3: :frozen must be a boolean, got: #{inspect(opts[:frozen])}"
    end

    id = opts[:id] || uuid4()

    unless is_binary(id) and byte_size(id) == 36 do
      raise ArgumentError, "ExMonty.Dataclass.new/3: :id must be a UUID string, got: #{inspect(id)}"
    end

    pairs =
      case fields do
        map when is_map(map) -> map |> Enum.map(fn {k, v} -> {field_name(k), v} end) |> Enum.sort()
        list -> Enum.map(list, &pair/1)
      end

    names = Enum.map(pairs, &elem(&1, 0))

    if length(Enum.uniq(names)) != length(names) do
      raise ArgumentError, "ExMonty.Dataclass.new/3: field names repeat: #{inspect(names)}"
    end

    %__MODULE__{
      name: name,
      fields: Map.new(pairs),
      field_names: names,
      frozen: opts[:frozen],
      id: id
    }
  end

  def new(name, fields, _opts) do
    raise ArgumentError,
          "ExMonty.Dataclass.new/3 expects a class name (a string) and fields (a keyword list, " <>
            "a list of {name, value} or a map), got: #{inspect(name)}, #{inspect(fields, limit: 5)}"
  end

  @doc """
  Whether two structs are the same object (they have the same non-nil `id`).

      iex> p = ExMonty.Dataclass.new("P", x: 1)
      iex> ExMonty.Dataclass.same?(p, %{p | fields: %{"x" => 2}})
      true
      iex> ExMonty.Dataclass.same?(p, ExMonty.Dataclass.new("P", x: 1))
      false
  """
  @spec same?(t(), t()) :: boolean()
  def same?(%__MODULE__{id: id}, %__MODULE__{id: id}) when is_binary(id), do: true
  def same?(%__MODULE__{}, %__MODULE__{}), do: false

  @doc """
  The fields as `{name, value}` pairs in declaration order.

      iex> ExMonty.Dataclass.new("P", y: 2, x: 1) |> ExMonty.Dataclass.to_list()
      [{"y", 2}, {"x", 1}]
  """
  @spec to_list(t()) :: [{String.t(), term()}]
  def to_list(%__MODULE__{fields: fields, field_names: nil}), do: Enum.sort(fields)

  def to_list(%__MODULE__{fields: fields, field_names: names}),
    do: Enum.map(names, &{&1, Map.get(fields, &1)})

  @doc """
  Python stub source declaring the classes of `dataclasses` (one struct or a
  list), for type checking code that uses them: each field's type is inferred
  from its value (`int`, `str`, `list`, another dataclass ...; `Any` when
  unknown), nested dataclasses are declared first (`nested: false` declares
  only the ones given), and `:methods` adds method signatures per class
  (`%{"Point" => ["def norm(self) -> float: ..."]}`).

      iex> p = ExMonty.Dataclass.new("Point", x: 1, y: 2.5)
      iex> stub = ExMonty.Dataclass.stub(p, methods: %{"Point" => ["def norm(self) -> float: ..."]})
      iex> stub |> String.split("\\n", trim: true) |> Enum.drop(5)
      ["@dataclass", "class Point:", "    x: int", "    y: float", "    def norm(self) -> float: ..."]
  """
  @spec stub(t() | [t()], keyword()) :: String.t()
  def stub(dataclasses, opts \\ []) do
    opts = Keyword.validate!(opts, methods: %{}, nested: true)
    methods = opts[:methods]

    classes =
      if opts[:nested] do
        dataclasses |> List.wrap() |> Enum.reduce([], &collect_classes/2) |> Enum.reverse()
      else
        dataclasses |> List.wrap() |> Enum.uniq_by(& &1.name)
      end

    body =
      Enum.map_join(classes, "\n", fn %__MODULE__{name: name} = dataclass ->
        fields =
          for {field, value} <- to_list(dataclass),
              do: "    #{field}: #{ExMonty.TypeCheck.python_type(value, 4)}\n"

        extra = for line <- Map.get(methods, name, []), do: "    #{line}\n"
        lines = fields ++ extra
        lines = if lines == [], do: ["    pass\n"], else: lines
        IO.iodata_to_binary(["@dataclass\nclass ", name, ":\n" | lines])
      end)

    "import datetime\nimport decimal\nimport pathlib\nfrom dataclasses import dataclass\n" <>
      "from typing import Any\n\n" <> body
  end

  # Nested dataclasses first (they are the field types of the outer ones);
  # one declaration per class name.
  defp collect_classes(%__MODULE__{name: name} = dataclass, acc) do
    if Enum.any?(acc, &(&1.name == name)) do
      acc
    else
      acc =
        dataclass.fields
        |> Map.values()
        |> Enum.flat_map(&nested/1)
        |> Enum.reduce(acc, &collect_classes/2)

      [dataclass | acc]
    end
  end

  defp collect_classes(other, _acc) do
    raise ArgumentError,
          "ExMonty.Dataclass.stub/2 expects dataclasses, got: #{inspect(other, limit: 5)}"
  end

  defp nested(%__MODULE__{} = dataclass), do: [dataclass]
  defp nested(list) when is_list(list), do: Enum.flat_map(list, &nested/1)
  defp nested(%MapSet{}), do: []

  defp nested(map) when is_map(map) and not is_struct(map),
    do: Enum.flat_map(Map.values(map), &nested/1)

  defp nested(_), do: []

  defp pair({name, value}), do: {field_name(name), value}

  defp pair(other) do
    raise ArgumentError,
          "ExMonty.Dataclass.new/3: a field must be {name, value}, got: #{inspect(other, limit: 5)}"
  end

  defp field_name(name) when is_atom(name) and name not in [nil, true, false],
    do: Atom.to_string(name)

  defp field_name(name) when is_binary(name), do: name

  defp field_name(other) do
    raise ArgumentError,
          "ExMonty.Dataclass.new/3: a field name must be an atom or a string, got: #{inspect(other)}"
  end

  # A version-4 UUID, as Python's uuid.uuid4() makes it.
  defp uuid4 do
    <<a::48, _::4, b::12, _::2, c::62>> = :crypto.strong_rand_bytes(16)
    <<u::128>> = <<a::48, 4::4, b::12, 2::2, c::62>>
    hex = u |> Integer.to_string(16) |> String.downcase() |> String.pad_leading(32, "0")

    <<p1::binary-8, p2::binary-4, p3::binary-4, p4::binary-4, p5::binary-12>> = hex
    Enum.join([p1, p2, p3, p4, p5], "-")
  end
end
