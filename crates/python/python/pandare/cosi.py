"""``panda.cosi``: typed navigation of the guest kernel's memory (PyPANDA's ``cosi``),
from the kernel's own BTF and kallsyms instead of a Volatility profile.

>>> task = panda.cosi.current_process()          # task_struct of the running task
>>> task.comm                                    # b'sh'  (char arrays read as bytes)
>>> task.mm.mm_mt                                # the maple tree, a CosiGuestPointer
>>> [t.pid for t in panda.cosi.process_list()]
>>> init = panda.cosi.get("task_struct", "init_task")
>>> init.tasks.as_linux_list("tasks")            # every process, as task_struct pointers

A :class:`CosiGuestPointer` is a kernel address with a BTF type. Reading a field gives:
an integer (integers, enums, bitfields), bytes up to the first NUL (``char`` arrays), a
:class:`CosiGuestPointer` to the embedded struct or union (struct fields), or a
:class:`CosiGuestPointer` to the pointee (pointer fields; ``int(ptr)`` is its address, 0
for NULL). Memory is read when a field is read, through ``panda.get_cpu()`` (inside a
callback: that callback's CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import _core

# Bound on list walks: more entries than any kernel list holds means a cycle or garbage.
LIST_LIMIT = 1 << 16
_QUALIFIERS = ("typedef", "const", "volatile", "restrict", "type_tag")


class _Types:
    """BTF types by id and by name, fetched from the profile once."""

    def __init__(self, panda):
        self._panda = panda
        self._by_id = {}
        self._by_name = {}

    def by_id(self, type_id):
        info = self._by_id.get(type_id)
        if info is None:
            info = _core.cosi_type_by_id(self._panda._core, type_id)
            if info is None:
                raise KeyError(f"the kernel's BTF has no type id {type_id}")
            self._by_id[type_id] = info
        return info

    def by_name(self, name):
        if name not in self._by_name:
            info = _core.cosi_type_by_name(self._panda._core, name)
            self._by_name[name] = info
            if info is not None:
                self._by_id.setdefault(info["id"], info)
        return self._by_name[name]

    def resolve(self, type_id):
        """The type after typedefs and qualifiers."""
        for _ in range(64):
            info = self.by_id(type_id)
            if info["kind"] not in _QUALIFIERS:
                return info
            type_id = info["target"] or 0
        raise ValueError(f"type id {type_id}: a loop of typedefs")

    def complete(self, info):
        """A struct's full definition for a forward declaration (`struct x;`)."""
        if info.get("forward") and info["name"]:
            full = self.by_name(f"{info['kind']} {info['name']}")
            if full is not None and not full.get("forward"):
                return full
        return info

    def c_name(self, type_id, depth=0):
        """The C spelling of a type (``struct mm_struct *``, ``char[16]``)."""
        info = self.by_id(type_id)
        kind = info["kind"]
        if depth > 16:
            return "..."
        if kind == "pointer":
            return self.c_name(info["target"] or 0, depth + 1) + " *"
        if kind == "array":
            return f"{self.c_name(info['target'] or 0, depth + 1)}[{info['length']}]"
        if kind in ("const", "volatile", "restrict"):
            return f"{kind} {self.c_name(info['target'] or 0, depth + 1)}"
        if kind == "type_tag":
            return self.c_name(info["target"] or 0, depth + 1)
        if kind in ("struct", "union", "enum"):
            return f"{kind} {info['name']}" if info["name"] else f"{kind} <anonymous>"
        if kind == "function_proto":
            return "function"
        return info["name"] or kind

    def size(self, type_id):
        info = self.complete(self.resolve(type_id))
        if info["kind"] == "pointer":
            return 8
        if info["size"] is None:
            raise ValueError(f"type {self.c_name(type_id)} has no size")
        return info["size"]

    def member(self, info, name):
        """``(type_id, byte offset, bit offset, bit size)`` of field ``name`` of a struct or
        union, looking into anonymous members; a dotted path goes through embedded
        structs (``f_path.dentry``)."""
        offset_base = 0
        bit_base = 0
        parts = name.split(".")
        for index, part in enumerate(parts):
            found = self._find_member(info, part)
            if found is None:
                raise AttributeError(f"{self._label(info)} has no field {part!r}")
            type_id, offset, bits, bit_size = found
            offset_base += offset
            bit_base += bits
            if index + 1 < len(parts):
                info = self.complete(self.resolve(type_id))
        return type_id, offset_base, bit_base, bit_size

    def _find_member(self, info, name, depth=0):
        info = self.complete(info)
        for member_name, type_id, offset, bits, bit_size in info["members"]:
            if member_name == name:
                return type_id, offset, bits, bit_size
        if depth > 8:
            return None
        for member_name, type_id, offset, bits, bit_size in info["members"]:
            if member_name:
                continue
            inner = self.resolve(type_id)
            if inner["kind"] in ("struct", "union"):
                found = self._find_member(inner, name, depth + 1)
                if found is not None:
                    return found[0], offset + found[1], bits + found[2], found[3]
        return None

    @staticmethod
    def _label(info):
        return f"{info['kind']} {info['name'] or '<anonymous>'}"


