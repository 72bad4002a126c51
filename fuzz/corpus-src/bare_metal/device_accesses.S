# Loads and stores of every width to every device, to holes between them, across the end
# of RAM and across a page boundary; faults are counted and skipped.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    li a1, -1
    .irp base, TEST_BASE + 8, CLINT_BASE, CLINT_BASE + 0x4000, CLINT_BASE + 0x4004, CLINT_BASE + 0xbff8, PLIC_BASE, PLIC_BASE + 0x1000, PLIC_BASE + 0x2080, PLIC_BASE + 0x201000, UART_BASE, UART_BASE + 3, UART_BASE + 7
    li t0, \base
    lb a0, 0(t0)
    lhu a0, 0(t0)
    lw a0, 0(t0)
    ld a0, 0(t0)
    sb a1, 0(t0)
    sh a1, 0(t0)
    sw a1, 0(t0)
    sd zero, 0(t0)
    .endr
    li t0, UART_BASE + 3                # LCR: back to 8N1 with DLAB off
    li t1, 3
    sb t1, 0(t0)
    li t0, 0x30000000                   # nothing here: access faults
    ld a0, 0(t0)
    sd a0, 0(t0)
    li t0, RAM_END - 4                  # straddles the end of RAM
    ld a0, 0(t0)
    sd a0, 0(t0)
    li t0, RAM_BASE + 0x1ffd            # misaligned across a page: fine in RAM
    sd a1, 0(t0)
    ld a0, 0(t0)
    bne a0, a1, fail
    li t0, 0xfffffffffffffffc           # wraps past the top of the address space
    ld a0, 0(t0)
    li t0, 5                            # the five faults above
    bne s0, t0, fail
    EXIT_PASS
fail:
    EXIT_FAIL 10

    .align 2
handler:
    addi s0, s0, 1
    SKIP_AND_MRET
