//! System architecture: paging (A/D, NX, protection, error codes, CR2), exception and
//! interrupt delivery through a 64-bit IDT with TSS stacks and IST, INT n gate privilege,
//! SYSCALL/SYSRET, IRETQ, self-modifying code under the block cache, MSRs, CPUID, RDTSC
//! from virtual time, and rejection of corrupt states. Each test builds a small machine
//! from hand-encoded code and tables.

use pandare_core::abi::{Convention, GuestAbi};
use pandare_core::instrument::GuestCpu;
use pandare_core::memory::Ram;
use pandare_x86::mmu::{self, Access};
use pandare_x86::state::{flags, msr, seg, State};
use pandare_x86::{Event, Exit, X86Cpu};

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
const GDT: u64 = 0x5000;
const IDT: u64 = 0x6000;
const TSS: u64 = 0x7000;
const HANDLERS: u64 = 0x10000;
const USER_CODE: u64 = 0x20000;
const USER_STACK: u64 = 0x31000;
const USER_DATA: u64 = 0x40000;
const LSTAR: u64 = 0x50000;
const RSP0: u64 = 0x90000;
const IST1: u64 = 0xa0000;

fn put(ram: &mut Ram, address: u64, value: u64) {
    assert!(ram.write_bytes(address, &value.to_le_bytes()));
}

fn get(cpu: &X86Cpu, address: u64) -> u64 {
    let mut b = [0u8; 8];
    assert!(cpu.ram.read_bytes(address, &mut b));
    u64::from_le_bytes(b)
}

fn gate(offset: u64, dpl: u64, ist: u64) -> (u64, u64) {
    let low = (offset & 0xffff)
        | (0x10 << 16)
        | (ist << 32)
        | (0xe << 40)
        | (dpl << 45)
        | (1 << 47)
        | (((offset >> 16) & 0xffff) << 48);
    (low, offset >> 32)
}

/// A machine in 64-bit user mode at `USER_CODE` running `code`, with Linux's GDT layout,
/// an IDT whose handlers are HLT at `HANDLERS + 16 × vector` (vector 0x80 with DPL 3,
/// #DE on IST 1), a TSS, and the first 2 MiB identity-mapped for user and kernel.
fn machine(code: &[u8]) -> X86Cpu {
    let mut ram = Ram::new(0, 4 << 20);
    put(&mut ram, PML4, PDPT | 7);
    put(&mut ram, PDPT, PD | 7);
    put(&mut ram, PD, PT | 7);
    for page in 0..512u64 {
        put(&mut ram, PT + page * 8, (page << 12) | 7);
    }
    // GDT: 0x10 kernel code, 0x18 kernel data, 0x20 user code32, 0x28 user data,
    // 0x30 user code64, 0x40 TSS.
    for (index, descriptor) in [
        (2u64, 0x00af_9b00_0000_ffffu64),
        (3, 0x00cf_9300_0000_ffff),
        (4, 0x00cf_fb00_0000_ffff),
        (5, 0x00cf_f300_0000_ffff),
        (6, 0x00af_fb00_0000_ffff),
    ] {
        put(&mut ram, GDT + index * 8, descriptor);
    }
    let tss_low = 0x67 | ((TSS & 0xffffff) << 16) | (0x89 << 40) | ((TSS >> 24) << 56);
    put(&mut ram, GDT + 0x40, tss_low);
    put(&mut ram, GDT + 0x48, TSS >> 32);
    assert!(ram.write_bytes(TSS + 4, &RSP0.to_le_bytes()));
    assert!(ram.write_bytes(TSS + 0x24, &IST1.to_le_bytes()));
    for vector in 0..256u64 {
        let (low, high) = gate(
            HANDLERS + vector * 16,
            if vector == 0x80 || vector == 3 { 3 } else { 0 },
            if vector == 0 { 1 } else { 0 },
        );
        put(&mut ram, IDT + vector * 16, low);
        put(&mut ram, IDT + vector * 16 + 8, high);
        assert!(ram.write_bytes(HANDLERS + vector * 16, &[0xf4]));
    }
    assert!(ram.write_bytes(USER_CODE, code));
    let mut state = State::long_mode(PML4, 3);
    state.gdtr.base = GDT;
    state.gdtr.limit = 0x4f;
    state.idtr.base = IDT;
    state.idtr.limit = 0xfff;
    state.tr = pandare_x86::Segment {
        selector: 0x40,
        base: TSS,
        limit: 0x67,
        attributes: 0x8b,
    };
    state.rip = USER_CODE;
    state.gpr[4] = USER_STACK;
    state.rflags = flags::FIXED | flags::IF;
    state.star = (0x23u64 << 48) | (0x10u64 << 32);
    state.lstar = LSTAR;
    state.sfmask = flags::IF | flags::DF | flags::TF;
    X86Cpu::new(state, ram).expect("a valid state")
}

/// The handler the CPU halted in, from RIP (just past that handler's HLT).
fn halted_in(cpu: &X86Cpu) -> u64 {
    (cpu.state.rip - 1 - HANDLERS) / 16
}

