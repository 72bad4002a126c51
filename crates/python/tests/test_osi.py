"""OS introspection from Python (PyPANDA's names), checked against the guest's own view
at the same instant: /proc listed by shell builtins (so no process comes or goes while
listing), /proc/PID/maps and /proc/PID/fd; procname= callbacks with two programs
interleaving; replay equals live."""

import re

import pytest

from conftest import drive
from pandare.ffi import NULL

# Lists every process as "PID NAME" with shell builtins only: the shell forks nothing, so
# the process list is the same before, during and after the command.
LIST_PROC = 'for p in /proc/[0-9]*; do read n < $p/comm; echo "${p#/proc/} $n"; done'


def guest_processes(panda):
    listing = panda.run_serial_cmd(LIST_PROC)
    procs = {}
    for line in listing.splitlines():
        pid, _, name = line.strip().partition(" ")
        procs[int(pid)] = name
    return procs


def test_process_list_equals_proc(panda):
    def job(p):
        guest = guest_processes(p)
        cpu = p.get_cpu()
        return guest, p.get_processes(cpu), p.get_processes_dict(cpu)

    guest, procs, as_dict = drive(panda, job)
    assert len(guest) > 10
    # The kernel keeps 15 bytes of a name (/proc shows kernel workers' longer names), and
    # the list starts at the idle task, pid 0, which /proc does not show (as PANDA's).
    # Kernel workers' /proc names also say what they work for ("kworker/0:0-events").
    ours = {proc.pid: proc.name.decode() for proc in procs}
    assert ours.pop(0) == "swapper/0"
    assert ours.keys() == guest.keys()
    for pid, name in ours.items():
        assert guest[pid][:15] == name or (
            name.startswith("kworker/") and guest[pid].startswith(name)
        ), (pid, name, guest[pid])
    as_dict.pop(0)
    assert {pid: d["name"] for pid, d in as_dict.items()} == ours
    assert as_dict[1]["parent_pid"] == 0
    init = next(proc for proc in procs if proc.pid == 1)
    assert init.ppid == 0 and init.asid != 0 and init.pages > 0 and init.taskd != 0
    # Kernel threads have no address space.
    kthreadd = next(proc for proc in procs if proc.pid == 2)
    assert kthreadd.name == b"kthreadd" and kthreadd.asid == 0
    # PyPANDA's way of reading names.
    assert panda.ffi.string(init.name).decode() == guest[1]
    assert init.name != panda.ffi.NULL


def test_current_process_in_a_callback_is_the_program_running(panda):
    seen = []

    @panda.cb_before_block_exec
    def user_block(cpu, tb):
        if not panda.in_kernel_mode(cpu):
            proc = panda.get_current_process(cpu)
            thread = panda.get_current_thread(cpu)
            face = panda.plugins["osi"].get_current_process(cpu)
            seen.append((proc.pid, proc.name, proc.asid, panda.current_asid(cpu),
                         thread.pid, thread.tid, face.pid, panda.get_process_name(cpu)))
            panda.disable_callback("user_block")

    def job(p):
        p.type_serial_cmd("echo $$")
        p.enable_callback("user_block")
        return int(p.finish_serial_cmd())

    panda.disable_callback("user_block")
    shell = drive(panda, job)
    assert seen, "no user block ran"
    pid, name, asid, cpu_asid, tpid, tid, face_pid, pname = seen[0]
    # After Enter, the first user code to run is the shell reading it.
    assert pid == shell and name == b"sh" and pname == "sh"
    assert asid == cpu_asid
    assert tpid == pid == tid == face_pid


def test_mappings_and_fds_equal_proc(panda):
    def job(p):
        out = p.run_serial_cmd("sleep 1000 < /dev/null > /dev/null 2>&1 & echo $!")
        pid = int(out.strip().splitlines()[-1])
        maps = p.run_serial_cmd(f"cat /proc/{pid}/maps")
        fds = p.run_serial_cmd(f"ls -l /proc/{pid}/fd")
        cpu = p.get_cpu()
        proc = next(proc for proc in p.get_processes(cpu) if proc.pid == pid)
        mappings = p.plugins["osi"].get_mappings(cpu, proc)
        threads = p.get_threads(cpu, proc)
        ours_fds = p.get_fds(cpu, proc)
        via_osi_linux = p.plugins["osi_linux"].osi_linux_fd_to_filename(cpu, proc, 0)
        p.run_serial_cmd(f"kill {pid}")
        return pid, maps, fds, proc, mappings, threads, ours_fds, via_osi_linux

    pid, maps, fds, proc, mappings, threads, ours_fds, fd0 = drive(panda, job)
    assert proc.name == b"sleep"
    expected = []
    for line in maps.splitlines():
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else None
        # /proc shows offset 0 for memory that maps no file.
        offset = int(fields[2], 16) if name and name.startswith("/") else None
        expected.append((start, end - start, offset, name))
    got = [
        (
            m.base,
            m.size,
            m.offset if m.file != NULL and m.file.startswith(b"/") else None,
            None if m.file == NULL else m.file.decode(),
        )
        for m in mappings
    ]
    assert got == expected
    for m in mappings:
        if m.file == NULL:
            assert m.name == NULL
        else:
            assert panda.ffi.string(m.name).decode() == m.file.decode().rsplit("/", 1)[-1]
    assert [(t.pid, t.tid) for t in threads] == [(pid, pid)]
    guest_fds = {}
    for line in fds.splitlines():
        match = re.search(r" (\d+) -> (.*)$", line)
        if match:
            guest_fds[int(match.group(1))] = match.group(2)
    assert ours_fds == guest_fds
    assert ours_fds[0] == "/dev/null" and fd0 == b"/dev/null"


