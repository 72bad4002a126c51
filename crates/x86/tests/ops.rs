//! The pre-decoded ops' memory paths that the host differential cannot reach: FS/GS-based
//! operands (the host's own FS is its thread pointer), non-canonical addresses through
//! them, stores into a page holding the running code (self-modifying code seen at once),
//! and the data fast path across TLB flushes. Each runs from blocks (`run`) and step by
//! step (`step`), which must agree.

use pandare_core::memory::Ram;
use pandare_x86::state::{flags, seg, State};
use pandare_x86::{Exit, X86Cpu};

const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const CODE: u64 = 0x10000;
const DATA: u64 = 0x20000;

/// 64-bit user mode over identity-mapped 2 MiB pages, `code` at CODE then a SYSCALL.
fn machine(code: &[u8]) -> X86Cpu {
    let mut ram = Ram::new(0, 4 << 20);
    let put = |ram: &mut Ram, a: u64, v: u64| assert!(ram.write_bytes(a, &v.to_le_bytes()));
    put(&mut ram, PML4, PDPT | 7);
    put(&mut ram, PDPT, PD | 7);
    put(&mut ram, PD, 0x87);
    put(&mut ram, PD + 8, (1 << 21) | 0x87);
    let mut program = code.to_vec();
    program.extend([0x0f, 0x05]);
    assert!(ram.write_bytes(CODE, &program));
    let mut state = State::long_mode(PML4, 3);
    state.rip = CODE;
    state.rflags = flags::FIXED;
    let mut cpu = X86Cpu::new(state, ram).expect("valid state");
    cpu.user_mode = true;
    cpu
}

fn run_to_syscall(cpu: &mut X86Cpu) -> Exit {
    loop {
        match cpu.run(1000) {
            Exit::Budget => {}
            other => return other,
        }
    }
}

fn step_to_syscall(cpu: &mut X86Cpu, end: u64) -> Option<pandare_x86::Fault> {
    while cpu.state.rip != end {
        if let Err(fault) = cpu.step() {
            return Some(fault);
        }
    }
    None
}

fn read(cpu: &X86Cpu, address: u64) -> u64 {
    let mut b = [0u8; 8];
    assert!(cpu.ram.read_bytes(address, &mut b));
    u64::from_le_bytes(b)
}

#[test]
fn fs_and_gs_based_operands() {
    // mov rax, fs:[rbx]; add gs:[rbx+8], rax; mov ecx, gs:[rbx+8]; movzx edx, byte fs:[rbx+1]
    let code = [
        0x64, 0x48, 0x8b, 0x03, 0x65, 0x48, 0x01, 0x43, 0x08, 0x65, 0x8b, 0x4b, 0x08, 0x64, 0x0f,
        0xb6, 0x53, 0x01,
    ];
    for blocks in [true, false] {
        let mut cpu = machine(&code);
        cpu.state.segments[seg::FS].base = DATA;
        cpu.state.segments[seg::GS].base = DATA + 0x100;
        cpu.state.gpr[3] = 0x40;
        assert!(cpu
            .ram
            .write_bytes(DATA + 0x40, &0x1122_3344_5566_7788u64.to_le_bytes()));
        assert!(cpu.ram.write_bytes(DATA + 0x148, &5u64.to_le_bytes()));
        if blocks {
            assert_eq!(run_to_syscall(&mut cpu), Exit::Syscall);
        } else {
            assert_eq!(step_to_syscall(&mut cpu, CODE + code.len() as u64), None);
        }
        assert_eq!(cpu.state.gpr[0], 0x1122_3344_5566_7788);
        assert_eq!(read(&cpu, DATA + 0x148), 0x1122_3344_5566_778d);
        assert_eq!(cpu.state.gpr[1], 0x5566_778d);
        assert_eq!(cpu.state.gpr[2], 0x77);
    }
}

#[test]
fn non_canonical_fs_address_faults_before_any_change() {
    // xor eax, eax (sets ZF); mov rcx, fs:[rbx] with FS.base + RBX non-canonical.
    let code = [0x31, 0xc0, 0x64, 0x48, 0x8b, 0x0b];
    for blocks in [true, false] {
        let mut cpu = machine(&code);
        cpu.state.gpr[0] = 7;
        cpu.state.gpr[1] = 0x1234;
        cpu.state.segments[seg::FS].base = 0x0000_7fff_ffff_f000;
        cpu.state.gpr[3] = 0x2000;
        let fault = if blocks {
            match run_to_syscall(&mut cpu) {
                Exit::Fault(fault) => fault,
                other => panic!("expected #GP, got {other:?}"),
            }
        } else {
            step_to_syscall(&mut cpu, CODE + code.len() as u64).expect("#GP")
        };
        assert_eq!(fault.vector, 13);
        assert_eq!(cpu.state.rip, CODE + 2, "RIP at the faulting instruction");
        assert_eq!(cpu.state.gpr[1], 0x1234, "RCX unchanged");
        assert_eq!(cpu.state.gpr[0], 0);
        assert_ne!(
            cpu.state.rflags & flags::ZF,
            0,
            "XOR's flags exact at the fault"
        );
    }
}

#[test]
fn a_store_into_the_running_block_is_seen_by_the_next_instruction() {
    // mov byte [rip+1], 0x05 rewrites the immediate of the following `mov eax, imm32`
    // (its first immediate byte), which must then load 5, not 1.
    let code = [
        0xc6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x05, // mov byte [rip+1], 5
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1
        0x83, 0xc0, 0x01, // add eax, 1
    ];
    for blocks in [true, false] {
        let mut cpu = machine(&code);
        if blocks {
            // Warm the block cache and the fast paths first, then restore the code.
            assert_eq!(run_to_syscall(&mut cpu), Exit::Syscall);
            assert_eq!(cpu.state.gpr[0], 6);
            assert!(cpu.ram.write_bytes(CODE + 8, &[0x01]));
            cpu.flush_all();
            cpu.state.rip = CODE;
            assert_eq!(run_to_syscall(&mut cpu), Exit::Syscall);
        } else {
            assert_eq!(step_to_syscall(&mut cpu, CODE + code.len() as u64), None);
        }
        assert_eq!(cpu.state.gpr[0], 6);
    }
}

#[test]
fn the_data_fast_path_follows_page_table_changes() {
    // mov rax, [rbx] twice, with the mapping of RBX's page changed (and the TLB flushed)
    // between the two runs.
    let code = [0x48, 0x8b, 0x03];
    let mut cpu = machine(&code);
    let pt = 0x5000;
    // Map 0x40_0000 (third 2 MiB entry) through a page table: first to DATA, then to
    // DATA + 0x1000.
    assert!(cpu.ram.write_bytes(PD + 16, &(pt | 7u64).to_le_bytes()));
    assert!(cpu.ram.write_bytes(pt, &(DATA | 7).to_le_bytes()));
    assert!(cpu.ram.write_bytes(DATA, &1u64.to_le_bytes()));
    assert!(cpu.ram.write_bytes(DATA + 0x1000, &2u64.to_le_bytes()));
    cpu.state.gpr[3] = 0x40_0000;
    assert_eq!(run_to_syscall(&mut cpu), Exit::Syscall);
    assert_eq!(cpu.state.gpr[0], 1);
    assert!(cpu
        .ram
        .write_bytes(pt, &((DATA + 0x1000) | 7).to_le_bytes()));
    cpu.flush_tlb();
    cpu.state.rip = CODE;
    assert_eq!(run_to_syscall(&mut cpu), Exit::Syscall);
    assert_eq!(cpu.state.gpr[0], 2);
}
