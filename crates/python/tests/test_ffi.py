"""panda.ffi: what PyPANDA scripts do with CFFI on OSI records, without CFFI."""

import pytest

from pandare.ffi import NULL, ffi
from pandare.osi import OsiModule, OsiProc


def test_null_and_strings():
    assert ffi.NULL is NULL and not NULL and int(NULL) == 0
    assert NULL == ffi.NULL and not (NULL != ffi.NULL)
    assert b"sh" != ffi.NULL and not (b"sh" == ffi.NULL)
    assert ffi.string(b"bash\0junk") == b"bash"
    assert ffi.string(b"busybox", 4) == b"busy"
    assert ffi.string(bytearray(b"ab\0")) == b"ab"
    with pytest.raises(RuntimeError, match="NULL"):
        ffi.string(NULL)


def test_casts_wrap_like_c():
    assert ffi.cast("uint64_t", -1) == (1 << 64) - 1
    assert ffi.cast("int", 0xFFFFFFFF) == -1
    assert ffi.cast("unsigned char", 0x1FF) == 0xFF
    assert ffi.cast("int32_t", 1 << 31) == -(1 << 31)
    assert ffi.cast("target_ulong", -2) == (1 << 64) - 2
    assert ffi.cast("char *", 0x1234) == 0x1234
    assert ffi.cast("uint64_t", NULL) == 0
    with pytest.raises(TypeError, match="struct foo"):
        ffi.cast("struct foo", 1)


def test_new_and_sizeof():
    buf = ffi.new("char[]", b"abc")
    assert bytes(buf) == b"abc\0" and ffi.string(buf) == b"abc"
    assert ffi.new("char[8]") == bytearray(8)
    assert ffi.new("char[]", 5) == bytearray(5)
    ints = ffi.new("uint32_t[3]", [1, 2])
    assert list(ints) == [1, 2, 0] and ffi.sizeof(ints) == 12
    ptr = ffi.new("int *", 7)
    assert ptr[0] == 7
    assert ffi.sizeof("uint64_t") == 8 and ffi.sizeof("int") == 4 and ffi.sizeof("char[16]") == 16
    with pytest.raises(IndexError):
        ffi.new("char[2]", b"toolong")


def test_records_compare_and_read_like_pypanda():
    proc = OsiProc(1, 2, 3, 4, 5, b"init", 6, 7)
    assert proc != ffi.NULL and proc.name != ffi.NULL
    assert ffi.string(proc.name).decode() == "init"
    anonymous = OsiModule(1, 0x1000, 0x1000, NULL, NULL, 0, 0)
    assert anonymous.file == ffi.NULL and anonymous.name == ffi.NULL
    assert "OsiProc(taskd=1" in repr(proc)
