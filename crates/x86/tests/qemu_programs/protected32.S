/* protected32: what an i386 kernel and its processes use, in 32-bit protected mode:
   2-level paging with 4 KiB and 4 MiB pages, then PAE paging with NX and 2 MiB pages;
   a 32-bit IDT and TSS, exceptions with error codes and CR2 (#DE, #BP, #OF, #BR, #UD, #NP,
   #SS, #GP, #PF), INT n and IRET with privilege changes, SYSENTER/SYSEXIT, far calls,
   jumps and returns (to ring 3 too), LDT segments, CR0.WP, A/D bits and INVLPG.

   Every exception handler prints "#vv/eeee " and resumes at the recovery point the FAULT
   macro recorded (traps resume after the instruction). Interrupts stay disabled. */

    .include "common.inc"

    .set KCODE, 0x08
    .set KDATA, 0x10
    .set UCODE, 0x1b
    .set UDATA, 0x23
    .set TSSSEL, 0x28
    .set NPDATA, 0x30          /* data, not present */
    .set XONLY, 0x40           /* code, execute-only */
    .set BASEDATA, 0x48        /* data based at 0x12345000 */
    .set LDTSEL, 0x50
    .set LDTDATA, 0x0c         /* LDT entry 1: data based at 0xabc000 */

/* Runs \insn expecting a fault; the handler resumes after it (and, from ring 3, with this
   ESP). The NOP clears the RF = 1 the handler's IRET restores (see long_mode.S). */
.macro FAULT insn:vararg
    movl $.Lrecover\@, recover
    movl %esp, recover_esp
    \insn
.Lrecover\@:
    nop
.endm

/* EBX = the address of the 32-bit PTE mapping \page (first 4 MiB). */
.macro PTE page
    movl $\page, %ebx
    shrl $12, %ebx
    leal pt(,%ebx,4), %ebx
.endm

/* EBX = the address of the PAE PTE mapping \page (first 2 MiB). */
.macro PAE_PTE page
    movl $\page, %ebx
    shrl $12, %ebx
    leal pae_pt(,%ebx,8), %ebx
.endm

    .text
    .code32
    .globl _start
_start:
    cli
    lgdt gdt_pointer
    ljmp $KCODE, $1f
1:  movl $KDATA, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $kstack_top, %esp
    movl $msg_boot, %esi
    call puts

    /* TSS and LDT descriptor bases. */
    movl $tss, %eax
    movw %ax, gdt + TSSSEL + 2
    shrl $16, %eax
    movb %al, gdt + TSSSEL + 4
    movb %ah, gdt + TSSSEL + 7
    movl $ldt, %eax
    movw %ax, gdt + LDTSEL + 2
    shrl $16, %eax
    movb %al, gdt + LDTSEL + 4
    movb %ah, gdt + LDTSEL + 7

    /* 32-bit IDT gates from the table (vector, handler, type). */
    movl $vectors, %esi
2:  movl (%esi), %ecx
    cmpl $-1, %ecx
    je 3f
    movl 4(%esi), %eax
    movl 8(%esi), %ebx
    leal idt(,%ecx,8), %ecx
    movw %ax, (%ecx)
    movw $KCODE, 2(%ecx)
    movb $0, 4(%ecx)
    movb %bl, 5(%ecx)
    shrl $16, %eax
    movw %ax, 6(%ecx)
    addl $12, %esi
    jmp 2b
3:  lidt idt_pointer
    movw $TSSSEL, %ax
    ltr %ax
    movw $LDTSEL, %ax
    lldt %ax

    /* ---- exceptions without paging ---- */
    FAULT ud2
    xorl %ecx, %ecx
    movl $7, %eax
    FAULT divl %ecx
    int3
    movl $0x7fffffff, %eax
    addl $1, %eax
    into                                   /* #OF, a trap */
    movl $5, %eax
    FAULT boundl %eax, bounds              /* 5 outside [0, 3]: #BR */
    movw $NPDATA, %cx
    FAULT movw %cx, %ds                    /* #NP(0x30) */
    FAULT movw %cx, %ss                    /* #SS(0x30) */
    movw $XONLY, %cx
    FAULT movw %cx, %es                    /* #GP(0x40) */
    movw $UDATA, %cx
    FAULT movw %cx, %ss                    /* #GP(0x20) */
    movw $KDATA, %cx
    FAULT lldt %cx                         /* #GP(0x10) */
    movl $0x12345, %ecx
    FAULT rdmsr                            /* unknown MSR (QEMU: no #GP) */
    movw $LDTDATA, %ax
    movw %ax, %fs
    movw $BASEDATA, %ax
    movw %ax, %gs
    movw $KDATA, %ax
    movw %ax, %fs
    movw %ax, %gs
    lcall $KCODE, $far_target
    ljmp $KCODE, $1f
