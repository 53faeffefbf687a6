defmodule ExMonty.Dump do
  @moduledoc """
  The binary format of dumped runners and snapshots.

      "EXMONTY" <> <<version::8, kind::8, flags::8>> <> payload [<> hmac]

    * `version` — the format version (currently 1); a binary of another
      version is refused with a clear error.
    * `kind` — 1 for a runner (`ExMonty.dump/2`), 2 for a paused execution
      (`ExMonty.dump_snapshot/2`); loading one as the other is refused.
    * `flags` — bit 0 set when the dump is signed.
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
  """

  @magic "EXMONTY"
  @version 1
  @kinds %{runner: 1, snapshot: 2}
  @mac_size 32

  @doc false
  @spec encode(:runner | :snapshot, binary(), keyword()) :: {:ok, binary()}
  def encode(kind, payload, opts) do
    case key(opts) do
      nil ->
        {:ok, header(kind, 0) <> payload}

      key ->
        body = header(kind, 1) <> payload
        {:ok, body <> :crypto.mac(:hmac, :sha256, key, body)}
    end
  end

  @doc false
  @spec decode(:runner | :snapshot, binary(), keyword()) ::
          {:ok, binary()} | {:error, ExMonty.Exception.t()}
  def decode(kind, binary, opts) when is_binary(binary) do
    expected = Map.fetch!(@kinds, kind)

    case binary do
      <<@magic, @version, ^expected, flags, rest::binary>> ->
        verify(flags, binary, rest, key(opts))

      <<@magic, @version, other, _::binary>> ->
        ExMonty.invalid("this dump holds a #{kind_name(other)}, not a #{kind}")

      <<@magic, version, _::binary>> ->
        ExMonty.invalid(
          "dump format version #{version} is not supported (this ExMonty reads version #{@version})"
        )

      _ ->
        ExMonty.invalid("not an ExMonty dump")
    end
  end

  def decode(_kind, other, _opts),
    do: ExMonty.invalid("a dump must be a binary, got: #{inspect(other, limit: 5)}")

  defp verify(0, _binary, payload, nil = _key), do: {:ok, payload}

  defp verify(0, _binary, _payload, _key),
    do:
      ExMonty.invalid(
        "this dump is not signed, and a signing key is configured: refusing to load it"
      )

  defp verify(1, _binary, _rest, nil),
    do: ExMonty.invalid("this dump is signed, but no signing key is configured")

  defp verify(1, binary, rest, key) when byte_size(rest) >= @mac_size do
    body_size = byte_size(binary) - @mac_size
    <<body::binary-size(body_size), mac::binary-size(@mac_size)>> = binary
    expected = :crypto.mac(:hmac, :sha256, key, body)

    if :crypto.hash_equals(expected, mac) do
      {:ok, binary_part(rest, 0, byte_size(rest) - @mac_size)}
    else
      ExMonty.invalid(
        "the dump's signature does not match: it was altered or signed with another key"
      )
    end
  end

  defp verify(_flags, _binary, _rest, _key), do: ExMonty.invalid("corrupt ExMonty dump")

  defp header(kind, flags), do: <<@magic, @version, Map.fetch!(@kinds, kind), flags>>

  defp kind_name(1), do: "runner"
  defp kind_name(2), do: "snapshot"
  defp kind_name(_), do: "unknown kind"

  defp key(opts) do
    case Keyword.get(opts, :key, Application.get_env(:ex_monty, :dump_key)) do
      nil ->
        nil

      key when is_binary(key) and byte_size(key) > 0 ->
        key

      other ->
        raise ArgumentError, "a dump signing key must be a non-empty binary, got: #{inspect(other)}"
    end
  end
end
