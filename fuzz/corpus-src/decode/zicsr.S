# Zicsr on named, numbered and nonexistent CSRs, every form.
    .option norvc
    csrrw a0, mstatus, a1
    csrrs a0, mie, zero
    csrrc zero, mip, a1
    csrrwi a0, mtvec, 31
    csrrsi zero, sstatus, 0
    csrrci a0, satp, 1
    csrr a0, cycle
    csrr a0, time
    csrr a0, instret
    csrr a0, mhartid
    csrw fcsr, a0
    csrw frm, a0
    csrw fflags, a0
    csrr a0, 0x7c0
    csrr a0, 0xfff
    csrw 0xc00, a0
