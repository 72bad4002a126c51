# Sv48 paging: permissions and page faults (stval = the faulting address), superpages,
# MXR, SUM, MPRV, U-mode, reserved PTE bits, canonical addresses, satp (ASID, unsupported
# modes ignored), sfence.vma after PTE changes. See paging_tests.inc for the layout.
.include "common.inc"
.include "paging.inc"
.include "paging_tests.inc"

.equ MODE, 9
.equ LEVELS, 4

START
    PAGING_TESTS
    PUTS "-- Sv48: addresses beyond Sv39, a 512 GiB page, non-canonical addresses\n"
    MAP_SYM 0x0000004000000000, page1, PTE_V | PTE_R | PTE_A, 0
    MAP 0x0000010000000000, 0x0000000000000000, PTE_V | PTE_R | PTE_A, 3
    MAP 0xffff800000001000, 0x80200000, PTE_V | PTE_R | PTE_A, 0
    sfence.vma
    TO_S
    LOAD_AT s1, 0x0000004000000000
    PRINT s1
    LOAD_AT s1, 0x0000010080201234
    PRINT s1
    LOAD_AT s1, 0xffff800000001234
    PRINT s1
    LOAD_AT s1, 0x0000800000000000
    LOAD_AT s1, 0x8000000040000000
    LOAD_AT s1, 0xffff7fffffff0000
    li t3, 0x0000800000000000
    jalr ra, t3
    TO_M
    EXIT