1:  pushl $KCODE
    pushl $2f
    lret
2:  /* Far pointers, PUSHA/POPA, ARPL, CPUID. */
    lss far_stack, %ecx
    movl %ecx, %esp
    lds far_data, %eax
    les far_data, %eax
    lfs far_data, %eax
    lgs far_data, %eax
    movl $KDATA, %eax
    movw %ax, %fs
    movw %ax, %gs
    movw $0x38, %ax                        /* a based segment, as i386 Linux's per-CPU FS */
    movw %ax, %fs
    movl %fs:page_b - 0x1000, %eax
    movl $0x77, %fs:page_b - 0x1000 + 4
    movl page_b + 4, %ebx
    pushl %fs
    popl %gs
    pushl %cs
    popl %eax
    movl $KDATA, %eax
    movw %ax, %fs
    movw %ax, %gs
    pushal
    movl $1, %eax
    movl $2, %ebx
    popal
    movw $0x1b, %ax
    movw $0x10, %cx
    arpl %ax, %cx                          /* RPL 0 raised to 3, ZF = 1 */
    arpl %ax, %cx                          /* already 3: ZF = 0 */
    xorl %eax, %eax
    cpuid
    movl $1, %eax
    cpuid
    movl $msg_exceptions, %esi
    call puts

    /* ---- 2-level paging: 4 KiB pages, a 4 MiB page, CR0.WP ---- */
    PTE page_np
    andl $~1, (%ebx)
    PTE page_ro
    andl $~2, (%ebx)
    PTE page_sup
    andl $~4, (%ebx)
    movl $pd, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x90, %eax                        /* PSE, PGE */
    movl %eax, %cr4
    movl %cr0, %eax
    orl $0x80010000, %eax                  /* PG, WP */
    movl %eax, %cr0
    jmp 1f
1:  FAULT movl page_np, %eax               /* #PF 0 */
    FAULT movl %eax, page_np               /* #PF 2 */
    FAULT movl %eax, page_ro               /* #PF 3 */
    movl %cr0, %eax
    andl $~0x10000, %eax
    movl %eax, %cr0
    movl $0x77, page_ro
    orl $0x10000, %eax
    movl %eax, %cr0
    movl $0x1234, 0x400008                 /* the 4 MiB page */
    movl 0x400008, %eax
    movl pd + 4, %eax
    PTE page_ad
    movl (%ebx), %eax
    movl page_ad, %ecx
    movl (%ebx), %eax
    movl %ecx, page_ad
    movl (%ebx), %eax
    andl $~0x60, (%ebx)
    invlpg page_ad
    movl page_ad, %ecx
    movl (%ebx), %eax
    movl pd, %eax
    PTE page_alias
    movl $page_a + 3, (%ebx)
    invlpg page_alias
    movl page_alias, %ecx
    movl $page_b + 3, (%ebx)
    invlpg page_alias
    movl page_alias, %ecx
    movl $page_a + 3, (%ebx)
    movl %cr3, %eax
    movl %eax, %cr3
    movl page_alias, %ecx
    movl $msg_paging, %esi
    call puts

    /* ---- ring 3 through IRET (IOPL 3), back through INT 0x82 ---- */
    movl $SYSENTER_CS_MSR, %ecx
    movl $KCODE, %eax
    xorl %edx, %edx
    wrmsr
    movl $SYSENTER_ESP_MSR, %ecx
    movl $kstack2_top, %eax
    wrmsr
    movl $SYSENTER_EIP_MSR, %ecx
    movl $sysenter_entry, %eax
    wrmsr
    movl $after_user, kernel_resume
    pushl $UDATA
    pushl $user_stack_top
    pushl $0x3002
    pushl $UCODE
    pushl $user
    iret
after_user:
    movl $KDATA, %eax
    movw %ax, %ds
    movw %ax, %es
    movl $msg_back, %esi
    call puts
    /* ... and through a far return to ring 3 (IOPL 0). */
    movl $after_user2, kernel_resume
    pushl $2                               /* IOPL 0 */
    popfl
    pushl $UDATA
    pushl $user_stack_top
    pushl $UCODE
    pushl $user_quiet
    lret
after_user2:
    movl $KDATA, %eax
    movw %ax, %ds
    movw %ax, %es

    /* ---- PAE paging with NX ---- */
    movl %cr0, %eax
    andl $~0x80000000, %eax
    movl %eax, %cr0
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x800, %eax                       /* NXE */
    wrmsr
    PAE_PTE page_np
    andl $~1, (%ebx)
    PAE_PTE page_nx
    orl $0x80000000, 4(%ebx)
    movl $pdpt, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    jmp 1f
