#!/usr/bin/env python3
"""Cost of an empty Python before_block_exec callback, and the documentation example's
wall time with and without it. Run with .venv/bin/python."""
import time

from pandare import Panda

COMMAND = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; uname -a"


def job(with_callback):
    panda = Panda(generic="riscv64")
    blocks = 0
    if with_callback:
        @panda.cb_before_block_exec
        def before_block_execute(cpu, tb):
            nonlocal blocks
            blocks += 1

    timing = {}

    @panda.queue_blocking
    def run_cmd():
        panda.revert_sync("root")
        start = time.perf_counter()
        panda.run_serial_cmd(COMMAND)
        timing["command"] = time.perf_counter() - start
        panda.end_analysis()

    start = time.perf_counter()
    panda.run()
    return time.perf_counter() - start, timing["command"], blocks


for _ in range(2):
    plain_total, plain_cmd, _ = job(False)
    cb_total, cb_cmd, blocks = job(True)
print(f"command without callback: {plain_cmd:.3f} s (whole run {plain_total:.3f} s)")
print(f"command with callback:    {cb_cmd:.3f} s (whole run {cb_total:.3f} s), {blocks} calls")
print(f"ratio: {cb_cmd / plain_cmd:.2f}x; cost per call: {(cb_cmd - plain_cmd) / blocks * 1e9:.0f} ns")
