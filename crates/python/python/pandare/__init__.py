"""pandare: PyPANDA's Python API (``from pandare import Panda``) over the pandare emulator.

Differences from QEMU-based PANDA worth knowing: time limits are in virtual (guest) time,
so runs are deterministic; generic images are built from Debian's packages on first use.
"""

from .arch import PandaArch, Riscv64Arch
from .panda import Panda
from .pyplugin import PyPlugin

__all__ = ["Panda", "PandaArch", "Riscv64Arch", "PyPlugin"]
