"""PyPANDA's ``Panda`` class over pandare's machine (``pandare._core``)."""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any, Callable, Optional

from . import _core
from .arch import arch_for
from .cosi import Cosi
from .ffi import NULL, ffi
from .osi import OsiLinuxPlugin, OsiPlugin, module_from, proc_from, thread_from

# Every callback type, in PANDA's order.
CALLBACK_KINDS = tuple(_core.Core.kinds())


def _parse_mem(mem) -> Optional[int]:
    """'128M', '1G', 512 (MiB) -> MiB."""
    if mem is None:
        return None
    if isinstance(mem, int):
        return mem
    match = re.fullmatch(r"\s*(\d+)\s*([KMGkmg]?)i?[Bb]?\s*", str(mem))
    if not match:
        raise ValueError(f"cannot read memory size {mem!r}; write it like '512M' or '1G'")
    number, unit = int(match.group(1)), match.group(2).upper()
    return {"": number, "M": number, "G": number * 1024, "K": max(1, number // 1024)}[unit]


def _plugin_args(args) -> list:
    """A plugin's arguments as (key, value) pairs: from a dict, a list of "key=value"
    strings, or one "key=value,key=value" string (PANDA's -panda syntax)."""
    if args is None:
        return []
    if isinstance(args, dict):
        items = args.items()
    else:
        if isinstance(args, str):
            args = [item for item in args.split(",") if item.strip()]
        items = []
        for item in args:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise ValueError(f"plugin argument {item!r} is not key=value")
            items.append((key.strip(), value))
    pairs = []
    for key, value in items:
        if isinstance(value, bool):
            value = "true" if value else "false"
        pairs.append((str(key), str(value)))
    return pairs


class _Ppp:
    """``panda.ppp`` namespace placeholder: no plugin exports callbacks yet."""


class _PluginFaces(dict):
    """``panda.plugins``: ``panda.plugins['osi']`` and ``['osi_linux']`` give those
    plugins' exported functions (``get_current_process(cpu)``, ...). Other plugins export
    nothing to Python: use ``@panda.ppp`` for their callbacks."""

    def __init__(self, panda):
        super().__init__()
        self._panda = panda

    def __missing__(self, name):
        faces = {"osi": OsiPlugin, "osi_linux": OsiLinuxPlugin}
        if name not in faces:
            raise KeyError(
                f"plugin {name!r} exports no functions to Python here; "
                "panda.plugins has 'osi' and 'osi_linux' (register PPP callbacks with @panda.ppp)"
            )
        face = faces[name](self._panda)
        self[name] = face
        return face


class PyPluginManager:
    """``panda.pyplugins``: loads :class:`pandare.PyPlugin` subclasses."""

    def __init__(self, panda):
        self.panda = panda
        self.plugins: dict[str, Any] = {}
        self.ppp = _Ppp()

    def load(self, pluginclasses, args=None, template_dir=None):
        if isinstance(pluginclasses, dict):
            items = list(pluginclasses.items())
        elif isinstance(pluginclasses, (list, tuple)):
            items = [(cls.__name__, cls) for cls in pluginclasses]
        else:
            items = [(pluginclasses.__name__, pluginclasses)]
        for name, cls in items:
            plugin = cls.__new__(cls)
            plugin.panda = self.panda
            plugin.args = dict(args or {})
            plugin.ppp = self.ppp
            plugin.__init__(self.panda)
            self.plugins[name] = plugin
            setattr(self.ppp, name, plugin)

    def is_loaded(self, name) -> bool:
        return (name if isinstance(name, str) else name.__name__) in self.plugins

    def get_plugin(self, name):
        key = name if isinstance(name, str) else name.__name__
        try:
            return self.plugins[key]
        except KeyError:
            raise ValueError(f"no PyPlugin named {key!r} is loaded") from None

    def unload(self, name, do_del=True):
        key = name if isinstance(name, str) else name.__name__
        plugin = self.plugins.pop(key, None)
        if plugin is not None and hasattr(plugin, "uninit"):
            plugin.uninit()

    def unload_all(self):
        for name in list(self.plugins):
            self.unload(name)


class Hook:
    """The object a ``@panda.hook`` function receives; set ``enabled`` to toggle it."""

    def __init__(self, addr, enabled, kernel, asid, cb_type, name):
        self.addr = addr
        self.enabled = enabled
        self.kernel = kernel
        self.asid = asid
        self.cb_type = cb_type
        self.name = name

    def __repr__(self):
        return f"Hook(addr={self.addr:#x}, enabled={self.enabled}, cb_type={self.cb_type!r})"


class Panda:
    """A guest machine with PyPANDA's API.

    ``Panda(generic="riscv64")`` uses a generic image (built from Debian's packages on
    first use, then cached); ``kernel=``/``initrd=``/``append=`` boot one's own kernel.
    Unlike QEMU-based PANDA, everything the guest does is deterministic: time limits such
    as ``run_serial_cmd``'s timeout are in *virtual* (guest) time.
    """

    def __init__(
        self,
        arch: str = "riscv64",
        mem=None,
        expect_prompt: Optional[str] = None,
        serial_kwargs=None,
        os_version=None,
        qcow=None,
        os: str = "linux",
        generic: Optional[str] = None,
        raw_monitor: bool = False,
        extra_args=None,
        catch_exceptions: bool = True,
        libpanda_path=None,
        biospath=None,
        plugin_path=None,
        kernel: Optional[str] = None,
        initrd: Optional[str] = None,
        append: Optional[str] = None,
    ):
        if generic is not None:
            known = _core.generic_images()
            if generic not in known:
                raise ValueError(
                    f"unknown generic image {generic!r}; available: {', '.join(known)}"
                )
        elif kernel is None:
            raise ValueError(
                "give generic= (available: "
                + ", ".join(_core.generic_images())
                + ") or kernel= (and initrd=)"
            )
        if arch not in _core.architectures() and generic is None:
            raise ValueError(
                f"architecture {arch!r} is not supported "
                f"(supported: {', '.join(_core.architectures())})"
            )
        if extra_args:
            raise ValueError(
                "extra_args are QEMU command-line arguments, which pandare does not take; "
                "use mem=, kernel=, initrd=, append= instead"
            )

        def progress(line):
            print(f"pandare: {line}", file=sys.stderr, flush=True)

        self._core = _core.Core(
            generic=generic,
            kernel=kernel,
            initrd=initrd,
            append=append,
            mem_mib=_parse_mem(mem),
            prompt=expect_prompt,
            progress=progress,
            arch=None if generic is not None else arch,
        )
        # A generic image names its own architecture.
        self.arch_name = self._core.architecture
        self.arch = arch_for(self, self.arch_name)
        self.bits = self.arch.bits
        self.endianness = self.arch.endianness
        self.register_size = self.arch.register_size
        self.os = os
        self.os_type = os
        self.generic = generic
        self.mem = mem
        self.qcow = qcow
        self.catch_exceptions = catch_exceptions
        self.pyplugins = PyPluginManager(self)
        self.plugins = _PluginFaces(self)
        self.ffi = ffi
        self.cosi = Cosi(self)
        self._blocking_queue: list[Callable] = []
        self._async_queue: list[Callable] = []
        self._thread: Optional[threading.Thread] = None
        self._thread_error: Optional[BaseException] = None
        self._ended = False
        self._hook_count = 0
        self._typed: Optional[str] = None
        for kind in CALLBACK_KINDS:
            setattr(self, "cb_" + kind, self._decorator(kind))

    # ---------------------------------------------------------------- run control

    def queue_blocking(self, func: Callable, queue: bool = True) -> Callable:
        """Decorator: run ``func`` in the blocking thread while ``run()`` runs, after the
        functions queued before it. It may call guest-driving methods such as
        :meth:`run_serial_cmd` and :meth:`revert_sync`."""
        if queue:
            self._blocking_queue.append(func)
        return func

    def queue_async(self, func: Callable, internal: bool = False) -> None:
        """Queues ``func`` on the blocking thread."""
        self._blocking_queue.append(func)

    def _blocking_thread(self, functions):
        try:
            for function in functions:
                function()
        except BaseException as error:  # noqa: BLE001 - re-raised from run()
            self._thread_error = error
            self._core.end_analysis()
        finally:
            self._core.blocking_finished()

    def run(self) -> None:
        """Runs the guest until :meth:`end_analysis` (from a blocking function or a
        callback), the guest powers off, a callback or blocking function raises (the
        exception is re-raised here), or Ctrl-C (``KeyboardInterrupt``). The object stays
        usable: ``run()`` and ``run_replay()`` can follow."""
        self._ended = False
        self._thread_error = None
        functions, self._blocking_queue = self._blocking_queue, []
        thread = None
        if functions:
            thread = threading.Thread(
                target=self._blocking_thread, args=(functions,), name="panda-blocking", daemon=True
            )
            self._thread = thread
        # With a blocking thread, the guest waits for its next request between two of them
        # (up to 0.25 s of host time), so runs are repeatable whatever the host's load.
        self._core.arm(thread is not None)
        try:
            if thread is not None:
                thread.start()
            self._core.run()
        finally:
            if thread is not None:
                # A blocking function still waiting for the guest gets an error now.
                thread.join(timeout=5)
            self._thread = None
        if self._thread_error is not None:
            error, self._thread_error = self._thread_error, None
            raise error

    def end_analysis(self) -> None:
        """Stops :meth:`run` (from any thread or callback)."""
        self._ended = True
        self._core.end_analysis()

    def stop_run(self) -> None:
        self.end_analysis()

    # ---------------------------------------------------------------- serial console

    def run_serial_cmd(self, cmd: str, no_timeout: bool = False, timeout: Optional[float] = None) -> str:
        """Types ``cmd`` and Enter on the serial console, waits for the shell prompt and
        returns the output, without the echoed command, the prompt or terminal escape
        codes.

        ``timeout`` is in seconds of *virtual* (guest) time, default 30; ``no_timeout=True``
        waits forever. Guest time makes results independent of host load (PANDA issue
        #1079). Raises ``TimeoutError`` when the prompt does not come back in time.
        Call it from a ``@panda.queue_blocking`` function while ``run()`` runs (or before
        ``run()``, when it drives the guest itself)."""
        limit = None if no_timeout else (30.0 if timeout is None else float(timeout))
        return self._core.run_serial_cmd(cmd, limit)

    def run_serial_cmd_async(self, cmd: str, delay: float = 1) -> None:
        """Types ``cmd`` and Enter without waiting for its output."""
        self._core.type_serial(cmd + "\n")

    def type_serial_cmd(self, cmd: str) -> None:
        """Types ``cmd`` without Enter (see :meth:`finish_serial_cmd`)."""
        self._typed = cmd
        self._core.type_serial(cmd)

    def finish_serial_cmd(self, timeout: Optional[float] = 30.0) -> str:
        """Presses Enter after :meth:`type_serial_cmd` and returns the output (as
        :meth:`run_serial_cmd`; the timeout is in virtual seconds)."""
        typed, self._typed = self._typed or "", None
        return self._core.finish_serial(typed, timeout)

    def serial_read_until(self, byte_sequence, timeout: Optional[float] = 30.0) -> bytes:
        """Waits until the guest prints ``byte_sequence``; returns the output through it."""
        if isinstance(byte_sequence, str):
            byte_sequence = byte_sequence.encode()
        return self._core.serial_read_until(bytes(byte_sequence), timeout)

    def run_monitor_cmd(self, cmd: str) -> str:
        """Runs a monitor command (``info registers``, ``savevm NAME``, ``loadvm NAME``,
        ``delvm NAME``, ``info snapshots``, ``begin_record NAME``, ``end_record``, ``help``)
        and returns its text."""
        return self._core.monitor(cmd)

    def interact(self, confirm_quit: bool = True) -> None:
        """Attaches standard input and output to the guest's serial console until end of
        input: Ctrl-D on a terminal, the end of a pipe, or a line ``pandaquit`` (PyPANDA's
        word). On a terminal, keys go to the guest as typed (raw mode: Ctrl-C interrupts
        the guest's command, the guest echoes and edits the line); the terminal is restored
        afterwards. While the guest waits for input, its time passes in real time. Call it
        from a ``@panda.queue_blocking`` function (or outside :meth:`run`)."""
        import select

        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):
            fd = None
        out = getattr(sys.stdout, "buffer", None)

        def show(data: bytes) -> None:
            if not data:
                return
            if out is not None:
                out.write(data)
                out.flush()
            else:
                sys.stdout.write(data.decode("utf-8", errors="replace"))
                sys.stdout.flush()

        def settle(quiet: float) -> None:
            # Shows output until the guest has been quiet for `quiet` virtual seconds.
            while True:
                data = self._core.read_output(quiet)
                if not data:
                    return
                show(data)

        sys.stdout.flush()
        if fd is None:
            # No file descriptor (a replaced sys.stdin): line by line.
            while True:
                line = sys.stdin.readline()
                if not line or line.strip() == "pandaquit":
                    break
                self._core.type_input(line.encode())
                settle(0.5)
            return

        terminal = os.isatty(fd)
        saved = None
        if terminal:
            import termios
            import tty

            saved = termios.tcgetattr(fd)
            print(
                "pandare: console attached; Ctrl-D (or a line 'pandaquit') ends interact()",
                file=sys.stderr,
                flush=True,
            )
            tty.setraw(fd)
        line = bytearray()
        try:
            done = False
            while not done:
                readable, _, _ = select.select([fd], [], [], 0)
                if readable:
                    data = os.read(fd, 4096)
                    send = bytearray()
                    if not data:
                        done = True
                    for byte in data:
                        if terminal and byte == 4:  # Ctrl-D
                            done = True
                            break
                        if byte in (10, 13):
                            if line.strip() == b"pandaquit":
                                send += b"\x15"  # erase the typed word instead of running it
                                done = True
                                break
                            line.clear()
                        elif byte in (8, 127):
                            del line[-1:]
                        else:
                            line.append(byte)
                        send.append(byte)
                    if send:
                        self._core.type_input(bytes(send))
                show(self._core.read_output(0.02))
            if not terminal:
                settle(0.5)
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
                print(file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- snapshots

    def revert_sync(self, snapshot_name: str) -> str:
        """Loads snapshot ``snapshot_name``. ``root`` of a generic image is the machine at
        its first shell prompt (made by booting once, then reused: a revert takes
        milliseconds). Raises ``ValueError`` for a missing snapshot."""
        self._core.revert(snapshot_name)
        return ""

    def revert_async(self, snapshot_name: str) -> None:
        """Asks for snapshot ``snapshot_name`` to be loaded and returns at once: during
        :meth:`run` (from a callback or a blocking function), the revert happens at the
        next safe point, after the current block and callback; a call that was waiting for
        guest output then fails (what it typed is undone), and a missing snapshot ends the
        run with ``ValueError``. Outside a run, reverts right away."""
        self._core.revert_async(snapshot_name)

    def snap(self, snapshot_name: str) -> None:
        """Saves the machine as ``snapshot_name`` (memory and disk)."""
        self._core.snap(snapshot_name)

    def delvm(self, snapshot_name: str) -> None:
        """Deletes snapshot ``snapshot_name``."""
        self._core.delvm(snapshot_name)

    delvm_sync = delvm

    # ---------------------------------------------------------------- record / replay

    def record(self, recording_name: str, snapshot_name: Optional[str] = None) -> None:
        """Starts recording into ``recording_name.recording`` (after reverting to
        ``snapshot_name`` if given)."""
        if snapshot_name is not None:
            self.revert_sync(snapshot_name)
        self._core.begin_record(recording_name)

    def end_record(self) -> str:
        """Ends the recording; returns the file written."""
        return self._core.end_record()

    def record_cmd(
        self,
        guest_command: str,
        copy_directory=None,
        iso_name=None,
        setup_command: Optional[str] = None,
        recording_name: str = "recording",
        snap_name: Optional[str] = "root",
        ignore_errors: bool = False,
    ) -> str:
        """Reverts to ``snap_name``, runs ``setup_command``, types ``guest_command``,
        records from the Enter key to the next prompt into ``recording_name``. Returns the
        command's output."""
        if copy_directory is not None:
            raise NotImplementedError("copy_directory needs a guest disk, which pandare lacks yet")
        if snap_name is not None:
            self.revert_sync(snap_name)
        if setup_command:
            self.run_serial_cmd(setup_command)
        self.type_serial_cmd(guest_command)
        self._core.begin_record(recording_name)
        try:
            output = self.finish_serial_cmd()
        finally:
            self.end_record()
        return output

    def recording_exists(self, name: str) -> bool:
        """Whether ``name`` (``name.recording``) exists."""
        path = name if name.endswith(".recording") else name + ".recording"
        return os.path.exists(path)

    def run_replay(self, replaypfx: str) -> None:
        """Replays recording ``replaypfx`` with the registered callbacks active (on a
        fresh machine; the live machine is left as it was) until its end,
        :meth:`end_replay` (or :meth:`end_analysis`), an exception in a callback (raised
        here) or Ctrl-C (``KeyboardInterrupt``). Every checkpoint of the recording is
        compared on the way: a replay that diverges raises ``RuntimeError``. Raises
        ``ValueError`` when the recording does not exist. ``panda.replay_output`` holds
        what the guest printed (up to where the replay stopped)."""
        self._ended = False
        self._core.arm()
        self.replay_output = bytes(self._core.run_replay(replaypfx))

    def end_replay(self) -> None:
        """Stops the replay at the next block boundary (from a callback or another
        thread): :meth:`run_replay` returns. Raises ``RuntimeError`` when no replay runs."""
        if not self._core.replaying:
            raise RuntimeError("no replay is running")
        self._core.end_analysis()

    def rr_get_guest_instr_count(self) -> int:
        """Instructions since the start of the replay (or of the machine, live)."""
        return self._core.rr_instruction_count()

    # ---------------------------------------------------------------- CPU and memory

    def get_cpu(self):
        """The CPU, usable from blocking functions (each access is served by the machine
        thread between run slices)."""
        return self._core.get_cpu()

    def _cpu(self, cpu):
        return cpu if cpu is not None else self._core.get_cpu()

    def _format(self, data: bytes, fmt: str):
        if fmt == "bytearray":
            return bytearray(data)
        if fmt == "bytes":
            return bytes(data)
        if fmt == "int":
            return int.from_bytes(data, self.endianness)
        if fmt == "str":
            return data.decode("utf-8", errors="replace")
        if fmt == "ptrlist":
            size = self.register_size
            if len(data) % size:
                raise ValueError("ptrlist needs a length that is a multiple of the pointer size")
            return [
                int.from_bytes(data[i : i + size], self.endianness)
                for i in range(0, len(data), size)
            ]
        raise ValueError(f"unknown fmt {fmt!r}; use bytearray, int, str or ptrlist")

    def physical_memory_read(self, addr: int, length: int, fmt: str = "bytearray"):
        """Reads guest physical memory (RAM). Raises ``ValueError`` outside RAM."""
        return self._format(self._core.get_cpu().read_physical(addr, length), fmt)

    def physical_memory_write(self, addr: int, buf) -> None:
        self._core.get_cpu().write_physical(addr, bytes(buf))

    def virtual_memory_read(self, cpu, addr: int, length: int, fmt: str = "bytearray"):
        """Reads guest virtual memory through the current page tables (no side effects).
        Raises ``ValueError`` when unmapped."""
        return self._format(self._cpu(cpu).read_memory(addr, length), fmt)

    def virtual_memory_write(self, cpu, addr: int, buf) -> None:
        self._cpu(cpu).write_memory(addr, bytes(buf))

    def read_str(self, cpu, ptr: int, max_length: Optional[int] = None) -> str:
        """The NUL-terminated string at ``ptr``."""
        cpu = self._cpu(cpu)
        out = bytearray()
        while max_length is None or len(out) < max_length:
            chunk = 4096 - (ptr + len(out)) % 4096
            if max_length is not None:
                chunk = min(chunk, max_length - len(out))
            data = cpu.read_memory(ptr + len(out), chunk)
            end = data.find(b"\0")
            if end >= 0:
                out += data[:end]
                break
            out += data
        return out.decode("utf-8", errors="replace")

    def virt_to_phys(self, cpu, addr: int) -> int:
        """Physical address of ``addr``; -1 when unmapped (as PANDA)."""
        phys = self._cpu(cpu).virt_to_phys(addr)
        return -1 if phys is None else phys

    def current_pc(self, cpu) -> int:
        return self._cpu(cpu).pc

    def current_sp(self, cpu) -> int:
        return self._cpu(cpu).get_reg(self.arch.reg_sp)

    def current_asid(self, cpu) -> int:
        return self._cpu(cpu).asid()

    def in_kernel_mode(self, cpu) -> bool:
        return self._cpu(cpu).in_kernel_mode()

    def in_kernel(self, cpu) -> bool:
        return self._cpu(cpu).in_kernel_mode()

    def flush_tb(self) -> None:
        """Decoded code is always coherent with memory in pandare: nothing to do."""

    def to_unsigned_guest(self, x: int) -> int:
        return x & ((1 << self.bits) - 1)

    def from_unsigned_guest(self, x: int) -> int:
        return x - (1 << self.bits) if x >> (self.bits - 1) else x

    # ---------------------------------------------------------------- OS introspection
    # PyPANDA's OSI calls. They read the guest kernel's structures through the profile
    # derived from the booted kernel's BTF and kallsyms (a replay: the recording's), so
    # no plugin needs loading; ``docs/osi.md`` says what each returns.

    def get_current_process(self, cpu):
        """The running process (``OsiProc``), or None when there is none yet."""
        return proc_from(_core.osi_current_process(self._core, self._cpu(cpu)))

    def get_processes(self, cpu):
        """Every process (``OsiProc``; thread-group leaders, kernel threads included)."""
        return [proc_from(r) for r in _core.osi_processes(self._core, self._cpu(cpu))]

    def get_processes_dict(self, cpu):
        """``{pid: {"name", "pid", "parent_pid", "create_time"}}`` of every process."""
        procs = {}
        for proc in self.get_processes(cpu):
            procs[proc.pid] = {
                "name": proc.name.decode("utf8", "ignore"),
                "pid": proc.pid,
                "parent_pid": proc.ppid,
                "create_time": proc.create_time,
            }
        return procs

    def get_process_name(self, cpu):
        """The running process's name (str), or None."""
        name = _core.osi_current_name(self._core, self._cpu(cpu))
        return None if name is None else bytes(name).decode("utf8", "ignore")

    def get_current_thread(self, cpu):
        """The running thread (``OsiThread``: pid, tid), or None."""
        return thread_from(_core.osi_current_thread(self._core, self._cpu(cpu)))

    def get_threads(self, cpu, proc=None):
        """The threads (``OsiThread``) of ``proc`` (an ``OsiProc``; default: current)."""
        return self.plugins["osi"].get_threads(cpu, proc)

    def get_mappings(self, cpu):
        """The running process's memory mappings (``OsiModule``), by address."""
        return [module_from(r) for r in _core.osi_mappings(self._core, self._cpu(cpu))]

    def get_mapping_by_addr(self, cpu, addr):
        """The running process's mapping containing ``addr`` (``OsiModule`` whose
        ``file``/``name`` are str, or None for anonymous memory, as PyPANDA's), or None."""
        record = _core.osi_mapping_by_address(self._core, self._cpu(cpu), addr)
        if record is None:
            return None
        module = module_from(record)
        for field in ("file", "name"):
            value = getattr(module, field)
            setattr(module, field, None if value is NULL else value.decode("utf8", "replace"))
        return module

    def get_file_name(self, cpu, fd):
        """The path (bytes) of the running process's file descriptor ``fd``, or None."""
        path = _core.osi_fd_path(self._core, self._cpu(cpu), int(fd))
        return None if path is None else path.encode("utf-8", "surrogateescape")

    def get_fds(self, cpu, proc=None):
        """``{fd: path}`` of the open files of ``proc`` (default: the running process)."""
        task = None if proc is None else proc.taskd
        return dict(_core.osi_fds(self._core, self._cpu(cpu), task))

    # ---------------------------------------------------------------- callbacks

    def _decorator(self, kind: str):
        def decorator(fn=None, name=None, procname=None, enabled=True):
            def register(function):
                self.register_callback(kind, function, name, enabled=enabled, procname=procname)
                return function

            if fn is not None and callable(fn):
                return register(fn)
            return register

        decorator.__name__ = "cb_" + kind
        decorator.__doc__ = (
            f"Decorator registering a {kind} callback: @panda.cb_{kind} or "
            f"@panda.cb_{kind}(name=..., procname=..., enabled=...)."
        )
        return decorator

    def register_callback(self, callback, function, name=None, enabled=True, procname=None):
        """Registers ``function`` as a callback of type ``callback`` (a name such as
        ``"before_block_exec"``) under ``name`` (default: the function's name).
        Re-registering a name replaces it. With ``procname``, it fires only while the
        process of that name (its ``comm``, as ``ps`` shows it, at most 15 characters)
        runs, in user or kernel mode; the test runs in Rust before any Python. This needs
        the kernel's profile (see ``docs/osi.md``): without one, ``ValueError``."""
        kind = callback if isinstance(callback, str) else getattr(callback, "name", str(callback))
        if name is None:
            name = function.__name__
        self._core.register_callback(kind, name, function, enabled, procname=procname)
        return name

    def enable_callback(self, name: str) -> None:
        self._core.enable_callback(name)

    def disable_callback(self, name: str, forever: bool = False) -> None:
        self._core.disable_callback(name, forever)

    def delete_callback(self, name: str) -> None:
        self._core.delete_callback(name)

    def delete_callbacks(self) -> None:
        for name in self._core.callback_names():
            self._core.delete_callback(name)

    def is_callback_enabled(self, name: str) -> bool:
        return self._core.is_callback_enabled(name)

    def enable_all_callbacks(self) -> None:
        for name in self._core.callback_names():
            try:
                self._core.enable_callback(name)
            except ValueError:
                pass  # disabled forever

    def enable_internal_callbacks(self) -> None:
        """pandare has no internal callbacks."""

    def hook(self, addr, enabled=True, kernel=None, asid=None, cb_type="start_block_exec", procname=None):
        """Decorator: ``fn(cpu, tb, hook)`` runs each time execution reaches ``addr`` (an
        address or a list of them), also in the middle of a block: the engine starts a
        block there. ``kernel`` (True/False) and ``asid`` restrict it to one mode or address
        space, ``procname`` to one process (by name, as ``register_callback``);
        ``cb_type`` is a block-level callback type (start/before: before the
        instruction runs; after/end: after the block starting there). Python runs only for
        matching arrivals. Set ``hook.enabled`` to toggle it."""
        addresses = addr if isinstance(addr, (list, tuple)) else [addr]

        def decorator(fn):
            for address in addresses:
                self._hook_count += 1
                name = f"__hook_{self._hook_count}_{fn.__name__}"
                hook = Hook(address, enabled, kernel, asid, cb_type, name)

                def call(cpu, tb, *rest, _hook=hook):
                    if _hook.enabled:
                        return fn(cpu, tb, _hook)
                    return None

                self._core.register_callback(
                    cb_type, name, call, True, address, kernel, asid, procname
                )
            return fn

        return decorator

    # ---------------------------------------------------------------- plugins

    def load_plugin(self, name: str, args=None):
        """Loads plugin ``name`` (``panda.list_plugins()``; ``docs/plugins.md``) with
        ``args``: a dict ``{key: value}``, a list of ``"key=value"`` strings, or PANDA's
        ``"key=value,key=value"``. Before ``run()`` it is checked at once and loaded when
        the run starts; during a run, it loads at the next block boundary. ``run()`` and
        ``run_replay()`` unload every plugin when they return: plugins write their files
        and print their reports (stderr) then. An unknown plugin or argument raises
        ``ValueError`` saying what exists."""
        pairs = _plugin_args(args)
        if name in ("osi", "osi_linux"):
            # PANDA's osi_linux reads a kernelinfo file; here the profile comes from the
            # kernel itself, so those arguments have nothing to say.
            ignored = [key for key, _ in pairs if key in ("kconf_file", "kconf_group")]
            if ignored:
                print(
                    f"pandare: {name} needs no kernelinfo (the profile comes from the kernel "
                    f"itself); ignoring {', '.join(ignored)}",
                    file=sys.stderr,
                )
                pairs = [(key, value) for key, value in pairs if key not in ignored]
        _core.load_plugin(self._core, name, pairs)

    require = load_plugin

    def unload_plugin(self, name: str) -> None:
        """Unloads plugin ``name``: it writes its files and prints its report."""
        report = _core.unload_plugin(self._core, name)
        if report:
            print(report, file=sys.stderr)

    def unload_plugins(self) -> None:
        """Unloads the PyPlugins, then every plugin."""
        self.pyplugins.unload_all()
        for name in reversed(_core.loaded_plugins(self._core)):
            self.unload_plugin(name)

    def list_plugins(self) -> dict:
        """``{name: one-line description}`` of the plugins ``load_plugin`` accepts."""
        return dict(_core.available_plugins())

    def ppp(self, plugin_name: str, attr: str, name=None, autoload=True):
        """Registers ``fn(cpu, *args)`` on PPP callback ``attr`` of plugin ``plugin_name``
        (e.g. ``("stringsearch", "on_ssm")``: ``fn(cpu, pc, addr, matched, length,
        is_write, in_memory)``). With ``autoload``, loads the plugin (without arguments)
        when it is not loaded. The callback stays registered across runs until
        ``disable_ppp(name)``."""

        def decorator(fn):
            callback_name = name or fn.__name__
            _core.register_ppp(self._core, plugin_name, attr, callback_name, fn)
            if autoload and plugin_name not in _core.loaded_plugins(self._core):
                try:
                    self.load_plugin(plugin_name)
                except ValueError:
                    _core.remove_ppp(self._core, callback_name)
                    raise
            return fn

        return decorator

    def disable_ppp(self, name: str) -> None:
        """Removes the PPP callback registered as ``name``."""
        if not _core.remove_ppp(self._core, name):
            raise ValueError(f"no PPP callback named {name!r} is registered")
