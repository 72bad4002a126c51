#!/usr/bin/env python3
"""What a Python callback costs. Run with .venv/bin/python (after scripts/python-env.sh).

1. PANDA's documentation example (README, issue 4), literally: revert_sync("root"),
   run_serial_cmd("uname -a"), one Python before_block_exec counting blocks. It runs as a
   separate program, with the callback and without it (the same program minus the
   decorated function), alternately, RUNS times each. For each program the figures are:
     - program: the whole program's wall time (interpreter start, import, Panda(), run(),
       exit), measured by this script around the subprocess;
     - run():   the wall time of the panda.run() call alone (the revert, the command and
       the end of the run), measured inside the program.
   Ratios are "with callback / without", from the medians, and the range over the pairs
   run back to back (same-run ratios: the machine is shared, so absolute times drift).
2. ns per call: in this process, a longer guest loop (COMMAND) run with and without an
   empty before_block_exec; (time with - time without) / number of calls, over the
   run_serial_cmd call alone (the revert is outside the timed part).

Usage: callback_cost.py [RUNS] (default 5).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
COMMAND = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; uname -a"

# PANDA's documentation example with only the image name changed, plus a timer around
# run() written to stderr.
DOC_EXAMPLE = '''
import sys, time
from pandare import Panda
panda = Panda(generic='riscv64')

blocks = 0
{callback}
@panda.queue_blocking
def run_cmd():
    panda.revert_sync("root")
    print(panda.run_serial_cmd("uname -a"))
    panda.end_analysis()

start = time.perf_counter()
panda.run()
print("run() %.6f" % (time.perf_counter() - start), file=sys.stderr)
print("Finished. Saw a total of {{}} basic blocks during execution".format(blocks))
'''
CALLBACK = '''
@panda.cb_before_block_exec
def before_block_execute(cpustate, transblock):
    global blocks
    blocks += 1
'''


def doc_example(path):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, path], capture_output=True, text=True, check=True
    )
    program = time.perf_counter() - start
    run = float(done.stderr.split("run() ")[1].split()[0])
    blocks = int(done.stdout.split("total of ")[1].split()[0])
    assert "riscv64" in done.stdout, done.stdout
    return program, run, blocks


def loop_job(with_callback):
    from pandare import Panda

    panda = Panda(generic="riscv64")
    calls = 0
    if with_callback:
        @panda.cb_before_block_exec
        def before_block_execute(cpu, tb):
            nonlocal calls
            calls += 1

    timing = {}

    @panda.queue_blocking
    def run_cmd():
        panda.revert_sync("root")
        start = time.perf_counter()
        panda.run_serial_cmd(COMMAND)
        timing["command"] = time.perf_counter() - start
        panda.end_analysis()

    panda.run()
    return timing["command"], calls


def spread(values):
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, callback in (("plain", ""), ("callback", CALLBACK)):
            paths[name] = os.path.join(tmp, f"{name}.py")
            with open(paths[name], "w") as file:
                file.write(DOC_EXAMPLE.format(callback=callback))
        doc_example(paths["plain"])  # warm the page cache
        results = {"plain": [], "callback": []}
        for _ in range(RUNS):
            for name in ("plain", "callback"):
                results[name].append(doc_example(paths[name]))

    blocks = results["callback"][0][2]
    print(f"documentation example (uname -a, {blocks} blocks, {RUNS} runs each):")
    for index, what in ((0, "program"), (1, "run()  ")):
        plain = [r[index] for r in results["plain"]]
        callback = [r[index] for r in results["callback"]]
        ratios = [c / p for p, c in zip(plain, callback)]
        print(f"  {what} without callback: {spread(plain)} s")
        print(f"  {what} with callback:    {spread(callback)} s")
        print(
            f"  {what} ratio: {statistics.median(callback) / statistics.median(plain):.2f}x"
            f" (same-run pairs {min(ratios):.2f}x-{max(ratios):.2f}x)"
        )

    costs = []
    for _ in range(max(2, RUNS // 2)):
        plain, _ = loop_job(False)
        with_cb, calls = loop_job(True)
        costs.append((with_cb - plain) / calls * 1e9)
    print(f"empty before_block_exec, {calls} calls (guest loop of {COMMAND!r}):")
    print(
        f"  cost per call: median {statistics.median(costs):.0f} ns"
        f" (min {min(costs):.0f}, max {max(costs):.0f}); last pair: {plain:.3f} s"
        f" without, {with_cb:.3f} s with"
    )


if __name__ == "__main__":
    main()
