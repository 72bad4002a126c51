//! Host-CPU oracle for SSE with exceptions unmasked: the host raises #XM, which Linux delivers
//! as SIGFPE; a handler steps over the (4-byte) faulting instruction, so the test observes
//! what hardware leaves behind — the destination unchanged and the MXCSR flags it set — and
//! compares with the crate's flags and its `SseState::raise` verdict.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;

use common::{f32_input, f64_input};
use core::arch::asm;
use pandare_x86_float::soft::{F32, F64};
use pandare_x86_float::sse::{self, FpOp, SseState};
use std::sync::Once;

extern "C" fn skip_faulting_instruction(
    _sig: libc::c_int,
    _info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers; only RIP is changed,
    // past the 4-byte instruction that raised #XM (every instruction tested here is 4 bytes).
    unsafe {
        let uc = ctx as *mut libc::ucontext_t;
        (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] += 4;
    }
}

fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a valid handler and SA_SIGINFO is a valid argument;
        // the handler only edits the interrupted context.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                skip_faulting_instruction;
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGFPE, &sa, std::ptr::null_mut()), 0);
        }
    });
}

macro_rules! host {
    ($name:ident, $insn:literal) => {
        /// Runs the 4-byte instruction on XMM0 = a, XMM1 = b under `mx`; (XMM0 low quadword,
        /// MXCSR after).
        fn $name(a: u64, b: u64, mx: u32) -> (u64, u32) {
            let out: u64;
            let mut mxo: u32 = 0;
            let mut saved: u32 = 0;
            // SAFETY: XMM0/XMM1 declared clobbered, live locals only, MXCSR saved and restored;
            // a #XM is turned into a skip of the instruction by the SIGFPE handler.
            unsafe {
                asm!(
                    "stmxcsr [{saved}]",
                    "ldmxcsr [{mx}]",
                    "movq xmm0, {a}",
                    "movq xmm1, {b}",
                    $insn,
                    "movq {out}, xmm0",
                    "stmxcsr [{mxo}]",
                    "ldmxcsr [{saved}]",
                    saved = in(reg) &mut saved,
                    mx = in(reg) &mx,
                    mxo = in(reg) &mut mxo,
                    a = in(reg) a,
                    b = in(reg) b,
                    out = out(reg) out,
                    out("xmm0") _, out("xmm1") _,
                );
            }
            (out, mxo)
        }
    };
}

host!(h_addss, "addss xmm0, xmm1");
host!(h_mulss, "mulss xmm0, xmm1");
host!(h_divss, "divss xmm0, xmm1");
host!(h_subsd, "subsd xmm0, xmm1");
host!(h_mulsd, "mulsd xmm0, xmm1");
host!(h_divsd, "divsd xmm0, xmm1");
host!(h_minsd, "minsd xmm0, xmm1");
host!(h_sqrtsd, "sqrtsd xmm0, xmm1");
host!(h_cvtsd2ss, "cvtsd2ss xmm0, xmm1");

#[test]
fn unmasked_simd_exceptions_match_host() {
    install_handler();
    type H = fn(u64, u64, u32) -> (u64, u32);
    type O = fn(u64, u64, u32) -> sse::Lane<u64>;
    let ops: [(&str, H, O, bool); 9] = [
        (
            "addss",
            h_addss,
            |a, b, m| sse::binop(FpOp::Add, a, b, F32, m),
            false,
        ),
        (
            "mulss",
            h_mulss,
            |a, b, m| sse::binop(FpOp::Mul, a, b, F32, m),
            false,
        ),
        (
            "divss",
            h_divss,
            |a, b, m| sse::binop(FpOp::Div, a, b, F32, m),
            false,
        ),
        (
            "subsd",
            h_subsd,
            |a, b, m| sse::binop(FpOp::Sub, a, b, F64, m),
            true,
        ),
        (
            "mulsd",
            h_mulsd,
            |a, b, m| sse::binop(FpOp::Mul, a, b, F64, m),
            true,
        ),
        (
            "divsd",
            h_divsd,
            |a, b, m| sse::binop(FpOp::Div, a, b, F64, m),
            true,
        ),
        (
            "minsd",
            h_minsd,
            |a, b, m| sse::binop(FpOp::Min, a, b, F64, m),
            true,
        ),
        ("sqrtsd", h_sqrtsd, |_, b, m| sse::sqrt(b, F64, m), true),
        (
            "cvtsd2ss",
            h_cvtsd2ss,
            |_, b, m| sse::convert(b, F64, F32, m),
            true,
        ),
    ];
    let mut fails = Vec::new();
    let mut r = common::rng(0x0bad_0000_0000_0001);
    let mut count = 0;
    let mut faults = 0;
    for (name, host, ours, double) in ops {
        for unmask in [0x80u32, 0x100, 0x200, 0x400, 0x800, 0x1000, 0x1f80] {
            for rc in 0..4u32 {
                for _ in 0..40 * common::scale() {
                    let mx = (0x1f80 & !unmask) | (rc << 13);
                    let (a, b) = if double {
                        (f64_input(&mut r), f64_input(&mut r))
                    } else {
                        (f32_input(&mut r) as u64, f32_input(&mut r) as u64)
                    };
                    let (hv, hm) = host(a, b, mx);
                    let l = ours(a, b, mx);
                    let mut st = SseState {
                        mxcsr: mx,
                        ..SseState::default()
                    };
                    let verdict = st.raise(l.flags);
                    // On a fault the destination (XMM0 = a; its low lane for cvtsd2ss) stays.
                    let ov = match verdict {
                        Ok(()) if name == "cvtsd2ss" => (a & !0xffff_ffff) | l.value,
                        Ok(()) => l.value,
                        Err(_) => {
                            faults += 1;
                            a
                        }
                    };
                    count += 1;
                    if (hv, hm) != (ov, st.mxcsr) && fails.len() < 20 {
                        fails.push(format!("{name} a={a:#x} b={b:#x} mx={mx:#x}: host {hv:#x}/{hm:#x} ours {ov:#x}/{:#x}", st.mxcsr));
                    }
                }
            }
        }
    }
    eprintln!("unmasked SIMD exceptions: {count} cases, {faults} faulting");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
