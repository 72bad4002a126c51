# Regression: a vectored mtvec at the very top of the address space made the interrupt
# vector computation (base + 4 * cause) overflow, a host panic in debug builds.
# expect: stuck
    .include "common.inc"
    li t0, -3                           # base 0xffff_ffff_ffff_fffc, vectored
    csrw mtvec, t0
    li t0, 2                            # SSIE
    csrw mie, t0
    csrs mip, t0                        # SSIP: the interrupt is pending at once
    csrsi mstatus, 8                    # MIE
    nop
