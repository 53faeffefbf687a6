defmodule ExMonty.MountTest do
  use ExUnit.Case, async: true

  doctest ExMonty.Mount

  alias ExMonty.{Mount, Sandbox}

  @secret "TOP SECRET host data"

  setup do
    base = Path.join(System.tmp_dir!(), "ex_monty_mount_#{System.unique_integer([:positive])}")
    root = Path.join(base, "root")
    outside = Path.join(base, "outside")
    File.mkdir_p!(Path.join(root, "sub"))
    File.mkdir_p!(outside)
    File.write!(Path.join(root, "allowed.txt"), "allowed content")
    File.write!(Path.join(root, "sub/inner.txt"), "inner")
    File.write!(Path.join(outside, "secret.txt"), @secret)
    File.ln_s!(Path.join(outside, "secret.txt"), Path.join(root, "link_abs"))
    File.ln_s!("../outside/secret.txt", Path.join(root, "link_rel"))
    File.ln_s!("..", Path.join(root, "link_parent"))
    File.ln_s!(outside, Path.join(root, "link_dir"))
    on_exit(fn -> File.rm_rf!(base) end)
    {:ok, base: base, root: root, outside: outside}
  end

  defp py(code, mount),
    do: Sandbox.run("from pathlib import Path\nimport os\n" <> code, mounts: mount)

  defp snapshot_outside(outside) do
    for file <- Path.wildcard(Path.join(outside, "**"), match_dot: true), into: %{} do
      {file, {File.read(file), File.stat!(file, time: :posix).mtime}}
    end
  end

  describe "modes" do
    test "read-only: reads work, writes are refused", %{root: root} do
      {:ok, mount} = Mount.new([{"/data", root, :read_only}])
      assert {:ok, "allowed content", ""} = py("Path('/data/allowed.txt').read_text()", mount)

      assert {:ok, ["/data/allowed.txt", "/data/sub"], ""} =
               py("sorted(str(p) for p in Path('/data').iterdir() if not p.is_symlink())", mount)

      assert {:error, %{type: :permission_error, message: msg}} =
               py("Path('/data/new.txt').write_text('x')", mount)

      assert msg =~ "Read-only"
      refute File.exists?(Path.join(root, "new.txt"))
    end

    test "read-write: writes reach the host directory, within the byte limit", %{root: root} do
      # A file costs its contents, its name and a fixed 128 bytes for its entry.
      {:ok, mount} = Mount.new([{"/data", root, :read_write, write_bytes_limit: 300}])
      assert {:ok, 5, ""} = py("Path('/data/out.txt').write_text('hello')", mount)
      assert File.read!(Path.join(root, "out.txt")) == "hello"
      assert {:error, %{type: type}} = py("Path('/data/big.txt').write_text('x' * 1000)", mount)
      assert type in [:os_error, :permission_error, :memory_error]

      refute File.exists?(Path.join(root, "big.txt")) and
               File.read!(Path.join(root, "big.txt")) != ""
    end

    test "the byte limit holds however the mount path is written", %{root: root} do
      for at <- ["//data", "/data/.", "/data/"] do
        {:ok, mount} = Mount.new([{at, root, :read_write, write_bytes_limit: 300}])
        assert {:error, %{type: type}} = py("Path('/data/big.txt').write_text('x' * 1000)", mount)
        assert type in [:os_error, :permission_error, :memory_error]
        assert {:error, _} = py("[Path(f'/data/d{i}').mkdir() for i in range(20)]", mount)
        assert length(File.ls!(root)) < 20

        for dir <- File.ls!(root),
            String.starts_with?(dir, "d"),
            do: File.rmdir(Path.join(root, dir))
      end
    end

    test "read-write: empty files, directories and names count against the limit",
         %{root: root} do
      {:ok, mount} = Mount.new([{"/data", root, :read_write, write_bytes_limit: 1_000}])
      before = length(File.ls!(root))

      code = """
      made = 0
      try:
          for i in range(3000):
              Path(f'/data/f{i}').write_text('')
              Path(f'/data/d{i}').mkdir()
              made += 2
      except OSError as e:
          error = str(e)
      (made, error)
      """

      assert {:ok, {made, error}, ""} = py(code, mount)
      assert made < 10
      assert error =~ "No space left on device"
      assert length(File.ls!(root)) - before < 10

      # Deep `mkdir(parents=True)` pays for every directory it creates.
      assert {:error, %{type: :os_error}} =
               py("Path('/data/' + 'a/' * 200).mkdir(parents=True)", mount)
    end

    test "overlay: writes stay in memory and can be inspected", %{root: root} do
      {:ok, mount} = Mount.new([{"/data", root, :overlay}])

      code =
        "Path('/data/allowed.txt').write_text('changed')\nPath('/data/new.txt').write_text('new')"

      assert {:ok, 3, ""} = py(code, mount)
      # The host directory is untouched ...
      assert File.read!(Path.join(root, "allowed.txt")) == "allowed content"
      refute File.exists?(Path.join(root, "new.txt"))
      # ... and the overlay shows what Python wrote, to Python and to Elixir.
      assert {:ok, "changed"} = Mount.read_file(mount, "/data/allowed.txt")
      assert {:ok, "new"} = Mount.read_file(mount, "/data/new.txt")
      assert {:ok, "changed", ""} = py("Path('/data/allowed.txt').read_text()", mount)
      assert Mount.exists?(mount, "/data/new.txt")
      assert {:ok, entries} = Mount.ls(mount, "/data")
      assert "/data/new.txt" in entries
    end

    test "what Python printed before the error survives it, with file calls served between",
         %{root: root} do
      {:ok, mount} = Mount.new([{"/data", root, :read_only}])
      code = "print('a')\nPath('/data/allowed.txt').read_text()\nprint('b')\n1/0"

      assert {:error, %{type: :zero_division_error, output: "a\nb\n"}} =
               ExMonty.eval("from pathlib import Path\n" <> code, mounts: mount)
    end

    test "eval/run use mounts too, and calls outside every mount are denied", %{root: root} do
      {:ok, mount} = Mount.new([{"/data", root, :read_only}])

      assert {:ok, "inner", ""} =
               ExMonty.eval("from pathlib import Path\nPath('/data/sub/inner.txt').read_text()",
                 mounts: mount
               )

      assert {:error, %{type: :permission_error}} =
               ExMonty.eval("from pathlib import Path\nPath('/elsewhere/x').read_text()",
                 mounts: mount
               )
    end

    test "mounts combine with a PseudoFS for other paths", %{root: root} do
      {:ok, mount} = Mount.new([{"/data", root, :read_only}])
      fs = ExMonty.PseudoFS.new() |> ExMonty.PseudoFS.put_file("/mem/x.txt", "in memory")
      code = "(Path('/data/allowed.txt').read_text(), Path('/mem/x.txt').read_text())"

      assert {:ok, {"allowed content", "in memory"}, ""} =
               Sandbox.run("from pathlib import Path\n" <> code, mounts: mount, os: fs)
    end

    test "bad mount specs are errors", %{root: root} do
      assert {:error, %{type: :invalid_input}} = Mount.new([{"/data", "/no/such/dir", :read_only}])
      assert {:error, %{type: :invalid_input}} = Mount.new([{"/data", root, :sideways}])
      assert {:error, %{type: :invalid_input}} = Mount.new([{"relative", root, :read_only}])

      assert {:error, %{type: :invalid_input}} =
               Mount.new([{"/a", root, :read_only}, {"/a", root, :read_only}])

      assert {:error, %{type: :invalid_input}} = Mount.new(:nope)
    end
  end

  describe "escapes are impossible" do
    @hostile_reads [
      "/data/../outside/secret.txt",
      "/data/../../outside/secret.txt",
      "/data/sub/../../outside/secret.txt",
      "/data/./../outside/secret.txt",
      "/data//..//outside/secret.txt",
      "/data/sub/./../../outside/secret.txt",
      "/data/sub/../../../../../../outside/secret.txt",
      "/data/" <> String.duplicate("../", 64) <> "etc/passwd",
      "/data/link_abs",
      "/data/link_rel",
      "/data/link_parent/outside/secret.txt",
      "/data/link_dir/secret.txt",
      "/data/link_rel/../outside/secret.txt",
      "/data/sub/../link_abs",
      "/data/link_parent/root/allowed.txt",
      "/outside/secret.txt",
      "/etc/passwd",
      "/",
      "/proc/self/environ",
      "/data/..",
      "/data/sub/..%2f..%2foutside/secret.txt",
      "/data/..\\\\outside\\\\secret.txt",
      "/DATA/../outside/secret.txt",
      "/data\\u0000/../outside/secret.txt",
      "/data/allowed.txt\\u0000../../outside/secret.txt",
      "/data/" <> String.duplicate("a", 5000),
      "/data/" <> String.duplicate("sub/", 2000) <> "x",
      "../outside/secret.txt",
      "data/../../outside/secret.txt",
      "/data/\\u202e../outside/secret.txt"
    ]

    test "#{length(@hostile_reads)} hostile reads are denied and the host file is untouched", ctx do
      {:ok, mount} = Mount.new([{"/data", ctx.root, :read_write}])
      before = snapshot_outside(ctx.outside)

      for path <- @hostile_reads do
        for op <- ["read_text()", "read_bytes()", "stat().st_size", "exists()", "is_file()"] do
          result = py("Path(\"#{path}\").#{op}", mount)

          case result do
            {:ok, value, _} ->
              refute inspect(value) =~ "SECRET", "#{path}.#{op} leaked #{inspect(value)}"
              # existence checks may answer, but never true for an outside file
              if op in ["exists()", "is_file()"] and String.contains?(path, "secret"),
                do: assert(value == false, "#{path}.#{op} saw the outside file")

            {:error, %ExMonty.Exception{}} ->
              :ok
          end
        end
      end

      assert snapshot_outside(ctx.outside) == before
    end

    test "hostile writes, renames, deletes and listings never touch the outside", ctx do
      {:ok, mount} = Mount.new([{"/data", ctx.root, :read_write}])
      before = snapshot_outside(ctx.outside)

      attacks = [
        "Path('/data/../outside/secret.txt').write_text('pwned')",
        "Path('/data/link_abs').write_text('pwned')",
        "Path('/data/link_rel').write_text('pwned')",
        "Path('/data/link_dir/secret.txt').write_text('pwned')",
        "Path('/data/link_parent/outside/secret.txt').write_text('pwned')",
        "Path('/data/../outside/new.txt').write_text('pwned')",
        "Path('/data/link_dir/new.txt').write_text('pwned')",
        "Path('/data/../outside/secret.txt').unlink()",
        "Path('/data/link_dir/secret.txt').unlink()",
        "Path('/data/../outside').rmdir()",
        "Path('/data/../outside/dir').mkdir()",
        "Path('/data/link_dir/dir').mkdir(parents=True)",
        "Path('/data/allowed.txt').rename('/data/../outside/moved.txt')",
        "Path('/data/link_dir/secret.txt').rename('/data/stolen.txt')",
        "open('/data/link_abs', 'w').write('pwned')",
        "open('/data/link_rel', 'a').write('pwned')",
        "list(Path('/data/link_dir').iterdir())",
        "[str(p) for p in Path('/data').glob('**/*')]",
        "[(d, f) for d, _, f in os.walk('/data', followlinks=True)]"
      ]

      for code <- attacks do
        case py(code, mount) do
          {:ok, value, _} ->
            refute inspect(value) =~ "secret.txt" and inspect(value) =~ "outside",
                   "#{code} -> #{inspect(value)}"

          {:error, %ExMonty.Exception{}} ->
            :ok
        end
      end

      assert snapshot_outside(ctx.outside) == before

      refute File.exists?(Path.join(ctx.root, "stolen.txt")) and
               File.read!(Path.join(ctx.root, "stolen.txt")) =~ "SECRET"
    end

    test "host file names that are not UTF-8 do not break listings", ctx do
      File.write!(Path.join(ctx.root, <<"bad-", 0xFF, ".txt">>), "x")
      {:ok, mount} = Mount.new([{"/data", ctx.root, :read_only}])

      case py("sorted(str(p) for p in Path('/data').iterdir())", mount) do
        {:ok, names, ""} -> assert "/data/allowed.txt" in names
        {:error, %ExMonty.Exception{}} -> :ok
      end

      assert {:ok, "allowed content", ""} = py("Path('/data/allowed.txt').read_text()", mount)
    end

    test "a symlink swapped during the calls never leads outside (TOCTOU)", ctx do
      {:ok, mount} = Mount.new([{"/data", ctx.root, :read_only}])
      flip = Path.join(ctx.root, "flip")
      File.write!(flip, "harmless")
      parent = self()

      flipper =
        spawn_link(fn ->
          Stream.repeatedly(fn -> :ok end)
          |> Enum.reduce_while(0, fn _, n ->
            receive do
              :stop -> {:halt, n}
            after
              0 ->
                File.rm(flip)

                if rem(n, 2) == 0,
                  do: File.ln_s(Path.join(ctx.outside, "secret.txt"), flip),
                  else: File.write(flip, "harmless")

                {:cont, n + 1}
            end
          end)

          send(parent, :flipper_done)
        end)

      code = """
      seen = []
      for i in range(300):
          try:
              seen.append(Path('/data/flip').read_text())
          except OSError:
              seen.append('error')
      seen
      """

      assert {:ok, seen, ""} = py(code, mount)
      send(flipper, :stop)
      assert_receive :flipper_done, 5_000
      refute Enum.any?(seen, &(&1 =~ "SECRET"))
    end
  end
end