1:  FAULT movl page_np, %eax               /* #PF 0 */
    FAULT call page_nx                     /* #PF 0x11 */
    PAE_PTE page_ad
    orl $0x40000, 4(%ebx)                  /* bit 50: reserved (MAXPHYADDR 40) */
    invlpg page_ad
    FAULT movl page_ad, %eax               /* #PF 9 (QEMU: 8) */
    andl $~0x40000, 4(%ebx)
    invlpg page_ad
    movl page_ad, %eax
    movl (%ebx), %eax
    movl $0x5678, 0x200010                 /* a 2 MiB page */
    movl 0x200010, %eax
    movl pae_pd + 8, %eax
    /* (Not the PDPTE: QEMU sets its bit 5 as if it were an accessed bit; in PAE paging
       that bit is reserved and the CPU loads PDPTEs with CR3, writing nothing back.) */
    movl %cr4, %eax
    movl %cr3, %eax
    movl $msg_done, %esi
    call puts
    EXIT $0

far_target:
    movl $0x42, %eax
    lret

/* ---- ring 3 ---- */
user:
    movl $UDATA, %eax
    movw %ax, %ds
    movw %ax, %es
    movl $msg_user, %esi
    call puts
    movl $1, %eax
    int $0x80
    int3
    movl $0x7fffffff, %eax
    addl $1, %eax
    into
    FAULT movl page_sup, %eax              /* #PF 5 */
    FAULT movl %eax, page_ro               /* #PF 7 */
    FAULT hlt                              /* #GP(0) */
    FAULT movl %cr0, %eax                  /* #GP(0) */
    FAULT int $0x81                        /* gate DPL 0: #GP(0x40a) */
    pushfl
    andl $~0x200, (%esp)                   /* IOPL 3: POPF may change IF ... */
    popfl
    pushfl
    popl %eax
    pushl $0x202                           /* ... but not IOPL at CPL 3 */
    popfl
    pushfl
    popl %eax
    movl $KDATA, %eax
    lsl %eax, %ecx
    verr %ax
    movl $user_after_sysenter, %edx
    movl %esp, %ecx
    sysenter
user_after_sysenter:
    movl $msg_user_back, %esi
    call puts
    int $0x82                              /* back to the kernel for good */

user_quiet:
    movl $UDATA, %eax                      /* the far return left DS and ES null */
    movw %ax, %ds
    movw %ax, %es
    FAULT cli                              /* IOPL 0: #GP(0) */
    int $0x82

sysenter_entry:
    pushl %edx
    PUTC $'E'
    popl %edx
    sysexit

/* ---- handlers ---- */
.macro STUB v, error
    .balign 16
stub_\v:
    .if \error == 0
    pushl $0
    .endif
    pushl $\v
    jmp common_handler
.endm
    STUB 0, 0
    STUB 3, 0
    STUB 4, 0
    STUB 5, 0
    STUB 6, 0
    STUB 8, 1
    STUB 10, 1
    STUB 11, 1
    STUB 12, 1
    STUB 13, 1
    STUB 14, 1
    STUB 0x80, 0
    STUB 0x81, 0

stub_0x82:                                 /* ring 3 is done: continue in the kernel */
    movl $kstack_top, %esp
    jmp *kernel_resume

/* Frame: 0 EDX, 4 ECX, 8 EAX, 12 vector, 16 error code, 20 EIP, 24 CS, 28 EFLAGS,
   32 ESP, 36 SS (from ring 3). */
common_handler:
    pushl %eax
    pushl %ecx
    pushl %edx
    movw %ds, %ax                          /* ring 3 may have left DS unusable */
    movl $KDATA, %ecx
    movw %cx, %ds
    pushl %eax
    PUTC $'#'
    movl 16(%esp), %eax
    call puthex8
    PUTC $'/'
    movl 20(%esp), %eax
    call puthex16
    PUTC $' '
    popl %eax
    movw %ax, %ds
    movl 12(%esp), %eax
    cmpl $8, %eax
    je double_fault
    cmpl $3, %eax
    je 1f
    cmpl $4, %eax
    je 1f
    cmpl $0x80, %eax
    je 1f
    movl %cs:recover, %eax
    movl %eax, 20(%esp)
    testb $3, 24(%esp)
    jz 1f
    movl %cs:recover_esp, %eax
    movl %eax, 32(%esp)
1:  popl %edx
    popl %ecx
    popl %eax
    addl $8, %esp
    iret

double_fault:
    movl $KDATA, %eax
    movw %ax, %ds
    movl $msg_double, %esi
    call puts
    EXIT $2

puts:
    movb (%esi), %al
    testb %al, %al
    jz 1f
    movw $DEBUGCON, %dx
    outb %al, %dx
    incl %esi
    jmp puts
1:  ret

