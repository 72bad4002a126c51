/* long_mode: from the PVH entry (32-bit protected mode, paging off) into long mode with
   4-level paging, then the system architecture a 64-bit kernel and its processes use:
   GDT/LDT/IDT/TSS with IST stacks, exceptions with error codes and CR2, INT n and IRETQ
   with privilege changes, SYSCALL/SYSRET to 64-bit and compatibility mode, far calls,
   jumps and returns, SWAPGS, the MSRs Linux touches, CR8, paging faults of every kind,
   A/D bits, INVLPG, CR3 reloads, global pages, CR0.WP.

   Every exception handler prints "#vv/eeee " and resumes at the recovery point the FAULT
   macro recorded (traps resume after the instruction). Interrupts stay disabled
   throughout: external interrupts would not be deterministic. */

    .include "common.inc"

    .set KCODE32, 0x08
    .set KCODE, 0x10
    .set KDATA, 0x18
    .set UCODE32, 0x23
    .set UDATA, 0x2b
    .set UCODE, 0x33
    .set NPDATA, 0x38          /* a data segment marked not present */
    .set TSSSEL, 0x40
    .set LDTSEL, 0x50
    .set XONLY, 0x60           /* an execute-only code segment */
    .set BASEDATA, 0x68        /* a data segment based at 0x12345000 */
    .set LDTDATA, 0x0c         /* LDT entry 1: a data segment based at 0xabc000 */

    .set MSR_TSC, 0x10
    .set MSR_APIC_BASE, 0x1b
    .set MSR_SYSENTER_CS, 0x174
    .set MSR_SYSENTER_ESP, 0x175
    .set MSR_SYSENTER_EIP, 0x176
    .set MSR_MISC_ENABLE, 0x1a0
    .set MSR_PAT, 0x277
    .set MSR_EFER, 0xc0000080
    .set MSR_STAR, 0xc0000081
    .set MSR_LSTAR, 0xc0000082
    .set MSR_CSTAR, 0xc0000083
    .set MSR_SFMASK, 0xc0000084
    .set MSR_FS_BASE, 0xc0000100
    .set MSR_GS_BASE, 0xc0000101
    .set MSR_KERNEL_GS_BASE, 0xc0000102

/* Runs \insn expecting a fault: the handler resumes after it, with this RSP. The handler's
   IRETQ restores the RF = 1 the fault pushed; the NOP after the recovery point clears it,
   so that the next instruction does not meet QEMU's RF deviation (it pushes RF = 1 for a
   software interrupt executed with RF set; the manuals push 0, as pandare does). */
.macro FAULT insn:vararg
    leaq .Lrecover\@(%rip), %rax
    movq %rax, recover(%rip)
    movq %rsp, recover_rsp(%rip)
    \insn
.Lrecover\@:
    nop
.endm

/* The same in 32-bit code (compatibility mode). */
.macro FAULT32 insn:vararg
    movl $.Lrecover\@, recover
    movl $0, recover + 4
    movl %esp, recover_rsp
    movl $0, recover_rsp + 4
    \insn
.Lrecover\@:
    nop
.endm

/* ECX = MSR, EDX:EAX = the 64-bit value \value. */
.macro SETMSR msr, value
    movl $\msr, %ecx
    movabsq $\value, %rax
    movq %rax, %rdx
    shrq $32, %rdx
    wrmsr
.endm

/* RBX = the address of the PTE mapping \page (in the first 2 MiB). */
.macro PTE page
    leaq \page(%rip), %rbx
    shrq $12, %rbx
    leaq pt(%rip), %rax
    leaq (%rax,%rbx,8), %rbx
.endm

    .text
    .code32
    .globl _start
_start:
    cli
    lgdt gdt_pointer
    ljmp $KCODE32, $1f
1:  movl $KDATA, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl $kstack_top, %esp
    movl $msg_boot, %esi
    call puts32

    /* The TSS and LDT descriptors' bases. */
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

    /* 64-bit IDT gates from the table (vector, handler, IST | type << 8). */
    movl $vectors, %esi
