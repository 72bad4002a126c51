//! Host-CPU oracle for the x87 operations: each case loads registers on the host FPU, sets
//! the control word (every rounding mode × precision control, exceptions masked), runs one
//! instruction, and reads the whole state back with FXSAVE; the crate runs the same case and
//! the control word, status word (condition codes the manuals leave undefined are masked),
//! tags, registers, memory result and RFLAGS must agree bit for bit.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{f32_input, f64_input, f80_input, Rng};
use core::arch::asm;
use pandare_x86_float::x87::{
    sw, Arith, CompareKind, Constant, F80Bits, MemOperand, Operand, StoreKind, X87State,
};

#[repr(C, align(16))]
struct Image([u8; 512]);

/// What one host run leaves behind.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Outcome {
    fcw: u16,
    fsw: u16,
    tags: u8,
    st: Vec<(u8, F80Bits)>,
    mem: [u8; 16],
    rflags: u64,
}

macro_rules! host {
    ($name:ident, $($insn:literal),+) => {
        fn $name(regs: &[F80Bits], cw: u16, mem: [u8; 16]) -> Outcome {
            let mut img = Image([0; 512]);
            let mut mem = mem;
            let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_bytes()).collect();
            let rflags: u64;
            // SAFETY: the asm uses the x87 stack, which it leaves empty with the default control
            // word (FNINIT) as the Rust ABI requires; memory accesses are to `bytes`, `mem` and
            // `img`, which outlive the block; FXSAVE64's target is 16-byte aligned.
            unsafe {
                asm!(
                    "fninit",
                    "lea {m}, [{m}]",
                    "fldcw [{cw}]",
                    "2:",
                    "test {n}, {n}",
                    "jz 3f",
                    "fld tbyte ptr [{p}]",
                    "add {p}, 10",
                    "dec {n}",
                    "jmp 2b",
                    "3:",
                    "mov {fl}, 0x8d5",
                    "push {fl}",
                    "popfq",
                    $($insn,)+
                    "pushfq",
                    "pop {fl}",
                    "fxsave64 [{img}]",
                    "fninit",
                    cw = in(reg) &cw,
                    n = inout(reg) regs.len() => _,
                    p = inout(reg) bytes.as_ptr() => _,
                    m = in(reg) mem.as_mut_ptr(),
                    img = in(reg) img.0.as_mut_ptr(),
                    fl = out(reg) rflags,
                );
            }
            let f = &img.0;
            let fcw = u16::from_le_bytes([f[0], f[1]]);
            let fsw = u16::from_le_bytes([f[2], f[3]]);
            let tags = f[4];
            let top = (fsw >> 11) & 7;
            let mut st = Vec::new();
            for i in 0..8u16 {
                if tags & (1 << ((top + i) & 7)) != 0 {
                    let mut b = [0u8; 10];
                    b.copy_from_slice(&f[32 + 16 * i as usize..42 + 16 * i as usize]);
                    st.push((i as u8, F80Bits::from_bytes(b)));
                }
            }
            let _ = &mut mem;
            Outcome { fcw, fsw, tags, st, mem, rflags: rflags & 0x8d5 }
        }
    };
}

fn ours(
    regs: &[F80Bits],
    cw: u16,
    mem: [u8; 16],
    op: impl FnOnce(&mut X87State, &mut [u8; 16]) -> Option<u64>,
) -> Outcome {
    let mut s = X87State::default();
    s.fldcw(cw);
    for r in regs {
        s.fld(Operand::Mem(MemOperand::F80(*r)));
    }
    let mut mem = mem;
    let rflags = op(&mut s, &mut mem).unwrap_or(0x8d5);
    let mut st = Vec::new();
    for i in 0..8 {
        if !s.is_empty(i) {
            st.push((i, s.st(i)));
        }
    }
    Outcome {
        fcw: s.fcw,
        fsw: s.fsw,
        tags: s.tags,
        st,
        mem,
        rflags,
    }
}

