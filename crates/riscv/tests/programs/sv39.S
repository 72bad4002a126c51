# Sv39 paging: permissions and page faults (stval = the faulting address), superpages,
# MXR, SUM, MPRV, U-mode, reserved PTE bits, canonical addresses, satp (ASID, unsupported
# modes ignored), sfence.vma after PTE changes. See paging_tests.inc for the layout.
.include "common.inc"
.include "paging.inc"
.include "paging_tests.inc"

.equ MODE, 8
.equ LEVELS, 3

START
    PAGING_TESTS
    PUTS "-- Sv39: non-canonical addresses\n"
    TO_S
    LOAD_AT s1, 0x0000004000000000
    LOAD_AT s1, 0x8000000040000000
    LOAD_AT s1, 0xffffffc000000000
    li t3, 0x0000004000000000
    jalr ra, t3
    TO_M
    EXIT
