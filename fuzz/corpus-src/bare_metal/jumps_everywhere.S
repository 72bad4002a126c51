# Jumps to odd places: outside RAM, the last halfword of RAM, a misaligned-by-two
# target, and mepc/mtvec values with low bits set; each fetch fault is skipped by
# returning to the next entry of a table.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    la s1, targets
next:
    ld t0, 0(s1)
    beqz t0, done
    addi s1, s1, 8
    jr t0
done:
    li t0, 7                            # mtvec mode 3 is reserved: keeps the old mode
    csrw mtvec, t0
    li t0, 5
    bne s0, t0, fail
    EXIT_PASS
fail:
    EXIT_FAIL 11

    .align 2
handler:
    addi s0, s0, 1
    la t0, next
    csrw mepc, t0
    mret

    .align 3
targets:
    .dword 0x40000000                   # no device is executable
    .dword UART_BASE
    .dword RAM_END - 2                  # a c.unimp, then past the end of RAM
    .dword RAM_END
    .dword 0xfffffffffffffffe
    .dword 0
