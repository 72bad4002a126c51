#!/usr/bin/env python3
"""What a Python callback costs. Run with .venv/bin/python (after scripts/python-env.sh).

1. PANDA's documentation example (README, issue 4), literally: revert_sync("root"),
   run_serial_cmd("uname -a"), one Python before_block_exec counting blocks. It runs as a
   separate program, with the callback and without it (the same program minus the
   decorated function), alternately, RUNS times each. For each program the figures are:
     - program: the whole program (interpreter start, import, Panda(), run(), exit),
       measured by this script around the subprocess;
     - run():   the panda.run() call alone (the revert, the command and the end of the
       run), measured inside the program.
   Each is given as wall time and as CPU time (user + system, all threads). The machine
   is shared: when other work competes for the cores, wall times stretch and CPU times
   much less, so compare the CPU figures when the load is high. Ratios are "with callback
   / without", from the medians, and the range over the pairs run back to back.
2. ns per call: in this process, a longer guest loop (COMMAND) run with and without an
   empty before_block_exec; (time with - time without) / number of calls, over the
   run_serial_cmd call alone (the revert is outside the timed part), wall and CPU.
3. ns per insn_exec call: the same for `uname -a` with insn_translate selecting every
   instruction and an empty insn_exec (this includes the engine's switch to per-instruction
   instrumented code, not only the Python calls).

Before and after, it prints the load average and a calibration figure: what CPython itself
takes to call the callback's body, `f(cpu, tb)` incrementing a global, from Python code. On
this shared machine it moves between ~60 and ~105 ns from one minute to the next, and the
figures above move with it; compare figures taken with similar calibration values.

Usage: callback_cost.py [RUNS] (default 5).
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import timeit

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
COMMAND = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; uname -a"

# PANDA's documentation example with only the image name changed, plus timers around
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

start, cpu = time.perf_counter(), time.process_time()
panda.run()
print("run() %.6f %.6f" % (time.perf_counter() - start, time.process_time() - cpu), file=sys.stderr)
print("Finished. Saw a total of {{}} basic blocks during execution".format(blocks))
'''
CALLBACK = '''
@panda.cb_before_block_exec
def before_block_execute(cpustate, transblock):
    global blocks
    blocks += 1
'''


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def doc_example(path):
    start, cpu = time.perf_counter(), children_cpu()
    done = subprocess.run(
        [sys.executable, path], capture_output=True, text=True, check=True
    )
    program = time.perf_counter() - start
    program_cpu = children_cpu() - cpu
    run, run_cpu = (float(x) for x in done.stderr.split("run() ")[1].split()[:2])
    blocks = int(done.stdout.split("total of ")[1].split()[0])
    assert "riscv64" in done.stdout, done.stdout
    return {"program": program, "program CPU": program_cpu, "run()": run,
            "run() CPU": run_cpu, "blocks": blocks}


def loop_job(with_callback, command=COMMAND, kind="block"):
    from pandare import Panda

    panda = Panda(generic="riscv64")
    calls = 0
    if with_callback and kind == "block":
        @panda.cb_before_block_exec
        def before_block_execute(cpu, tb):
            nonlocal calls
            calls += 1
    elif with_callback:
        @panda.cb_insn_translate
        def every_instruction(cpu, pc):
            return True

        @panda.cb_insn_exec
        def insn_exec(cpu, pc):
            nonlocal calls
            calls += 1

    timing = {}

    @panda.queue_blocking
    def run_cmd():
        panda.revert_sync("root")
        start, cpu = time.perf_counter(), time.process_time()
        panda.run_serial_cmd(command)
        timing["wall"] = time.perf_counter() - start
        timing["cpu"] = time.process_time() - cpu
        panda.end_analysis()

    panda.run()
    return timing, calls


def spread(values):
    return f"median {statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def per_call(label, command, kind):
    wall, cpu = [], []
    for _ in range(max(2, RUNS // 2)):
        plain, _ = loop_job(False, command, kind)
        with_cb, calls = loop_job(True, command, kind)
        wall.append((with_cb["wall"] - plain["wall"]) / calls * 1e9)
        cpu.append((with_cb["cpu"] - plain["cpu"]) / calls * 1e9)
    print(f"{label}, {calls} calls ({command!r}):")
    for name, costs in (("wall", wall), ("CPU ", cpu)):
        print(
            f"  cost per call ({name}): median {statistics.median(costs):.0f} ns"
            f" (min {min(costs):.0f}, max {max(costs):.0f})"
        )
    print(f"  last pair: {plain['wall']:.3f} s without, {with_cb['wall']:.3f} s with (wall)")


def calibration():
    scope = {}
    exec("blocks = 0\ndef f(cpu, tb):\n    global blocks\n    blocks += 1\n", scope)
    number = 2_000_000
    best = min(timeit.repeat("f(1, 2)", number=number, repeat=3, globals=scope))
    return (
        f"load average {os.getloadavg()[0]:.2f}; CPython call of the empty body from "
        f"Python: {best / number * 1e9:.0f} ns"
    )


def main():
    print(f"before: {calibration()}")
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

    blocks = results["callback"][0]["blocks"]
    print(f"documentation example (uname -a, {blocks} blocks, {RUNS} runs each), seconds:")
    for what in ("program", "program CPU", "run()", "run() CPU"):
        plain = [r[what] for r in results["plain"]]
        callback = [r[what] for r in results["callback"]]
        ratios = [c / p for p, c in zip(plain, callback)]
        print(f"  {what:<11} without callback: {spread(plain)}")
        print(f"  {what:<11} with callback:    {spread(callback)}")
        print(
            f"  {what:<11} ratio: {statistics.median(callback) / statistics.median(plain):.2f}x"
            f" (same-run pairs {min(ratios):.2f}x-{max(ratios):.2f}x)"
        )

    per_call("empty before_block_exec", COMMAND, "block")
    per_call("empty insn_exec on every instruction", "uname -a", "insn")
    print(f"after: {calibration()}")


if __name__ == "__main__":
    main()
