# 32-bit encodings the CPU must treat as illegal (and some near misses that are legal).
    .word 0x0000000b    # custom-0
    .word 0x0000002b    # custom-1
    .word 0x0000005b    # custom-2
    .word 0x0000007b    # custom-3
    .word 0x00000057    # vector OP-V
    .word 0x00000077    # reserved
    .word 0x00002063    # branch funct3 2
    .word 0x00003063    # branch funct3 3
    .word 0x00007003    # load funct3 7
    .word 0x00004023    # store funct3 4
    .word 0x00001067    # jalr funct3 1
    .word 0x00002013 | (1 << 31) # slti (legal)
    .word 0x40001013    # slli with funct6 set
    .word 0x02005013 | (1 << 30) | (1 << 26)  # srai with funct6 bit 26 set
    .word 0x0200101b    # slliw with shamt[5]
    .word 0x40000033 | (1 << 12)  # sub-encoded sll (illegal)
    .word 0x0200003b | (2 << 12)  # mulw funct3 2 (illegal)
    .word 0x0000200f    # misc-mem funct3 2
    .word 0x00004073    # system funct3 4
    .word 0x000000f3    # ecall with rd != 0
    .word 0x00008073    # ecall with rs1 != 0
    .word 0x30500073    # mret-like with rs2 5
    .word 0x1015252f    # lr.w with rs2 != 0
    .word 0x0000152f    # amo funct3 1
    .word 0x2000202f    # amoxor.w (legal)
    .word 0x5000202f    # amo funct5 0x0a (reserved)
    .word 0xa000202f    # amomax.w
    .word 0xf800202f    # amo funct5 0x1f
    .word 0x04000053    # fadd.h (fmt 2)
    .word 0x06000053    # fadd.q (fmt 3)
    .word 0x5800f053    # fsqrt.s, dynamic rounding (legal)
    .word 0x5810f053    # fsqrt.s with rs2 1
    .word 0x40200053    # fcvt.s.d with rs2 2
    .word 0xc0500053    # fcvt.w.s with rs2 5
    .word 0xe0001053 | (1 << 20)  # fclass with rs2 != 0
    .word 0xf0001053    # fmv.w.x funct3 1
    .word 0x00001007    # flw funct3 1
    .word 0x00004027    # fsq
    .word 0x06000043    # fmadd.q
