#!/usr/bin/env python3
"""The guest's process tree, as OS introspection reads it from the kernel's memory
(PyPANDA's get_processes_dict), next to what the running program sees of itself
(get_current_process in a callback). No profile file: pandare derives it from the
kernel's own BTF and kallsyms."""
from pandare import Panda

panda = Panda(generic="riscv64")
seen = {}


@panda.cb_asid_changed
def switched(cpu, old, new):
    # The kernel switches address spaces before it switches tasks: the process read
    # here is the one leaving the CPU.
    proc = panda.get_current_process(cpu)
    if proc is not None:
        seen[proc.pid] = panda.ffi.string(proc.name).decode()
    return 0


@panda.queue_blocking
def drive():
    panda.revert_sync("root")
    panda.run_serial_cmd("sleep 100 & sleep 200 & sleep 1")
    procs = panda.get_processes_dict(panda.get_cpu())
    children = {}
    for pid, proc in procs.items():
        children.setdefault(proc["parent_pid"], []).append(pid)

    def show(pid, depth):
        print(f"{'  ' * depth}{pid} {procs[pid]['name']}")
        for child in sorted(children.get(pid, [])):
            if child != pid:
                show(child, depth + 1)

    show(0, 0)
    panda.run_serial_cmd("killall sleep")
    panda.end_analysis()


panda.run()
print("processes that ran:", ", ".join(f"{pid} {name}" for pid, name in sorted(seen.items())))
