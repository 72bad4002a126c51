#!/usr/bin/env python3
"""strace of one program: the system calls a shell script makes (syscalls2's PPP
callbacks, named and typed from the guest kernel itself), with their results, and
nothing from any other process: the name of the running process comes from OS
introspection (the `ls` the script starts is another process, so its calls are not
shown; the script's clone and wait4 for it are)."""
import sys

from pandare import Panda

PROGRAM = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lister"
NAME = PROGRAM.rsplit("/", 1)[-1]
panda = Panda(generic="riscv64")
calls = []


@panda.ppp("syscalls2", "on_all_sys_return2")
def on_return(cpu, pc, callno, name, *args):
    if panda.get_process_name(cpu) != NAME:
        return
    result = panda.arch.get_retval(cpu, convention="syscall")
    calls.append(f"{name.decode()}({', '.join(hex(a) for a in args)}) = {result}")


@panda.ppp("syscalls2", "on_sys_openat_enter")
def on_openat(cpu, pc, dfd, filename, flags, mode):
    if panda.get_process_name(cpu) == NAME:
        calls.append(f"  openat path: {panda.read_str(cpu, filename)!r}")


@panda.queue_blocking
def drive():
    panda.revert_sync("root")
    # A script, so the program has a name of its own (busybox runs applets such as ls
    # inside the shell that starts them).
    panda.run_serial_cmd(f"printf '#!/bin/sh\\nls /proc/self/\\n' > {PROGRAM}; chmod +x {PROGRAM}")
    print(panda.run_serial_cmd(PROGRAM).split()[:3], "...")
    panda.end_analysis()


panda.run()
print(f"{len([c for c in calls if not c.startswith(' ')])} system calls of {NAME}:")
print("\n".join(calls))
