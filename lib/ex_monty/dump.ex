defmodule ExMonty.Dump do
  @moduledoc """
  The binary format of dumped runners and snapshots.

      "EXMONTY" <> <<version::8, kind::8, flags::8>> <> payload [<> hmac]

    * `version` — the format version (currently 1); a binary of another
      version is refused with a clear error.
    * `kind` — 1 for a runner (`ExMonty.dump/2`), 2 for a paused execution
      (`ExMonty.dump_snapshot/2`); loading one as the other is refused.
    * `flags` — bit 0 set when the dump is signed; bit 1 set when the
      execution or session was itself restored from an unsigned dump (see
      below).
    * `payload` — the guest's own encoding (a versioned compiled program, or
      Monty's versioned dump of the paused run). It is only ever decoded inside
      the WebAssembly sandbox, under the usual limits, so a corrupt payload
      costs an error, never the VM.
    * `hmac` — HMAC-SHA256 over everything before it, when signed.

  ## Signing

  Monty does not authenticate its dumps, and a decoded dump may hold any
  program. When a key is set — the `:key` option, or
  `config :ex_monty, dump_key: "..."` — every dump is signed, and loading
  *requires* a valid signature: an unsigned, tampered or foreign binary is
  refused before any of it is decoded. Without a key, dumps are unsigned and
  are accepted as they are: only load those from a store you trust.

  `key: nil` (like no `:key` at all) means "the configured key": it never
  turns verification off. Only an explicit `key: :unsigned` opts out: dumping
  writes an unsigned dump, and loading accepts *only* unsigned dumps (a
  signed one is refused, since it cannot be verified without its key). Any
  other key that is not a non-empty binary raises `ArgumentError`.

  A verified dump was written by ExMonty, and is loaded into a warm wasm
  instance; an unsigned one may have been crafted, and gets a new instance
  that no other execution uses, before or after it. What was restored from
  an unsigned dump stays so: its later dumps carry bit 1 of `flags`, and are
  treated as unsigned when loaded even once signed.

      iex> {:ok, runner} = ExMonty.compile("1 + 1")
      iex> {:ok, signed} = ExMonty.dump(runner, key: "secret")
      iex> {:error, %ExMonty.Exception{type: :invalid_input}} = ExMonty.load_runner(signed, key: :unsigned)
      iex> {:ok, unsigned} = ExMonty.dump(runner, key: :unsigned)
      iex> {:ok, _runner} = ExMonty.load_runner(unsigned, key: :unsigned)

  ## Size

  Loading refuses a binary larger than `:max_bytes` (an option of the load
  functions; default `config :ex_monty, max_dump_bytes: ...`, or 64 MiB)
  before hashing, copying or decoding any of it.

      iex> {:ok, runner} = ExMonty.compile("1 + 1")
      iex> {:ok, binary} = ExMonty.dump(runner)
      iex> {:error, %ExMonty.Exception{type: :invalid_input, message: message}} =
      ...>   ExMonty.load_runner(binary, max_bytes: 10)
      iex> message =~ "over the limit of 10 bytes"
      true
  """

  import Bitwise

  @magic "EXMONTY"
  @version 1
  @kinds %{runner: 1, snapshot: 2, session: 3}
  @mac_size 32
  @signed 1
  @untrusted 2
  @default_max_bytes 64 * 1024 * 1024

  @doc false
  # `untrusted`: the payload comes from an execution restored from an
  # unsigned dump (flag bit 1; see the moduledoc).
  @spec encode(:runner | :snapshot | :session, binary(), keyword(), boolean()) :: {:ok, binary()}
  def encode(kind, payload, opts, untrusted \\ false) do
    tainted = if untrusted, do: @untrusted, else: 0

    case key(opts) do
      unsigned when unsigned in [nil, :unsigned] ->
        {:ok, header(kind, tainted) <> payload}

      key ->
        body = header(kind, @signed ||| tainted) <> payload
        {:ok, body <> :crypto.mac(:hmac, :sha256, key, body)}
    end
  end

  @doc false
  # `{:ok, payload, :signed}` when the dump's signature was verified with a
  # key (ExMonty wrote it, for someone holding the key), `{:ok, payload,
  # :unsigned}` for an unsigned dump (it may come from anyone).
  @spec decode(:runner | :snapshot | :session, binary(), keyword()) ::
          {:ok, binary(), :signed | :unsigned} | {:error, ExMonty.Exception.t()}
  def decode(kind, binary, opts) when is_binary(binary) do
    expected = Map.fetch!(@kinds, kind)
    max_bytes = max_bytes(opts)
    key = key(opts)

    case binary do
      _ when byte_size(binary) > max_bytes ->
        ExMonty.Exception.invalid(
          "this dump is #{byte_size(binary)} bytes, over the limit of #{max_bytes} bytes " <>
            "(the :max_bytes option, or config :ex_monty, max_dump_bytes: ...)"
        )

      <<@magic, @version, ^expected, flags, rest::binary>> when flags in 0..3 ->
        # Restored from an unsigned dump once: unsigned, whatever signs it.
        with {:ok, payload, provenance} <- verify(flags &&& @signed, binary, rest, key) do
          {:ok, payload, if((flags &&& @untrusted) != 0, do: :unsigned, else: provenance)}
        end

      <<@magic, @version, ^expected, _flags, _::binary>> ->
        ExMonty.Exception.invalid("corrupt ExMonty dump")

      <<@magic, @version, other, _::binary>> ->
        ExMonty.Exception.invalid("this dump holds a #{kind_name(other)}, not a #{kind}")

      <<@magic, version, _::binary>> ->
        ExMonty.Exception.invalid(
          "dump format version #{version} is not supported (this ExMonty reads version #{@version})"
        )

      _ ->
        ExMonty.Exception.invalid("not an ExMonty dump")
    end
  end

  def decode(_kind, other, _opts),
    do: ExMonty.Exception.invalid("a dump must be a binary, got: #{inspect(other, limit: 5)}")

  defp verify(0, _binary, payload, key) when key in [nil, :unsigned],
    do: {:ok, payload, :unsigned}

  defp verify(0, _binary, _payload, _key),
    do:
      ExMonty.Exception.invalid(
        "this dump is not signed, and a signing key is configured: refusing to load it"
      )

  defp verify(1, _binary, _rest, nil),
    do: ExMonty.Exception.invalid("this dump is signed, but no signing key is configured")

  defp verify(1, _binary, _rest, :unsigned),
    do:
      ExMonty.Exception.invalid(
        "this dump is signed, and key: :unsigned accepts only unsigned dumps: pass its key"
      )

  defp verify(1, binary, rest, key) when byte_size(rest) >= @mac_size do
    body_size = byte_size(binary) - @mac_size
    <<body::binary-size(body_size), mac::binary-size(@mac_size)>> = binary
    expected = :crypto.mac(:hmac, :sha256, key, body)

    if :crypto.hash_equals(expected, mac) do
      {:ok, binary_part(rest, 0, byte_size(rest) - @mac_size), :signed}
    else
      ExMonty.Exception.invalid(
        "the dump's signature does not match: it was altered or signed with another key"
      )
    end
  end

  defp verify(_flags, _binary, _rest, _key), do: ExMonty.Exception.invalid("corrupt ExMonty dump")

  defp header(kind, flags), do: <<@magic, @version, Map.fetch!(@kinds, kind), flags>>

  defp kind_name(1), do: "runner"
  defp kind_name(2), do: "snapshot"
  defp kind_name(3), do: "session"
  defp kind_name(_), do: "unknown kind"

  @doc false
  # Checks `opts`' key (and the configured one) where the caller can see the
  # error: a process that dumps on another's behalf (a session) must not
  # crash on a bad key.
  @spec check_key!(keyword()) :: :ok
  def check_key!(opts) do
    _ = key(opts)
    :ok
  end

  @doc false
  # `check_key!/1`, and `:max_bytes`, for a load.
  @spec check_load_opts!(keyword()) :: :ok
  def check_load_opts!(opts) do
    _ = key(opts)
    _ = max_bytes(opts)
    :ok
  end

  # nil (no key configured), :unsigned (explicit opt-out) or a binary key.
  # `key: nil` means the configured key: it never turns verification off.
  defp key(opts) do
    case Keyword.get(opts, :key) do
      nil -> configured_key()
      :unsigned -> :unsigned
      key -> check_key!(key, ":key")
    end
  end

  defp configured_key do
    case Application.get_env(:ex_monty, :dump_key) do
      nil -> nil
      key -> check_key!(key, "config :ex_monty, dump_key:")
    end
  end

  defp check_key!(key, _source) when is_binary(key) and byte_size(key) > 0, do: key

  defp check_key!(other, source) do
    raise ArgumentError,
          "#{source} must be a non-empty binary (or, for :key, :unsigned), got: #{inspect(other)}"
  end

  defp max_bytes(opts) do
    case Keyword.get(opts, :max_bytes) do
      nil -> check_max_bytes!(Application.get_env(:ex_monty, :max_dump_bytes, @default_max_bytes))
      value -> check_max_bytes!(value)
    end
  end

  defp check_max_bytes!(value) when is_integer(value) and value > 0, do: value

  defp check_max_bytes!(other) do
    raise ArgumentError,
          ":max_bytes (or config :ex_monty, max_dump_bytes:) must be a positive integer, got: #{inspect(other)}"
  end
end