@dataclass
class VolatilityStructField:
    """A field of a struct: its name, byte offset and C type."""

    name: str
    offset: int
    type_name: str


class VolatilityStruct:
    """A kernel struct or union type (PyPANDA's name, from BTF here)."""

    def __init__(self, panda, info):
        self._panda = panda
        self._info = info
        self._types = panda.cosi._types

    def name(self) -> str:
        return self._info["name"]

    def size(self) -> int:
        return self._info["size"]

    def offset_of_field(self, name: str) -> int:
        return self._types.member(self._info, name)[1]

    def type_of_field(self, name: str) -> str:
        return self._types.c_name(self._types.member(self._info, name)[0])

    def get_field_by_index(self, index: int) -> Optional[str]:
        members = [m for m in self._info["members"] if m[0]]
        return members[index][0] if 0 <= index < len(members) else None

    def fields(self):
        """``(offset, C type, name)`` of each named field, in order."""
        for name, type_id, offset, _, _ in self._info["members"]:
            if name:
                yield offset, self._types.c_name(type_id), name

    def __getitem__(self, item):
        if isinstance(item, int):
            item = self.get_field_by_index(item)
            if item is None:
                raise IndexError("field index out of range")
        return VolatilityStructField(item, self.offset_of_field(item), self.type_of_field(item))

    def at(self, address: int) -> "CosiGuestPointer":
        return CosiGuestPointer(self._panda, self._info["id"], address)

    def __repr__(self):
        return f"<VolatilityStruct {self._info['kind']} {self._info['name']}, {self.size()} bytes>"


class VolatilityBaseType:
    """A kernel base type (``int``, ``unsigned long``, ``pid_t`` → its integer)."""

    def __init__(self, info):
        self._info = info

    def name(self) -> str:
        return self._info["name"]

    def size(self) -> int:
        return self._info["size"]

    def is_signed(self) -> bool:
        return bool(self._info["signed"])

    def __repr__(self):
        return f"<VolatilityBaseType {self._info['name']}, {self.size()} bytes>"