/// Control words: every rounding mode × precision control (24, 53, 64 and the reserved 01),
/// with all exceptions masked and with each one unmasked alone and all unmasked (an unmasked
/// x87 exception only sets ES; #MF would come at the next waiting instruction, which the
/// oracle never runs).
fn control_words() -> Vec<u16> {
    let mut v = Vec::new();
    for rc in 0..4u16 {
        for pc in [0u16, 1, 2, 3] {
            for masks in [0x3f, 0x3e, 0x3d, 0x3b, 0x37, 0x2f, 0x1f, 0] {
                v.push(0x40 | masks | (pc << 8) | (rc << 10));
            }
        }
    }
    v
}

struct Tally {
    name: &'static str,
    count: usize,
    fails: Vec<String>,
}

impl Tally {
    fn new(name: &'static str) -> Self {
        Tally {
            name,
            count: 0,
            fails: Vec::new(),
        }
    }
    #[allow(
        clippy::too_many_arguments,
        reason = "a test report names every input of the case"
    )]
    fn check(
        &mut self,
        what: &str,
        regs: &[F80Bits],
        cw: u16,
        mem: [u8; 16],
        h: &Outcome,
        o: &Outcome,
        cc_mask: u16,
    ) {
        self.count += 1;
        let mut h = h.clone();
        let mut o = o.clone();
        h.fsw &= !cc_mask;
        o.fsw &= !cc_mask;
        if h != o
            && self.fails.len() < 12
            && self.fails.iter().filter(|f| f.starts_with(what)).count() < 4
        {
            self.fails.push(format!(
                "{what} regs={regs:x?} cw={cw:#x} mem={mem:x?}\n  host {h:x?}\n  ours {o:x?}"
            ));
        }
    }
    fn finish(self) {
        eprintln!("{}: {} cases", self.name, self.count);
        assert!(self.fails.is_empty(), "{}", self.fails.join("\n"));
    }
}

fn random_regs(r: &mut Rng, n: usize) -> Vec<F80Bits> {
    (0..n)
        .map(|_| {
            let (se, m) = f80_input(r);
            F80Bits { m, se }
        })
        .collect()
}

/// Stack depth: mostly two registers, sometimes fewer (stack underflow), sometimes full.
fn depth(r: &mut Rng) -> usize {
    match r.below(20) {
        0 => 0,
        1 => 1,
        2 => 8,
        _ => 2,
    }
}

const ARITH_CC: u16 = sw::C0 | sw::C2 | sw::C3;
const N: usize = 40;

host!(h_fadd, "fadd st(0), st(1)");
host!(h_fsub, "fsub st(0), st(1)");
host!(h_fsubr, "fsubr st(0), st(1)");
host!(h_fmul, "fmul st(0), st(1)");
host!(h_fdiv, "fdiv st(0), st(1)");
host!(h_fdivr, "fdivr st(0), st(1)");
host!(h_faddp, "faddp st(1), st(0)");
host!(h_fsubp1, "fsubp st(1), st(0)");
host!(h_fdivrp1, "fdivrp st(1), st(0)");

type Host = fn(&[F80Bits], u16, [u8; 16]) -> Outcome;

#[test]
fn register_arithmetic_matches_host() {
    let mut t = Tally::new("x87 register arithmetic");
    let mut r = common::rng(0x8087_0000_0000_0001);
    // Intel's FSUBP ST(1),ST(0) computes ST(1) - ST(0) (the assembler spells the
    // encodings DE E8+i as "fsubp"), FDIVRP ST(1),ST(0) computes ST(0)/ST(1).
    let ops: [(&str, Host, Arith, u8, bool); 9] = [
        ("fadd", h_fadd, Arith::Add, 0, false),
        ("fsub", h_fsub, Arith::Sub, 0, false),
        ("fsubr", h_fsubr, Arith::SubR, 0, false),
        ("fmul", h_fmul, Arith::Mul, 0, false),
        ("fdiv", h_fdiv, Arith::Div, 0, false),
        ("fdivr", h_fdivr, Arith::DivR, 0, false),
        ("faddp", h_faddp, Arith::Add, 1, true),
        ("fsubp", h_fsubp1, Arith::Sub, 1, true),
        ("fdivrp", h_fdivrp1, Arith::DivR, 1, true),
    ];
    for cw in control_words() {
        for (name, host, op, dst, pop) in ops {
            for _ in 0..N * common::scale() {
                let n = depth(&mut r);
                let regs = random_regs(&mut r, n);
                let h = host(&regs, cw, [0; 16]);
                let src = if dst == 0 { 1 } else { 0 };
                let o = ours(&regs, cw, [0; 16], |s, _| {
                    s.arith(op, dst, Operand::St(src), pop);
                    None
                });
                t.check(name, &regs, cw, [0; 16], &h, &o, ARITH_CC);
            }
        }
    }
    t.finish();
}