#[test]
fn undefined_opcode_enters_the_handler_on_the_kernel_stack() {
    let mut cpu = machine(&[0x90, 0x0f, 0x0b]);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 6);
    assert_eq!(cpu.state.cpl, 0);
    assert_eq!(cpu.state.segments[seg::CS].selector, 0x10);
    let rsp = cpu.state.gpr[4];
    assert_eq!(
        rsp,
        RSP0 - 40,
        "SS, RSP, RFLAGS, CS, RIP pushed, no error code"
    );
    assert_eq!(get(&cpu, rsp), USER_CODE + 1, "RIP of the UD2");
    assert_eq!(get(&cpu, rsp + 8), 0x33);
    assert_eq!(get(&cpu, rsp + 16) & flags::IF, flags::IF);
    assert_eq!(get(&cpu, rsp + 24), USER_STACK);
    assert_eq!(get(&cpu, rsp + 32), 0x2b);
    assert_eq!(cpu.state.rflags & flags::IF, 0, "interrupt gate clears IF");
    // Two instructions retired: NOP and the handler's HLT (UD2 did not retire).
    assert_eq!(cpu.instruction_count(), 2);
}

#[test]
fn page_faults_report_error_code_and_cr2_and_set_accessed_dirty() {
    // mov [0x40000+8], eax ; then mov [0x41000], eax (read-only page)
    let code = [
        0x89, 0x04, 0x25, 0x08, 0x00, 0x04, 0x00, // mov [0x40008], eax
        0x89, 0x04, 0x25, 0x00, 0x10, 0x04, 0x00, // mov [0x41000], eax
    ];
    let mut cpu = machine(&code);
    // Make 0x41000 read-only.
    put(&mut cpu.ram, PT + 0x41 * 8, 0x41000 | 5);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 14);
    assert_eq!(cpu.state.cr2, 0x41000);
    let rsp = cpu.state.gpr[4];
    assert_eq!(rsp, RSP0 - 48);
    assert_eq!(get(&cpu, rsp), 0b111, "present | write | user");
    assert_eq!(
        get(&cpu, rsp + 8),
        USER_CODE + 7,
        "RIP of the faulting store"
    );
    let pte = get(&cpu, PT + 0x40 * 8);
    assert_eq!(
        pte & 0x60,
        0x60,
        "accessed and dirty set on the written page"
    );
    assert_eq!(
        get(&cpu, PD) & 0x20,
        0x20,
        "accessed set on the page directory entry"
    );
    assert_eq!(
        get(&cpu, PT + 0x41 * 8) & 0x40,
        0,
        "no dirty bit for a refused write"
    );
}

#[test]
fn not_present_and_no_execute_faults() {
    // jmp to the data page, marked NX.
    let mut cpu = machine(&[0xe9, 0xfb, 0xff, 0x01, 0x00]); // jmp 0x40000
    put(&mut cpu.ram, PT + 0x40 * 8, 0x40000 | 7 | (1 << 63));
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 14);
    assert_eq!(cpu.state.cr2, 0x40000);
    assert_eq!(
        get(&cpu, cpu.state.gpr[4]),
        0x15,
        "present | user | instruction fetch"
    );

    let mut cpu = machine(&[0x8b, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00]); // mov eax, [0x500000]
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 14);
    assert_eq!(cpu.state.cr2, 0x50_0000);
    assert_eq!(get(&cpu, cpu.state.gpr[4]), 0x4, "not present, read, user");
}

#[test]
fn divide_error_switches_to_its_interrupt_stack() {
    let mut cpu = machine(&[0x31, 0xc9, 0xf7, 0xf1]); // xor ecx, ecx ; div ecx
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 0);
    assert_eq!(cpu.state.gpr[4], IST1 - 40);
}

#[test]
fn int_n_honours_the_gate_privilege() {
    let mut cpu = machine(&[0xcd, 0x80]);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 0x80);
    assert_eq!(
        get(&cpu, cpu.state.gpr[4]),
        USER_CODE + 2,
        "INT pushes the next RIP"
    );

    let mut cpu = machine(&[0xcd, 0x40]);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 13);
    assert_eq!(
        get(&cpu, cpu.state.gpr[4]),
        0x40 * 8 + 2,
        "#GP error code names the IDT entry"
    );
}

#[test]
fn syscall_and_sysret_round_trip() {
    let mut cpu = machine(&[0x0f, 0x05, 0x90]);
    assert!(cpu.ram.write_bytes(LSTAR, &[0x48, 0x0f, 0x07])); // sysretq
    cpu.state.rflags |= flags::DF | flags::CF;
    assert_eq!(cpu.step(), Ok(Event::Syscall));
    assert_eq!(cpu.state.rip, LSTAR);
    assert_eq!(cpu.state.cpl, 0);
    assert_eq!(cpu.state.segments[seg::CS].selector, 0x10);
    assert_eq!(cpu.state.segments[seg::SS].selector, 0x18);
    assert_eq!(cpu.state.gpr[1], USER_CODE + 2);
    assert_eq!(
        cpu.state.gpr[11] & (flags::DF | flags::CF | flags::IF),
        flags::DF | flags::CF | flags::IF
    );
    assert_eq!(
        cpu.state.rflags & (flags::IF | flags::DF),
        0,
        "SFMASK applied"
    );
    assert_eq!(cpu.step(), Ok(Event::Retired));
    assert_eq!(cpu.state.rip, USER_CODE + 2);
    assert_eq!(cpu.state.cpl, 3);
    assert_eq!(cpu.state.segments[seg::CS].selector, 0x33);
    assert_eq!(cpu.state.segments[seg::SS].selector, 0x2b);
    assert_eq!(
        cpu.state.rflags & (flags::DF | flags::CF | flags::IF),
        flags::DF | flags::CF | flags::IF
    );
    // SYSRET from user mode is #GP; without EFER.SCE SYSCALL is #UD.
    let mut cpu = machine(&[0x48, 0x0f, 0x07]);
    assert_eq!(cpu.step().unwrap_err().vector, 13);
    let mut cpu = machine(&[0x0f, 0x05]);
    cpu.state.efer &= !msr::EFER_SCE;
    assert_eq!(cpu.step().unwrap_err().vector, 6);
}

