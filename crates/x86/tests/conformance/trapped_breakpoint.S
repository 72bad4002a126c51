# Installs handlers for #BP, #UD and #GP, executes INT3; the handler puts the vector into
# ARG0 and the pushed RIP (the trapping instruction for a fault) into ARG1, then spins.
.include "common.inc"
.globl _start, breakpoint, handler_done
_start:
    SETUP_TABLES
    GATE 3, vector3
    GATE 6, vector6
    GATE 13, vector13
breakpoint:
    int3
    ud2
vector3:
    mov eax, 3
    jmp trap
vector6:
    mov eax, 6
    jmp trap
vector13:
    mov eax, 13
    add rsp, 8                  # its error code
trap:
    mov rbx, [rsp]
handler_done:
    jmp handler_done
    TABLES