host!(h_fadd_m32, "fadd dword ptr [{m}]");
host!(h_fmul_m64, "fmul qword ptr [{m}]");
host!(h_fdivr_m32, "fdivr dword ptr [{m}]");
host!(h_fsub_m64, "fsub qword ptr [{m}]");
host!(h_fiadd_m32, "fiadd dword ptr [{m}]");
host!(h_fidiv_m16, "fidiv word ptr [{m}]");

#[test]
fn memory_arithmetic_matches_host() {
    let mut t = Tally::new("x87 memory arithmetic");
    let mut r = common::rng(0x8087_0000_0000_0002);
    for cw in control_words() {
        for k in 0..6 {
            for _ in 0..N * common::scale() {
                let n = if r.below(20) == 0 { 0 } else { 1 };
                let regs = random_regs(&mut r, n);
                let mut mem = [0u8; 16];
                let (host, name, op, m): (Host, &str, Arith, MemOperand) = match k {
                    0 => {
                        let v = f32_input(&mut r);
                        mem[..4].copy_from_slice(&v.to_le_bytes());
                        (h_fadd_m32, "fadd m32", Arith::Add, MemOperand::F32(v))
                    }
                    1 => {
                        let v = f64_input(&mut r);
                        mem[..8].copy_from_slice(&v.to_le_bytes());
                        (h_fmul_m64, "fmul m64", Arith::Mul, MemOperand::F64(v))
                    }
                    2 => {
                        let v = f32_input(&mut r);
                        mem[..4].copy_from_slice(&v.to_le_bytes());
                        (h_fdivr_m32, "fdivr m32", Arith::DivR, MemOperand::F32(v))
                    }
                    3 => {
                        let v = f64_input(&mut r);
                        mem[..8].copy_from_slice(&v.to_le_bytes());
                        (h_fsub_m64, "fsub m64", Arith::Sub, MemOperand::F64(v))
                    }
                    4 => {
                        let v = (r.next() >> r.below(64)) as i32;
                        mem[..4].copy_from_slice(&v.to_le_bytes());
                        (h_fiadd_m32, "fiadd m32", Arith::Add, MemOperand::I32(v))
                    }
                    _ => {
                        let v = (r.next() >> r.below(64)) as i16;
                        mem[..2].copy_from_slice(&v.to_le_bytes());
                        (h_fidiv_m16, "fidiv m16", Arith::Div, MemOperand::I16(v))
                    }
                };
                let h = host(&regs, cw, mem);
                let o = ours(&regs, cw, mem, |s, _| {
                    s.arith(op, 0, Operand::Mem(m), false);
                    None
                });
                t.check(name, &regs, cw, mem, &h, &o, ARITH_CC);
            }
        }
    }
    t.finish();
}

host!(h_fsqrt, "fsqrt");
host!(h_frndint, "frndint");
host!(h_fscale, "fscale");
host!(h_fxtract, "fxtract");
host!(h_fprem, "fprem");
host!(h_fprem1, "fprem1");
host!(h_fchs, "fchs");
host!(h_fabs, "fabs");
host!(h_fxch, "fxch st(1)");
host!(h_fxam, "fxam");
host!(h_ftst, "ftst");
host!(h_fcom, "fcom st(1)");
host!(h_fucomp, "fucomp st(1)");
host!(h_fcompp, "fcompp");
host!(h_fcomi, "fcomi st(0), st(1)");
host!(h_fucomip, "fucomip st(0), st(1)");
host!(h_fincstp, "fincstp");
host!(h_fcmovb, "fcmovb st(0), st(1)");
host!(h_fstp_st3, "fstp st(3)");
host!(h_fst_st1, "fst st(1)");
host!(h_fdecstp, "fdecstp");
host!(h_fnclex, "fnclex");
host!(h_fisttp_m16, "fisttp word ptr [{m}]");
host!(h_fcmovnb, "fcmovnb st(0), st(1)");
host!(h_ffree, "ffree st(1)");

