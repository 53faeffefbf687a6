defmodule Mix.Tasks.Monty.GuestTest do
  use ExUnit.Case, async: false

  alias ExMonty.TestHelpers

  setup do
    dir = Path.join(System.tmp_dir!(), "ex_monty_guest_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(dir) end)
    %{dir: dir}
  end

  test "exports the component, the WIT, checksums and the version", %{dir: dir} do
    assert {:ok, manifest} = Mix.Tasks.Monty.Guest.export(dir)

    wasm = File.read!(Path.join(dir, "ex_monty_guest.wasm"))
    assert wasm == File.read!(TestHelpers.guest_wasm())
    wit = File.read!(Path.join(dir, "ex-monty.wit"))
    assert wit == File.read!(Path.expand("../wit/ex-monty.wit", __DIR__))

    [_, version] = Regex.run(~r/^package ex-monty:sandbox@([0-9.]+);/m, wit)
    assert File.read!(Path.join(dir, "VERSION")) == version <> "\n"
    assert manifest.wit_package == "ex-monty:sandbox@" <> version

    sum = fn bytes -> Base.encode16(:crypto.hash(:sha256, bytes), case: :lower) end

    types_wasm = File.read!(Path.join(dir, "ex_monty_typecheck.wasm"))
    assert types_wasm == File.read!(Path.join(:code.priv_dir(:ex_monty), "ex_monty_typecheck.wasm"))
    types_wit = File.read!(Path.join(dir, "ex-monty-types.wit"))
    assert types_wit == File.read!(Path.expand("../wit/types/ex-monty-types.wit", __DIR__))

    assert File.read!(Path.join(dir, "SHA256SUMS")) ==
             "#{sum.(wasm)}  ex_monty_guest.wasm\n#{sum.(wit)}  ex-monty.wit\n" <>
               "#{sum.(types_wasm)}  ex_monty_typecheck.wasm\n#{sum.(types_wit)}  ex-monty-types.wit\n"

    assert manifest.typecheck.wit_package == "ex-monty:types@0.1.0"

    json = File.read!(Path.join(dir, "manifest.json"))
    assert json =~ ~s("version":"#{version}")
    assert json =~ ~s("ex_monty_guest.wasm":"#{sum.(wasm)}")
    assert json =~ ~s("monty_version":"1.4.0")
    assert json =~ ~s("dump_format":1)
  end

  test "the WIT version is required" do
    assert {:error, _} = Mix.Tasks.Monty.Guest.wit_version("package ex-monty:sandbox;")

    assert {:ok, "1.2.3"} =
             Mix.Tasks.Monty.Guest.wit_version("// x\npackage ex-monty:sandbox@1.2.3;\n")
  end

  test "a missing directory argument is a usage error" do
    Mix.shell(Mix.Shell.Process)
    on_exit(fn -> Mix.shell(Mix.Shell.IO) end)
    assert catch_exit(Mix.Tasks.Monty.Guest.run([])) == {:shutdown, 2}
    assert_received {:mix_shell, :error, ["usage: mix monty.guest DIR"]}
  end
end
