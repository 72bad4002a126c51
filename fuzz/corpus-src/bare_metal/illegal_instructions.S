# Illegal instructions of every kind; the handler checks mcause, that mtval holds the
# instruction bits, and skips them.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    .half 0x0000                # c.unimp
    .word 0xffffffff
    .word 0x0000007b            # custom-3
    csrr a0, 0x7c0              # no such CSR
    csrw mhartid, a0            # read-only CSR
    fadd.d fa0, fa1, fa2        # FS is off
    li t0, 1 << 13
    csrs mstatus, t0            # FS on
    fadd.d fa0, fa1, fa2        # now legal
    li t0, 5
    csrw frm, t0                # reserved rounding mode in frm...
    fadd.d fa0, fa1, fa2, dyn   # ...makes dynamic rounding illegal
    fadd.d fa0, fa1, fa2, rne   # static rounding is fine
    .word 0x02c5d553            # fadd.d with rm 5 (reserved)
    .word 0x1015252f            # lr.w with rs2 != 0
    .word 0x000000f3            # ecall with rd != 0
    li t0, 10
    bne s0, t0, fail
    EXIT_PASS
fail:
    EXIT_FAIL 2

    .align 2
handler:
    addi s0, s0, 1
    csrr t0, mcause
    li t1, 2
    bne t0, t1, fail
    # mtval must equal the instruction: 16 bits for compressed, 32 otherwise.
    csrr t0, mepc
    lhu t1, 0(t0)
    andi t2, t1, 3
    li t3, 3
    bne t2, t3, 1f
    lhu t2, 2(t0)
    slli t2, t2, 16
    or t1, t1, t2
1:  csrr t2, mtval
    bne t1, t2, fail
    SKIP_AND_MRET
