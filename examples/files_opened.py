#!/usr/bin/env python3
"""The files a program opened: at each successful openat return of the program (syscalls2),
OS introspection turns the new file descriptor into the kernel's path for it
(get_file_name), so relative paths and symlinks come out resolved."""
import sys

from pandare import Panda

NAME = "reader"
panda = Panda(generic="riscv64")
opened = []


@panda.ppp("syscalls2", "on_sys_openat_return")
def on_openat(cpu, pc, dfd, filename, flags, mode):
    if panda.get_process_name(cpu) != NAME:
        return
    fd = panda.arch.get_retval(cpu, convention="syscall")
    asked = panda.read_str(cpu, filename)
    if fd >= 0:
        opened.append((asked, fd, panda.get_file_name(cpu, fd).decode()))


@panda.queue_blocking
def drive():
    panda.revert_sync("root")
    script = "cd /proc; read v < version; read h < sys/kernel/hostname; read s < self/status"
    panda.run_serial_cmd(f"printf '#!/bin/sh\\n%s\\n' '{script}' > /tmp/{NAME}; chmod +x /tmp/{NAME}")
    panda.run_serial_cmd(f"/tmp/{NAME}")
    panda.end_analysis()


panda.run()
for asked, fd, path in opened:
    print(f"{asked!r} -> fd {fd} -> {path}")
