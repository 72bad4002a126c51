#!/usr/bin/env python3
"""Snapshots restore guest files; the monitor shows the registers."""
from pandare import Panda

panda = Panda(generic="riscv64")

@panda.queue_blocking
def drive():
    panda.revert_sync("root")
    panda.run_serial_cmd("echo before > /tmp/state")
    panda.snap("example_snap")
    panda.run_serial_cmd("echo after > /tmp/state")
    print("changed:", panda.run_serial_cmd("cat /tmp/state"))
    panda.revert_sync("example_snap")
    print("restored:", panda.run_serial_cmd("cat /tmp/state"))
    panda.delvm("example_snap")
    registers = panda.run_monitor_cmd("info registers")
    print([line for line in registers.splitlines() if "pc" in line][0])
    panda.end_analysis()

panda.run()
