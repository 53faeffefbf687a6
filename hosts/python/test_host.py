"""The guest under wasmtime-py: the same scenario as hosts/node/test/host.test.mjs
and test/foreign_hosts_test.exs, with the same answers. Two cases more here, which
the Node host's single shared instance cannot play (each test here has its
own instances): an allocation count that outlives a refused call ends in a
trap, and a snapshot loaded into a second instance keeps its max_memory.

    hosts/python/.venv/bin/python -m unittest discover -s hosts/python
"""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import wasmtime  # noqa: E402

from ex_monty import Guest, MontyError  # noqa: E402


class HostTest(unittest.TestCase):
    def setUp(self) -> None:
        self.guest = Guest()

    def test_eval_with_json_inputs(self) -> None:
        step = self.guest.eval(
            "print('hi')\n(x, n * 2, sorted(s), 7 / 2, b[::-1])",
            {
                "x": '{"dict":[["a",[1,2.5]],[{"tuple":[1,null]},{"bytes":"AAE="}]]}',
                "n": '{"int":"123456789012345678901234567890"}',
                "s": '{"frozenset":[3,1,2]}',
                "b": '{"bytes":"AAE="}',
            },
        )
        self.assertEqual(step.kind, "complete")
        self.assertEqual(step.output, "hi\n")
        self.assertEqual(
            step.value,
            '{"tuple":[{"dict":[["a",[1,2.5]],[{"tuple":[1,null]},{"bytes":"AAE="}]]},'
            '{"int":"246913578024691357802469135780"},[1,2,3],3.5,{"bytes":"AQA="}]}',
        )

    def test_function_call_pause_resume_raise(self) -> None:
        g = self.guest
        step = g.eval("r = fetch('k', n=3)\nprint(r)\ntry:\n    fetch('boom')\nexcept ValueError as e:\n    r.append(str(e))\nr")
        self.assertEqual((step.kind, step.name, step.args, step.kwargs), ("function-call", "fetch", ['"k"'], {"n": "3"}))
        step = g.resume('[1,{"float":2}]')
        self.assertEqual((step.kind, step.output), ("function-call", "[1, 2.0]\n"))
        step = g.raise_("ValueError", "no such key")
        self.assertEqual((step.kind, step.value), ("complete", '[1,2.0,"no such key"]'))

    def test_limits(self) -> None:
        with self.assertRaises(MontyError) as caught:
            self.guest.eval("'a' * 100000000", max_memory=1_000_000)
        self.assertEqual(caught.exception.type, "MemoryError")
        with self.assertRaises(MontyError) as caught:
            self.guest.eval("while True:\n    pass", max_duration_ms=100)
        self.assertEqual(caught.exception.type, "TimeoutError")
        self.assertEqual(self.guest.eval("1 + 1").value, "2")

    def test_eval_same_reuses_the_last_settings(self) -> None:
        g = self.guest
        with self.assertRaises(MontyError) as caught:
            g.eval_same("1")
        self.assertEqual(caught.exception.type, "invalid")
        with self.assertRaises(MontyError):
            g.eval("'a' * 100000000", max_memory=1_000_000)
        with self.assertRaises(MontyError) as caught:
            g.eval_same("'a' * 100000000")
        self.assertEqual(caught.exception.type, "MemoryError")
        self.assertEqual(g.eval_same("len('a' * 1000)").value, "1000")
        self.assertEqual(g.eval("'a' * 2000000 and 7").value, "7")
        self.assertEqual(g.eval_same("len('a' * 2000000)").value, "2000000")

    def test_a_paused_execution_keeps_its_allocation_count_across_failed_calls(self) -> None:
        # Each part makes about 2 100 allocations: two fit in 5 000, three do not.
        g = self.guest
        part = "[str(i) for i in range(2000)]"
        code = f"f()\na = {part}\nf()\nb = {part}\nf()\nc = {part}\nlen(a) + len(b) + len(c)"
        self.assertEqual(g.eval(code, max_allocations=20_000).name, "f")
        for _ in range(2):
            self.assertEqual(g.resume("null").name, "f")
        self.assertEqual(g.resume("null").value, "6000")

        self.assertEqual(g.eval(code, max_allocations=5_000).name, "f")
        for _ in range(2):
            # A call refused before it runs anything leaves the pause as it was,
            # its allocation count included.
            with self.assertRaises(MontyError) as caught:
                g.eval("1 +")
            self.assertEqual(caught.exception.type, "SyntaxError")
            self.assertEqual(g.resume("null").name, "f")
        with self.assertRaises(wasmtime.WasmtimeError):
            g.resume("null")

    def test_a_loaded_execution_keeps_its_max_memory(self) -> None:
        g = self.guest
        self.assertEqual(g.eval("x = f()\nlen(x)", max_memory=1_000_000).name, "f")
        dump = g.dump_snapshot()
        big = '"' + "a" * 2_000_000 + '"'
        # Loaded without limits of its own, in a fresh instance: the
        # execution's 1 MB still refuses a 2 MB answer where the call was made.
        other = Guest()
        self.assertEqual(other.load_snapshot(dump).name, "f")
        with self.assertRaises(MontyError) as caught:
            other.resume(big)
        self.assertEqual(caught.exception.type, "MemoryError")
        self.assertIn("does not fit in max_memory (1000000 bytes)", caught.exception.args[0])
        self.assertEqual(g.resume('"abc"').value, "3")

    def test_snapshot_between_processes(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "snapshot.dump"
            subprocess.run([sys.executable, str(HERE / "exchange.py"), "dump", str(file)], check=True)
            self.assertEqual(file.read_bytes()[:7], b"EXMONTY")
            out = subprocess.run(
                [sys.executable, str(HERE / "exchange.py"), "resume", str(file)],
                check=True, capture_output=True, text=True,
            ).stdout
        self.assertEqual(out, '{"tuple":["abc",{"tuple":[2,3]},[1,"s"]]}\n')

    def test_dump_load_resume_in_one_instance(self) -> None:
        g = self.guest
        self.assertEqual(g.eval("x = ask()\nx + 1").name, "ask")
        dump = g.dump_snapshot()
        self.assertEqual(g.resume("1").value, "2")
        self.assertEqual(g.load_snapshot(dump).name, "ask")
        self.assertEqual(g.resume("41").value, "42")

    def test_codec_refuses_bad_input(self) -> None:
        with self.assertRaises(MontyError) as caught:
            self.guest.from_json('{"set": 1}')
        self.assertEqual(caught.exception.type, "invalid")
        self.assertIn("value-from-json", caught.exception.message)
        self.assertEqual(self.guest.to_json(self.guest.from_json('{"float":"nan"}')), '{"float":"nan"}')


if __name__ == "__main__":
    unittest.main()
