#!/usr/bin/env python3
"""Record a command, then replay it twice with different callbacks: the replays see
the same blocks and the same serial output."""
import os
import sys
import tempfile
from pandare import Panda

name = sys.argv[1] if len(sys.argv) > 1 else os.path.join(tempfile.mkdtemp(), "cat_version")
panda = Panda(generic="riscv64")

@panda.queue_blocking
def record():
    print(panda.record_cmd("cat /proc/version", recording_name=name))
    panda.end_analysis()

panda.run()
assert panda.recording_exists(name)

counts = {"first": 0, "second": 0}

@panda.cb_before_block_exec(name="first")
def first(cpu, tb):
    counts["first"] += 1

panda.run_replay(name)
first_output = panda.replay_output
instructions = panda.rr_get_guest_instr_count()
panda.delete_callback("first")

@panda.cb_start_block_exec(name="second")
def second(cpu, tb):
    counts["second"] += 1

panda.run_replay(name)
print(f"replayed {instructions} instructions")
print(f"blocks: {counts['first']} then {counts['second']}")
print("same output:", first_output == panda.replay_output)
