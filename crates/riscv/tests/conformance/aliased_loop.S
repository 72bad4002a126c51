# M-mode maps the first gigabyte of RAM twice with Sv39 gigapages (at 0x80000000 and
# 0x100000000; the devices stay at 0), then runs the loop in S-mode at the first address
# and again at the second.
    .include "common.inc"
    .set alias_offset, 0x80000000   # 0x100000000 - 0x80000000
_start:
    la t1, page_table
    srli t1, t1, 12
    li t2, 8                # Sv39
    slli t2, t2, 60
    or t1, t1, t2
    csrw satp, t1
    li t3, 0x800            # mstatus.MPP = S
    csrw mstatus, t3
    la t4, loop_entry
    csrw mepc, t4
    sfence.vma
    mret
loop_entry:
    li t0, 10
    li a0, 0
loop:
    addi a0, a0, 1
middle:
    mv a1, a0
    addi t0, t0, -1
    bnez t0, loop
    bnez s1, done
    li s1, 1
    la t6, loop_entry
    li t5, alias_offset
    add t6, t6, t5
    jr t6
done:
    POWER_OFF
    .set alias_middle, middle + alias_offset

# Gigapages: valid, readable, writable, executable, accessed, dirty.
    .balign 4096
page_table:
    .dword (0x00000000 >> 12) << 10 | 0xcf
    .dword 0
    .dword (0x80000000 >> 12) << 10 | 0xcf
    .dword 0
    .dword (0x80000000 >> 12) << 10 | 0xcf
    .fill 507, 8, 0
