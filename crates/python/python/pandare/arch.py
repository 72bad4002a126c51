"""Architecture helpers: ``panda.arch`` (PyPANDA's ``PandaArch``).

Every fact here comes from the guest ABI of the architecture crate
(``pandare._core.architecture(name)``): register names and numbers, the stack pointer,
return value and return-address registers, and the calling conventions. No register or
convention of a particular architecture is written in this file.
"""

from __future__ import annotations

from . import _core


class PandaArch:
    """Register access and calling conventions of the guest architecture.

    Registers are named as in the architecture's table (any case, with its aliases) or, for
    general registers, by number. Conventions: ``default``, ``syscall`` (index 0 is the
    system call number, as in PyPANDA), ``linux_kernel`` and ``hypercall``.

    Tables (PyPANDA's names, upper case): ``registers`` (general register name to number),
    ``reg_sp``, ``reg_pc``, ``reg_retval`` (per convention), ``call_conventions`` (argument
    registers per convention), plus ``system_registers`` (names readable with
    :meth:`get_reg`, such as the page-table base), ``bits`` and ``endianness``.
    """

    def __init__(self, panda, name: str):
        self.panda = panda
        info = _core.architecture(name)
        self.name = info["name"]
        self.bits = info["pointer_bits"]
        self.endianness = info["endianness"]
        self.register_size = self.bits // 8
        self._mask = (1 << self.bits) - 1
        general = [r for r in info["registers"] if r[2] == "general"]
        self.registers = {reg_name.upper(): number for reg_name, _, _, number, _ in general}
        self._by_number = {number: reg_name for reg_name, _, _, number, _ in general}
        self.system_registers = [r[0].upper() for r in info["registers"] if r[2] == "system"]
        self.reg_sp = info["stack_pointer"].upper()
        self.reg_pc = info["program_counter"].upper()
        ra = info["return_address"]
        self.reg_return_address = ra.upper() if ra is not None else None
        self.asid_register = info["asid_register"].upper()
        conventions = info["conventions"]
        self.reg_retval = {
            name: entry["return_value"].upper() for name, entry in conventions.items()
        }
        self.call_conventions = {
            name: ([entry["number"]] if entry["number"] else []) + list(entry["arguments"])
            for name, entry in conventions.items()
        }
        self.call_conventions = {
            name: [reg.upper() for reg in regs] for name, regs in self.call_conventions.items()
        }

    def __repr__(self):
        return f"<PandaArch {self.name}>"

    def _name(self, reg) -> str:
        if isinstance(reg, int):
            if reg not in self._by_number:
                raise ValueError(
                    f"{self.name} has no register {reg} "
                    f"({min(self._by_number)}-{max(self._by_number)})"
                )
            return self._by_number[reg]
        return str(reg).lower()

    def get_reg(self, cpu, reg) -> int:
        """Value of register ``reg`` (name, alias or general-register number)."""
        return self.panda._cpu(cpu).get_reg(self._name(reg))

    def set_reg(self, cpu, reg, val: int) -> None:
        """Sets register ``reg`` (general registers and the pc)."""
        self.panda._cpu(cpu).set_reg(self._name(reg), int(val) & self._mask)

    def get_pc(self, cpu) -> int:
        return self.panda._cpu(cpu).pc

    def set_pc(self, cpu, val: int) -> None:
        self.panda._cpu(cpu).set_pc(int(val) & self._mask)

    def _convention(self, convention: str):
        try:
            return self.call_conventions[convention]
        except KeyError:
            raise ValueError(
                f"unknown calling convention {convention!r} for {self.name}; "
                f"use one of {sorted(self.call_conventions)}"
            ) from None

    def get_arg(self, cpu, idx: int, convention: str = "default") -> int:
        """Argument ``idx`` (for ``syscall``, index 0 is the system call number)."""
        regs = self._convention(convention)
        if idx >= len(regs):
            raise ValueError(f"argument {idx} is not in a register ({convention})")
        return self.get_reg(cpu, regs[idx])

    def set_arg(self, cpu, idx: int, val: int, convention: str = "default") -> None:
        regs = self._convention(convention)
        if idx >= len(regs):
            raise ValueError(f"argument {idx} is not in a register ({convention})")
        self.set_reg(cpu, regs[idx], val)

    def get_args(self, cpu, num: int, convention: str = "default") -> list[int]:
        return [self.get_arg(cpu, i, convention) for i in range(num)]

    def _signed(self, value: int) -> int:
        return value - (1 << self.bits) if value >> (self.bits - 1) else value

    def get_retval(self, cpu, convention: str = "default") -> int:
        """Return value, as a signed integer (``syscall``: ``-errno`` on failure)."""
        self._convention(convention)
        return self._signed(self.get_reg(cpu, self.reg_retval[convention]))

    def set_retval(self, cpu, val: int, convention: str = "default", failure: bool = False) -> None:
        self._convention(convention)
        if failure and val > 0:
            val = -val
        self.set_reg(cpu, self.reg_retval[convention], val)

    def get_return_address(self, cpu) -> int:
        """Where the current function returns: the return-address register, or the word at
        the stack pointer on architectures whose calls push it."""
        if self.reg_return_address is not None:
            return self.get_reg(cpu, self.reg_return_address)
        sp = self.get_reg(cpu, self.reg_sp)
        data = self.panda._cpu(cpu).read_memory(sp, self.register_size)
        return int.from_bytes(data, self.endianness)

    def dump_regs(self, cpu) -> None:
        """Prints every register (the monitor's ``info registers``)."""
        print(self.panda._cpu(cpu).dump(), end="")

    def dump_stack(self, cpu, words: int = 8) -> None:
        """Prints ``words`` pointer-sized words from the stack pointer up."""
        sp = self.get_reg(cpu, self.reg_sp)
        for index in range(words):
            address = sp + index * self.register_size
            try:
                data = self.panda._cpu(cpu).read_memory(address, self.register_size)
            except ValueError:
                print(f"{address:#018x}: (unmapped)")
                break
            print(f"{address:#018x}: {int.from_bytes(data, self.endianness):#018x}")

    def dump_state(self, cpu) -> None:
        self.dump_regs(cpu)
        self.dump_stack(cpu)


class Riscv64Arch(PandaArch):
    """``panda.arch`` for a riscv64 guest (kept for code that names the class)."""

    def __init__(self, panda):
        super().__init__(panda, "riscv64")


_CLASSES = {"riscv64": Riscv64Arch}


def arch_for(panda, name: str) -> PandaArch:
    """The ``PandaArch`` of architecture ``name``."""
    cls = _CLASSES.get(name)
    return cls(panda) if cls is not None else PandaArch(panda, name)
