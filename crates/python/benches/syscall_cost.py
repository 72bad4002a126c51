#!/usr/bin/env python3
"""What an empty Python syscalls2 callback costs. Run with .venv/bin/python (after
scripts/python-env.sh).

In one process, from the `root` snapshot each time, the system-call-heavy command of the
Rust benchmark (`crates/plugins/examples/syscall_overhead.rs`) runs alternately without a
Python callback and with an empty `@panda.ppp("syscalls2", "on_all_sys_enter")`, RUNS
times each. Both configurations have syscalls2 loaded (the Rust side's cost is measured by
the Rust benchmark), so the difference is the Python calls. Figures are CPU time of the
process (user + system) around run_serial_cmd, medians and ranges, and ns per call.

Usage: syscall_cost.py [RUNS] (default 3).
"""
import os
import statistics
import sys
import time

from pandare import Panda

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
COMMAND = "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo $i > /dev/null; done; echo $i"

panda = Panda(generic="riscv64")
panda.load_plugin("syscalls2")
calls = [0]
times = {"without": [], "with": []}


def enter(cpu, pc, callno):
    calls[0] += 1


@panda.queue_blocking
def drive():
    for run in range(RUNS):
        for mode in ("without", "with"):
            if mode == "with":
                panda.ppp("syscalls2", "on_all_sys_enter", name="empty")(enter)
            panda.revert_sync("root")
            before_calls = calls[0]
            start = time.process_time()
            output = panda.run_serial_cmd(COMMAND, timeout=600)
            spent = time.process_time() - start
            if "2000" not in output:
                raise SystemExit(f"the command did not finish: {output!r}")
            times[mode].append((spent, calls[0] - before_calls))
            if mode == "with":
                panda.disable_ppp("empty")
    panda.end_analysis()


panda.run()
load = os.getloadavg()[0]
without = statistics.median(t for t, _ in times["without"])
with_ = statistics.median(t for t, _ in times["with"])
count = statistics.median(n for _, n in times["with"])
print(f"load average {load:.1f}; {RUNS} runs each; {int(count)} calls per run")
for mode in ("without", "with"):
    values = [t for t, _ in times[mode]]
    print(f"{mode:>8}: median {statistics.median(values):.2f} s CPU "
          f"(min {min(values):.2f}, max {max(values):.2f})")
print(f"ratio with/without: {with_ / without:.3f}; "
      f"{(with_ - without) / max(count, 1) * 1e9:.0f} ns per Python call")