2:  movl (%esi), %ecx
    cmpl $-1, %ecx
    je 3f
    movl 8(%esi), %eax
    movl 16(%esi), %ebx
    shll $4, %ecx
    addl $idt, %ecx
    movw %ax, (%ecx)
    movw $KCODE, 2(%ecx)
    movw %bx, 4(%ecx)
    shrl $16, %eax
    movw %ax, 6(%ecx)
    movl $0, 8(%ecx)
    movl $0, 12(%ecx)
    addl $24, %esi
    jmp 2b
3:
    /* The test pages: not present, read-only, supervisor-only, no-execute. */
    movl $page_np, %eax
    call pte32
    andl $~1, (%ebx)
    movl $page_ro, %eax
    call pte32
    andl $~2, (%ebx)
    movl $page_sup, %eax
    call pte32
    andl $~4, (%ebx)
    movl $page_nx, %eax
    call pte32
    orl $0x80000000, 4(%ebx)

    /* Long mode: PAE + PGE, CR3, EFER.LME/NXE/SCE, CR0.PG/WP, then a 64-bit CS. */
    movl $pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0xa0, %eax
    movl %eax, %cr4
    movl $MSR_EFER, %ecx
    rdmsr
    orl $0x901, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    ljmp $KCODE, $long64

/* EAX = a page's address -> EBX = its PTE's address. */
pte32:
    movl %eax, %ebx
    shrl $12, %ebx
    leal pt(,%ebx,8), %ebx
    ret

/* Prints the string at ESI. */
puts32:
    movb (%esi), %al
    testb %al, %al
    jz 1f
    movw $DEBUGCON, %dx
    outb %al, %dx
    incl %esi
    jmp puts32
1:  ret

    .code64