#[test]
fn unary_and_compare_operations_match_host() {
    let mut t = Tally::new("x87 unary/compare");
    let mut r = common::rng(0x8087_0000_0000_0003);
    type Op = fn(&mut X87State) -> Option<u64>;
    let ops: [(&str, Host, Op, u16); 24] = [
        (
            "fsqrt",
            h_fsqrt,
            |s| {
                s.fsqrt();
                None
            },
            ARITH_CC,
        ),
        (
            "frndint",
            h_frndint,
            |s| {
                s.frndint();
                None
            },
            ARITH_CC,
        ),
        (
            "fscale",
            h_fscale,
            |s| {
                s.fscale();
                None
            },
            ARITH_CC,
        ),
        (
            "fxtract",
            h_fxtract,
            |s| {
                s.fxtract();
                None
            },
            ARITH_CC,
        ),
        (
            "fprem",
            h_fprem,
            |s| {
                s.fprem(false);
                None
            },
            0,
        ),
        (
            "fprem1",
            h_fprem1,
            |s| {
                s.fprem(true);
                None
            },
            0,
        ),
        (
            "fchs",
            h_fchs,
            |s| {
                s.fchs();
                None
            },
            ARITH_CC,
        ),
        (
            "fabs",
            h_fabs,
            |s| {
                s.fabs();
                None
            },
            ARITH_CC,
        ),
        (
            "fxch",
            h_fxch,
            |s| {
                s.fxch(1);
                None
            },
            ARITH_CC,
        ),
        (
            "fxam",
            h_fxam,
            |s| {
                s.fxam();
                None
            },
            0,
        ),
        (
            "ftst",
            h_ftst,
            |s| {
                s.ftst();
                None
            },
            0,
        ),
        (
            "fcom",
            h_fcom,
            |s| {
                s.fcom(CompareKind::Ordered, Operand::St(1), 0);
                None
            },
            0,
        ),
        (
            "fucomp",
            h_fucomp,
            |s| {
                s.fcom(CompareKind::Unordered, Operand::St(1), 1);
                None
            },
            0,
        ),
        (
            "fcompp",
            h_fcompp,
            |s| {
                s.fcom(CompareKind::Ordered, Operand::St(1), 2);
                None
            },
            0,
        ),
        (
            "fcomi",
            h_fcomi,
            |s| Some(s.fcomi(CompareKind::Ordered, 1, false)),
            ARITH_CC,
        ),
        (
            "fucomip",
            h_fucomip,
            |s| Some(s.fcomi(CompareKind::Unordered, 1, true)),
            ARITH_CC,
        ),
        (
            "fincstp",
            h_fincstp,
            |s| {
                s.fincstp();
                None
            },
            ARITH_CC,
        ),
        (
            "fstp st3",
            h_fstp_st3,
            |s| {
                s.fst_st(3, true);
                None
            },
            ARITH_CC,
        ),
        (
            "fst st1",
            h_fst_st1,
            |s| {
                s.fst_st(1, false);
                None
            },
            ARITH_CC,
        ),
        (
            "fdecstp",
            h_fdecstp,
            |s| {
                s.fdecstp();
                None
            },
            ARITH_CC,
        ),
        (
            "fnclex",
            h_fnclex,
            |s| {
                s.fclex();
                None
            },
            0,
        ),
        // The oracle enters with CF set (RFLAGS = 0x8d5): FCMOVB moves, FCMOVNB does not.
        (
            "fcmovb",
            h_fcmovb,
            |s| {
                s.fcmov(1, true);
                None
            },
            ARITH_CC,
        ),
        (
            "fcmovnb",
            h_fcmovnb,
            |s| {
                s.fcmov(1, false);
                None
            },
            ARITH_CC,
        ),
        (
            "ffree",
            h_ffree,
            |s| {
                s.ffree(1);
                None
            },
            sw::CC,
        ),
    ];
    for cw in control_words() {
        for (name, host, op, mask) in ops {
            for _ in 0..N * common::scale() {
                let n = depth(&mut r);
                let mut regs = random_regs(&mut r, n);
                if name.starts_with("fprem") && n == 2 && r.below(2) == 0 {
                    // Bring exponents close so that the remainder completes.
                    let d = r.below(80) as u16;
                    regs[0].se =
                        (regs[1].se & 0x8000) | ((regs[1].se & 0x7fff).saturating_sub(d).max(1));
                }
                let h = host(&regs, cw, [0; 16]);
                let o = ours(&regs, cw, [0; 16], |s, _| op(s));
                // FXAM of an empty ST(0) reports the stale register's sign in C1.
                let mask = if name == "fxam" && n == 0 {
                    sw::C1
                } else {
                    mask
                };
                t.check(name, &regs, cw, [0; 16], &h, &o, mask);
            }
        }
    }
    t.finish();
}

