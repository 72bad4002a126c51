//! QEMU's `-d cpu,int` log, parsed.
//!
//! With `-accel tcg,one-insn-per-tb=on -d cpu,int,nochain`, QEMU writes the CPU state before
//! every translation block it executes (one instruction each), and for every exception or
//! interrupt a line `N: v=VV e=EEEE i=I cpl=C IP=SSSS:IP pc=PC SP=SSSS:SP CR2=…|env->…`
//! followed by the state at that moment. Hardware interrupts are announced by
//! `Servicing hardware INT=0xVV`. Everything else (`check_exception …`, `Stopped execution
//! of TB chain …`, SMM and triple-fault notes) is skipped.
//!
//! A dump that stops before its last line (`EFER=`), or a field that is not hexadecimal, is
//! an error naming the line: a damaged trace must not look like a divergence.

use std::fmt;

/// A segment register (or LDTR/TR) as QEMU prints it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentDump {
    pub selector: u16,
    pub base: u64,
    /// The limit, scaled by the granularity bit.
    pub limit: u32,
    /// The descriptor's second dword with the base bits masked (QEMU's `flags`).
    pub flags: u32,
}

impl SegmentDump {
    /// The attributes in pandare's (VMX access-rights) layout.
    pub fn attributes(&self) -> u16 {
        ((self.flags >> 8) & 0xf0ff) as u16
    }
}

/// The CPU state in one dump.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    /// Line of the dump's first line in the log (from 1).
    pub line: usize,
    /// 16 registers (long mode active) or 8 (EAX…EDI, 32 bits).
    pub gpr: Vec<u64>,
    pub rip: u64,
    pub rflags: u64,
    pub cpl: u8,
    pub halted: bool,
    /// ES, CS, SS, DS, FS, GS.
    pub segments: [SegmentDump; 6],
    pub ldtr: SegmentDump,
    pub tr: SegmentDump,
    pub gdtr: (u64, u32),
    pub idtr: (u64, u32),
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// An exception or interrupt QEMU delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupt {
    pub line: usize,
    pub vector: u8,
    pub error_code: u32,
    /// `i=1`: raised by an instruction (INT n, INT3, INTO, SYSCALL in user emulation).
    pub software: bool,
    pub cpl: u8,
    /// The linear address of the instruction (`pc=`).
    pub pc: u64,
    /// For #PF: the faulting address QEMU logs.
    pub cr2: Option<u64>,
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vector {:#04x} ({}) error code {:#x}{}{} at pc {:#x}, CPL {}",
            self.vector,
            vector_name(self.vector),
            self.error_code,
            if self.software { " (software)" } else { "" },
            self.cr2.map(|a| format!(" CR2 {a:#x}")).unwrap_or_default(),
            self.pc,
            self.cpl
        )
    }
}

/// The mnemonic of an exception vector.
pub fn vector_name(vector: u8) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        2 => "NMI",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        _ => "INT",
    }
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // nearly every record is a Step: boxing buys nothing
pub enum Record {
    /// The state before an instruction.
    Step(Dump),
    /// An exception or software interrupt being delivered (the dump QEMU logs with it is
    /// the state at that moment, before delivery).
    Interrupt(Interrupt),
    /// An external interrupt (`Servicing hardware INT=`).
    Hardware { line: usize, vector: u8 },
}

fn hex(text: &str, line: usize, what: &str) -> Result<u64, String> {
    u64::from_str_radix(text, 16)
        .map_err(|_| format!("line {line}: {what} is not hexadecimal: {text:?}"))
}

/// Parses the whole log.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut n = 0;
    while n < lines.len() {
        let line = lines[n];
        let number = n + 1;
        if line.starts_with("EAX=") || line.starts_with("RAX=") {
            let (dump, next) = parse_dump(&lines, n)?;
            records.push(Record::Step(dump));
            n = next;
            continue;
        }
        if let Some(rest) = line.trim_start().strip_prefix("Servicing hardware INT=0x") {
            let vector = hex(rest.trim(), number, "hardware interrupt vector")?;
            records.push(Record::Hardware {
                line: number,
                vector: vector as u8,
            });
        } else if line.contains(": v=") {
            records.push(Record::Interrupt(parse_interrupt(line, number)?));
            // Its dump is the state at the interrupt, not before an instruction.
            if lines
                .get(n + 1)
                .is_some_and(|l| l.starts_with("EAX=") || l.starts_with("RAX="))
            {
                let (_, next) = parse_dump(&lines, n + 1)?;
                n = next;
                continue;
            }
        }
        n += 1;
    }
    Ok(records)
}