long64:
    movl $KDATA, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movl $kstack_top, %esp
    lidt idt_pointer(%rip)
    movw $TSSSEL, %ax
    ltr %ax
    movw $LDTSEL, %ax
    lldt %ax
    leaq msg_long(%rip), %rsi
    call puts

    /* ---- MSRs ---- */
    SETMSR MSR_STAR, 0x0023001000000000
    rdmsr
    movl $MSR_LSTAR, %ecx
    leaq syscall_entry(%rip), %rax
    xorl %edx, %edx
    wrmsr
    rdmsr
    movl $MSR_CSTAR, %ecx
    leaq syscall_entry32(%rip), %rax
    wrmsr
    rdmsr
    SETMSR MSR_SFMASK, 0x47700
    rdmsr
    movl $MSR_KERNEL_GS_BASE, %ecx
    leaq percpu(%rip), %rax
    xorl %edx, %edx
    wrmsr
    movl $MSR_GS_BASE, %ecx
    leaq user_gs_area(%rip), %rax
    wrmsr
    movq %gs:0, %rbx
    swapgs
    movq %gs:8, %rbx
    movl $MSR_GS_BASE, %ecx
    rdmsr
    movl $MSR_KERNEL_GS_BASE, %ecx
    rdmsr
    swapgs
    movl $MSR_FS_BASE, %ecx
    leaq fs_area(%rip), %rax
    xorl %edx, %edx
    wrmsr
    movq %fs:8, %rbx
    SETMSR MSR_PAT, 0x0007040600070106
    rdmsr
    SETMSR MSR_SYSENTER_CS, 0x10
    SETMSR MSR_SYSENTER_ESP, 0xffff800000001000
    SETMSR MSR_SYSENTER_EIP, 0x123456
    rdmsr
    movl $MSR_SYSENTER_ESP, %ecx
    rdmsr
    movl $MSR_SYSENTER_CS, %ecx
    rdmsr
    movl $MSR_EFER, %ecx
    rdmsr
    movl $MSR_APIC_BASE, %ecx
    rdmsr
    movl $MSR_TSC, %ecx
    rdmsr
    rdtsc
    /* A reserved PAT type, an unknown MSR, a non-canonical LSTAR: #GP(0). */
    FAULT SETMSR MSR_PAT, 0x0007040600070206
    movl $0x12345, %ecx
    FAULT rdmsr
    FAULT wrmsr
    FAULT SETMSR MSR_LSTAR, 0x8000000000000000
    /* QEMU accepts all three (see qemu_oracle): put back what a CPU would have kept. */
    movl $MSR_LSTAR, %ecx
    leaq syscall_entry(%rip), %rax
    xorl %edx, %edx
    wrmsr
    rdmsr
    SETMSR MSR_PAT, 0x0007040600070106
    /* CPUID: QEMU's -cpu is reduced to pandare's model (qemu_oracle::QEMU_CPU). */
    xorl %eax, %eax
    cpuid
    movl $1, %eax
    cpuid
    movl $0x80000000, %eax
    cpuid
    movl $0x80000001, %eax
    cpuid
    movl $0x80000008, %eax
    cpuid
    /* CR8, the task priority. */
    movl $5, %eax
    movq %rax, %cr8
    movq %cr8, %rbx
    xorl %eax, %eax
    movq %rax, %cr8
    movq %cr0, %rax
    movq %cr3, %rax
    movq %cr4, %rax
    /* Control-register writes long mode refuses: #GP(0). */
    movl $16, %ecx
    FAULT movq %rcx, %cr8                  /* CR8 above 15 */
    /* Not here: CR4.PAE cleared in long mode (#GP(0) by the manuals; QEMU 10 accepts it and
       its paging falls apart) and a CR4 bit the CPU lacks such as SMEP (#GP(0); QEMU 10
       re-executes the MOV forever). */
    /* Nor CR0.PE cleared with PG set (#GP(0); QEMU 10 accepts it). */
    /* Not EFER.LME cleared with paging on (#GP(0) by the manuals; QEMU 10 accepts it and
       then delivers exceptions through a legacy IDT). */
    /* The descriptor-table registers read back. */
    sgdt table_store(%rip)
    movq table_store + 2(%rip), %rax
    sidt table_store(%rip)
    movq table_store + 2(%rip), %rax
    str %eax
    sldt %eax
    smsw %eax
    str %ax
    smsw %ax
    leaq msg_msrs(%rip), %rsi
    call puts

    /* ---- exceptions at CPL 0 ---- */
    FAULT ud2
    xorl %ecx, %ecx
    movl $7, %eax
    FAULT divl %ecx                        /* #DE on IST 1 */
    int3
    movabsq $0x8000000000000000, %rbx
    FAULT movq (%rbx), %rax                /* non-canonical: #GP(0) */
    movw $NPDATA, %cx
    FAULT movw %cx, %ss                    /* a not-present stack segment: #SS(0x38), IST 2 */
    movw $NPDATA, %cx
    FAULT movw %cx, %ds                    /* #NP(0x38) */
    movw $XONLY, %cx
    FAULT movw %cx, %ds                    /* execute-only code into DS: #GP(0x60) */
    movw $UDATA, %cx
    FAULT movw %cx, %ss                    /* RPL/DPL 3 into SS at CPL 0: #GP(0x28) */
    movw $KDATA, %cx
    FAULT lldt %cx                         /* not an LDT: #GP(0x18) */
    FAULT int $0x81
    movl $(idt_end - idt), %eax
    leaq msg_exceptions(%rip), %rsi
    call puts

    /* ---- segments from the LDT and GDT; far transfers ---- */
    /* Invalid in 64-bit mode: #UD. */
    FAULT .byte 0xce                       /* INTO */
    FAULT .byte 0x37                       /* AAA */
    FAULT .byte 0x60                       /* PUSHA */
    FAULT .byte 0x1e                       /* PUSH DS */
    /* A null SS is allowed at CPL 0 in 64-bit mode. */
    xorl %eax, %eax
    movw %ax, %ss
    movl $KDATA, %eax
    movw %ax, %ss
    /* Instructions pandare's CPUID does not advertise: #UD. */
    FAULT rdtscp
    FAULT rdpid %rax
    FAULT xgetbv
    FAULT monitor
    FAULT mwait
    FAULT ud1 %eax, %eax
    /* What else a kernel executes: cache and ordering instructions, CLTS, debug
       registers, VERR/VERW, LMSW, POPFQ of system flags. */
    clflush page_a(%rip)
    mfence
    lfence
    sfence
    wbinvd
    movq %cr0, %rax
    orq $8, %rax
    movq %rax, %cr0                        /* TS set ... */
    clts                                   /* ... and cleared */
    movq %dr7, %rax
    movq %dr6, %rax
    movl $0x401, %eax
    movq %rax, %dr7
    movq %dr7, %rbx
    movl $0x400, %eax
    movq %rax, %dr7
    movl $0x10000, %eax
    movq %rax, %dr0
    movq %dr0, %rbx
    movl $KDATA, %eax
    verr %ax
    verw %ax
    movl $KCODE, %eax
    verr %ax
    verw %ax
    movl $NPDATA, %eax
    verr %ax
    smsw %ax
    lmsw %ax
    pushq $0x3ed7                          /* every arithmetic flag, DF, IOPL 3, NT */
    popfq
    pushfq
    popq %rax
    pushq $2
    popfq
    movl $TSSSEL, %eax                     /* system descriptors at CPL 0 */
    lsl %eax, %ecx
    lar %eax, %edx
    movl $LDTSEL, %eax
    lsl %eax, %ecx
    lar %eax, %edx
    movl $KCODE, %eax
    lsl %eax, %ecx
    lar %eax, %edx
    movw $LDTDATA, %ax
    movw %ax, %fs
    movl $MSR_FS_BASE, %ecx
    rdmsr
    movw $BASEDATA, %ax
    movw %ax, %gs
    movl $MSR_GS_BASE, %ecx
    rdmsr
    movl $KDATA, %eax
    movw %ax, %fs
    movw %ax, %gs
    movl $MSR_FS_BASE, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    movl $MSR_GS_BASE, %ecx
    wrmsr
    lcall *farcall_pointer(%rip)
    pushq $KCODE
    leaq 1f(%rip), %rax
    pushq %rax
    lretq