host!(h_fst_m32, "fst dword ptr [{m}]");
host!(h_fstp_m64, "fstp qword ptr [{m}]");
host!(h_fstp_m80, "fstp tbyte ptr [{m}]");
host!(h_fist_m16, "fist word ptr [{m}]");
host!(h_fistp_m32, "fistp dword ptr [{m}]");
host!(h_fistp_m64, "fistp qword ptr [{m}]");
host!(h_fisttp_m32, "fisttp dword ptr [{m}]");
host!(h_fisttp_m64, "fisttp qword ptr [{m}]");
host!(h_fbstp, "fbstp tbyte ptr [{m}]");

#[test]
fn stores_match_host() {
    let mut t = Tally::new("x87 stores");
    let mut r = common::rng(0x8087_0000_0000_0004);
    let ops: [(&str, Host, StoreKind, bool); 10] = [
        ("fst m32", h_fst_m32, StoreKind::F32, false),
        ("fstp m64", h_fstp_m64, StoreKind::F64, true),
        ("fstp m80", h_fstp_m80, StoreKind::F80, true),
        ("fist m16", h_fist_m16, StoreKind::I16, false),
        ("fistp m32", h_fistp_m32, StoreKind::I32, true),
        ("fistp m64", h_fistp_m64, StoreKind::I64, true),
        ("fisttp m32", h_fisttp_m32, StoreKind::I32Trunc, true),
        ("fisttp m64", h_fisttp_m64, StoreKind::I64Trunc, true),
        ("fbstp", h_fbstp, StoreKind::Bcd, true),
        ("fisttp m16", h_fisttp_m16, StoreKind::I16Trunc, true),
    ];
    for cw in control_words() {
        for (name, host, kind, pop) in ops {
            for _ in 0..N * common::scale() {
                let n = if r.below(20) == 0 { 0 } else { 1 };
                let regs = random_regs(&mut r, n);
                let h = host(&regs, cw, [0; 16]);
                let o = ours(&regs, cw, [0; 16], |s, mem| {
                    if let Some(b) = s.fst(kind, pop) {
                        mem[..b.len()].copy_from_slice(&b);
                    }
                    None
                });
                t.check(name, &regs, cw, [0; 16], &h, &o, ARITH_CC);
            }
        }
    }
    t.finish();
}

host!(h_fld_m32, "fld dword ptr [{m}]");
host!(h_fld_m64, "fld qword ptr [{m}]");
host!(h_fild_m64, "fild qword ptr [{m}]");
host!(h_fbld, "fbld tbyte ptr [{m}]");
host!(h_fld_st1, "fld st(1)");
host!(h_fld1, "fld1");
host!(h_fldl2t, "fldl2t");
host!(h_fldl2e, "fldl2e");
host!(h_fldpi, "fldpi");
host!(h_fldlg2, "fldlg2");
host!(h_fldln2, "fldln2");
host!(h_fldz, "fldz");

