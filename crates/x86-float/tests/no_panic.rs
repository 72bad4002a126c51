//! Robustness: random operation sequences on random states (any register contents, control
//! words with reserved bits, unsupported encodings, every mask) never panic. Runs on any host.

mod common;

use common::{f32_input, f64_input, Rng};
use pandare_x86_float::image::{self, EnvForm, FxForm};
use pandare_x86_float::soft::{F32, F64};
use pandare_x86_float::sse::{self, FpOp, SseState, Width};
use pandare_x86_float::x87::{
    Arith, CompareKind, Constant, F80Bits, MemOperand, Operand, StoreKind, X87State,
};

#[test]
fn random_operation_sequences_never_panic() {
    let mut r = Rng(0xdead_beef_0bad_f00d);
    let mut x = X87State::default();
    let mut s = SseState::default();
    for step in 0..200_000u32 {
        if step % 1000 == 0 {
            // A fresh random state from an arbitrary image (MXCSR forced valid).
            let mut img = [0u8; 512];
            for b in img.iter_mut() {
                *b = r.next() as u8;
            }
            img[26] = 0;
            img[27] = 0;
            image::fxrstor(&mut x, &mut s, FxForm::Bits64, 16, &img).expect("MXCSR made valid");
        }
        let i = r.below(8) as u8;
        let st = Operand::St(i);
        let mem = match r.below(7) {
            0 => MemOperand::F32(f32_input(&mut r)),
            1 => MemOperand::F64(f64_input(&mut r)),
            2 => MemOperand::F80(F80Bits {
                m: r.next(),
                se: r.next() as u16,
            }),
            3 => MemOperand::I16(r.next() as i16),
            4 => MemOperand::I32(r.next() as i32),
            5 => MemOperand::I64(r.next() as i64),
            _ => {
                let mut b = [0u8; 10];
                for v in b.iter_mut() {
                    *v = r.next() as u8;
                }
                MemOperand::Bcd(b)
            }
        };
        let src = if r.below(2) == 0 {
            st
        } else {
            Operand::Mem(mem)
        };
        match r.below(30) {
            0 => x.fld(src),
            1 => {
                let kinds = [
                    StoreKind::F32,
                    StoreKind::F64,
                    StoreKind::F80,
                    StoreKind::I16,
                    StoreKind::I32,
                    StoreKind::I64,
                    StoreKind::I16Trunc,
                    StoreKind::I32Trunc,
                    StoreKind::I64Trunc,
                    StoreKind::Bcd,
                ];
                let _ = x.fst(kinds[r.below(10) as usize], r.below(2) == 0);
            }
            2 => {
                let ops = [
                    Arith::Add,
                    Arith::Sub,
                    Arith::SubR,
                    Arith::Mul,
                    Arith::Div,
                    Arith::DivR,
                ];
                x.arith(ops[r.below(6) as usize], i, src, r.below(2) == 0);
            }
            3 => x.fsqrt(),
            4 => x.frndint(),
            5 => x.fscale(),
            6 => x.fxtract(),
            7 => x.fprem(r.below(2) == 0),
            8 => x.fcom(CompareKind::Ordered, src, r.below(3) as u8),
            9 => {
                let _ = x.fcomi(CompareKind::Unordered, i, r.below(2) == 0);
            }
            10 => x.fxam(),
            11 => x.fsin_fcos(r.below(2) == 0),
            12 => x.fsincos(),
            13 => x.fptan(),
            14 => x.fpatan(),
            15 => x.f2xm1(),
            16 => x.fyl2x(r.below(2) == 0),
            17 => x.fld_const(
                [Constant::One, Constant::Pi, Constant::L2T, Constant::Zero][r.below(4) as usize],
            ),
            18 => x.fldcw(r.next() as u16),
            19 => x.fxch(i),
            20 => {
                let env = image::fsave(&mut x, EnvForm::Bits16);
                image::frstor(&mut x, EnvForm::Bits16, &env).expect("own image");
            }
            21 => {
                let mut env = vec![0u8; 108];
                for b in env.iter_mut() {
                    *b = r.next() as u8;
                }
                image::frstor(&mut x, EnvForm::Bits32, &env).expect("long enough");
            }
            22 => x.fcmov(i, r.below(2) == 0),
            23 => {
                x.mmx_enter();
                x.set_mm(i, r.next());
            }
            _ => {
                let mx = r.next() as u32 & 0xffff;
                let fmt = if r.below(2) == 0 { F32 } else { F64 };
                let (a, b) = (
                    ((r.next() as u128) << 64) | r.next() as u128,
                    ((r.next() as u128) << 64) | r.next() as u128,
                );
                let ops = [
                    FpOp::Add,
                    FpOp::Sub,
                    FpOp::Mul,
                    FpOp::Div,
                    FpOp::Min,
                    FpOp::Max,
                ];
                let l = sse::arith(ops[r.below(6) as usize], a, b, fmt, Width::Packed, mx);
                let _ = s.raise(l.flags);
                let _ = sse::cvt_to_dq(b, fmt, r.below(2) == 0, mx);
                let _ = sse::sqrt_reg(a, b, fmt, Width::Scalar, mx);
                let _ = sse::cmp_reg(r.next() as u8, a, b, fmt, Width::Packed, mx);
            }
        }
    }
}