1:  ljmpl *farjump_pointer(%rip)
far_jumped:
    ljmpl *compat_kernel_pointer(%rip)     /* to 32-bit code under the 64-bit kernel */
back_in_64:
    lcall *compat_call_pointer(%rip)       /* a far call into 32-bit code, LRET back */
    /* An exception whose gate is not present: #NP with the IDT bit and, the exception
       being an event external to the program, EXT (error code 6 * 8 + 3). */
    andb $0x7f, idt + 6 * 16 + 5(%rip)
    FAULT ud2
    orb $0x80, idt + 6 * 16 + 5(%rip)
    /* The same for INT n: software, so no EXT (0x7d * 8 + 2). */
    FAULT int $0x7d
    /* A contributory fault while delivering a contributory one: #GP, whose gate is not
       present, gives #NP, and the two make a double fault (on IST 1). */
    movq $1, expect_double(%rip)
    andb $0x7f, idt + 13 * 16 + 5(%rip)
    movabsq $0x8000000000000000, %rbx
    FAULT movq (%rbx), %rax
    orb $0x80, idt + 13 * 16 + 5(%rip)
    leaq msg_far(%rip), %rsi
    call puts

    /* ---- paging ---- */
    FAULT movq page_np(%rip), %rax         /* #PF 0: not present, read */
    FAULT movq %rax, page_np(%rip)         /* #PF 2: not present, write */
    FAULT movq %rax, page_ro(%rip)         /* #PF 3: write to read-only */
    movq %cr0, %rax
    andq $~0x10000, %rax
    movq %rax, %cr0
    movq $0x77, page_ro(%rip)              /* CR0.WP clear: allowed */
    orq $0x10000, %rax
    movq %rax, %cr0
    FAULT call page_nx                     /* #PF 0x11: fetch from no-execute */
    /* A reserved bit (bit 13 of a 2 MiB page's PDE): #PF 9. */
    orq $0x2000, pd + 8(%rip)
    movl $0x200000, %ebx
    invlpg (%rbx)
    FAULT movq (%rbx), %rax
    andq $~0x2000, pd + 8(%rip)
    invlpg (%rbx)
    movq $0x1234, 8(%rbx)
    movq 8(%rbx), %rax
    movq pd + 8(%rip), %rax                /* A and D of the large page */
    /* Accessed and dirty bits. */
    PTE page_ad
    movq (%rbx), %rax
    movq page_ad(%rip), %rcx
    movq (%rbx), %rax
    movq %rcx, page_ad(%rip)
    movq (%rbx), %rax
    andq $~0x60, (%rbx)
    invlpg page_ad(%rip)
    movq page_ad(%rip), %rcx
    movq (%rbx), %rax
    movq pd(%rip), %rax
    movq pdpt(%rip), %rax
    movq pml4(%rip), %rax
    /* Remapping a page: INVLPG, a CR3 reload, a global page across CR4.PGE toggles. */
    PTE page_alias
    leaq page_a(%rip), %rax
    orq $3, %rax
    movq %rax, (%rbx)
    invlpg page_alias(%rip)
    movq page_alias(%rip), %rcx
    leaq page_b(%rip), %rax
    orq $3, %rax
    movq %rax, (%rbx)
    invlpg page_alias(%rip)
    movq page_alias(%rip), %rcx
    leaq page_a(%rip), %rax
    orq $3, %rax
    movq %rax, (%rbx)
    movq %cr3, %rax
    movq %rax, %cr3
    movq page_alias(%rip), %rcx
    leaq page_b(%rip), %rax
    orq $0x103, %rax
    movq %rax, (%rbx)
    invlpg page_alias(%rip)
    movq page_alias(%rip), %rcx
    movq %cr4, %rax
    andq $~0x80, %rax
    movq %rax, %cr4
    orq $0x80, %rax
    movq %rax, %cr4
    movq page_alias(%rip), %rcx
    movq (%rbx), %rax
    leaq msg_paging(%rip), %rsi
    call puts

    /* ---- user mode, entered with IRETQ (IOPL 3 so that it may print) ---- */
    leaq after_user(%rip), %rax
    movq %rax, kernel_resume(%rip)
    pushq $UDATA
    leaq user_stack_top(%rip), %rax
    pushq %rax
    pushq $0x3002
    pushq $UCODE
    leaq user64(%rip), %rax
    pushq %rax
    iretq