#[test]
fn loads_and_constants_match_host() {
    let mut t = Tally::new("x87 loads/constants");
    let mut r = common::rng(0x8087_0000_0000_0005);
    for cw in control_words() {
        for _ in 0..N * common::scale() {
            let n = match r.below(10) {
                0 => 8,
                1 => 7,
                _ => r.below(3) as usize,
            };
            let regs = random_regs(&mut r, n);
            let mut mem = [0u8; 16];
            let a = f32_input(&mut r);
            mem[..4].copy_from_slice(&a.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fld(Operand::Mem(MemOperand::F32(a)));
                None
            });
            t.check(
                "fld m32",
                &regs,
                cw,
                mem,
                &h_fld_m32(&regs, cw, mem),
                &o,
                ARITH_CC,
            );
            let d = f64_input(&mut r);
            mem[..8].copy_from_slice(&d.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fld(Operand::Mem(MemOperand::F64(d)));
                None
            });
            t.check(
                "fld m64",
                &regs,
                cw,
                mem,
                &h_fld_m64(&regs, cw, mem),
                &o,
                ARITH_CC,
            );
            let i = (r.next() >> r.below(64)) as i64;
            mem[..8].copy_from_slice(&i.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fld(Operand::Mem(MemOperand::I64(i)));
                None
            });
            t.check(
                "fild m64",
                &regs,
                cw,
                mem,
                &h_fild_m64(&regs, cw, mem),
                &o,
                ARITH_CC,
            );
            let mut bcd = [0u8; 10];
            for b in bcd.iter_mut().take(9) {
                *b = (r.below(10) as u8) | ((r.below(10) as u8) << 4);
            }
            bcd[9] = (r.below(2) as u8) << 7;
            let mut mem = [0u8; 16];
            mem[..10].copy_from_slice(&bcd);
            let o = ours(&regs, cw, mem, |s, _| {
                s.fld(Operand::Mem(MemOperand::Bcd(bcd)));
                None
            });
            t.check(
                "fbld",
                &regs,
                cw,
                mem,
                &h_fbld(&regs, cw, mem),
                &o,
                ARITH_CC,
            );
            let o = ours(&regs, cw, [0; 16], |s, _| {
                s.fld(Operand::St(1));
                None
            });
            t.check(
                "fld st1",
                &regs,
                cw,
                [0; 16],
                &h_fld_st1(&regs, cw, [0; 16]),
                &o,
                ARITH_CC,
            );
        }
        let consts: [(&str, Host, Constant); 7] = [
            ("fld1", h_fld1, Constant::One),
            ("fldl2t", h_fldl2t, Constant::L2T),
            ("fldl2e", h_fldl2e, Constant::L2E),
            ("fldpi", h_fldpi, Constant::Pi),
            ("fldlg2", h_fldlg2, Constant::Lg2),
            ("fldln2", h_fldln2, Constant::Ln2),
            ("fldz", h_fldz, Constant::Zero),
        ];
        for (name, host, c) in consts {
            for n in [0usize, 8] {
                let regs = random_regs(&mut r, n);
                let o = ours(&regs, cw, [0; 16], |s, _| {
                    s.fld_const(c);
                    None
                });
                t.check(
                    name,
                    &regs,
                    cw,
                    [0; 16],
                    &host(&regs, cw, [0; 16]),
                    &o,
                    ARITH_CC,
                );
            }
        }
    }
    t.finish();
}

host!(h_fsin, "fsin");
host!(h_fcos, "fcos");
host!(h_fsincos, "fsincos");
host!(h_fptan, "fptan");
host!(h_fpatan, "fpatan");
host!(h_f2xm1, "f2xm1");
host!(h_fyl2x, "fyl2x");
host!(h_fyl2xp1, "fyl2xp1");

/// Distance in ulps between two finite 80-bit values of the same sign (u64::MAX otherwise).
fn ulps(a: F80Bits, b: F80Bits) -> u64 {
    if a == b {
        return 0;
    }
    if (a.se ^ b.se) & 0x8000 != 0 || a.se & 0x7fff == 0x7fff || b.se & 0x7fff == 0x7fff {
        return u64::MAX;
    }
    let key = |r: F80Bits| {
        ((r.se & 0x7fff) as i128) * (1i128 << 63) + (r.m as i128 & ((1i128 << 63) - 1))
    };
    (key(a) - key(b)).unsigned_abs().min(u64::MAX as u128) as u64
}

fn trig_arg(r: &mut Rng) -> F80Bits {
    let e = 0x3fff - 70 + r.below(136) as u16;
    F80Bits {
        m: r.next() | (1 << 63),
        se: e | ((r.below(2) as u16) << 15),
    }
}

