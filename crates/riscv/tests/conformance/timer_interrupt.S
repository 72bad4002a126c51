# The CLINT's machine timer fires at mtime 1 (virtual time 100); the hart spins at `wait`
# with the interrupt enabled until the handler runs.
    .include "common.inc"
    .set mtimecmp, 0x2004000
_start:
    la t0, handler
    csrw mtvec, t0
    li t0, mtimecmp
    li t1, 1
    sd t1, 0(t0)
    li t0, 0x80             # mie.MTIE
    csrs mie, t0
    csrsi mstatus, 8        # mstatus.MIE
wait:
    j wait
handler:
    li a0, 1
    POWER_OFF
