# Writes a line to stdout and one to stderr, then prints argc and argv[1], and exits 0.
    .data
message: .ascii "hello from riscv64 user mode\n"
message_end:
warning: .ascii "this goes to stderr\n"
warning_end:
scratch: .space 8
    .equ MESSAGE_LEN, message_end - message
    .equ WARNING_LEN, warning_end - warning

    .text
    .globl _start
_start:
    ld s0, 0(sp)        # argc
    li a0, 1
    la a1, message
    li a2, MESSAGE_LEN
    li a7, 64           # write
    ecall
    li a0, 2
    la a1, warning
    li a2, WARNING_LEN
    li a7, 64
    ecall
    # argc as a digit, then a newline
    addi t0, s0, '0'
    la a1, scratch
    sb t0, 0(a1)
    li t0, '\n'
    sb t0, 1(a1)
    li a0, 1
    li a2, 2
    li a7, 64
    ecall
    # argv[1] when there is one
    li t0, 2
    blt s0, t0, done
    ld s1, 16(sp)
    mv a1, s1
    li a2, 0
1:  add t1, a1, a2
    lbu t1, 0(t1)
    beqz t1, 2f
    addi a2, a2, 1
    j 1b
2:  li a0, 1
    li a7, 64
    ecall
done:
    li a0, 0
    li a7, 93           # exit
    ecall