/// Transcendentals: hardware results are not specified bit for bit, so this measures the
/// distance to the host in ulps (reported) and requires every other part of the state to
/// match exactly, and every result to be within 1 ulp of the host's.
#[test]
fn transcendentals_are_within_one_ulp_of_host() {
    let mut r = common::rng(0x7777_0000_0000_0009);
    type Op = fn(&mut X87State);
    type Gen = fn(&mut Rng) -> Vec<F80Bits>;
    let ops: [(&str, Host, Op, Gen); 8] = [
        (
            "fsin",
            h_fsin,
            |s| s.fsin_fcos(false),
            |r| vec![trig_arg(r)],
        ),
        ("fcos", h_fcos, |s| s.fsin_fcos(true), |r| vec![trig_arg(r)]),
        ("fsincos", h_fsincos, |s| s.fsincos(), |r| vec![trig_arg(r)]),
        ("fptan", h_fptan, |s| s.fptan(), |r| vec![trig_arg(r)]),
        ("fpatan", h_fpatan, |s| s.fpatan(), |r| random_regs(r, 2)),
        (
            "f2xm1",
            h_f2xm1,
            |s| s.f2xm1(),
            |r| {
                let e = 0x3fff - 1 - r.below(70) as u16;
                vec![F80Bits {
                    m: r.next() | (1 << 63),
                    se: e | ((r.below(2) as u16) << 15),
                }]
            },
        ),
        (
            "fyl2x",
            h_fyl2x,
            |s| s.fyl2x(false),
            |r| {
                let mut v = random_regs(r, 2);
                v[1].se &= 0x7fff;
                v
            },
        ),
        (
            "fyl2xp1",
            h_fyl2xp1,
            |s| s.fyl2x(true),
            |r| {
                let mut v = random_regs(r, 1);
                let e = 0x3fff - 2 - r.below(70) as u16;
                v.push(F80Bits {
                    m: r.next() | (1 << 63),
                    se: e | ((r.below(2) as u16) << 15),
                });
                v
            },
        ),
    ];
    let mut report = Vec::new();
    let mut fails = Vec::new();
    for (name, host, op, gen) in ops {
        let (mut n, mut exact, mut one, mut worse, mut c1, mut skipped) = (0, 0, 0, 0, 0, 0);
        for cw in [0x37fu16, 0x77f, 0xb7f, 0xf7f, 0x27f, 0x07f] {
            for i in 0..400 * common::scale() {
                // One case in four uses edge values (zeros, infinities, NaNs, denormals,
                // unsupported encodings, huge arguments) and sometimes too few registers.
                let regs = if i % 4 == 0 {
                    let n = gen(&mut r).len();
                    let n = if r.below(10) == 0 { n - 1 } else { n };
                    random_regs(&mut r, n)
                } else {
                    gen(&mut r)
                };
                // FYL2XP1 is defined for |ST(0)| < 1 − √2/2 only (Intel SDM); outside, the host
                // returns implementation-specific values, which are not compared.
                if name == "fyl2xp1" {
                    if let Some(x) = regs.last() {
                        let e = (x.se & 0x7fff) as i32 - 0x3fff;
                        let finite = x.se & 0x7fff != 0x7fff && x.m >> 63 == 1;
                        if finite && (e > -2 || (e == -2 && x.m >= 0x95f6_1998_0c69_0000)) {
                            skipped += 1;
                            continue;
                        }
                    }
                }
                let h = host(&regs, cw, [0; 16]);
                let o = ours(&regs, cw, [0; 16], |s, _| {
                    op(s);
                    None
                });
                n += 1;
                let d =
                    h.st.iter()
                        .zip(&o.st)
                        .map(|(a, b)| ulps(a.1, b.1))
                        .max()
                        .unwrap_or(0);
                let same_shape = h.st.len() == o.st.len() && h.tags == o.tags;
                // C1 ("rounded up") follows the hardware's internal approximation; it is counted,
                // not required. C0 and C3 are undefined for these instructions.
                let fsw_mask = sw::C1 | sw::C0 | sw::C3;
                let fsw_ok = (h.fsw & !fsw_mask) == (o.fsw & !fsw_mask);
                if (h.fsw ^ o.fsw) & sw::C1 != 0 {
                    c1 += 1;
                }
                match d {
                    0 => exact += 1,
                    1 => one += 1,
                    _ => worse += 1,
                }
                if (!same_shape || !fsw_ok || d > 1) && fails.len() < 12 {
                    fails.push(format!(
                        "{name} regs={regs:x?} cw={cw:#x} ulps={d}\n  host {h:x?}\n  ours {o:x?}"
                    ));
                }
            }
        }
        report.push(format!("{name}: {n} cases, {exact} bit-exact, {one} at 1 ulp, {worse} worse; C1 differs in {c1}; {skipped} outside the defined domain skipped"));
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        fails.is_empty(),
        "{}\n{}",
        report.join("\n"),
        fails.join("\n")
    );
}