after_user:
    movl $kstack_top, %esp
    leaq msg_back(%rip), %rsi
    call puts
    /* ... and again with a far return to CPL 3 (IOPL 0 this time). */
    leaq after_user2(%rip), %rax
    movq %rax, kernel_resume(%rip)
    pushq $UDATA
    leaq user_stack_top(%rip), %rax
    pushq %rax
    pushq $UCODE
    leaq user64_quiet(%rip), %rax
    pushq %rax
    lretq
after_user2:
    movl $kstack_top, %esp
    leaq msg_done(%rip), %rsi
    call puts
    EXIT $0

far_target:
    movl $0x42, %eax
    lretl

/* ---- CPL 3, 64-bit ---- */
user64:
    leaq msg_user(%rip), %rsi
    call puts
    movl $1, %eax
    movl $0x1111, %edi
    syscall
    movl $2, %eax
    int $0x80
    int3
    FAULT movq page_sup(%rip), %rax        /* #PF 5 */
    FAULT movq %rax, page_ro(%rip)         /* #PF 7 */
    FAULT call page_nx                     /* #PF 0x15 */
    FAULT movq 0x200008, %rax              /* a supervisor 2 MiB page: #PF 5 */
    xorl %eax, %eax
    FAULT movw %ax, %ss                    /* null SS at CPL 3: #GP(0) */
    movl $KDATA, %eax
    FAULT movw %ax, %ds                    /* DPL 0 data at CPL 3: #GP(0x18) */
    FAULT hlt                              /* #GP(0) */
    FAULT movq %cr0, %rax                  /* #GP(0) */
    FAULT rdmsr                            /* #GP(0) */
    FAULT int $0x81                        /* gate DPL 0: #GP(0x40a) */
    FAULT ud2
    /* LSL and LAR, as Linux's vDSO getcpu reads its per-CPU segment: visible (ZF = 1)
       for DPL 3 segments, not for the kernel's, the TSS, a null or an out-of-table one. */
    movl $UDATA, %eax
    lsl %eax, %ecx
    lar %eax, %edx
    movl $UCODE, %eax
    lsl %ax, %ecx
    lar %eax, %edx
    movl $KDATA, %eax
    movl $0x1234, %ecx
    lsl %eax, %ecx
    lar %eax, %edx
    movl $TSSSEL, %eax
    lsl %eax, %ecx
    xorl %eax, %eax
    lsl %eax, %ecx
    movl $0xfff8, %eax
    lar %eax, %edx
    movl $KDATA, %eax
    verr %ax
    verw %ax
    movl $UDATA, %eax
    verr %ax
    verw %ax
    movl $UCODE, %eax
    verr %ax
    verw %ax
    ljmpl *compat_user_pointer(%rip)
