defmodule ExMonty.LimitsTest do
  use ExUnit.Case, async: true

  doctest ExMonty.Limits

  test "keys not given keep their defaults; unknown keys and bad values raise" do
    limits = ExMonty.Limits.normalize!(max_memory: 1024)
    assert limits.max_memory == 1024
    assert limits.max_duration_secs == 30.0

    assert_raise ArgumentError, ~r/unknown limit :max_memroy/, fn ->
      ExMonty.Limits.normalize!(max_memroy: 1)
    end

    assert_raise ArgumentError, ~r/max_recursion_depth/, fn ->
      ExMonty.Limits.normalize!(max_recursion_depth: 10_101)
    end

    assert ExMonty.Limits.normalize!(max_recursion_depth: 10_100).max_recursion_depth == 10_100
  end
end
