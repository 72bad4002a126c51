"""Architecture helpers: ``panda.arch`` (PyPANDA's ``PandaArch``), for riscv64."""

from __future__ import annotations

_ABI = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
    "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
    "t3", "t4", "t5", "t6",
]


class PandaArch:
    """Register access and calling conventions of the guest architecture."""

    def __init__(self, panda):
        self.panda = panda


class Riscv64Arch(PandaArch):
    """RISC-V 64: registers by ABI name (``a0``, ``sp``, ``fp``) or number (``x10``, ``10``),
    case-insensitive, plus ``pc``.

    Calling conventions: ``default`` (arguments in a0-a7, return value in a0) and ``syscall``
    (Linux: number in a7, arguments in a0-a5, result in a0).
    """

    registers = {name.upper(): index for index, name in enumerate(_ABI)}
    reg_sp = "SP"
    reg_retval = {"default": "A0", "syscall": "A0"}
    reg_pc = "PC"
    call_conventions = {
        "default": ["A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7"],
        "syscall": ["A7", "A0", "A1", "A2", "A3", "A4", "A5"],
    }

    def _name(self, reg) -> str:
        if isinstance(reg, int):
            if not 0 <= reg < 32:
                raise ValueError(f"riscv64 has no register {reg} (0-31)")
            return f"x{reg}"
        return str(reg).lower()

    def get_reg(self, cpu, reg) -> int:
        """Value of register ``reg`` (name or index)."""
        return cpu.get_reg(self._name(reg))

    def set_reg(self, cpu, reg, val: int) -> None:
        """Sets register ``reg`` (name or index)."""
        cpu.set_reg(self._name(reg), int(val) & (2**64 - 1))

    def get_pc(self, cpu) -> int:
        return cpu.pc

    def set_pc(self, cpu, val: int) -> None:
        cpu.set_pc(int(val))

    def _convention(self, convention: str):
        try:
            return self.call_conventions[convention]
        except KeyError:
            raise ValueError(
                f"unknown calling convention {convention!r} for riscv64; "
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

    def get_retval(self, cpu, convention: str = "default") -> int:
        """Return value, as a signed integer (``syscall``: ``-errno`` on failure)."""
        self._convention(convention)
        value = self.get_reg(cpu, "a0")
        return value - 2**64 if value >= 2**63 else value

    def set_retval(self, cpu, val: int, convention: str = "default", failure: bool = False) -> None:
        self._convention(convention)
        if failure and val > 0:
            val = -val
        self.set_reg(cpu, "a0", val)

    def get_return_address(self, cpu) -> int:
        return self.get_reg(cpu, "ra")

    def dump_regs(self, cpu) -> None:
        """Prints every register."""
        for index, name in enumerate(_ABI):
            print(f"{name:>4} (x{index:<2}) = {self.get_reg(cpu, index):#018x}")
        print(f"  pc       = {cpu.pc:#018x}")

    def dump_state(self, cpu) -> None:
        self.dump_regs(cpu)
