"""pydantic-monty (the official Python binding) on the workloads of bench/run.exs.

Run by `mix bench` when `python3 -c "import pydantic_monty"` works, or from
bench/.venv when BENCH_PYDANTIC=1 installed it there. By hand:

    python3 bench/pydantic_monty_bench.py ITERATIONS FIB_ITERATIONS

Prints one line per workload, as bench/native does: `name median_us p99_us iterations`.
pydantic-monty runs native Monty in `monty` subprocess workers; a session is
one worker, and `feed_run` is one round trip to it.
"""

import sys
import time

from pydantic_monty import Monty

FIB = 'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(25)'


def measure(name, iterations, fn):
    for _ in range(min(iterations, 200)):
        fn()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    median = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, len(samples) * 99 // 100)]
    print(f'{name} {median:.2f} {p99:.2f} {iterations}', flush=True)


def expect(value, wanted):
    if value != wanted:
        raise SystemExit(f'unexpected result {value!r}, wanted {wanted!r}')


def main():
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    fib_iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 21

    # From configuring the pool (its workers are spawned by `with`) to the
    # first result: the counterpart of ExMonty's NIF load → first result.
    started = time.perf_counter_ns()
    with Monty(min_processes=1) as pool:
        with pool.checkout() as session:
            expect(session.feed_run('2 + 2'), 4)
            first = (time.perf_counter_ns() - started) / 1000
            print(f'start_to_first_result {first:.2f} {first:.2f} 1', flush=True)

            measure('session_feed_run_2_plus_2', iterations, lambda: expect(session.feed_run('2 + 2'), 4))
            measure('session_feed_run_fib_25', fib_iterations, lambda: expect(session.feed_run(FIB), 75025))

        # A new conversation: a session checked out of the pool, one snippet,
        # the session closed (ExMonty's counterpart: Session.start/eval/stop).
        def new_session():
            with pool.checkout() as session:
                expect(session.feed_run('1 + 2'), 3)

        measure('session_checkout_feed_run_close', max(iterations // 20, 100), new_session)


if __name__ == '__main__':
    main()
