defmodule ExMonty.PseudoFSTest do
  use ExUnit.Case, async: true

  doctest ExMonty.PseudoFS

  alias ExMonty.PseudoFS

  defp fs do
    PseudoFS.new()
    |> PseudoFS.put_file("/data/a.txt", "alpha")
    |> PseudoFS.put_file("/data/b.bin", {:bytes, <<0, 255>>})
    |> PseudoFS.mkdir("/data/sub")
    |> PseudoFS.put_env("HOME", "/home/py")
  end

  defp py(code, fs \\ fs()) do
    ExMonty.Sandbox.run("from pathlib import Path\nimport os\n" <> code, os: fs, return_os: true)
  end

  test "spec: the Pseudo Filesystem example, verbatim" do
    fs =
      PseudoFS.new()
      |> PseudoFS.put_file("/data/config.json", ~s({"model": "gpt-4", "temperature": 0.7}))
      |> PseudoFS.put_file("/data/prompt.txt", "Summarize the following text:")
      |> PseudoFS.mkdir("/output")
      |> PseudoFS.put_env("API_KEY", "sk-secret123")

    code = """
    from pathlib import Path
    import os

    config = Path('/data/config.json').read_text()
    prompt = Path('/data/prompt.txt').read_text()
    api_key = os.getenv('API_KEY')

    Path('/output/result.txt').write_text(f'Read config: {config}')
    Path('/output/result.txt').read_text()
    """

    {:ok, result, _output} = ExMonty.Sandbox.run(code, os: fs)
    assert result == "Read config: {\"model\": \"gpt-4\", \"temperature\": 0.7}"
  end

  test "the final filesystem comes back with return_os: true" do
    assert {:ok, _, "", fs} = py("Path('/out').mkdir()\nPath('/out/r.txt').write_text('done')")
    assert PseudoFS.read_file(fs, "/out/r.txt") == {:ok, "done"}
    assert PseudoFS.files(fs)["/data/a.txt"] == "alpha"
    assert {:ok, ["r.txt"]} = PseudoFS.ls(fs, "/out")
  end

  test "queries" do
    assert {:ok, {true, true, false, false, true, false}, "", _} =
             py("""
             p = Path('/data/a.txt')
             (p.exists(), p.is_file(), p.is_dir(), p.is_symlink(), Path('/data/sub').is_dir(), Path('/nope').exists())
             """)
  end

  test "reads" do
    assert {:ok, {"alpha", {:bytes, <<0, 255>>}}, "", _} =
             py("(Path('/data/a.txt').read_text(), Path('/data/b.bin').read_bytes())")

    assert {:error,
            %{type: :file_not_found_error, message: "[Errno 2] No such file or directory: '/nope'"},
            _} = py("Path('/nope').read_text()")

    assert {:error, %{type: :is_a_directory_error, message: "[Errno 21] Is a directory: '/data'"},
            _} = py("Path('/data').read_text()")
  end

  test "writes and appends" do
    assert {:ok, 5, "", fs} = py("Path('/data/new.txt').write_text('hello')")
    assert PseudoFS.read_file(fs, "/data/new.txt") == {:ok, "hello"}
    assert {:ok, 2, "", fs} = py("Path('/data/b.bin').write_bytes(b'xy')", fs)
    assert PseudoFS.read_file(fs, "/data/b.bin") == {:ok, "xy"}

    assert {:ok, "ab\ncd\n", "", _} =
             py("""
             with open('/data/log.txt', 'w') as f:
                 f.write('ab\\n')
             with open('/data/log.txt', 'a') as f:
                 f.write('cd\\n')
             Path('/data/log.txt').read_text()
             """)

    assert {:error, %{type: :file_not_found_error}, _} =
             py("Path('/missing/x.txt').write_text('x')")

    assert {:error, %{type: :is_a_directory_error}, _} = py("Path('/data').write_text('x')")
  end

  test "open() modes" do
    assert {:ok, "alpha", "", _} = py("with open('/data/a.txt') as f:\n    r = f.read()\nr")
    assert {:error, %{type: :file_not_found_error}, _} = py("open('/data/none.txt')")
    # Monty itself refuses exclusive creation.
    assert {:error, %{type: :value_error}, _} = py("open('/data/a.txt', 'x')")
    assert {:ok, _, "", fs} = py("open('/data/new.txt', 'w').close()")
    assert PseudoFS.read_file(fs, "/data/new.txt") == {:ok, ""}
    assert {:error, %{type: :is_a_directory_error}, _} = py("open('/data', 'w')")
  end

  test "mkdir" do
    assert {:ok, nil, "", fs} = py("Path('/a/b/c').mkdir(parents=True)")
    assert PseudoFS.dir?(fs, "/a/b")
    assert {:error, %{type: :file_not_found_error}, _} = py("Path('/x/y').mkdir()")

    assert {:error, %{type: :file_exists_error, message: "[Errno 17] File exists: '/data'"}, _} =
             py("Path('/data').mkdir()")

    assert {:ok, nil, "", _} = py("Path('/data').mkdir(exist_ok=True)")
  end

  test "unlink and rmdir" do
    assert {:ok, nil, "", fs} = py("Path('/data/a.txt').unlink()")
    refute PseudoFS.exists?(fs, "/data/a.txt")
    assert {:error, %{type: :file_not_found_error}, _} = py("Path('/data/zz').unlink()")
    assert {:error, %{type: :is_a_directory_error}, _} = py("Path('/data/sub').unlink()")
    assert {:ok, nil, "", fs} = py("Path('/data/sub').rmdir()")
    refute PseudoFS.exists?(fs, "/data/sub")

    assert {:error, %{type: :os_error, message: "[Errno 39] Directory not empty: '/data'"}, _} =
             py("Path('/data').rmdir()")

    assert {:error, %{type: :not_a_directory_error}, _} = py("Path('/data/a.txt').rmdir()")
  end

  test "iterdir, glob and walk" do
    assert {:ok, ["/data/a.txt", "/data/b.bin", "/data/sub"], "", _} =
             py("sorted(str(p) for p in Path('/data').iterdir())")

    assert {:ok, ["/data/a.txt"], "", _} = py("sorted(str(p) for p in Path('/data').glob('*.txt'))")

    assert {:ok, [{"/data", ["sub"], ["a.txt", "b.bin"]}, {"/data/sub", [], []}], "", _} =
             py("[(d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk('/data')]")

    assert {:error, %{type: :not_a_directory_error}, _} = py("list(Path('/data/a.txt').iterdir())")
  end

  test "stat" do
    assert {:ok, {5, 0o100000, 4096, 0o040000}, "", _} =
             py(
               "s = Path('/data/a.txt').stat()\nd = Path('/data').stat()\n" <>
                 "(s.st_size, s.st_mode & 0o170000, d.st_size, d.st_mode & 0o170000)"
             )

    assert {:error, %{type: :file_not_found_error}, _} = py("Path('/none').stat()")
  end

  test "rename" do
    assert {:ok, _, "", fs} = py("Path('/data/a.txt').rename('/data/sub/z.txt')")
    assert PseudoFS.read_file(fs, "/data/sub/z.txt") == {:ok, "alpha"}
    refute PseudoFS.exists?(fs, "/data/a.txt")
    assert {:ok, _, "", fs} = py("Path('/data').rename('/moved')")
    assert PseudoFS.read_file(fs, "/moved/a.txt") == {:ok, "alpha"}
    assert {:error, %{type: :file_not_found_error}, _} = py("Path('/nope').rename('/x')")
  end

  test "paths are normalised and relative paths use the working directory" do
    fs = fs() |> PseudoFS.cwd("/data")
    assert {:ok, "alpha", "", _} = py("Path('sub/../a.txt').read_text()", fs)
    assert {:ok, "alpha", "", _} = py("Path('/data//./sub/../a.txt').read_text()")
    assert {:ok, "/data/a.txt", "", _} = py("str(Path('a.txt').resolve())", fs)
  end

  test "environment" do
    assert {:ok, {"/home/py", nil, "d"}, "", _} =
             py("(os.getenv('HOME'), os.getenv('NOPE'), os.getenv('NOPE', 'd'))")

    assert {:ok, %{"HOME" => "/home/py"}, "", _} = py("dict(os.environ)")
  end

  describe "budget" do
    defp run_fs(code, fs), do: py(code, fs)

    test "new/1 validates its options strictly" do
      assert %PseudoFS{max_bytes: 100, max_entries: 5, max_path_bytes: 64, max_depth: 3} =
               PseudoFS.new(max_bytes: 100, max_entries: 5, max_path_bytes: 64, max_depth: 3)

      assert_raise ArgumentError, ~r/unknown keys \[:max_files\]/, fn ->
        PseudoFS.new(max_files: 1)
      end

      for {key, bad} <- [max_bytes: 0, max_entries: -1, max_path_bytes: :big, max_depth: 1.5] do
        assert_raise ArgumentError, ~r/#{key}/, fn -> PseudoFS.new([{key, bad}]) end
      end

      assert_raise ArgumentError, fn -> PseudoFS.new(%{max_bytes: 1}) end
    end

    test "writes past max_bytes raise ENOSPC and leave the filesystem as it was" do
      fs = PseudoFS.new(max_bytes: 1_000)
      assert {:ok, 500, "", fs} = run_fs("Path('/a').write_bytes(b'x' * 500)", fs)

      assert {:error, %{type: :os_error, message: "[Errno 28] No space left on device: '/b'"}, fs} =
               run_fs("Path('/b').write_bytes(b'x' * 500)", fs)

      refute PseudoFS.exists?(fs, "/b")
      # Overwriting frees the old contents first.
      assert {:ok, 900, "", fs} = run_fs("Path('/a').write_bytes(b'y' * 900)", fs)
      assert {:ok, <<"y", _::binary>>} = PseudoFS.read_file(fs, "/a")
      # Appending is checked on old + new size, before anything is built.
      assert {:error, %{message: "[Errno 28] No space left on device: '/a'"}, fs} =
               run_fs("with open('/a', 'a') as f:\n    f.write('z' * 200)", fs)

      assert {:ok, content} = PseudoFS.read_file(fs, "/a")
      assert byte_size(content) == 900
      # Freed space can be used again.
      assert {:ok, 300, "", _} = run_fs("Path('/a').unlink()\nPath('/c').write_text('c' * 300)", fs)
    end

    test "catching ENOSPC does not help: the budget holds over many tries" do
      code = """
      n = 0
      for i in range(200):
          try:
              Path(f'/f{i}').write_text('x' * 100)
          except OSError:
              n += 1
      n
      """

      assert {:ok, failed, "", fs} = run_fs(code, PseudoFS.new(max_bytes: 5_000))
      assert failed > 150
      assert fs.used <= 5_000

      assert Enum.sum(Enum.map(PseudoFS.files(fs), fn {p, c} -> byte_size(p) + byte_size(c) end)) <
               5_000
    end

    test "max_entries bounds files and directories, however they are created" do
      fs = PseudoFS.new(max_entries: 4)

      for create <- [
            "Path(f'/n{i}').mkdir()",
            "Path(f'/n{i}').write_text('')",
            "open(f'/n{i}', 'w').close()"
          ] do
        assert {:error, %{type: :os_error, message: "[Errno 28] No space left on device: '/n3'"},
                fs_after} = run_fs("for i in range(10):\n    " <> create, fs)

        assert map_size(fs_after.entries) == 4
      end

      assert {:error, %{message: "[Errno 28] No space left on device: '/a/b/c/d'"}, fs_after} =
               run_fs("Path('/a/b/c/d').mkdir(parents=True)", fs)

      # mkdir(parents=True) creates nothing when the whole chain does not fit.
      refute PseudoFS.exists?(fs_after, "/a")
    end

    test "overlong and overdeep paths raise ENAMETOOLONG before any work" do
      fs = PseudoFS.new()

      for path_expr <- ["'/' + 'a/' * 20000", "'/' + 'a/' * 65", "'x' * 5000", "'/' + 'a' * 5000"] do
        assert {:error, %{type: :os_error, message: "[Errno 36] File name too long: " <> _}, fs} =
                 run_fs("Path(#{path_expr}).mkdir(parents=True)", fs)

        assert map_size(fs.entries) == 1

        assert {:error, %{message: "[Errno 36] File name too long: " <> _}, _} =
                 run_fs("Path(#{path_expr}).exists()", fs)
      end

      # Exactly at the limits is fine.
      assert {:ok, nil, "", fs} = run_fs("Path('/' + '/'.join(['d'] * 64)).mkdir(parents=True)", fs)
      assert map_size(fs.entries) == 65
    end

    test "renames cannot grow paths past the limits or the budget" do
      fs =
        Enum.reduce(1..20, PseudoFS.new(max_bytes: 3_000), fn i, fs ->
          PseudoFS.put_file(fs, "/a/f#{i}", "x")
        end)

      assert {:error, %{message: "[Errno 36] File name too long: " <> _}, fs} =
               run_fs("Path('/a').rename('/' + 'b' * 4094)", fs)

      assert PseudoFS.exists?(fs, "/a/f1")

      assert {:error, %{message: "[Errno 28] No space left on device: " <> _}, fs} =
               run_fs("Path('/a').rename('/' + 'b' * 200)", fs)

      assert PseudoFS.exists?(fs, "/a/f1")

      deep = "/" <> Enum.join(List.duplicate("d", 63), "/")
      deep_fs = PseudoFS.new() |> PseudoFS.put_file("/a/f", "x") |> PseudoFS.mkdir(deep)

      assert {:error, %{message: "[Errno 36] File name too long: " <> _}, deep_fs} =
               run_fs("Path('/a').rename('#{deep}/a')", deep_fs)

      assert PseudoFS.exists?(deep_fs, "/a/f")

      assert {:ok, _, "", fs} = run_fs("Path('/a').rename('/b')", fs)
      assert PseudoFS.read_file(fs, "/b/f20") == {:ok, "x"}
    end

    test "put_file, mkdir and cwd obey the same budget" do
      fs = PseudoFS.new(max_bytes: 100, max_depth: 4)

      assert_raise ArgumentError, ~r/max_bytes/, fn ->
        PseudoFS.put_file(fs, "/a", String.duplicate("x", 200))
      end

      assert_raise ArgumentError, ~r/File name too long/, fn -> PseudoFS.mkdir(fs, "/a/b/c/d/e") end
      assert_raise ArgumentError, ~r/File name too long/, fn -> PseudoFS.cwd(fs, "/a/b/c/d/e") end
      fs = PseudoFS.mkdir(fs, "/a/b/c/d")
      assert PseudoFS.dir?(fs, "/a/b/c/d")
    end
  end
end
