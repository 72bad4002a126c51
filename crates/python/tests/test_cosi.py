"""panda.cosi: typed kernel navigation from the kernel's BTF and kallsyms, checked against
the OSI walks and the guest's own view."""

import pytest

from conftest import drive
from pandare.cosi import CosiGuestPointer


def test_symbols_types_and_the_process_list(panda):
    cosi = panda.cosi
    assert cosi.kaslr_offset() == 0
    init_task = cosi.symbol_addr_from_name("init_task")
    assert init_task and init_task == cosi.symbol_value_from_name("init_task")
    assert cosi.symbol_addr_from_name("no_such_symbol_anywhere") is None
    task_type = cosi.type_from_name("task_struct")
    assert task_type.type_of_field("mm") == "struct mm_struct *"
    assert task_type.type_of_field("comm") == "char[16]"
    assert task_type["comm"].offset == task_type.offset_of_field("comm") > 0
    assert "tasks" in [name for _, _, name in task_type.fields()]
    pid_t = cosi.base_type_from_name("pid_t")
    assert pid_t.size() == 4 and pid_t.is_signed()
    assert cosi.type_from_name("no_such_type") is None

    def job(p):
        cpu = p.get_cpu()
        init = cosi.get("task_struct", "init_task")
        tasks = cosi.process_list()
        records = [(t.tgid, t.comm, t.real_parent.tgid, int(t)) for t in tasks]
        procs = [(q.pid, q.name, q.ppid, q.taskd) for q in p.get_processes(cpu)]
        offset = cosi.per_cpu_offset()
        table = p.virtual_memory_read(cpu, cosi.symbol_addr_from_name("__per_cpu_offset"), 8, fmt="int")
        return init.comm, init.pid, int(init), records, procs, offset, table

    comm, pid, address, records, procs, offset, table = drive(panda, job)
    assert comm == b"swapper/0" and pid == 0 and address == init_task
    assert records == procs
    assert offset == table


def test_pointers_of_the_running_process(panda):
    found = []

    @panda.cb_before_block_exec(procname="cosiprog")
    def in_program(cpu, tb):
        if panda.in_kernel_mode(cpu) or found:
            return
        cosi = panda.cosi
        task = cosi.current_process(cpu)
        thread = cosi.current_thread(cpu)
        proc = panda.get_current_process(cpu)
        mm = task.mm
        files = cosi.current_files(cpu)
        parent = next(
            t for t in task.real_parent.children.as_linux_list("sibling") if int(t) == int(task)
        )
        found.append(dict(
            comm=task.comm, tgid=task.tgid, pid=thread.pid, proc=proc,
            ppid=task.real_parent.tgid, mm=int(mm), mm_mt=mm.mm_mt,
            mm_mt_offset=cosi.type_from_name("mm_struct").offset_of_field("mm_mt"),
            back=task.tasks.container_of("task_struct", "tasks"),
            cast=int(task.cast("list_head")), stdout=files.get_from_fd(1),
            sibling=int(parent), comm_bytes=task.comm[:3],
            first_char=task["comm"], pgd=mm.pgd,
        ))

    def job(p):
        p.run_serial_cmd("printf '#!/bin/sh\\nread v < /proc/version\\n' > /tmp/cosiprog; chmod +x /tmp/cosiprog")
        p.run_serial_cmd("/tmp/cosiprog > /dev/null")

    drive(panda, job)
    assert found, "the program never ran in user mode"
    f = found[0]
    proc = f["proc"]
    assert f["comm"] == b"cosiprog" == proc.name
    assert f["tgid"] == proc.pid == f["pid"]
    assert f["ppid"] == proc.ppid
    assert isinstance(f["mm_mt"], CosiGuestPointer)
    assert int(f["mm_mt"]) == f["mm"] + f["mm_mt_offset"]
    assert int(f["back"]) == proc.taskd == f["cast"] == f["sibling"]
    assert f["stdout"].name == "/dev/null"
    assert isinstance(f["pgd"], CosiGuestPointer) and int(f["pgd"]) != 0


def test_bad_navigation_is_a_clear_error(panda):
    init = panda.cosi.get("task_struct", "init_task")
    with pytest.raises(AttributeError, match="has no field 'no_such_field'"):
        init.no_such_field
    with pytest.raises(ValueError, match="no type 'struct nothing_here'"):
        init.cast("struct nothing_here")
    with pytest.raises(ValueError, match="no symbol"):
        panda.cosi.get("task_struct", "no_such_symbol_anywhere")