fn parse_interrupt(line: &str, number: usize) -> Result<Interrupt, String> {
    let mut interrupt = Interrupt {
        line: number,
        vector: 0,
        error_code: 0,
        software: false,
        cpl: 0,
        pc: 0,
        cr2: None,
    };
    let mut seen = 0;
    for token in line.split_whitespace() {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        match key {
            "v" => {
                interrupt.vector = hex(value, number, "vector")? as u8;
                seen |= 1;
            }
            "e" => {
                interrupt.error_code = hex(value, number, "error code")? as u32;
                seen |= 2;
            }
            "i" => interrupt.software = value == "1",
            "cpl" => interrupt.cpl = value.parse().unwrap_or(0),
            "pc" => {
                interrupt.pc = hex(value, number, "pc")?;
                seen |= 4;
            }
            "CR2" => interrupt.cr2 = Some(hex(value, number, "CR2")?),
            _ => {}
        }
    }
    if seen != 7 {
        return Err(format!(
            "line {number}: an interrupt line without v=, e= or pc=: {line:?}"
        ));
    }
    Ok(interrupt)
}

const SEGMENT_NAMES: [&str; 10] = [
    "ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR", "GDT", "IDT",
];

const GPR_NAMES: [&str; 16] = [
    "AX", "CX", "DX", "BX", "SP", "BP", "SI", "DI", "8", "9", "10", "11", "12", "13", "14", "15",
];

