# 4094 bytes of compressed nops, then 32-bit instructions whose first halves end a 4 KiB
# page: the first straddles offset 4096.
    .option rvc
    .rept 2047
    c.nop
    .endr
    .option norvc
    addi a0, a0, 1
    jal ra, .-4096
    .word 0xffffffff