user64_again:
    leaq msg_user_back(%rip), %rsi
    call puts
    movl $99, %eax
    syscall                                /* back to the kernel for good */

user64_quiet:
    FAULT cli                              /* IOPL 0 at CPL 3: #GP(0) */
    /* Privileged at CPL 3: #GP(0) each. */
    FAULT swapgs
    FAULT sysretq
    FAULT lgdt table_store(%rip)
    FAULT invlpg page_a(%rip)
    FAULT wbinvd
    FAULT movq %rax, %dr7
    FAULT clts
    FAULT lmsw %ax
    FAULT inb $0x80, %al                   /* IOPL 0 and no I/O bitmap */
    FAULT outb %al, $0x80
    movl $0, %ecx
    FAULT rdpmc                            /* CR4.PCE clear */
    movl $99, %eax
    syscall

/* ---- SYSCALL entries ---- */
syscall_entry:
    swapgs
    movq %rsp, %gs:0
    movq %gs:8, %rsp
    pushq %rcx
    pushq %r11
    pushq %rax
    pushq %rdx
    PUTC $'S'
    popq %rdx
    popq %rax
    cmpl $99, %eax
    je back_to_kernel
    popq %r11
    popq %rcx
    movq %gs:0, %rsp
    swapgs
    sysretq

syscall_entry32:
    swapgs
    movq %rsp, %gs:0
    movq %gs:8, %rsp
    pushq %rcx
    pushq %r11
    pushq %rax
    pushq %rdx
    PUTC $'C'
    popq %rdx
    popq %rax
    popq %r11
    popq %rcx
    movq %gs:0, %rsp
    swapgs
    sysretl

back_to_kernel:
    swapgs
    jmp *kernel_resume(%rip)

/* ---- exception and interrupt handlers ---- */
.macro STUB v, error
    .balign 16
stub_\v:
    .if \error == 0
    pushq $0
    .endif
    pushq $\v
    jmp common_handler
.endm
    STUB 0, 0
    STUB 1, 0
    STUB 3, 0
    STUB 4, 0
    STUB 5, 0
    STUB 6, 0
    STUB 7, 0
    STUB 8, 1
    STUB 10, 1
    STUB 11, 1
    STUB 12, 1
    STUB 13, 1
    STUB 14, 1
    STUB 16, 0
    STUB 17, 1
    STUB 18, 0
    STUB 19, 0
    STUB 0x80, 0
    STUB 0x81, 0

/* Frame: 0 RSI, 8 RDX, 16 RCX, 24 RAX, 32 vector, 40 error code, 48 RIP, 56 CS,
   64 RFLAGS, 72 RSP, 80 SS. */