#[test]
fn iretq_returns_to_user_mode() {
    // int 0x80 into a handler that does IRETQ, then UD2 in user mode.
    let mut cpu = machine(&[0xcd, 0x80, 0x0f, 0x0b]);
    assert!(cpu.ram.write_bytes(HANDLERS + 0x80 * 16, &[0x48, 0xcf]));
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 6);
    assert_eq!(
        get(&cpu, cpu.state.gpr[4]),
        USER_CODE + 2,
        "UD2 ran in user mode after IRETQ"
    );
    assert_eq!(get(&cpu, cpu.state.gpr[4] + 8), 0x33);
}

#[test]
fn stores_into_decoded_code_are_seen() {
    // mov byte [rip+1], 0x90 ; mov al, 1 (its immediate is the byte written) ; ud2
    let code = [
        0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x90, 0xb0, 0x01, 0x0f, 0x0b,
    ];
    // The whole sequence is one decoded block; the store lands inside it.
    let mut cpu = machine(&code);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 6);
    assert_eq!(
        cpu.state.gpr[0] & 0xff,
        0x90,
        "MOV AL used the stored immediate"
    );
}

#[test]
fn msrs_cpuid_and_time() {
    let mut cpu = machine(&[]);
    assert_eq!(cpu.read_msr(0x1234), None);
    assert_eq!(cpu.write_msr(0x1234, 0).unwrap_err().vector, 13);
    assert_eq!(
        cpu.write_msr(msr::LSTAR, 0x8000_0000_0000_0000)
            .unwrap_err()
            .vector,
        13,
        "non-canonical"
    );
    cpu.write_msr(msr::KERNEL_GS_BASE, 0xffff_8880_0000_0000)
        .unwrap();
    assert_eq!(
        cpu.read_msr(msr::KERNEL_GS_BASE),
        Some(0xffff_8880_0000_0000)
    );
    // rdmsr at CPL 3 is #GP; cpuid leaf 0 names the vendor; rdtsc counts instructions.
    let mut cpu = machine(&[0x0f, 0x32]);
    assert_eq!(cpu.step().unwrap_err().vector, 13);
    let mut cpu = machine(&[0x31, 0xc0, 0x0f, 0xa2, 0x90, 0x90, 0x0f, 0x31]);
    cpu.step().unwrap();
    cpu.step().unwrap();
    let vendor: Vec<u8> = [cpu.state.gpr[3], cpu.state.gpr[2], cpu.state.gpr[1]]
        .iter()
        .flat_map(|r| (*r as u32).to_le_bytes())
        .collect();
    assert_eq!(vendor, b"AuthenticAMD");
    cpu.step().unwrap();
    cpu.step().unwrap();
    cpu.step().unwrap();
    assert_eq!(
        cpu.state.gpr[0], 4,
        "RDTSC reads the instructions retired before it"
    );
}

#[test]
fn external_interrupts_wait_for_if() {
    let mut cpu = machine(&[0x90]);
    cpu.state.rflags &= !flags::IF;
    assert!(!cpu.interrupt(0x20));
    cpu.state.rflags |= flags::IF;
    assert!(cpu.interrupt(0x20));
    assert_eq!(cpu.state.rip, HANDLERS + 0x20 * 16);
    assert_eq!(
        get(&cpu, cpu.state.gpr[4]),
        USER_CODE,
        "returns to the interrupted instruction"
    );
}

#[test]
fn corrupt_states_are_errors() {
    let mut state = State::long_mode(PML4, 3);
    state.rflags |= 1 << 3;
    assert!(X86Cpu::new(state, Ram::new(0, 0x1000)).is_err());
    let mut state = State::long_mode(PML4, 3);
    state.cpl = 7;
    assert!(X86Cpu::new(state, Ram::new(0, 0x1000)).is_err());
    let mut state = State::long_mode(PML4, 0);
    state.cr4 |= 1 << 20; // SMEP, not implemented
    assert!(X86Cpu::new(state, Ram::new(0, 0x1000)).is_err());
}

#[test]
fn legacy_and_pae_walks() {
    let mut ram = Ram::new(0, 1 << 20);
    // 32-bit 2-level: PDE 0 -> PT at 0x2000; PTE 5 -> 0x9000; PDE 1 is a 4 MiB page.
    assert!(ram.write_bytes(0x1000, &(0x2000u32 | 7).to_le_bytes()));
    assert!(ram.write_bytes(0x1004, &(0x0040_0000u32 | 0x87).to_le_bytes()));
    assert!(ram.write_bytes(0x2000 + 5 * 4, &(0x9000u32 | 5).to_le_bytes()));
    let mut state = State::reset();
    state.cr0 |= 1 | (1 << 31);
    state.cr3 = 0x1000;
    state.cr4 = pandare_x86::state::cr::CR4_PSE;
    let t = mmu::walk(&state, &mut ram, 0x5123, Access::Read, true, true).unwrap();
    assert_eq!(t.physical, 0x9123);
    assert_eq!(
        mmu::walk(&state, &mut ram, 0x5123, Access::Write, true, true)
            .unwrap_err()
            .error_code,
        Some(7)
    );
    let t = mmu::walk(&state, &mut ram, 0x0045_6789, Access::Write, false, true).unwrap();
    assert_eq!(t.physical, 0x0045_6789);
    // PAE: PDPTE 0 -> PD at 0x3000; PDE 0 -> PT at 0x4000; PTE 1 -> 0x7000 with NX.
    let mut ram = Ram::new(0, 1 << 20);
    assert!(ram.write_bytes(0x1000, &(0x3000u64 | 1).to_le_bytes()));
    assert!(ram.write_bytes(0x3000, &(0x4000u64 | 7).to_le_bytes()));
    assert!(ram.write_bytes(0x4008, &(0x7000u64 | 7 | (1 << 63)).to_le_bytes()));
    let mut state = State::reset();
    state.cr0 |= 1 | (1 << 31);
    state.cr3 = 0x1000;
    state.cr4 = pandare_x86::state::cr::CR4_PAE;
    state.efer = msr::EFER_NXE;
    let t = mmu::walk(&state, &mut ram, 0x1abc, Access::Write, true, true).unwrap();
    assert_eq!(t.physical, 0x7abc);
    assert_eq!(
        mmu::walk(&state, &mut ram, 0x1abc, Access::Fetch, true, true)
            .unwrap_err()
            .error_code,
        Some(0x15)
    );
}

#[test]
fn the_guest_abi_names_registers_like_panda() {
    let mut cpu = machine(&[]);
    cpu.state.gpr[7] = 0x1234;
    assert_eq!(cpu.register("rdi").unwrap(), 0x1234);
    assert_eq!(cpu.register("RIP").unwrap(), USER_CODE);
    assert_eq!(cpu.register("cr3").unwrap(), PML4);
    assert_eq!(cpu.register("lstar").unwrap(), LSTAR);
    assert_eq!(cpu.register("cs").unwrap(), 0x33);
    assert!(cpu.set_register("cr3", 0).is_err());
    let abi: &dyn GuestAbi = cpu.abi();
    assert_eq!(
        abi.argument_register(Convention::Syscall, 3).unwrap(),
        "r10"
    );
    assert_eq!(abi.convention(Convention::Syscall).number, Some("rax"));
    assert_eq!(
        abi.linux().unwrap().syscall_exception(),
        pandare_x86::SYSCALL_EXCEPTION
    );
    assert_eq!(cpu.virt_to_phys(USER_DATA + 5), Some(USER_DATA + 5));
    let mut bytes = [0u8; 2];
    GuestCpu::write_memory(&mut cpu, USER_DATA, &[1, 2]).unwrap();
    GuestCpu::read_memory(&mut cpu, USER_DATA, &mut bytes).unwrap();
    assert_eq!(bytes, [1, 2]);
    assert!(GuestCpu::read_memory(&mut cpu, 0x50_0000, &mut bytes).is_err());
}

/// Not a timed test: prints the interpreter's speed on a register loop and a memory loop
/// (`cargo test -p pandare-x86 --release --test system -- --ignored --nocapture speed`).
#[test]
#[ignore]
fn speed() {
    // mov ecx, 10_000_000 ; loop: add rax, rcx ; xor rdx, rax ; mov [rbx], rdx ; add rbx, 8 ;
    // and rbx, 0x40fff ; dec ecx ; jnz loop ; ud2
    let code = [
        0xb9, 0x80, 0x96, 0x98, 0x00, // mov ecx, 10_000_000
        0x48, 0x01, 0xc8, // add rax, rcx
        0x48, 0x31, 0xc2, // xor rdx, rax
        0x48, 0x89, 0x13, // mov [rbx], rdx
        0x48, 0x83, 0xc3, 0x08, // add rbx, 8
        0x48, 0x81, 0xe3, 0xff, 0x0f, 0x04, 0x00, // and rbx, 0x40fff
        0xff, 0xc9, // dec ecx
        0x75, 0xe8, // jnz loop
        0x0f, 0x0b,
    ];
    let mut cpu = machine(&code);
    cpu.state.gpr[3] = USER_DATA;
    let start = std::time::Instant::now();
    let exit = cpu.run(u64::MAX);
    let elapsed = start.elapsed();
    assert_eq!(exit, Exit::Halted);
    let n = cpu.instruction_count();
    eprintln!(
        "{n} instructions in {:.3} s: {:.1} MIPS",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64() / 1e6
    );
}

#[derive(Default)]
struct Recorder {
    log: std::sync::Arc<std::sync::Mutex<Vec<(u16, u8, u32)>>>,
}

