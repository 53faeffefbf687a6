"""Snapshot exchange with ExMonty (driven by test/foreign_hosts_test.exs).

    python exchange.py resume FILE   loads ExMonty's dump, answers the calls, prints the result (JSON)
    python exchange.py dump FILE     runs the program to its second call and dumps it to FILE
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ex_monty import Guest, Step  # noqa: E402

CODE = "a = ask('first')\nb = ask('second', n=len(a))\n(a, b, seed)"
SEED = '[1,"s"]'
ANSWERS = {'"first"': '"abc"', '"second"': '{"tuple":[2,3]}'}


def answer_all(guest: Guest, step: Step) -> Step:
    while step.kind == "function-call":
        if step.name != "ask":
            raise RuntimeError(f"unexpected call {step.name}")
        step = guest.resume(ANSWERS[step.args[0]])
    return step


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("resume", "dump"):
        print("usage: python exchange.py resume|dump FILE", file=sys.stderr)
        return 2
    mode, file = argv
    guest = Guest()
    if mode == "resume":
        step = answer_all(guest, guest.load_snapshot(Path(file).read_bytes()))
        print(step.value)
    else:
        first = guest.eval(CODE, {"seed": SEED})
        second = guest.resume(ANSWERS[first.args[0]])
        if second.name != "ask" or second.args != ['"second"']:
            raise RuntimeError(f"unexpected pause {second}")
        Path(file).write_bytes(guest.dump_snapshot())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