common_handler:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    movq 32(%rsp), %rax
    movq %rax, last_vector(%rip)
    movq 40(%rsp), %rax
    movq %rax, last_error(%rip)
    movq %cr2, %rax
    movq %rax, last_cr2(%rip)
    incq exception_count(%rip)
    PUTC $'#'
    movq last_vector(%rip), %rax
    call puthex8
    PUTC $'/'
    movq last_error(%rip), %rax
    call puthex16
    PUTC $' '
    movq last_vector(%rip), %rax
    cmpl $8, %eax
    jne 2f
    cmpq $0, expect_double(%rip)           /* an expected double fault resumes as a fault */
    je double_fault
    movq $0, expect_double(%rip)
2:  cmpl $3, %eax                          /* traps resume after the instruction */
    je 1f
    cmpl $4, %eax
    je 1f
    cmpl $0x80, %eax
    je 1f
    movq recover(%rip), %rax
    movq %rax, 48(%rsp)
    movq recover_rsp(%rip), %rax
    movq %rax, 72(%rsp)
1:  popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp
    iretq

double_fault:
    leaq msg_double(%rip), %rsi
    call puts
    EXIT $2

/* ---- output ---- */
puts:
    movb (%rsi), %al
    testb %al, %al
    jz 1f
    movw $DEBUGCON, %dx
    outb %al, %dx
    incq %rsi
    jmp puts
1:  ret

puthex16:
    pushq %rax
    shrq $8, %rax
    call puthex8
    popq %rax
puthex8:
    pushq %rax
    shrb $4, %al
    call nibble
    popq %rax
nibble:
    andb $0xf, %al
    cmpb $10, %al
    jb 1f
    addb $('a' - '0' - 10), %al
1:  addb $'0', %al
    movw $DEBUGCON, %dx
    outb %al, %dx
    ret

/* ---- 32-bit code under the 64-bit kernel (compatibility mode) ---- */
    .code32
compat_kernel:
    movl $5, %eax
    movl %esp, %ecx
    ljmp $KCODE, $back_in_64

compat_call:
    movl $6, %eax
    lret

compat_user:
    movw $UDATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movl $msg_compat, %esi
    call puts32
    movl $3, %eax
    syscall                                /* CSTAR; SYSRETL returns here */
    movl $4, %eax
    int $0x80                              /* 64-bit IDT, IRETQ back to 32-bit code */
    movl $0x7fffffff, %eax
    addl $1, %eax
    into                                   /* #OF (a trap) */
    FAULT32 movl page_sup, %eax            /* #PF 5 */
    FAULT32 ud2
    /* No SYSENTER here: with the AMD vendor pandare advertises it is #UD in long mode
       (AMD APM), while QEMU executes it as an Intel CPU would. */
    ljmp $UCODE, $user64_again

    .data
    .balign 4096
pml4:
    .quad pdpt + 7
    .fill 511, 8, 0
pdpt:
    .quad pd + 7
    .fill 511, 8, 0
pd:
    .quad pt + 7
    .quad 0x200000 + 0x183                 /* 2 MiB page: present, writable, PS, global */
    .fill 510, 8, 0
pt:                                        /* the first 2 MiB, 4 KiB pages, user */
    .set address, 0
    .rept 512
    .quad address + 7
    .set address, address + 0x1000
    .endr
page_np:
    .quad 0x1111
    .balign 4096
page_ro:
    .quad 0x2222
    .balign 4096
page_sup:
    .quad 0x3333
    .balign 4096
page_nx:
    ret
    .balign 4096
page_ad:
    .quad 0x5555
    .balign 4096
page_a:
    .quad 0xaaaaaaaa
    .balign 4096
page_b:
    .quad 0xbbbbbbbb
    .balign 4096
page_alias:
    .quad 0
    .balign 4096

gdt:
    .quad 0
    .quad 0x00cf9a000000ffff               /* 0x08 kernel code, 32-bit */
    .quad 0x00af9a000000ffff               /* 0x10 kernel code, 64-bit */
    .quad 0x00cf92000000ffff               /* 0x18 kernel data */
    .quad 0x00cffa000000ffff               /* 0x20 user code, 32-bit */
    .quad 0x00cff2000000ffff               /* 0x28 user data */
    .quad 0x00affa000000ffff               /* 0x30 user code, 64-bit */
    .quad 0x00cf12000000ffff               /* 0x38 data, not present */
    .quad 0x0000890000000067, 0            /* 0x40 TSS (base filled in) */
    .quad 0x0000820000000000 + (ldt_end - ldt - 1), 0   /* 0x50 LDT */
    .quad 0x00cf98000000ffff               /* 0x60 code, execute-only */
    .quad 0x12cf92345000ffff               /* 0x68 data based at 0x12345000 */
