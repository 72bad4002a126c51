//! Prints the cost of representative operations (ns per call), for the x86 CPU's budget.
//! Run with `cargo run --release -p pandare-x86-float --example throughput`.

use pandare_x86_float::soft::{F32, F64};
use pandare_x86_float::sse::{self, FpOp};
use pandare_x86_float::x87::{Arith, MemOperand, Operand, X87State};
use std::hint::black_box;
use std::time::Instant;

fn time(name: &str, n: u32, mut f: impl FnMut(u32)) {
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("{name:<28} {ns:8.1} ns/op");
}

fn main() {
    let n = 2_000_000;
    time("addsd (lane)", n, |i| {
        black_box(sse::binop(
            FpOp::Add,
            black_box(1.5f64.to_bits() + i as u64),
            2.25f64.to_bits(),
            F64,
            0x1f80,
        ));
    });
    time("mulps (4 lanes)", n, |i| {
        black_box(sse::arith(
            FpOp::Mul,
            black_box(0x3fc0_0000_3fc0_0000_3fc0_0000_3fc0_0000 + i as u128),
            0x4010_0000_4010_0000_4010_0000_4010_0000,
            F32,
            sse::Width::Packed,
            0x1f80,
        ));
    });
    time("divsd (lane)", n, |i| {
        black_box(sse::binop(
            FpOp::Div,
            black_box(1.5f64.to_bits() + i as u64),
            3.0f64.to_bits(),
            F64,
            0x1f80,
        ));
    });
    time("cvttsd2si", n, |i| {
        black_box(sse::to_int(
            black_box(12345.678f64.to_bits() + i as u64),
            F64,
            32,
            true,
            0x1f80,
        ));
    });
    let mut x = X87State::default();
    x.fld(Operand::Mem(MemOperand::F64(1.0f64.to_bits())));
    time("x87 fadd m64", n, |i| {
        x.arith(
            Arith::Add,
            0,
            Operand::Mem(MemOperand::F64(black_box(1e-3f64.to_bits() + i as u64))),
            false,
        );
    });
    time("x87 fmul st(0), st(0)", n, |_| {
        x.arith(Arith::Mul, 0, Operand::St(0), false);
    });
    time("x87 fsqrt", n, |_| x.fsqrt());
    let mut y = X87State::default();
    y.fld(Operand::Mem(MemOperand::F64(0.7f64.to_bits())));
    time("x87 fsin", n / 100, |_| {
        y.fsin_fcos(false);
    });
    time("x87 fpatan (after fld1)", n / 100, |_| {
        y.fld_const(pandare_x86_float::x87::Constant::One);
        y.fpatan();
    });
}