impl pandare_core::memory::PortIoDevice for Recorder {
    fn read(&mut self, offset: u16, size: u8, _now: u64) -> u32 {
        u32::from(offset) + u32::from(size)
    }
    fn write(&mut self, offset: u16, size: u8, value: u32, _now: u64) {
        self.log.lock().unwrap().push((offset, size, value));
    }
}

fn kernel(cpu: &mut X86Cpu) {
    cpu.state.cpl = 0;
    cpu.state.segments[seg::CS] = pandare_x86::Segment::flat(0x10, 0xa09b);
    cpu.state.segments[seg::SS] = pandare_x86::Segment::flat(0x18, 0xc093);
}

#[test]
fn port_io_reaches_the_port_device_and_is_privileged() {
    // mov dx, 0x3f8 ; mov al, 0x41 ; out dx, al ; in ax, dx ; out 0x80, eax
    let code = [
        0x66, 0xba, 0xf8, 0x03, 0xb0, 0x41, 0xee, 0x66, 0xed, 0xe7, 0x80,
    ];
    let mut cpu = machine(&code);
    kernel(&mut cpu);
    let recorder = Recorder::default();
    let log = recorder.log.clone();
    cpu.ports = Some(pandare_x86::cpu::PortSpace(Box::new(recorder)));
    for _ in 0..5 {
        cpu.step().unwrap();
    }
    assert_eq!(
        cpu.state.gpr[0] & 0xffff,
        0x3f8 + 2,
        "IN AX, DX read the device"
    );
    assert_eq!(
        *log.lock().unwrap(),
        vec![(0x3f8, 1, 0x41), (0x80, 4, 0x3fa)]
    );
    let mut cpu = machine(&[0xec]); // in al, dx at CPL 3, IOPL 0
    assert_eq!(cpu.step().unwrap_err(), pandare_x86::Fault::gp(0));
}

#[test]
fn sysenter_and_sysexit_round_trip() {
    let mut cpu = machine(&[0x0f, 0x34]);
    cpu.state.sysenter = [0x10, RSP0, LSTAR];
    assert!(cpu.ram.write_bytes(LSTAR, &[0x48, 0x0f, 0x35])); // sysexitq
    cpu.state.gpr[2] = USER_CODE + 0x100;
    cpu.state.gpr[1] = USER_STACK - 0x10;
    assert_eq!(cpu.step(), Ok(Event::Syscall));
    assert_eq!(
        (cpu.state.cpl, cpu.state.rip, cpu.state.gpr[4]),
        (0, LSTAR, RSP0)
    );
    assert_eq!(cpu.state.rflags & flags::IF, 0);
    cpu.step().unwrap();
    assert_eq!(cpu.state.cpl, 3);
    assert_eq!(cpu.state.segments[seg::CS].selector, 0x33);
    assert_eq!(cpu.state.segments[seg::SS].selector, 0x3b);
    assert_eq!(
        (cpu.state.rip, cpu.state.gpr[4]),
        (USER_CODE + 0x100, USER_STACK - 0x10)
    );
}

#[test]
fn far_returns_reload_cs_and_change_privilege() {
    // Kernel: push 0x2b ; push USER_STACK ; push 0x33 ; push USER_CODE+0x40 ; lretq
    let mut code = vec![0x6a, 0x2b, 0x68];
    code.extend((USER_STACK as u32).to_le_bytes());
    code.extend([0x6a, 0x33, 0x68]);
    code.extend(((USER_CODE + 0x40) as u32).to_le_bytes());
    code.extend([0x48, 0xcb]);
    let mut cpu = machine(&code);
    kernel(&mut cpu);
    cpu.state.gpr[4] = RSP0;
    for _ in 0..5 {
        cpu.step().unwrap();
    }
    assert_eq!(cpu.state.cpl, 3);
    assert_eq!(cpu.state.rip, USER_CODE + 0x40);
    assert_eq!(cpu.state.gpr[4], USER_STACK);
    assert_eq!(cpu.state.segments[seg::CS].selector, 0x33);
    assert_eq!(cpu.state.segments[seg::SS].selector, 0x2b);
    // Same privilege: push 0x10 ; push target ; lretq (Linux's way of reloading CS).
    let mut code = vec![0x6a, 0x10, 0x68];
    code.extend(((USER_CODE + 0x20) as u32).to_le_bytes());
    code.extend([0x48, 0xcb]);
    let mut cpu = machine(&code);
    kernel(&mut cpu);
    cpu.state.gpr[4] = RSP0;
    for _ in 0..3 {
        cpu.step().unwrap();
    }
    assert_eq!(
        (cpu.state.cpl, cpu.state.rip, cpu.state.gpr[4]),
        (0, USER_CODE + 0x20, RSP0)
    );
    // From user mode, a far return into the kernel's code segment is #GP.
    let mut cpu = machine(&code);
    cpu.step().unwrap();
    cpu.step().unwrap();
    assert_eq!(cpu.step().unwrap_err().vector, 13);
}

#[test]
fn debug_registers_hold_values() {
    // mov rax, 0x401 -> dr7 ; mov rcx, dr7 ; mov rdx, dr6
    let code = [
        0x48, 0xc7, 0xc0, 0x01, 0x04, 0, 0, 0x0f, 0x23, 0xf8, 0x0f, 0x21, 0xf9, 0x0f, 0x21, 0xf2,
    ];
    let mut cpu = machine(&code);
    kernel(&mut cpu);
    for _ in 0..4 {
        cpu.step().unwrap();
    }
    assert_eq!(cpu.state.gpr[1], 0x401);
    assert_eq!(cpu.state.gpr[2], 0xffff_0ff0);
    let mut cpu = machine(&code[7..]);
    assert_eq!(cpu.step().unwrap_err().vector, 13, "MOV DR at CPL 3");
}