gdt_end:
gdt_pointer:
    .word gdt_end - gdt - 1
    .quad gdt
ldt:
    .quad 0
    .quad 0x00cf92abc000ffff               /* 0x0c data based at 0xabc000 */
ldt_end:

    .balign 16
idt:
    .fill 0x82 * 16, 1, 0
idt_end:
idt_pointer:
    .word idt_end - idt - 1
    .quad idt

vectors:
    .quad 0, stub_0, 0x8e01                /* #DE on IST 1 */
    .quad 1, stub_1, 0x8e00
    .quad 3, stub_3, 0xee00                /* INT3 allowed from CPL 3 */
    .quad 4, stub_4, 0xee00                /* INTO too */
    .quad 5, stub_5, 0x8e00
    .quad 6, stub_6, 0x8e00
    .quad 7, stub_7, 0x8e00
    .quad 8, stub_8, 0x8e01                /* #DF on IST 1 */
    .quad 10, stub_10, 0x8e00
    .quad 11, stub_11, 0x8e00
    .quad 12, stub_12, 0x8e02              /* #SS on IST 2 */
    .quad 13, stub_13, 0x8e00
    .quad 14, stub_14, 0x8e00
    .quad 16, stub_16, 0x8e00
    .quad 17, stub_17, 0x8e00
    .quad 18, stub_18, 0x8e00
    .quad 19, stub_19, 0x8e00
    .quad 0x80, stub_0x80, 0xef00          /* trap gate, DPL 3 */
    .quad 0x81, stub_0x81, 0x8e00          /* DPL 0 */
    .quad -1

    .balign 16
tss:
    .long 0
    .quad kstack_top                       /* RSP0 */
    .quad 0, 0                             /* RSP1, RSP2 */
    .quad 0
    .quad ist1_top                         /* IST1 */
    .quad ist2_top                         /* IST2 */
    .fill 5, 8, 0
    .quad 0
    .word 0
    .word 0x68                             /* no I/O bitmap */

farcall_pointer:
    .long far_target
    .word KCODE
farjump_pointer:
    .long far_jumped
    .word KCODE
compat_kernel_pointer:
    .long compat_kernel
    .word KCODE32
compat_call_pointer:
    .long compat_call
    .word KCODE32
compat_user_pointer:
    .long compat_user
    .word UCODE32

    .balign 8
table_store: .quad 0, 0
recover: .quad 0
recover_rsp: .quad 0
last_vector: .quad 0
last_error: .quad 0
last_cr2: .quad 0
exception_count: .quad 0
kernel_resume: .quad 0
expect_double: .quad 0
percpu:
    .quad 0                                /* the user's RSP during a system call */
    .quad kstack2_top
user_gs_area:
    .quad 0x6666
fs_area:
    .quad 0, 0x7777

msg_boot: .asciz "boot\n"
msg_long: .asciz "long mode\n"
msg_msrs: .asciz "\nmsrs\n"
msg_exceptions: .asciz "\nexceptions\n"
msg_far: .asciz "far\n"
msg_paging: .asciz "\npaging\n"
msg_user: .asciz "user\n"
msg_user_back: .asciz "\nuser again\n"
msg_compat: .asciz "\ncompat\n"
msg_back: .asciz "back in the kernel\n"
msg_done: .asciz "\ndone\n"
msg_double: .asciz "double fault\n"

    .balign 4096
    .fill 4096, 1, 0
kstack_top:
    .fill 4096, 1, 0
kstack2_top:
    .fill 4096, 1, 0
ist1_top:
    .fill 4096, 1, 0
ist2_top:
    .fill 4096, 1, 0
user_stack_top:
