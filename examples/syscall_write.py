#!/usr/bin/env python3
"""Observe write() system calls from Python alone: insn_translate picks out `ecall`
instructions in user mode, insn_exec reads the syscall number (a7) and arguments (a0-a2)
and the user buffer, and we look for a marker echoed by a shell command."""
import sys
from pandare import Panda

MARKER = sys.argv[1] if len(sys.argv) > 1 else "pandare-marker-42"
ECALL = (0x00000073).to_bytes(4, "little")
SYS_WRITE = 64  # riscv64 Linux

panda = Panda(generic="riscv64")
seen = []

@panda.cb_insn_translate
def is_ecall(cpu, pc):
    if panda.in_kernel_mode(cpu):
        return False
    try:
        return panda.virtual_memory_read(cpu, pc, 4, fmt="bytes") == ECALL
    except ValueError:
        return False

@panda.cb_insn_exec
def on_ecall(cpu, pc):
    if panda.arch.get_arg(cpu, 0, convention="syscall") != SYS_WRITE:
        return
    fd, buf, count = panda.arch.get_args(cpu, 4, convention="syscall")[1:]
    data = panda.virtual_memory_read(cpu, buf, min(count, 256), fmt="bytes")
    if MARKER.encode() in data:
        seen.append((fd, data))

@panda.queue_blocking
def drive():
    panda.revert_sync("root")
    print(panda.run_serial_cmd(f"echo {MARKER}"))
    panda.end_analysis()

panda.run()
for fd, data in seen:
    print(f"write(fd={fd}, {data!r})")
print(f"writes with the marker: {len(seen)}")
