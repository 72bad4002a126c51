"""PANDA's OSI records (``OsiProc``, ``OsiModule``, ``OsiThread``) and the ``osi`` and
``osi_linux`` plugin faces of ``panda.plugins``.

The records carry PANDA's field names. Their string fields (``name``, ``file``) are
``bytes``, or ``panda.ffi.NULL`` where PANDA's C pointer is NULL (anonymous memory), so
PyPANDA's ``panda.ffi.string(proc.name).decode()`` and ``m.file != panda.ffi.NULL`` work
unchanged. The walks behind them run in Rust (``pandare._core.osi_*``) over the kernel
profile derived from the booted kernel (or carried by the recording being replayed).
"""

from __future__ import annotations

from . import _core
from .ffi import NULL


class _Record:
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other):
        if other is NULL:
            return False
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def __hash__(self):
        return hash(tuple(getattr(self, n) for n in self.__slots__))


class OsiProc(_Record):
    """A process (PANDA's ``OsiProc``): ``taskd`` (its ``task_struct``), ``asid`` (its
    address space as ``panda.current_asid`` reports it; 0 for kernel threads), ``pgd``
    (physical address of its page table), ``pid``, ``ppid``, ``name`` (bytes, at most 15),
    ``pages`` (pages mapped), ``create_time`` (ns since boot)."""

    __slots__ = ("taskd", "asid", "pgd", "pid", "ppid", "name", "pages", "create_time")

    def __init__(self, taskd, asid, pgd, pid, ppid, name, pages, create_time):
        self.taskd = taskd
        self.asid = asid
        self.pgd = pgd
        self.pid = pid
        self.ppid = ppid
        self.name = name
        self.pages = pages
        self.create_time = create_time


class OsiModule(_Record):
    """A memory mapping (PANDA's ``OsiModule``): ``modd`` (its ``vm_area_struct``),
    ``base``, ``size``, ``file`` (full path or ``[heap]``/``[stack]``/``[vdso]``, bytes),
    ``name`` (last path component), ``offset`` (in the file), ``flags`` (``vm_flags``).
    ``file`` and ``name`` are ``panda.ffi.NULL`` for anonymous memory."""

    __slots__ = ("modd", "base", "size", "file", "name", "offset", "flags")

    def __init__(self, modd, base, size, file, name, offset, flags):
        self.modd = modd
        self.base = base
        self.size = size
        self.file = file
        self.name = name
        self.offset = offset
        self.flags = flags


class OsiThread(_Record):
    """A thread (PANDA's ``OsiThread``): ``pid`` (its process) and ``tid``."""

    __slots__ = ("pid", "tid")

    def __init__(self, pid, tid):
        self.pid = pid
        self.tid = tid


def _text(value):
    return NULL if value is None else value.encode("utf-8", "surrogateescape")


def proc_from(record):
    if record is None:
        return None
    taskd, asid, pgd, pid, ppid, name, pages, create_time = record
    return OsiProc(taskd, asid, pgd, pid, ppid, bytes(name), pages, create_time)


def module_from(record):
    if record is None:
        return None
    modd, base, size, file, name, offset, flags = record
    return OsiModule(modd, base, size, _text(file), _text(name), offset, flags)


def thread_from(record):
    if record is None:
        return None
    pid, tid, _task = record
    return OsiThread(pid, tid)


def _task(proc):
    """The ``task_struct`` address of an ``OsiProc`` (or None for the current one)."""
    if proc is None or proc is NULL:
        return None
    return proc.taskd if isinstance(proc, OsiProc) else int(proc)


class OsiPlugin:
    """``panda.plugins['osi']``: PANDA's osi exports. Functions that PANDA makes return
    a NULL pointer on failure return ``panda.ffi.NULL`` here."""

    def __init__(self, panda):
        self._panda = panda

    def _core(self):
        return self._panda._core

    def _cpu(self, cpu):
        return self._panda._cpu(cpu)

    def get_current_process(self, cpu):
        proc = proc_from(_core.osi_current_process(self._core(), self._cpu(cpu)))
        return NULL if proc is None else proc

    def get_processes(self, cpu):
        return [proc_from(r) for r in _core.osi_processes(self._core(), self._cpu(cpu))]

    def get_current_thread(self, cpu):
        thread = thread_from(_core.osi_current_thread(self._core(), self._cpu(cpu)))
        return NULL if thread is None else thread

    def get_threads(self, cpu, proc=None):
        return [
            thread_from(r)
            for r in _core.osi_threads(self._core(), self._cpu(cpu), _task(proc))
        ]

    def get_mappings(self, cpu, proc=None):
        return [
            module_from(r)
            for r in _core.osi_mappings(self._core(), self._cpu(cpu), _task(proc))
        ]

    def get_process_pid(self, cpu, proc=None):
        proc = proc if isinstance(proc, OsiProc) else self.get_current_process(cpu)
        return -1 if proc is NULL else proc.pid

    def get_process_ppid(self, cpu, proc=None):
        proc = proc if isinstance(proc, OsiProc) else self.get_current_process(cpu)
        return -1 if proc is NULL else proc.ppid

    def __repr__(self):
        return "<pandare osi plugin>"


class OsiLinuxPlugin:
    """``panda.plugins['osi_linux']``: the fd → file name export."""

    def __init__(self, panda):
        self._panda = panda

    def osi_linux_fd_to_filename(self, cpu, proc, fd):
        path = _core.osi_fd_path(
            self._panda._core, self._panda._cpu(cpu), int(fd), _task(proc)
        )
        return NULL if path is None else path.encode("utf-8", "surrogateescape")

    def __repr__(self):
        return "<pandare osi_linux plugin>"