#[test]
fn into_raises_overflow_only_when_of_is_set() {
    use pandare_x86::fuzzing::{layout, machine as fuzz_machine, StartMode};
    // Compatibility mode: add al, 0x7f (0x01 + 0x7f overflows) ; into ; ud2
    let code = [0xb0, 0x01, 0x04, 0x7f, 0xce, 0x0f, 0x0b];
    let mut cpu = fuzz_machine(&code, 3, StartMode::Compat32);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(
        (cpu.state.rip - 1 - layout::HANDLERS) / 16,
        13,
        "vector 4's gate has DPL 0: #GP from CPL 3"
    );
    assert_eq!(get(&cpu, cpu.state.gpr[4]), 4 * 8 + 2);
    // With a DPL 3 gate for vector 4, INTO enters it with the next instruction pushed.
    let mut cpu = fuzz_machine(&code, 3, StartMode::Compat32);
    let gate = get(&cpu, layout::IDT + 4 * 16) | (3 << 45);
    put(&mut cpu.ram, layout::IDT + 4 * 16, gate);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!((cpu.state.rip - 1 - layout::HANDLERS) / 16, 4);
    assert_eq!(get(&cpu, cpu.state.gpr[4]), layout::CODE + 5);
    // Without overflow INTO does nothing.
    let mut cpu = fuzz_machine(
        &[0xb0, 0x01, 0x04, 0x01, 0xce, 0x0f, 0x0b],
        3,
        StartMode::Compat32,
    );
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!((cpu.state.rip - 1 - layout::HANDLERS) / 16, 6);
}

#[test]
fn lock_prefix_on_a_register_destination_is_undefined() {
    let mut cpu = machine(&[0xf0, 0x01, 0xc8]); // lock add eax, ecx
    assert_eq!(cpu.step().unwrap_err().vector, 6);
    let mut cpu = machine(&[0xf0, 0x01, 0x0c, 0x25, 0x00, 0x00, 0x04, 0x00]); // lock add [0x40000], ecx
    assert_eq!(cpu.step(), Ok(Event::Retired));
}

/// A 32-bit protected-mode machine with 2-level paging (i386 without PAE): GDT 0x08 kernel
/// code, 0x10 kernel data, 0x1b user code, 0x23 user data, 0x28 TSS; a 32-bit IDT whose
/// handlers are HLT (0x80 with DPL 3 is IRETD); user code at `USER_CODE`.
fn machine32(code: &[u8]) -> X86Cpu {
    let mut ram = Ram::new(0, 4 << 20);
    assert!(ram.write_bytes(0x1000, &(0x2000u32 | 7).to_le_bytes()));
    for page in 0..1024u32 {
        assert!(ram.write_bytes(
            0x2000 + u64::from(page) * 4,
            &((page << 12) | 7).to_le_bytes()
        ));
    }
    for (index, descriptor) in [
        (1u64, 0x00cf_9b00_0000_ffffu64),
        (2, 0x00cf_9300_0000_ffff),
        (3, 0x00cf_fb00_0000_ffff),
        (4, 0x00cf_f300_0000_ffff),
    ] {
        put(&mut ram, GDT + index * 8, descriptor);
    }
    put(
        &mut ram,
        GDT + 0x28,
        0x67 | ((TSS & 0xff_ffff) << 16) | (0x89 << 40),
    );
    assert!(ram.write_bytes(TSS + 4, &(RSP0 as u32).to_le_bytes()));
    assert!(ram.write_bytes(TSS + 8, &0x10u32.to_le_bytes()));
    for vector in 0..256u64 {
        let offset = HANDLERS + vector * 16;
        let dpl = if vector == 0x80 { 3 } else { 0 };
        let low = (offset & 0xffff) | (0x08 << 16);
        let high = ((0x8e | (dpl << 5)) << 8) | ((offset >> 16) << 16);
        put(&mut ram, IDT + vector * 8, low | (high << 32));
        assert!(ram.write_bytes(offset, &[0xf4]));
    }
    assert!(ram.write_bytes(HANDLERS + 0x80 * 16, &[0xcf])); // iretd
    assert!(ram.write_bytes(USER_CODE, code));
    let mut state = State::reset();
    state.cr0 |= 1 | (1 << 31) | (1 << 16);
    state.cr0 &= !((1 << 29) | (1 << 30));
    state.cr3 = 0x1000;
    state.gdtr.base = GDT;
    state.gdtr.limit = 0x2f;
    state.idtr.base = IDT;
    state.idtr.limit = 0x7ff;
    state.tr = pandare_x86::Segment {
        selector: 0x28,
        base: TSS,
        limit: 0x67,
        attributes: 0x8b,
    };
    let data = pandare_x86::Segment::flat(0x23, 0xc0f3);
    state.segments = [data; 6];
    state.segments[seg::CS] = pandare_x86::Segment::flat(0x1b, 0xc0fb);
    state.cpl = 3;
    state.rip = USER_CODE;
    state.gpr[4] = USER_STACK;
    state.rflags = flags::FIXED | flags::IF;
    let mut cpu = X86Cpu::new(state, ram).unwrap();
    cpu.architecture = pandare_x86::abi::Architecture::I386;
    cpu
}