def script(panda, name, body):
    """Makes /tmp/NAME a shell script: run, its process is called NAME (the kernel names
    a process after the file it executes), and the shell running it forks nothing for
    builtins. (Busybox runs applets such as cat inside the shell, without a new process.)"""
    panda.run_serial_cmd(f"printf '#!/bin/sh\\n%s\\n' '{body}' > /tmp/{name}; chmod +x /tmp/{name}")


def test_mapping_by_addr_and_file_name_of_the_running_program(panda):
    found = []

    @panda.cb_before_block_exec(procname="showver")
    def in_cat(cpu, tb):
        if not panda.in_kernel_mode(cpu) and not found:
            found.append((
                tb.pc,
                panda.get_mapping_by_addr(cpu, tb.pc),
                panda.get_mapping_by_addr(cpu, 0),
                panda.get_file_name(cpu, 1),
                panda.get_file_name(cpu, 99),
                len(panda.get_mappings(cpu)),
            ))

    def job(p):
        script(p, "showver", "read v < /proc/version; echo $v")
        p.run_serial_cmd("/tmp/showver > /dev/null")

    drive(panda, job)
    assert found
    pc, mapping, nothing, stdout, closed, count = found[0]
    assert mapping.file == "/bin/busybox" and mapping.name == "busybox"
    assert mapping.base <= pc < mapping.base + mapping.size
    assert nothing is None
    assert stdout == b"/dev/null" and closed is None
    assert count >= 4


def test_procname_never_fires_for_another_process(panda):
    calls = {"loopa": [], "loopb": []}
    order = []

    def watcher(expected):
        def on_block(cpu, tb):
            # The name is read in Rust before this runs; reading it again here (every
            # 16th call, to keep the test quick) checks the filter against OSI's view.
            if len(order) % 16 == 0:
                calls[expected].append(panda.get_process_name(cpu))
            order.append(expected)
        on_block.__name__ = "watch_" + expected
        return on_block

    for name in calls:
        panda.register_callback("before_block_exec", watcher(name), procname=name)

    def job(p):
        loop = "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done"
        script(p, "loopa", loop)
        script(p, "loopb", loop)
        p.run_serial_cmd("/tmp/loopa & /tmp/loopb & wait", timeout=300)

    drive(panda, job)
    for name, names in calls.items():
        assert names, f"the {name} callback never fired"
        assert set(names) == {name}, f"{name}'s callback saw {set(names) - {name}}"
    # They interleaved: the scheduler switched between them while both ran.
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert switches >= 2, f"the loops did not interleave ({switches} switches)"


def test_procname_on_a_hook(panda):
    # A kernel function every process calls: the filtered hook fires for one program only.
    read = panda.cosi.symbol_addr_from_name("ksys_read")
    assert read
    filtered, everyone = [], []

    @panda.hook(read, procname="hookprog")
    def only_mine(cpu, tb, hook):
        filtered.append(panda.get_process_name(cpu))

    @panda.hook(read)
    def all_reads(cpu, tb, hook):
        everyone.append(panda.get_process_name(cpu))

    def job(p):
        script(p, "hookprog", "read v < /proc/version; read w < /proc/cmdline")
        p.run_serial_cmd("/tmp/hookprog")

    drive(panda, job)
    assert filtered and set(filtered) == {"hookprog"}
    assert filtered.count("hookprog") == everyone.count("hookprog")
    assert "sh" in everyone


def test_procname_on_hook_and_errors(panda):
    with pytest.raises(ValueError, match="procname= is empty"):
        panda.register_callback("before_block_exec", lambda cpu, tb: None, procname="")
    with pytest.raises(ValueError, match="has no CPU"):
        panda.register_callback("main_loop_wait", lambda: None, procname="sh")


def test_replay_gives_the_same_processes_as_live(panda, tmp_path):
    live, replayed = [], []
    target = live

    @panda.cb_asid_changed
    def switched(cpu, old, new):
        proc = panda.get_current_process(cpu)
        if proc is not None:
            target.append((proc.pid, proc.name))
        return 0

    recording = str(tmp_path / "osi")

    def job(p):
        p.record_cmd("ls /proc > /dev/null; cat /proc/version", recording_name=recording)

    drive(panda, job)
    target = replayed
    panda.run_replay(recording)
    target = []
    panda.run_replay(recording)
    again = target
    assert any(name == b"cat" for _, name in live)
    assert replayed == again
    # The recording starts at the Enter key and ends at the prompt; the live run also saw
    # the switches before and after it.
    assert len(replayed) >= 3
    assert any(
        live[start:start + len(replayed)] == replayed for start in range(len(live))
    ), (live, replayed)


def test_pypanda_osi_plugin_loading(panda, capfd):
    # PyPANDA scripts load both, osi_linux with a kernelinfo file pandare does not need.
    panda.load_plugin("osi")
    panda.load_plugin("osi_linux", {"kconf_file": "/x.conf", "kconf_group": "debian"})
    assert "ignoring kconf_file, kconf_group" in capfd.readouterr().err
    names = []

    @panda.ppp("osi", "on_task_change")
    def changed(cpu):
        names.append(panda.get_process_name(cpu))

    drive(panda, lambda p: p.run_serial_cmd("sleep 0"))
    panda.disable_ppp("changed")
    assert "sleep" in names
