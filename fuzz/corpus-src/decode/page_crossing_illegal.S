# A page of illegal words with an odd halfword offset, ending in a straddling 32-bit word.
    .half 0x0001
    .rept 1023
    .word 0x0000007b
    .endr
    .word 0x00000073
