# Jumps and branches with the largest offsets (targets wrap at the top of memory).
    .word 0x8000006f    # jal zero, -1 MiB
    .word 0x7ffff06f    # jal zero, +1 MiB - 2
    .word 0x80000063    # beq zero, zero, -4096
    .word 0x7e000fe3    # beq zero, zero, +4094
    .half 0xa001        # c.j +0
    .half 0xb001        # c.j -2048
    .half 0xd001        # c.beqz s0, -256
    .half 0xfffd        # c.bnez a5, -2
    .word 0xfffff017    # auipc zero, 0xfffff