class CosiGuestPointer:
    """A typed kernel address. Read fields as attributes (``task.mm``), index arrays and
    pointers (``p[i]``), walk ``list_head`` lists (:meth:`as_linux_list`), step out of
    an embedded member (:meth:`container_of`), reinterpret (:meth:`cast`)."""

    def __init__(self, panda, type_id, address, parent=None):
        self._panda = panda
        self._types = panda.cosi._types
        self._type_id = type_id
        self._address = address
        self._parent = parent

    # -- what it is
    @property
    def _info(self):
        return self._types.complete(self._types.resolve(self._type_id))

    @property
    def _type_name(self):
        return self._types.c_name(self._type_id)

    @property
    def address(self) -> int:
        return self._address

    def get_raw_ptr(self) -> int:
        return self._address

    def __int__(self):
        return self._address

    __index__ = __int__

    def __bool__(self):
        return self._address != 0

    def __eq__(self, other):
        if isinstance(other, CosiGuestPointer):
            return self._address == other._address and self._info["id"] == other._info["id"]
        if isinstance(other, int):
            return self._address == other
        return NotImplemented

    def __hash__(self):
        return hash((self._address, self._type_id))

    def __repr__(self):
        return f"<CosiGuestPointer of type {self._type_name} at {self._address:#x}>"

    def __dir__(self):
        info = self._info
        names = [m[0] for m in info["members"] if m[0]]
        return names + ["address", "as_linux_list", "cast", "container_of", "deref",
                        "get_raw_ptr", "null_terminated"]

    # -- reading
    def _read(self, address, size):
        return bytes(self._panda.virtual_memory_read(self._panda.get_cpu(), address, size))

    def _value(self, type_id, address, bit_offset=0, bit_size=None):
        info = self._types.complete(self._types.resolve(type_id))
        kind = info["kind"]
        order = self._panda.endianness
        if kind in ("int", "enum") or bit_size:
            size = info["size"] or 8
            if bit_size:
                shift = bit_offset % 8
                raw = int.from_bytes(self._read(address, (shift + bit_size + 7) // 8), order)
                value = (raw >> shift) & ((1 << bit_size) - 1)
                if info.get("signed") and value >> (bit_size - 1):
                    value -= 1 << bit_size
                return value
            return int.from_bytes(self._read(address, size), order, signed=bool(info["signed"]))
        if kind == "pointer":
            value = int.from_bytes(self._read(address, 8), order)
            return CosiGuestPointer(self._panda, info["target"] or 0, value, parent=self)
        if kind in ("struct", "union"):
            return CosiGuestPointer(self._panda, info["id"], address, parent=self)
        if kind == "array":
            element = self._types.resolve(info["target"] or 0)
            if element["kind"] == "int" and element["size"] == 1:
                data = self._read(address, info["length"] or 0)
                end = data.find(b"\0")
                return data if end < 0 else data[:end]
            return CosiGuestPointer(self._panda, info["id"], address, parent=self)
        if kind == "float":
            import struct

            data = self._read(address, info["size"])
            return struct.unpack(("<" if order == "little" else ">") + ("f" if info["size"] == 4 else "d"), data)[0]
        raise TypeError(f"cannot read a value of type {self._types.c_name(type_id)}")

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        info = self._info
        if info["kind"] not in ("struct", "union"):
            raise AttributeError(f"{self._type_name} has no fields (it is not a struct)")
        type_id, offset, bit_offset, bit_size = self._types.member(info, name)
        return self._value(type_id, self._address + offset, bit_offset, bit_size)

    def __getitem__(self, item):
        info = self._info
        if isinstance(item, str):
            return self.__getattr__(item)
        if info["kind"] == "array":
            element, length = info["target"] or 0, info["length"] or 0
        else:
            element, length = self._type_id, None
        size = self._types.size(element)
        if isinstance(item, slice):
            if length is None and item.stop is None:
                raise ValueError("a pointer has no length: give the slice an end")
            indices = range(*item.indices(length if length is not None else item.stop))
            return [self._value(element, self._address + i * size) for i in indices]
        if length is not None and not -length <= item < length:
            raise IndexError(f"index {item} out of {self._type_name}")
        if length is not None and item < 0:
            item += length
        return self._value(element, self._address + item * size)

    def deref(self):
        return self[0]

    def null_terminated(self, limit: int = 4096) -> bytes:
        """The NUL-terminated string at this ``char *`` (bytes)."""
        return self._panda.read_str(self._panda.get_cpu(), self._address, limit).encode(
            "utf-8", "surrogateescape"
        )

    # -- moving
    def cast(self, type_name: str) -> "CosiGuestPointer":
        """The same address as another type (``"struct file"``, ``"list_head"``)."""
        info = self._panda.cosi._type(type_name)
        return CosiGuestPointer(self._panda, info["id"], self._address, parent=self._parent)

    def container_of(self, type_name: str, field_name: str) -> "CosiGuestPointer":
        """The ``type_name`` struct whose field ``field_name`` is at this address."""
        info = self._panda.cosi._type(type_name)
        offset = self._types.member(info, field_name)[1]
        return CosiGuestPointer(self._panda, info["id"], self._address - offset)

    def as_linux_list(self, field: str, entry_type: Optional[str] = None) -> list:
        """The entries of the ``list_head`` list this pointer heads: each entry is the
        ``entry_type`` struct (default: this struct's type) that links into the list by
        its field ``field``. Called on a struct, ``field`` names both its own list head
        and the entries' link (``init_task.as_linux_list("tasks")``: every process
        after init_task); called on a ``list_head`` (``task.children``), the entry type
        defaults to the struct holding that head. Ends with ``ValueError`` on a list
        longer than any kernel list (a cycle or garbage)."""
        info = self._info
        if info["kind"] in ("struct", "union") and info["name"] != "list_head":
            head = self._address + self._types.member(info, field)[1]
            entry = info if entry_type is None else self._panda.cosi._type(entry_type)
        else:
            head = self._address
            if entry_type is not None:
                entry = self._panda.cosi._type(entry_type)
            elif self._parent is not None:
                entry = self._parent._info
            else:
                raise ValueError("a bare list_head needs entry_type (the struct of its entries)")
        link = self._types.member(entry, field)[1]
        order = self._panda.endianness
        entries = []
        node = int.from_bytes(self._read(head, 8), order)
        while node != head:
            if node == 0 or len(entries) >= LIST_LIMIT:
                raise ValueError(
                    f"the list at {head:#x} is broken (a NULL link or more than "
                    f"{LIST_LIMIT} entries): the guest may be changing it"
                )
            entries.append(CosiGuestPointer(self._panda, entry["id"], node - link))
            node = int.from_bytes(self._read(node, 8), order)
        return entries


@dataclass
class CosiFile:
    """An open file of a process: its descriptor and path."""

    fd: int
    name: str


class CosiFiles(list):
    """The open files of a process (:class:`CosiFile`), in descriptor order."""

    def get_from_fd(self, fd: int) -> Optional[CosiFile]:
        return next((f for f in self if f.fd == fd), None)


class Cosi:
    """``panda.cosi``: kernel symbols, types and typed pointers from the kernel's BTF and
    kallsyms (no Volatility file). Needs the kernel profile (see ``docs/osi.md``)."""

    def __init__(self, panda):
        self._panda = panda
        self._types = _Types(panda)

    def _type(self, name):
        info = self._types.by_name(name)
        if info is None:
            raise ValueError(f"the kernel's BTF has no type {name!r}")
        return info

    def _cpu(self, cpu):
        return cpu if cpu is not None else self._panda.get_cpu()

    # -- symbols
    def symbol_value_from_name(self, name: str) -> Optional[int]:
        """The symbol's value in the kernel's tables: its link address, or for a per-CPU
        variable its offset in the per-CPU area. None for an unknown name."""
        address = _core.cosi_symbol(self._panda._core, name)
        if address is None:
            address = _core.cosi_per_cpu(self._panda._core, name)
        return address

    def symbol_addr_from_name(self, name: str) -> Optional[int]:
        """The symbol's address in the running kernel (value + :meth:`kaslr_offset`)."""
        value = self.symbol_value_from_name(name)
        return None if value is None else value + self.kaslr_offset()

    def kaslr_offset(self, cpu=None) -> int:
        """How far the running kernel was moved from its link address: 0 on riscv64
        (Debian's kernel is not relocatable)."""
        return 0

    # -- types
    def type_from_name(self, name: str) -> Optional[VolatilityStruct]:
        """The struct or union ``name`` (``task_struct``, ``struct file``), or None."""
        info = self._types.by_name(name)
        if info is None:
            return None
        info = self._types.complete(self._types.resolve(info["id"]))
        if info["kind"] not in ("struct", "union"):
            return None
        return VolatilityStruct(self._panda, info)

    def base_type_from_name(self, name: str) -> Optional[VolatilityBaseType]:
        """The integer type ``name`` (``int``, ``unsigned long``, ``pid_t``), or None."""
        info = self._types.by_name(name)
        if info is None:
            return None
        info = self._types.resolve(info["id"])
        if info["kind"] not in ("int", "enum"):
            return None
        return VolatilityBaseType(info)

    # -- per-CPU data
    def per_cpu_offset(self, cpu=None) -> int:
        """The running CPU's per-CPU area offset (``__per_cpu_offset[0]``: pandare
        machines have one CPU)."""
        table = _core.cosi_symbol(self._panda._core, "__per_cpu_offset")
        if table is None:
            raise ValueError("the kernel has no __per_cpu_offset symbol")
        return self._panda.virtual_memory_read(self._cpu(cpu), table, 8, fmt="int")

    def find_per_cpu_address(self, symbol: str, cpu=None) -> int:
        """The pointer stored in per-CPU variable ``symbol`` on the running CPU (as
        PyPANDA's: the value read at the variable's address)."""
        offset = _core.cosi_per_cpu(self._panda._core, symbol)
        if offset is None:
            raise ValueError(f"{symbol!r} is not a per-CPU variable of this kernel")
        address = self.per_cpu_offset(cpu) + offset
        return self._panda.virtual_memory_read(self._cpu(cpu), address, 8, fmt="int")

    def get(self, type_name: str, symbol: str, per_cpu: bool = False) -> CosiGuestPointer:
        """A typed pointer to a kernel variable: ``get("task_struct", "init_task")``."""
        if per_cpu:
            offset = _core.cosi_per_cpu(self._panda._core, symbol)
            if offset is None:
                raise ValueError(f"{symbol!r} is not a per-CPU variable of this kernel")
            address = self.per_cpu_offset() + offset
        else:
            address = self.symbol_addr_from_name(symbol)
            if address is None:
                raise ValueError(f"the kernel has no symbol {symbol!r}")
        return CosiGuestPointer(self._panda, self._type(type_name)["id"], address)

    def at(self, type_name: str, address: int) -> CosiGuestPointer:
        """A typed pointer to ``address``."""
        return CosiGuestPointer(self._panda, self._type(type_name)["id"], address)

    # -- tasks
    def current_thread(self, cpu=None) -> Optional[CosiGuestPointer]:
        """The running task's ``task_struct`` (None before the kernel has one)."""
        task = _core.cosi_current_task(self._panda._core, self._cpu(cpu))
        return None if task is None else self.at("task_struct", task)

    def current_process(self, cpu=None) -> Optional[CosiGuestPointer]:
        """The running process's ``task_struct`` (its thread-group leader)."""
        thread = self.current_thread(cpu)
        return None if thread is None else thread.group_leader

    def process_list(self, cpu=None) -> list:
        """Every process's ``task_struct``, from ``init_task`` along ``tasks``."""
        init = self.get("task_struct", "init_task")
        return [init] + init.as_linux_list("tasks")

    def current_files(self, cpu=None) -> CosiFiles:
        """The running process's open files."""
        fds = _core.osi_fds(self._panda._core, self._cpu(cpu), None)
        return CosiFiles(CosiFile(fd, path) for fd, path in fds)

    def __repr__(self):
        return "<pandare cosi (kernel BTF and kallsyms)>"