#[test]
fn protected_mode_int80_iretd_and_faults() {
    // int 0x80 (handler: IRETD) ; mov eax, [0x500000] (not mapped: #PF) — 2-level paging
    // maps only the first 4 MiB.
    let mut cpu = machine32(&[0xcd, 0x80, 0xa1, 0x00, 0x00, 0x50, 0x00]);
    assert_eq!(cpu.state.mode(), pandare_x86::Mode::Protected32);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 14);
    assert_eq!(cpu.state.cr2, 0x50_0000);
    assert_eq!(cpu.state.cpl, 0);
    assert_eq!(cpu.state.segments[seg::CS].selector, 0x08);
    assert_eq!(cpu.state.segments[seg::SS].selector, 0x10);
    let esp = cpu.state.gpr[4];
    assert_eq!(
        esp,
        RSP0 - 24,
        "SS, ESP, EFLAGS, CS, EIP and the error code: 6 dwords"
    );
    let word = |cpu: &X86Cpu, a: u64| get(cpu, a) & 0xffff_ffff;
    assert_eq!(word(&cpu, esp), 4, "not present, read, user");
    assert_eq!(word(&cpu, esp + 4), USER_CODE + 2);
    assert_eq!(word(&cpu, esp + 8), 0x1b);
    assert_eq!(
        word(&cpu, esp + 16),
        USER_STACK,
        "the IRETD restored the user stack"
    );
    assert_eq!(word(&cpu, esp + 20), 0x23);
    assert_eq!(cpu.register("eip").unwrap(), HANDLERS + 14 * 16 + 1);
    assert_eq!(cpu.abi().architecture(), "i386");
    assert_eq!(
        cpu.abi().convention(Convention::Syscall).arguments[0],
        "ebx"
    );
}

#[test]
fn real_mode_to_long_mode_like_a_boot_loader() {
    let mut ram = Ram::new(0, 4 << 20);
    put(&mut ram, 0x1000, 0x2000 | 3);
    put(&mut ram, 0x2000, 0x3000 | 3);
    put(&mut ram, 0x3000, 0x83); // one 2 MiB page at 0
    put(&mut ram, 0x5008, 0x00cf_9a00_0000_ffff);
    put(&mut ram, 0x5010, 0x00cf_9200_0000_ffff);
    put(&mut ram, 0x5018, 0x00af_9a00_0000_ffff);
    // GDTR image at 0x7d00: limit 0x1f, base 0x5000.
    assert!(ram.write_bytes(0x7d00, &[0x1f, 0x00, 0x00, 0x50, 0x00, 0x00]));
    let real = [
        0x0f, 0x01, 0x16, 0x00, 0x7d, // lgdt [0x7d00]
        0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, // cr0.PE
        0xea, 0x40, 0x7c, 0x08, 0x00, // jmp 0x08:0x7c40
    ];
    let protected = [
        0xb8, 0x10, 0, 0, 0, 0x8e, 0xd8, 0x8e, 0xd0, // ds = ss = 0x10
        0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, // cr4.PAE
        0xb8, 0x00, 0x10, 0, 0, 0x0f, 0x22, 0xd8, // cr3 = 0x1000
        0xb9, 0x80, 0, 0, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0, 0, 0x0f, 0x30, // EFER.LME
        0x0f, 0x20, 0xc0, 0x0d, 0, 0, 0, 0x80, 0x0f, 0x22, 0xc0, // cr0.PG
        0xea, 0x80, 0x7c, 0, 0, 0x18, 0x00, // jmp 0x18:0x7c80
    ];
    let long = [0x48, 0xc7, 0xc0, 0x34, 0x12, 0, 0, 0xf4]; // mov rax, 0x1234 ; hlt
    assert!(ram.write_bytes(0x7c00, &real));
    assert!(ram.write_bytes(0x7c40, &protected));
    assert!(ram.write_bytes(0x7c80, &long));
    let mut state = State::reset();
    state.segments[seg::CS].selector = 0;
    state.segments[seg::CS].base = 0;
    state.rip = 0x7c00;
    let mut cpu = X86Cpu::new(state, ram).unwrap();
    assert_eq!(cpu.run(1000), Exit::Halted);
    assert_eq!(cpu.state.gpr[0], 0x1234);
    assert_eq!(cpu.state.mode(), pandare_x86::Mode::Long64);
    assert!(cpu.state.efer & msr::EFER_LMA != 0);
    assert_eq!(cpu.state.rip, 0x7c88);
}

#[test]
fn states_serialize_and_reject_damage() {
    let mut cpu = machine(&[0x0f, 0x05]);
    cpu.state.sysenter = [0x10, 0x1234, 0x5678];
    cpu.state.dr[7] = 0x401;
    cpu.step().unwrap();
    let bytes = cpu.state.to_bytes();
    assert_eq!(State::from_bytes(&bytes).unwrap(), cpu.state);
    assert!(State::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(State::from_bytes(b"PX86").is_err());
    assert!(State::from_bytes(b"nope").is_err());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(State::from_bytes(&longer).is_err());
    // RFLAGS (after magic, version and 17 words) with a reserved bit set.
    let mut bad = bytes.clone();
    bad[8 + 17 * 8] |= 1 << 3;
    assert!(State::from_bytes(&bad).is_err());
    // Every single-byte corruption is a value or an error, never a panic.
    for n in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[n] ^= 0xa5;
        let _ = State::from_bytes(&damaged);
    }
}

#[test]
fn trap_flag_single_steps() {
    // pushfq ; or qword [rsp], 0x100 ; popfq ; nop ; nop
    let code = [
        0x9c, 0x48, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00, 0x9d, 0x90, 0x90,
    ];
    let mut cpu = machine(&code);
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 1);
    assert_eq!(
        get(&cpu, cpu.state.gpr[4]),
        USER_CODE + 11,
        "trap after the first NOP"
    );
    assert_ne!(cpu.state.dr[6] & (1 << 14), 0, "DR6.BS");
    assert_eq!(
        cpu.state.rflags & flags::TF,
        0,
        "the handler runs without TF"
    );
}

#[test]
fn an_instruction_across_pages_follows_the_second_page_mapping() {
    // mov eax, imm32 straddling 0x20ffe..0x21002: opcode and 1 byte on the first page,
    // 3 immediate bytes on the next; then ud2 on the second page.
    let mut cpu = machine(&[]);
    assert!(cpu.ram.write_bytes(0x20ffe, &[0xb8, 0x11]));
    assert!(cpu
        .ram
        .write_bytes(0x21000, &[0x22, 0x33, 0x44, 0x0f, 0x0b]));
    // An alternative frame for the second page with other immediate bytes.
    assert!(cpu
        .ram
        .write_bytes(0x60000, &[0xaa, 0xbb, 0xcc, 0x0f, 0x0b]));
    cpu.state.rip = 0x20ffe;
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(cpu.state.gpr[0], 0x4433_2211);
    // Remap the second page (as an OS would, then INVLPG): the cached block must not use
    // the old bytes.
    put(&mut cpu.ram, PT + 0x21 * 8, 0x60000 | 7);
    let mut state = cpu.state.clone();
    state.rip = 0x20ffe;
    state.cpl = 3;
    state.segments[seg::CS] = pandare_x86::Segment::flat(0x33, 0xa0fb);
    state.gpr[4] = USER_STACK;
    state.rflags = flags::FIXED | flags::IF;
    state.halted = false;
    cpu.state = state;
    cpu.flush_tlb();
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(cpu.state.gpr[0], 0xccbb_aa11);
    // Unmap it: the instruction page-faults at its start with CR2 on the second page.
    put(&mut cpu.ram, PT + 0x21 * 8, 0);
    cpu.state.rip = 0x20ffe;
    cpu.state.cpl = 3;
    cpu.state.segments[seg::CS] = pandare_x86::Segment::flat(0x33, 0xa0fb);
    cpu.state.gpr[4] = USER_STACK;
    cpu.state.halted = false;
    cpu.flush_tlb();
    assert_eq!(cpu.run(100), Exit::Halted);
    assert_eq!(halted_in(&cpu), 14);
    assert_eq!(cpu.state.cr2, 0x21000);
    assert_eq!(get(&cpu, cpu.state.gpr[4] + 8), 0x20ffe);
}

#[test]
fn user_mode_stops_at_system_calls_and_faults() {
    // mov eax, 60 ; syscall ; ud2
    let mut cpu = machine(&[0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05, 0x0f, 0x0b]);
    cpu.user_mode = true;
    assert_eq!(cpu.run(100), Exit::Syscall);
    assert_eq!(cpu.state.rip, USER_CODE + 5, "at the SYSCALL, not past it");
    assert_eq!(cpu.instruction_count(), 1, "the SYSCALL has not retired");
    assert_eq!(cpu.state.gpr[0], 60);
    // The runner answers and moves past it.
    cpu.state.gpr[0] = 0;
    cpu.state.rip += 2;
    assert_eq!(cpu.run(100), Exit::Fault(pandare_x86::Fault::ud()));
    assert_eq!(cpu.state.rip, USER_CODE + 7);
    // Page faults come back with their address, not delivered.
    let mut cpu = machine(&[0x8b, 0x04, 0x25, 0x00, 0x00, 0x50, 0x00]);
    cpu.user_mode = true;
    assert_eq!(
        cpu.run(100),
        Exit::Fault(pandare_x86::Fault::page(0x50_0000, 4))
    );
    // INT3 and other software interrupts come back as #BP and #GP.
    let mut cpu = machine(&[0xcc]);
    cpu.user_mode = true;
    assert_eq!(cpu.run(100), Exit::Fault(pandare_x86::Fault::bp()));
    let mut cpu = machine(&[0xcd, 0x21]);
    cpu.user_mode = true;
    assert_eq!(
        cpu.run(100),
        Exit::Fault(pandare_x86::Fault::gp(0x21 * 8 + 2))
    );
    // INT 0x80 is a system call too (i386 programs).
    let mut cpu = machine(&[0xcd, 0x80]);
    cpu.user_mode = true;
    assert_eq!(cpu.run(100), Exit::Syscall);
}
