"""``panda.ffi``: the part of PyPANDA's CFFI handle that scripts use on OSI records.

PyPANDA hands scripts C structures through CFFI, so they read names with
``panda.ffi.string(proc.name)``, test pointers against ``panda.ffi.NULL`` and convert with
``panda.ffi.cast("uint64_t", x)``. pandare's records are Python objects whose string
fields are ``bytes`` (or :data:`NULL` when the C pointer would be NULL), so this module
gives those calls the same results without CFFI: ``string``, ``NULL``, ``cast`` to integer
types, ``new`` for simple buffers, ``sizeof``, ``buffer``.
"""

from __future__ import annotations

import re


class _Null:
    """The NULL pointer: equal only to itself, false, and 0 as an integer."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __eq__(self, other):
        return other is self

    def __ne__(self, other):
        return other is not self

    def __hash__(self):
        return 0

    def __bool__(self):
        return False

    def __int__(self):
        return 0

    __index__ = __int__

    def __repr__(self):
        return "<cdata 'void *' NULL>"


NULL = _Null()

# C integer types: (size in bytes, signed). Pointers are integers of the guest's size in
# PyPANDA; here they are 64-bit (what every pandare guest uses).
_INTEGERS = {
    "char": (1, True),
    "signed char": (1, True),
    "unsigned char": (1, False),
    "bool": (1, False),
    "_Bool": (1, False),
    "short": (2, True),
    "unsigned short": (2, False),
    "int": (4, True),
    "signed int": (4, True),
    "unsigned int": (4, False),
    "unsigned": (4, False),
    "long": (8, True),
    "unsigned long": (8, False),
    "long long": (8, True),
    "unsigned long long": (8, False),
    "size_t": (8, False),
    "ssize_t": (8, True),
    "intptr_t": (8, True),
    "uintptr_t": (8, False),
    "target_ulong": (8, False),
    "target_long": (8, True),
    "target_ptr_t": (8, False),
    "target_pid_t": (4, True),
    "hwaddr": (8, False),
    "ram_addr_t": (8, False),
}
for _bits in (8, 16, 32, 64):
    _INTEGERS[f"int{_bits}_t"] = (_bits // 8, True)
    _INTEGERS[f"uint{_bits}_t"] = (_bits // 8, False)

_ARRAY = re.compile(r"^\s*(.+?)\s*\[\s*(\d*)\s*\]\s*$")


def _base_type(ctype: str):
    """``(size, signed)`` of integer type ``ctype``; pointers are unsigned 64-bit."""
    name = " ".join(ctype.replace("const ", "").split())
    if name.endswith("*"):
        return 8, False
    try:
        return _INTEGERS[name]
    except KeyError:
        raise TypeError(
            f"panda.ffi knows integer types and pointers, not {ctype!r} "
            "(pandare has no C declarations to look it up in)"
        ) from None


def _wrap(value: int, size: int, signed: bool) -> int:
    value &= (1 << (8 * size)) - 1
    if signed and value >> (8 * size - 1):
        value -= 1 << (8 * size)
    return value


class _Array(list):
    """A C array from :func:`new`: a list of integers of one type (``char`` arrays are
    ``bytearray``, see :func:`new`)."""

    def __init__(self, ctype, items):
        super().__init__(items)
        self.ctype = ctype


class Ffi:
    """What PyPANDA scripts use of ``panda.ffi``."""

    NULL = NULL

    @staticmethod
    def string(cdata, maxlen: int = -1) -> bytes:
        """The bytes of a C string (up to its NUL, at most ``maxlen`` bytes); an
        integer's value from ``cast``."""
        if cdata is NULL or cdata is None:
            raise RuntimeError("cannot use string() on a NULL pointer")
        if isinstance(cdata, int):
            return cdata
        if isinstance(cdata, str):
            data = cdata.encode()
        else:
            data = bytes(cdata)
        end = data.find(b"\0")
        if end >= 0:
            data = data[:end]
        if maxlen is not None and maxlen >= 0:
            data = data[:maxlen]
        return data

    @staticmethod
    def cast(ctype: str, value) -> int:
        """``value`` converted to C type ``ctype`` (an integer type or a pointer) as C
        does: truncated to its width, signed or not. NULL casts to 0."""
        size, signed = _base_type(ctype)
        if value is NULL or value is None:
            value = 0
        if isinstance(value, (bytes, bytearray)):
            value = int.from_bytes(bytes(value)[:size].ljust(size, b"\0"), "little")
        return _wrap(int(value), size, signed)

    @staticmethod
    def new(ctype: str, init=None):
        """A C buffer: ``char[]``/``char[N]`` gives a ``bytearray`` (NUL-terminated from
        ``init`` bytes or str, or ``N``/``init`` zero bytes); another ``T[N]``/``T[]`` a
        list of integers; ``T *`` a one-element list (``p[0]``)."""
        match = _ARRAY.match(ctype)
        if match:
            element, count = match.group(1), match.group(2)
            size, signed = _base_type(element)
            if size == 1 and element.replace("unsigned ", "").replace("signed ", "") == "char":
                if isinstance(init, str):
                    init = init.encode()
                if isinstance(init, (bytes, bytearray)):
                    data = bytearray(init) + b"\0"
                    length = int(count) if count else len(data)
                    if len(data) - 1 > length:
                        raise IndexError(f"initializer of {len(init)} bytes is too long for {ctype}")
                    return data[:length].ljust(length, b"\0")
                length = int(count) if count else int(init or 0)
                return bytearray(length)
            if isinstance(init, int):
                items = [0] * init
            else:
                items = [_wrap(int(v), size, signed) for v in (init or [])]
            if count:
                items = (items + [0] * int(count))[: int(count)]
            return _Array(ctype, items)
        element = ctype.strip()
        if element.endswith("*"):
            size, signed = _base_type(element[:-1].strip() or "char")
            return _Array(element, [_wrap(int(init or 0), size, signed)])
        raise TypeError(f"panda.ffi.new needs a pointer or array type, not {ctype!r}")

    @staticmethod
    def sizeof(ctype) -> int:
        """The size in bytes of a C type name or of a buffer from :func:`new`."""
        if isinstance(ctype, (bytes, bytearray)):
            return len(ctype)
        if isinstance(ctype, _Array):
            match = _ARRAY.match(ctype.ctype)
            element = match.group(1) if match else ctype.ctype[:-1]
            return _base_type(element)[0] * len(ctype)
        match = _ARRAY.match(ctype)
        if match and match.group(2):
            return _base_type(match.group(1))[0] * int(match.group(2))
        return _base_type(ctype)[0]

    @staticmethod
    def buffer(cdata, size=None) -> bytes:
        """The bytes of a buffer (at most ``size``)."""
        data = bytes(cdata)
        return data if size is None else data[:size]

    def __repr__(self):
        return "<pandare ffi (CFFI-compatible subset)>"


ffi = Ffi()
