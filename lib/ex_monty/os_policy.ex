defmodule ExMonty.OsPolicy do
  @moduledoc """
  What Python's clocks, time zone, sleeps and `random` see: the `:os_policy`
  option of `ExMonty.eval/2`, `run/3`, `start/3`, `ExMonty.Sandbox.run/2`
  and `ExMonty.Session.start_link/1`.

  Same code + same policy + same inputs ⇒ same output: freeze the clock and
  seed `random`, and an agent's run replays byte for byte.

      iex> policy = [clock: ~U[2024-05-01 12:00:00Z], random: {:seed, 42}]
      iex> code = "import random, datetime\\n(datetime.datetime.now().isoformat(), random.random())"
      iex> {:ok, first, ""} = ExMonty.eval(code, os_policy: policy)
      iex> {:ok, ^first, ""} = ExMonty.eval(code, os_policy: policy)
      iex> elem(first, 0)
      "2024-05-01T12:00:00"

  Keys (all optional; the defaults are the sandbox's usual behaviour):

    * `:clock` — `:system` (default: the host machine's clock), `:host`
      (every clock call is an OS call the `:os` handler answers: `:date_today`,
      `:datetime_now`, `:time`), or a `DateTime` / `NaiveDateTime` (UTC) at
      which time stands still.
    * `:timezone` — the local zone naive `datetime.now()` and `date.today()`
      read: `"UTC"` (default), an IANA name (`"Europe/Paris"`, with its DST
      rules), an offset in seconds, or `{offset_seconds, name}`.
    * `:random` — where an unseeded `random` starts: `:system` (default, OS
      entropy), `:host` (`os.urandom` as an OS call), or `{:seed, seed}` with
      an integer, float, string or `{:bytes, binary}` (as `random.seed(seed)`).
    * `:sleep` — `:system` (default: sleeps wait in the calling process,
      within `max_total_sleep_secs`, at most 10 s each),
      `{:system, max_seconds}` (another per-call cap), `:zero` (return at
      once) or `:host` (`:sleep` / `:async_sleep` OS calls for the handler).
    * `:process_time` — `:zero` (default: `time.process_time()` is 0) or
      `:elapsed` (the execution's running time).

  An unknown key or an invalid value raises `ArgumentError`.
  """

  @keys [:clock, :timezone, :random, :sleep, :process_time]

  @typedoc "A policy as given: a keyword list or map of the keys above."
  @type t :: keyword() | map()

  @doc """
  Validates a policy and returns the form the NIF takes (`nil` for `nil`).

      iex> ExMonty.OsPolicy.normalize!(sleep: :zero).sleep
      :zero
  """
  @spec normalize!(t() | nil) :: map() | nil
  def normalize!(nil), do: nil

  def normalize!(policy) when is_map(policy), do: normalize!(Map.to_list(policy))

  def normalize!(policy) when is_list(policy) do
    unless Keyword.keyword?(policy) do
      raise ArgumentError, "an OS policy is a keyword list or map, got: #{inspect(policy)}"
    end

    policy =
      try do
        Keyword.validate!(policy, @keys)
      rescue
        e in ArgumentError ->
          reraise ArgumentError,
                  "invalid OS policy: #{Exception.message(e)}; valid keys: #{inspect(@keys)}",
                  __STACKTRACE__
      end

    %{
      clock: clock!(Keyword.get(policy, :clock, :system)),
      timezone: timezone!(Keyword.get(policy, :timezone, "UTC")),
      random_start: random!(Keyword.get(policy, :random, :system)),
      sleep: sleep!(Keyword.get(policy, :sleep, :system)),
      process_time: process_time!(Keyword.get(policy, :process_time, :zero))
    }
  end

  def normalize!(other),
    do: raise(ArgumentError, "an OS policy is a keyword list or map, got: #{inspect(other)}")

  defp clock!(:system), do: :system
  defp clock!(:host), do: :call_host

  defp clock!(%DateTime{} = at) do
    utc = DateTime.shift_zone!(at, "Etc/UTC")
    {DateTime.to_unix(utc), elem(utc.microsecond, 0)}
  end

  defp clock!(%NaiveDateTime{} = at), do: clock!(DateTime.from_naive!(at, "Etc/UTC"))
  defp clock!(other), do: bad(:clock, other, ":system, :host, a DateTime or a NaiveDateTime (UTC)")

  defp timezone!("UTC"), do: {0, "UTC"}
  defp timezone!(name) when is_binary(name) and byte_size(name) in 1..64, do: name

  defp timezone!(offset) when is_integer(offset) and abs(offset) < 86_400, do: {offset, nil}

  defp timezone!({offset, name})
       when is_integer(offset) and abs(offset) < 86_400 and (is_binary(name) or is_nil(name)),
       do: {offset, name}

  defp timezone!(other),
    do: bad(:timezone, other, "\"UTC\", an IANA name, an offset in seconds or {offset, name}")

  defp random!(:system), do: :system
  defp random!(:host), do: :call_host
  defp random!({:seed, seed}) when is_integer(seed), do: {:integer, Integer.to_string(seed)}
  defp random!({:seed, seed}) when is_float(seed), do: {:float, seed}
  defp random!({:seed, {:bytes, seed}}) when is_binary(seed), do: {:bytes, seed}

  defp random!({:seed, seed}) when is_binary(seed) do
    if String.valid?(seed), do: {:text, seed}, else: bad(:random, {:seed, seed}, "a UTF-8 string")
  end

  defp random!(other),
    do: bad(:random, other, ":system, :host or {:seed, integer | float | string | {:bytes, b}}")

  defp sleep!(:system), do: 10_000_000
  defp sleep!(:zero), do: :zero
  defp sleep!(:host), do: :call_host

  defp sleep!({:system, seconds}) when is_number(seconds) and seconds >= 0 and seconds <= 86_400,
    do: round(seconds * 1_000_000)

  defp sleep!(other),
    do: bad(:sleep, other, ":system, {:system, max_seconds}, :zero or :host")

  defp process_time!(:zero), do: :zero
  defp process_time!(:elapsed), do: :elapsed
  defp process_time!(other), do: bad(:process_time, other, ":zero or :elapsed")

  defp bad(key, value, expected) do
    raise ArgumentError,
          "invalid OS policy #{inspect(key)}: expected #{expected}, got: #{inspect(value, limit: 10)}"
  end
end