puthex16:
    pushl %eax
    shrl $8, %eax
    call puthex8
    popl %eax
puthex8:
    pushl %eax
    shrb $4, %al
    call nibble
    popl %eax
nibble:
    andb $0xf, %al
    cmpb $10, %al
    jb 1f
    addb $('a' - '0' - 10), %al
1:  addb $'0', %al
    movw $DEBUGCON, %dx
    outb %al, %dx
    ret

    .set SYSENTER_CS_MSR, 0x174
    .set SYSENTER_ESP_MSR, 0x175
    .set SYSENTER_EIP_MSR, 0x176

    .data
    .balign 4096
pd:                                        /* 2-level: 4 KiB pages, then a 4 MiB page */
    .long pt + 7
    .long 0x400000 + 0x83                  /* PS, writable, present, supervisor */
    .fill 1022, 4, 0
pt:
    .set address, 0
    .rept 1024
    .long address + 7
    .set address, address + 0x1000
    .endr
pae_pd:                                    /* PAE: 4 KiB pages, then a 2 MiB page */
    .quad pae_pt + 7
    .quad 0x200000 + 0x83
    .fill 510, 8, 0
pae_pt:
    .set address, 0
    .rept 512
    .quad address + 7
    .set address, address + 0x1000
    .endr
pdpt:                                      /* PDPTEs hold only P (R/W/U are reserved) */
    .quad pae_pd + 1
    .quad 0, 0, 0
    .balign 4096
page_np:
    .long 0x1111
    .balign 4096
page_ro:
    .long 0x2222
    .balign 4096
page_sup:
    .long 0x3333
    .balign 4096
page_nx:
    ret
    .balign 4096
page_ad:
    .long 0x5555
    .balign 4096
page_a:
    .long 0xaaaaaaaa
    .balign 4096
page_b:
    .long 0xbbbbbbbb
    .balign 4096
page_alias:
    .long 0
    .balign 4096

gdt:
    .quad 0
    .quad 0x00cf9a000000ffff               /* 0x08 kernel code */
    .quad 0x00cf92000000ffff               /* 0x10 kernel data */
    .quad 0x00cffa000000ffff               /* 0x18 user code */
    .quad 0x00cff2000000ffff               /* 0x20 user data */
    .quad 0x0000890000000067               /* 0x28 TSS (base filled in) */
    .quad 0x00cf12000000ffff               /* 0x30 data, not present */
    .quad 0x00cf92001000ffff               /* 0x38 data based at 0x1000 (per-CPU style) */
    .quad 0x00cf98000000ffff               /* 0x40 code, execute-only */
    .quad 0x12cf92345000ffff               /* 0x48 data based at 0x12345000 */
    .quad 0x0000820000000000 + (ldt_end - ldt - 1)   /* 0x50 LDT */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .long gdt
ldt:
    .quad 0
    .quad 0x00cf92abc000ffff
ldt_end:

    .balign 8
idt:
    .fill 0x83 * 8, 1, 0
idt_end:
idt_pointer:
    .word idt_end - idt - 1
    .long idt

vectors:
    .long 0, stub_0, 0x8e
    .long 3, stub_3, 0xee
    .long 4, stub_4, 0xee
    .long 5, stub_5, 0x8e
    .long 6, stub_6, 0x8e
    .long 8, stub_8, 0x8e
    .long 10, stub_10, 0x8e
    .long 11, stub_11, 0x8e
    .long 12, stub_12, 0x8e
    .long 13, stub_13, 0x8e
    .long 14, stub_14, 0x8e
    .long 0x80, stub_0x80, 0xef            /* trap gate, DPL 3 */
    .long 0x81, stub_0x81, 0x8e            /* DPL 0 */
    .long 0x82, stub_0x82, 0xee
    .long -1

    .balign 16
tss:
    .long 0
    .long kstack_top                       /* ESP0 */
    .long KDATA                            /* SS0 */
    .fill 22, 4, 0
    .word 0
    .word 0x68                             /* no I/O bitmap */

bounds:
    .long 0, 3
far_stack:
    .long kstack_top
    .word KDATA
far_data:
    .long 0x1234
    .word KDATA
recover: .long 0
recover_esp: .long 0
kernel_resume: .long 0

msg_boot: .asciz "boot\n"
msg_exceptions: .asciz "\nexceptions\n"
msg_paging: .asciz "\npaging\n"
msg_user: .asciz "user\n"
msg_user_back: .asciz "\nuser again\n"
msg_back: .asciz "back in the kernel\n"
msg_done: .asciz "\ndone\n"
msg_double: .asciz "double fault\n"

    .balign 4096
    .fill 4096, 1, 0
kstack_top:
    .fill 4096, 1, 0
kstack2_top:
    .fill 4096, 1, 0
user_stack_top:
