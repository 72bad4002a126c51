//! Entry points for fuzzing, shared by the cargo-fuzz targets in `fuzz/` and by the corpus
//! and random-input tests in `tests/fuzz_corpus.rs`, so both run exactly the same checks.
//!
//! Both functions take arbitrary bytes and must return normally for every input: a panic
//! (index out of bounds, arithmetic overflow in a debug build, `unreachable!`, a failed
//! invariant below) is a bug in the CPU, not in the input.

use pandare_core::{Exit, Machine};

use crate::decode::{self, Kind, Op, ZERO_SINK};
use crate::disasm::{disassemble, instruction_length};
use crate::virt::Virt;
use crate::{compressed, VirtConfig};

/// Address the instruction stream of [`decode_words`] is disassembled at (branch targets
/// are absolute, so the pc matters).
const DECODE_PC: u64 = 0x8000_0000;
/// A second pc close to the top of the address space, so target computation must wrap.
const WRAP_PC: u64 = 0u64.wrapping_sub(0x1000);

/// Decodes `data` as a stream of little-endian instructions, 2 or 4 bytes each by the
/// length rule of the first halfword (a trailing partial instruction is ignored), and
/// runs every one through [`decode::decode`], [`disassemble`] and [`Op::ends_block`],
/// checking that they agree with each other.
pub fn decode_words(data: &[u8]) {
    let mut offset = 0;
    while let Some(half) = data.get(offset..offset + 2) {
        let low = u16::from_le_bytes([half[0], half[1]]);
        let len = usize::from(instruction_length(low));
        let Some(bytes) = data.get(offset..offset + len) else {
            break;
        };
        let bits = if len == 4 {
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            // What follows a compressed instruction must not matter to it.
            let next = data
                .get(offset + 2..offset + 4)
                .map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
            check_high_half_ignored(low, next);
            u32::from(low)
        };
        check_word(bits, DECODE_PC.wrapping_add(offset as u64));
        offset += len;
    }
}

/// Decodes, disassembles and classifies one instruction (a compressed one in the low 16
/// bits of `bits`), panicking if the results are inconsistent.
pub fn check_word(bits: u32, pc: u64) {
    let op = decode::decode(bits);
    let text = disassemble(bits, pc);
    let _ = disassemble(bits, WRAP_PC.wrapping_add(pc & 0xfff));
    let ends_block = op.ends_block();
    let compressed = bits & 3 != 3;
    let len = if compressed { 2 } else { 4 };
    assert_eq!(op.len, len, "length of {bits:#010x}: {op:?}");
    assert_eq!(op.len, instruction_length(bits as u16));
    assert_eq!(
        op.offset, 0,
        "decode leaves the offset to the block builder"
    );
    check_registers(&op, bits);
    let illegal = op.kind == Kind::Illegal;
    assert_eq!(
        illegal,
        text.starts_with("unknown "),
        "decoder and disassembler disagree on {bits:#010x}: {op:?} vs {text:?}"
    );
    if illegal {
        assert!(ends_block, "an illegal instruction must end its block");
        // The trap value is the instruction as fetched: the halfword for compressed ones.
        let raw = if compressed { bits & 0xffff } else { bits };
        assert_eq!(op.imm as u32, raw, "illegal {bits:#010x} carries its bits");
    }
    if compressed {
        match compressed::expand(bits as u16) {
            Some(expanded) => {
                let full = decode::decode(expanded);
                assert_eq!(
                    Op { len: 2, ..full },
                    op,
                    "{bits:#06x} decodes like its expansion {expanded:#010x}"
                );
                assert!(
                    !illegal,
                    "{bits:#06x} expands to an illegal {expanded:#010x}"
                );
            }
            None => assert!(
                illegal,
                "{bits:#06x} has no expansion but decodes to {op:?}"
            ),
        }
    }
}

/// Register operands must index the hart's register files: `x[0..=32]` (32 is the sink for
/// writes to `x0`) and `f[0..32]`.
fn check_registers(op: &Op, bits: u32) {
    for (name, register) in [("rd", op.rd), ("rs1", op.rs1), ("rs2", op.rs2)] {
        assert!(
            register <= ZERO_SINK,
            "{name} {register} out of range in {op:?} from {bits:#010x}"
        );
    }
    if writes_integer_register(op.kind) {
        assert_ne!(op.rd, 0, "{op:?} from {bits:#010x} writes x0 directly");
    }
}

