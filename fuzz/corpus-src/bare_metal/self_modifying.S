# Code that rewrites itself (an already-run block, and through an AMO), and a 32-bit
# instruction that straddles the first 4 KiB page boundary.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    li s1, 0
    li s2, 0
again:
    jal ra, patchme                     # first returns 1, then 2
    add s1, s1, a0
    la t0, patchme
    lw t1, new_insn
    sw t1, 0(t0)                        # li a0, 2 over li a0, 1
    fence.i
    li t2, 3
    bne s1, t2, again
    # amoswap a jump over an instruction into the block about to run.
    la t0, patch2
    lw t1, new_insn2
    amoswap.w zero, t1, (t0)
    .align 2                            # AMOs must be aligned
    .option push
    .option norvc
patch2:
    j fail                              # becomes a nop before it runs
    .option pop
    la t0, straddle
    jr t0

    .align 2
patchme:
    .option push
    .option norvc
    li a0, 1
    .option pop
    ret

new_insn:
    .option push
    .option norvc
    li a0, 2
    .option pop
new_insn2:
    .option push
    .option norvc
    nop
    .option pop

fail:
    EXIT_FAIL 7

    .align 2
handler:
    addi s0, s0, 1
    SKIP_AND_MRET

    .org 0xffe
straddle:
    .option push
    .option norvc
    addi a5, zero, 42                   # bytes 0xffe..0x1001
    .option pop
    li t0, 42
    bne a5, t0, fail
    bnez s2, done
    li s2, 1
    la t0, straddle
    sh zero, 0(t0)                      # break its first half: c.unimp, then the upper
    fence.i                             # half alone (c.addi4spn s0, ...)
    jr t0
done:
    EXIT_PASS