host!(h_fcom_m64, "fcom qword ptr [{m}]");
host!(h_fucomp_m32, "fcomp dword ptr [{m}]");
host!(h_ficom_m16, "ficom word ptr [{m}]");
host!(h_ficomp_m32, "ficomp dword ptr [{m}]");

#[test]
fn memory_compares_match_host() {
    let mut t = Tally::new("x87 memory compares");
    let mut r = common::rng(0x8087_0000_0000_0006);
    for cw in control_words() {
        for _ in 0..N * common::scale() {
            let n = if r.below(20) == 0 { 0 } else { 1 };
            let regs = random_regs(&mut r, n);
            let mut mem = [0u8; 16];
            let d = f64_input(&mut r);
            mem[..8].copy_from_slice(&d.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fcom(CompareKind::Ordered, Operand::Mem(MemOperand::F64(d)), 0);
                None
            });
            t.check(
                "fcom m64",
                &regs,
                cw,
                mem,
                &h_fcom_m64(&regs, cw, mem),
                &o,
                0,
            );
            let f = f32_input(&mut r);
            let mut mem = [0u8; 16];
            mem[..4].copy_from_slice(&f.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fcom(CompareKind::Ordered, Operand::Mem(MemOperand::F32(f)), 1);
                None
            });
            t.check(
                "fcomp m32",
                &regs,
                cw,
                mem,
                &h_fucomp_m32(&regs, cw, mem),
                &o,
                0,
            );
            let i = (r.next() >> r.below(64)) as i16;
            let mut mem = [0u8; 16];
            mem[..2].copy_from_slice(&i.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fcom(CompareKind::Ordered, Operand::Mem(MemOperand::I16(i)), 0);
                None
            });
            t.check(
                "ficom m16",
                &regs,
                cw,
                mem,
                &h_ficom_m16(&regs, cw, mem),
                &o,
                0,
            );
            let j = (r.next() >> r.below(64)) as i32;
            let mut mem = [0u8; 16];
            mem[..4].copy_from_slice(&j.to_le_bytes());
            let o = ours(&regs, cw, mem, |s, _| {
                s.fcom(CompareKind::Ordered, Operand::Mem(MemOperand::I32(j)), 1);
                None
            });
            t.check(
                "ficomp m32",
                &regs,
                cw,
                mem,
                &h_ficomp_m32(&regs, cw, mem),
                &o,
                0,
            );
        }
    }
    t.finish();
}

/// FSINCOS, FPTAN and FXTRACT on a full stack: stack overflow, exact to the host.
#[test]
fn pushing_transcendentals_on_a_full_stack_match_host() {
    let mut t = Tally::new("x87 full-stack pushes");
    let mut r = common::rng(0x8087_0000_0000_0007);
    type Op = fn(&mut X87State);
    let ops: [(&str, Host, Op); 3] = [
        ("fsincos", h_fsincos, |s| s.fsincos()),
        ("fptan", h_fptan, |s| s.fptan()),
        ("fxtract", h_fxtract, |s| s.fxtract()),
    ];
    for cw in control_words() {
        for (name, host, op) in ops {
            let regs = random_regs(&mut r, 8);
            let h = host(&regs, cw, [0; 16]);
            let o = ours(&regs, cw, [0; 16], |s, _| {
                op(s);
                None
            });
            t.check(name, &regs, cw, [0; 16], &h, &o, ARITH_CC);
        }
    }
    t.finish();
}