/// Whether `rd` of this kind names an integer register (so x0 must have become the sink).
fn writes_integer_register(kind: Kind) -> bool {
    use Kind::*;
    matches!(
        kind,
        Lui | Auipc
            | Jal
            | Jalr
            | Lb
            | Lh
            | Lw
            | Ld
            | Lbu
            | Lhu
            | Lwu
            | Addi
            | Slti
            | Sltiu
            | Xori
            | Ori
            | Andi
            | Slli
            | Srli
            | Srai
            | Add
            | Sub
            | Sll
            | Slt
            | Sltu
            | Xor
            | Srl
            | Sra
            | Or
            | And
            | Addiw
            | Slliw
            | Srliw
            | Sraiw
            | Addw
            | Subw
            | Sllw
            | Srlw
            | Sraw
            | Mul
            | Mulh
            | Mulhsu
            | Mulhu
            | Div
            | Divu
            | Rem
            | Remu
            | Mulw
            | Divw
            | Divuw
            | Remw
            | Remuw
            | Csrrw
            | Csrrs
            | Csrrc
            | Csrrwi
            | Csrrsi
            | Csrrci
            | LrW
            | LrD
            | ScW
            | ScD
            | Amo
            | Feq
            | Flt
            | Fle
            | Fclass
            | FcvtToInt
            | FmvXW
            | FmvXD
    )
}

fn check_high_half_ignored(low: u16, high: u32) {
    if high == 0 {
        return;
    }
    let with_high = u32::from(low) | high << 16;
    assert_eq!(decode::decode(with_high), decode::decode(u32::from(low)));
    assert_eq!(
        disassemble(with_high, DECODE_PC),
        disassemble(u32::from(low), DECODE_PC)
    );
}

/// Run slices of [`run_bare_metal`].
pub const BARE_METAL_SLICES: u32 = 4;
/// Virtual-time budget of each slice of [`run_bare_metal`].
pub const BARE_METAL_SLICE: u64 = 10_000;
/// RAM of the fuzzed machine.
pub const BARE_METAL_RAM: u64 = 16 << 20;

/// What a bounded bare-metal run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BareMetalRun {
    /// How the last slice ended (`None` when the program did not fit in RAM).
    pub exit: Option<Exit>,
    /// Instructions retired.
    pub instructions: u64,
    /// Virtual time at the end.
    pub now: u64,
    /// Final pc.
    pub pc: u64,
    /// Final integer registers.
    pub registers: [u64; 32],
    /// Everything the guest wrote to its console.
    pub console: Vec<u8>,
}

/// Loads `data` as a raw program at the start of RAM of a fresh bare-metal machine
/// (16 MiB, M-mode, no firmware) and runs it for [`BARE_METAL_SLICES`] slices of
/// [`BARE_METAL_SLICE`] units, skipping idle time to the next timer event. Runs it twice
/// and checks that both runs end in the same state (execution is deterministic).
pub fn run_bare_metal(data: &[u8]) {
    run_bare_metal_with(data, BARE_METAL_SLICES, BARE_METAL_SLICE);
}

/// [`run_bare_metal`] with a given number of slices and slice budget; returns what the run
/// did.
pub fn run_bare_metal_with(data: &[u8], slices: u32, budget: u64) -> BareMetalRun {
    let first = run_once(data, slices, budget);
    let second = run_once(data, slices, budget);
    assert_eq!(first, second, "two runs of the same program differ");
    first
}

fn run_once(data: &[u8], slices: u32, budget: u64) -> BareMetalRun {
    let config = VirtConfig {
        ram_bytes: BARE_METAL_RAM,
        ..VirtConfig::default()
    };
    let Ok(mut machine) = Virt::new_bare_metal(config, data) else {
        return BareMetalRun {
            exit: None,
            instructions: 0,
            now: 0,
            pc: 0,
            registers: [0; 32],
            console: Vec::new(),
        };
    };
    // Something for a program that polls or takes interrupts from the UART to read.
    machine.console_input(b"fuzz\n");
    let mut console = Vec::new();
    let mut exit = None;
    for _ in 0..slices {
        let before = machine.now();
        let result = machine.run(budget);
        console.append(&mut machine.take_console_output());
        assert!(
            machine.now() <= before.saturating_add(budget),
            "a slice ran past its budget: {before} + {budget} -> {}",
            machine.now()
        );
        exit = Some(result);
        match result {
            Exit::BudgetExhausted => {
                assert_eq!(
                    machine.now(),
                    before.saturating_add(budget),
                    "budget not used up exactly"
                );
            }
            Exit::Idle => match machine.next_event() {
                Some(time) => machine.skip_to(time),
                None => break,
            },
            Exit::Shutdown(_) | Exit::UnhandledTrap { .. } => {
                // A stopped machine stays stopped.
                assert_eq!(machine.run(budget), result);
                break;
            }
        }
    }
    let hart = &machine.cpu.hart;
    let mut registers = [0; 32];
    registers.copy_from_slice(&hart.x[..32]);
    assert_eq!(registers[0], 0, "x0 was written");
    BareMetalRun {
        exit,
        instructions: machine.instruction_count(),
        now: machine.now(),
        pc: hart.pc,
        registers,
        console,
    }
}