/// Parses the dump starting at `lines[start]`; returns it and the index after it.
fn parse_dump(lines: &[&str], start: usize) -> Result<(Dump, usize), String> {
    let mut dump = Dump {
        line: start + 1,
        ..Dump::default()
    };
    let long = lines[start].starts_with("RAX=");
    dump.gpr = vec![0; if long { 16 } else { 8 }];
    let mut seen_rip = false;
    let mut n = start;
    loop {
        let Some(line) = lines.get(n) else {
            return Err(format!(
                "the trace ends inside the CPU dump that starts at line {} (truncated log?)",
                start + 1
            ));
        };
        let number = n + 1;
        if n > start && (line.starts_with("EAX=") || line.starts_with("RAX=")) {
            return Err(format!(
                "line {number}: a new CPU dump starts before the one at line {} ended",
                start + 1
            ));
        }
        let name = line
            .get(..4)
            .and_then(|head| head.strip_suffix('='))
            .map(str::trim_end);
        if let Some(name) = name.filter(|name| SEGMENT_NAMES.contains(name)) {
            let fields: Vec<&str> = line[4..].split_whitespace().collect();
            let field = |i: usize, what: &str| -> Result<u64, String> {
                let text = fields
                    .get(i)
                    .ok_or_else(|| format!("line {number}: {name} has no {what}"))?;
                hex(text, number, what)
            };
            let segment = |_: ()| -> Result<SegmentDump, String> {
                Ok(SegmentDump {
                    selector: field(0, "selector")? as u16,
                    base: field(1, "base")?,
                    limit: field(2, "limit")? as u32,
                    flags: field(3, "flags")? as u32,
                })
            };
            match name {
                "ES" => dump.segments[0] = segment(())?,
                "CS" => dump.segments[1] = segment(())?,
                "SS" => dump.segments[2] = segment(())?,
                "DS" => dump.segments[3] = segment(())?,
                "FS" => dump.segments[4] = segment(())?,
                "GS" => dump.segments[5] = segment(())?,
                "LDT" => dump.ldtr = segment(())?,
                "TR" => dump.tr = segment(())?,
                "GDT" => dump.gdtr = (field(0, "base")?, field(1, "limit")? as u32),
                "IDT" => dump.idtr = (field(0, "base")?, field(1, "limit")? as u32),
                _ => {}
            }
            n += 1;
            continue;
        }
        // "R8 =…": the names shorter than three letters are padded before the '='.
        for token in line.replace(" =", "=").split_whitespace() {
            let Some((key, value)) = token.split_once('=') else {
                continue;
            };
            let register = key
                .strip_prefix('R')
                .or_else(|| key.strip_prefix('E'))
                .and_then(|r| GPR_NAMES.iter().position(|&g| g == r));
            match (key, register) {
                (_, Some(index)) if index < dump.gpr.len() => {
                    dump.gpr[index] = hex(value, number, key)?;
                }
                ("RIP" | "EIP", _) => {
                    dump.rip = hex(value, number, key)?;
                    seen_rip = true;
                }
                ("RFL" | "EFL", _) => dump.rflags = hex(value, number, key)?,
                ("CPL", _) => {
                    dump.cpl = value
                        .parse()
                        .map_err(|_| format!("line {number}: CPL {value:?}"))?;
                }
                ("HLT", _) => dump.halted = value == "1",
                ("CR0", _) => dump.cr0 = hex(value, number, key)?,
                ("CR2", _) => dump.cr2 = hex(value, number, key)?,
                ("CR3", _) => dump.cr3 = hex(value, number, key)?,
                ("CR4", _) => dump.cr4 = hex(value, number, key)?,
                ("EFER", _) => dump.efer = hex(value, number, key)?,
                _ => {}
            }
        }
        n += 1;
        if line.starts_with("EFER=") {
            break;
        }
    }
    if !seen_rip {
        return Err(format!("the CPU dump at line {} has no RIP/EIP", start + 1));
    }
    Ok((dump, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP32: &str = "EAX=00000000 EBX=000021e0 ECX=00100014 EDX=00000518
ESI=000011c0 EDI=00006f00 EBP=00000000 ESP=00006ee8
EIP=00100014 EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0
ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
CS =0008 00000000 ffffffff 00cf9a00 DPL=0 CS32 [-R-]
SS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
FS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
GS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]
LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT
TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy
GDT=     000c0118 00000027
IDT=     00000000 000003ff
CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000
DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 
DR6=00000000ffff0ff0 DR7=0000000000000400
CCS=00000010 CCD=00006ee0 CCO=ADDL
EFER=0000000000000000
";

    #[test]
    fn parses_a_32_bit_dump_and_an_interrupt() {
        let text = format!(
            "Servicing hardware INT=0x08\n{DUMP32}     0: v=0e e=0002 i=0 cpl=0 IP=0008:0000000000100023 pc=0000000000100023 SP=0010:0000000000006ee8 CR2=0000000000200000\n{DUMP32}check_exception old: 0xffffffff new 0xe\n{DUMP32}"
        );
        let records = parse(&text).unwrap();
        assert_eq!(records.len(), 4);
        assert!(matches!(records[0], Record::Hardware { vector: 8, .. }));
        let Record::Step(dump) = &records[1] else {
            panic!("{:?}", records[1])
        };
        assert_eq!(dump.gpr.len(), 8);
        assert_eq!(dump.gpr[3], 0x21e0);
        assert_eq!(dump.gpr[4], 0x6ee8);
        assert_eq!(dump.rip, 0x100014);
        assert_eq!(dump.segments[1].selector, 8);
        assert_eq!(dump.segments[1].attributes(), 0xc09a);
        assert_eq!(dump.gdtr, (0xc0118, 0x27));
        assert_eq!(dump.cr0, 0x11);
        let Record::Interrupt(interrupt) = &records[2] else {
            panic!("{:?}", records[2])
        };
        assert_eq!(
            (interrupt.vector, interrupt.error_code, interrupt.cr2),
            (14, 2, Some(0x200000))
        );
        assert!(matches!(records[3], Record::Step(_)));
    }

    #[test]
    fn a_truncated_or_damaged_dump_is_an_error() {
        let cut = &DUMP32[..DUMP32.find("CR0=").unwrap()];
        assert!(parse(cut).unwrap_err().contains("truncated"));
        let damaged = DUMP32.replace("EIP=00100014", "EIP=0010zz14");
        assert!(parse(&damaged).unwrap_err().contains("line 3"));
        let no_vector = "     0: v=zz e=0000 i=0 cpl=0 IP=0008:0 pc=0 SP=0010:0\n";
        assert!(parse(no_vector).is_err());
    }
}
