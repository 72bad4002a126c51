"""panda.arch from the guest ABI, CPU access between run slices, and the defaults the
Python package shares with the CLI (pandare::driver)."""
import re

import pytest

from conftest import drive
from pandare import Panda, _core


def test_arch_tables_come_from_the_guest_abi(panda):
    info = _core.architecture(panda.arch_name)
    general = [r for r in info["registers"] if r[2] == "general"]
    assert panda.arch.registers == {name.upper(): number for name, _, _, number, _ in general}
    assert panda.arch.reg_sp == info["stack_pointer"].upper()
    assert panda.arch.reg_pc == info["program_counter"].upper()
    conventions = info["conventions"]
    assert set(panda.arch.call_conventions) == set(conventions)
    for name, entry in conventions.items():
        regs = panda.arch.call_conventions[name]
        assert regs[-len(entry["arguments"]):] == [r.upper() for r in entry["arguments"]]
        assert panda.arch.reg_retval[name] == entry["return_value"].upper()
    # PyPANDA: the syscall convention's index 0 is the number.
    assert panda.arch.call_conventions["syscall"][0] == conventions["syscall"]["number"].upper()
    assert panda.bits == info["pointer_bits"] and panda.endianness == info["endianness"]
    assert panda.arch.asid_register in panda.arch.system_registers


def test_unknown_architecture_is_refused_with_the_supported_list():
    with pytest.raises(ValueError, match=", ".join(_core.architectures())):
        _core.architecture("vax")
    with pytest.raises(ValueError, match="not supported"):
        Panda(arch="vax", kernel="/nonexistent")


def test_registers_by_name_number_and_convention(panda):
    def job(p):
        cpu = p.get_cpu()
        arch = p.arch
        out = {}
        first = arch.call_conventions["default"][0]
        out["by_name"] = arch.get_reg(cpu, first)
        out["by_number"] = arch.get_reg(cpu, arch.registers[first])
        out["arg0"] = arch.get_arg(cpu, 0)
        saved = out["by_name"]
        arch.set_retval(cpu, 5, failure=True)
        out["retval"] = arch.get_retval(cpu)
        arch.set_reg(cpu, first, saved)
        out["sp"] = arch.get_reg(cpu, arch.reg_sp) == p.current_sp(cpu)
        out["system"] = {name: arch.get_reg(cpu, name) for name in arch.system_registers}
        with pytest.raises(ValueError, match="read-only"):
            arch.set_reg(cpu, arch.asid_register, 0)
        with pytest.raises(ValueError, match="no register"):
            arch.get_reg(cpu, "no_such_register")
        out["asid"] = cpu.asid()
        out["dump"] = cpu.dump()
        out["monitor"] = p.run_monitor_cmd("info registers")
        return out

    out = drive(panda, job)
    assert out["by_name"] == out["by_number"] == out["arg0"]
    assert out["retval"] == -5 and out["sp"]
    # At the shell prompt paging is on: the ASID register is the one asid() reports.
    assert out["system"][panda.arch.asid_register] == out["asid"] != 0
    for name in list(panda.arch.registers) + panda.arch.system_registers:
        assert re.search(rf"(^|\s){name.lower()}\s+[0-9a-f]{{16}}", out["dump"]), name
    # `info registers` is the same dump.
    for name in panda.arch.system_registers:
        assert re.search(rf"(^|\s){name.lower()}\s+[0-9a-f]{{16}}", out["monitor"]), name


def test_cpu_reads_between_slices_fire_no_callbacks():
    # A fresh machine: after_machine_init has not fired yet.
    panda = Panda(generic="riscv64")
    counts = {"init": 0, "top": 0, "wait": 0}

    @panda.cb_after_machine_init
    def init(cpu):
        counts["init"] += 1

    @panda.cb_top_loop
    def top(cpu):
        counts["top"] += 1

    @panda.cb_main_loop_wait
    def wait():
        counts["wait"] += 1

    # Read before anything ever ran: nothing fires, and machine init stays due.
    cpu = panda.get_cpu()
    first_pc = cpu.pc
    panda.arch.get_reg(cpu, panda.arch.reg_sp)
    assert counts == {"init": 0, "top": 0, "wait": 0}

    seen = {}

    @panda.queue_blocking
    def reads():
        # Between two requests of the blocking thread the guest waits for the next one,
        # so these reads run between slices, back to back.
        before = dict(counts)
        for _ in range(20):
            panda.arch.get_pc(panda.get_cpu())
            panda.arch.get_reg(panda.get_cpu(), panda.arch.asid_register)
        seen["before"], seen["after"] = before, dict(counts)
        # Now let the guest run slices.
        panda.revert_sync("root")
        panda.run_serial_cmd("true")
        panda.end_analysis()

    panda.run()
    assert counts["init"] == 1 and counts["top"] > 0, counts
    assert seen["after"]["top"] - seen["before"]["top"] <= 1, seen
    assert seen["after"]["wait"] - seen["before"]["wait"] <= 1, seen

    # After the run the callbacks stay registered in the machine: reads still fire none.
    settled = dict(counts)
    for _ in range(5):
        panda.get_cpu().pc
    assert counts == settled
    assert first_pc != 0


def test_own_kernel_defaults_are_the_clis(panda):
    generic = panda._core.config()
    own = Panda(kernel=generic["kernel"], initrd=generic["initrd"])
    config = own._core.config()
    description = _core.architecture(config["architecture"])
    # The same defaults as `panda run --kernel` (both come from pandare::driver; the CLI's
    # side is tested in crates/cli).
    assert config["append"] == description["console_arguments"]
    assert config["memory_mib"] == description["default_memory_mib"]
    assert config["prompt"] == _core.DEFAULT_PROMPT
    assert own.arch_name == config["architecture"]
