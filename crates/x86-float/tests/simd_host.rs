//! Host-CPU oracle for the SIMD integer, logical, shuffle and unpack operations at both widths
//! (SSE2 XMM and MMX): each instruction runs natively on random operands (biased to lane
//! boundaries) and through the crate; results must be identical.
#![cfg(target_arch = "x86_64")]

mod common;

use common::Rng;
use core::arch::asm;
use pandare_x86_float::simd::{self, Sat, Shift};

/// Runs `insn` with XMM0 = a, XMM1 = b, RAX = 0; returns (XMM0, RAX).
macro_rules! hx {
    ($name:ident, $insn:literal) => {
        hx!($name, $insn, "");
    };
    ($name:ident, $insn:literal, $ops:literal) => {
        fn $name(a: u128, b: u128) -> (u128, u64) {
            let mut out = [0u8; 16];
            let ab = [a.to_le_bytes(), b.to_le_bytes()];
            let rax: u64;
            // SAFETY: reads `ab` and writes `out`, both live locals; XMM0/XMM1 and RAX declared.
            unsafe {
                asm!(
                    "movdqu xmm0, [{p}]",
                    "movdqu xmm1, [{p} + 16]",
                    "xor eax, eax",
                    concat!($insn, $ops),
                    "movdqu [{o}], xmm0",
                    p = in(reg) ab.as_ptr(),
                    o = in(reg) out.as_mut_ptr(),
                    out("rax") rax,
                    out("xmm0") _, out("xmm1") _,
                );
            }
            (u128::from_le_bytes(out), rax)
        }
    };
}

/// Runs `insn` with MM0 = a, MM1 = b, RAX = 0, then EMMS; returns (MM0, RAX).
macro_rules! hm {
    ($name:ident, $insn:literal) => {
        hm!($name, $insn, "");
    };
    ($name:ident, $insn:literal, $ops:literal) => {
        fn $name(a: u128, b: u128) -> (u128, u64) {
            let (a, b) = (a as u64, b as u64);
            let mut out = 0u64;
            let ab = [a, b];
            let rax: u64;
            // SAFETY: reads `ab`, writes `out`; the MMX registers alias the x87 stack, which
            // EMMS leaves empty again as the Rust ABI requires.
            unsafe {
                asm!(
                    "movq mm0, [{p}]",
                    "movq mm1, [{p} + 8]",
                    "xor eax, eax",
                    concat!($insn, $ops),
                    "movq [{o}], mm0",
                    "emms",
                    p = in(reg) ab.as_ptr(),
                    o = in(reg) &mut out,
                    out("rax") rax,
                );
            }
            (out as u128, rax)
        }
    };
}

fn operand(r: &mut Rng) -> u128 {
    let mut v = ((r.next() as u128) << 64) | r.next() as u128;
    // Put lane-boundary values (0, -1, min, max) into random bytes/words.
    for _ in 0..r.below(6) {
        let pos = r.below(16) as u32;
        let b = [0x00u128, 0xff, 0x7f, 0x80, 0x01][r.below(5) as usize];
        v = (v & !(0xff << (8 * pos))) | (b << (8 * pos));
    }
    v
}

type Host = fn(u128, u128) -> (u128, u64);
type Ours = fn(u128, u128, u32) -> (u128, u64);

fn run(
    name: &str,
    host: Host,
    ours: Ours,
    width: u32,
    fails: &mut Vec<String>,
    count: &mut usize,
    r: &mut Rng,
) {
    for _ in 0..300 * common::scale() {
        let (mut a, mut b) = (operand(r), operand(r));
        if width == 8 {
            a &= u64::MAX as u128;
            b &= u64::MAX as u128;
        }
        if name.contains("shift") && r.below(2) == 0 {
            b = r.below(70) as u128;
        }
        let h = host(a, b);
        let o = ours(a, b, width);
        *count += 1;
        if h != o && fails.len() < 30 {
            fails.push(format!(
                "{name}/{width}: a={a:#x} b={b:#x}: host {:#x}/{:#x} ours {:#x}/{:#x}",
                h.0, h.1, o.0, o.1
            ));
        }
    }
}

macro_rules! both {
    ($list:ident, $x:ident, $m:ident, $insn:literal, $f:expr) => {
        hx!($x, $insn, " xmm0, xmm1");
        hm!($m, $insn, " mm0, mm1");
        $list.push((stringify!($x), $x as Host, $m as Host, $f as Ours));
    };
}

#[test]
fn simd_integer_operations_match_host() {
    let mut l: Vec<(&str, Host, Host, Ours)> = Vec::new();
    both!(l, paddb, m_paddb, "paddb", |a, b, w| (
        simd::padd(a, b, 1, Sat::Wrap, w),
        0
    ));
    both!(l, paddw, m_paddw, "paddw", |a, b, w| (
        simd::padd(a, b, 2, Sat::Wrap, w),
        0
    ));
    both!(l, paddd, m_paddd, "paddd", |a, b, w| (
        simd::padd(a, b, 4, Sat::Wrap, w),
        0
    ));
    both!(l, paddq, m_paddq, "paddq", |a, b, w| (
        simd::padd(a, b, 8, Sat::Wrap, w),
        0
    ));
    both!(l, paddsb, m_paddsb, "paddsb", |a, b, w| (
        simd::padd(a, b, 1, Sat::Signed, w),
        0
    ));
    both!(l, paddsw, m_paddsw, "paddsw", |a, b, w| (
        simd::padd(a, b, 2, Sat::Signed, w),
        0
    ));
    both!(l, paddusb, m_paddusb, "paddusb", |a, b, w| (
        simd::padd(a, b, 1, Sat::Unsigned, w),
        0
    ));
    both!(l, paddusw, m_paddusw, "paddusw", |a, b, w| (
        simd::padd(a, b, 2, Sat::Unsigned, w),
        0
    ));
    both!(l, psubb, m_psubb, "psubb", |a, b, w| (
        simd::psub(a, b, 1, Sat::Wrap, w),
        0
    ));
    both!(l, psubw, m_psubw, "psubw", |a, b, w| (
        simd::psub(a, b, 2, Sat::Wrap, w),
        0
    ));
    both!(l, psubd, m_psubd, "psubd", |a, b, w| (
        simd::psub(a, b, 4, Sat::Wrap, w),
        0
    ));
    both!(l, psubq, m_psubq, "psubq", |a, b, w| (
        simd::psub(a, b, 8, Sat::Wrap, w),
        0
    ));
    both!(l, psubsb, m_psubsb, "psubsb", |a, b, w| (
        simd::psub(a, b, 1, Sat::Signed, w),
        0
    ));
    both!(l, psubsw, m_psubsw, "psubsw", |a, b, w| (
        simd::psub(a, b, 2, Sat::Signed, w),
        0
    ));
    both!(l, psubusb, m_psubusb, "psubusb", |a, b, w| (
        simd::psub(a, b, 1, Sat::Unsigned, w),
        0
    ));
    both!(l, psubusw, m_psubusw, "psubusw", |a, b, w| (
        simd::psub(a, b, 2, Sat::Unsigned, w),
        0
    ));
    both!(l, pmullw, m_pmullw, "pmullw", |a, b, w| (
        simd::pmullw(a, b, w),
        0
    ));
    both!(l, pmulhw, m_pmulhw, "pmulhw", |a, b, w| (
        simd::pmulhw(a, b, true, w),
        0
    ));
    both!(l, pmulhuw, m_pmulhuw, "pmulhuw", |a, b, w| (
        simd::pmulhw(a, b, false, w),
        0
    ));
    both!(l, pmuludq, m_pmuludq, "pmuludq", |a, b, w| (
        simd::pmuludq(a, b, w),
        0
    ));
    both!(l, pmaddwd, m_pmaddwd, "pmaddwd", |a, b, w| (
        simd::pmaddwd(a, b, w),
        0
    ));
    both!(l, psadbw, m_psadbw, "psadbw", |a, b, w| (
        simd::psadbw(a, b, w),
        0
    ));
    both!(l, pavgb, m_pavgb, "pavgb", |a, b, w| (
        simd::pavg(a, b, 1, w),
        0
    ));
    both!(l, pavgw, m_pavgw, "pavgw", |a, b, w| (
        simd::pavg(a, b, 2, w),
        0
    ));
    both!(l, pminub, m_pminub, "pminub", |a, b, w| (
        simd::pminmax(a, b, 1, false, false, w),
        0
    ));
    both!(l, pmaxub, m_pmaxub, "pmaxub", |a, b, w| (
        simd::pminmax(a, b, 1, false, true, w),
        0
    ));
    both!(l, pminsw, m_pminsw, "pminsw", |a, b, w| (
        simd::pminmax(a, b, 2, true, false, w),
        0
    ));
    both!(l, pmaxsw, m_pmaxsw, "pmaxsw", |a, b, w| (
        simd::pminmax(a, b, 2, true, true, w),
        0
    ));
    both!(l, pcmpeqb, m_pcmpeqb, "pcmpeqb", |a, b, w| (
        simd::pcmpeq(a, b, 1, w),
        0
    ));
    both!(l, pcmpeqw, m_pcmpeqw, "pcmpeqw", |a, b, w| (
        simd::pcmpeq(a, b, 2, w),
        0
    ));
    both!(l, pcmpeqd, m_pcmpeqd, "pcmpeqd", |a, b, w| (
        simd::pcmpeq(a, b, 4, w),
        0
    ));
    both!(l, pcmpgtb, m_pcmpgtb, "pcmpgtb", |a, b, w| (
        simd::pcmpgt(a, b, 1, w),
        0
    ));
    both!(l, pcmpgtw, m_pcmpgtw, "pcmpgtw", |a, b, w| (
        simd::pcmpgt(a, b, 2, w),
        0
    ));
    both!(l, pcmpgtd, m_pcmpgtd, "pcmpgtd", |a, b, w| (
        simd::pcmpgt(a, b, 4, w),
        0
    ));
    both!(l, pand, m_pand, "pand", |a, b, _| (a & b, 0));
    both!(l, pandn, m_pandn, "pandn", |a, b, _| (simd::andn(a, b), 0));
    both!(l, por, m_por, "por", |a, b, _| (a | b, 0));
    both!(l, pxor, m_pxor, "pxor", |a, b, _| (a ^ b, 0));
    both!(l, shift_psllw, m_psllw, "psllw", |a, b, w| (
        simd::pshift(a, 2, Shift::Left, b as u64, w),
        0
    ));
    both!(l, shift_pslld, m_pslld, "pslld", |a, b, w| (
        simd::pshift(a, 4, Shift::Left, b as u64, w),
        0
    ));
    both!(l, shift_psllq, m_psllq, "psllq", |a, b, w| (
        simd::pshift(a, 8, Shift::Left, b as u64, w),
        0
    ));
    both!(l, shift_psrlw, m_psrlw, "psrlw", |a, b, w| (
        simd::pshift(a, 2, Shift::Right, b as u64, w),
        0
    ));
    both!(l, shift_psrld, m_psrld, "psrld", |a, b, w| (
        simd::pshift(a, 4, Shift::Right, b as u64, w),
        0
    ));
    both!(l, shift_psrlq, m_psrlq, "psrlq", |a, b, w| (
        simd::pshift(a, 8, Shift::Right, b as u64, w),
        0
    ));
    both!(l, shift_psraw, m_psraw, "psraw", |a, b, w| (
        simd::pshift(a, 2, Shift::Arith, b as u64, w),
        0
    ));
    both!(l, shift_psrad, m_psrad, "psrad", |a, b, w| (
        simd::pshift(a, 4, Shift::Arith, b as u64, w),
        0
    ));
    both!(l, packsswb, m_packsswb, "packsswb", |a, b, w| (
        simd::pack(a, b, 2, false, w),
        0
    ));
    both!(l, packssdw, m_packssdw, "packssdw", |a, b, w| (
        simd::pack(a, b, 4, false, w),
        0
    ));
    both!(l, packuswb, m_packuswb, "packuswb", |a, b, w| (
        simd::pack(a, b, 2, true, w),
        0
    ));
    both!(l, punpcklbw, m_punpcklbw, "punpcklbw", |a, b, w| (
        simd::unpack(a, b, 1, false, w),
        0
    ));
    both!(l, punpcklwd, m_punpcklwd, "punpcklwd", |a, b, w| (
        simd::unpack(a, b, 2, false, w),
        0
    ));
    both!(l, punpckldq, m_punpckldq, "punpckldq", |a, b, w| (
        simd::unpack(a, b, 4, false, w),
        0
    ));
    both!(l, punpckhbw, m_punpckhbw, "punpckhbw", |a, b, w| (
        simd::unpack(a, b, 1, true, w),
        0
    ));
    both!(l, punpckhwd, m_punpckhwd, "punpckhwd", |a, b, w| (
        simd::unpack(a, b, 2, true, w),
        0
    ));
    both!(l, punpckhdq, m_punpckhdq, "punpckhdq", |a, b, w| (
        simd::unpack(a, b, 4, true, w),
        0
    ));

    let mut fails = Vec::new();
    let mut count = 0;
    let mut r = common::rng(0x51d0_0000_0000_0001);
    for (name, x, m, f) in l {
        run(name, x, f, 16, &mut fails, &mut count, &mut r);
        run(name, m, f, 8, &mut fails, &mut count, &mut r);
    }

    // XMM-only and immediate forms.
    hx!(punpcklqdq, "punpcklqdq xmm0, xmm1");
    hx!(punpckhqdq, "punpckhqdq xmm0, xmm1");
    hx!(pshufd_1b, "pshufd xmm0, xmm1, 0x1b");
    hx!(pshufd_d8, "pshufd xmm0, xmm1, 0xd8");
    hx!(pshuflw_4e, "pshuflw xmm0, xmm1, 0x4e");
    hx!(pshufhw_b1, "pshufhw xmm0, xmm1, 0xb1");
    hx!(shufps_9c, "shufps xmm0, xmm1, 0x9c");
    hx!(shufpd_2, "shufpd xmm0, xmm1, 2");
    hx!(pmovmskb, "pmovmskb eax, xmm1");
    hx!(movmskps, "movmskps eax, xmm1");
    hx!(movmskpd, "movmskpd eax, xmm1");
    hx!(pextrw_5, "pextrw eax, xmm1, 5");
    hx!(
        pinsrw_3,
        "movq rax, xmm1\npinsrw xmm0, eax, 3\nxor eax, eax"
    );
    hx!(pslldq_3, "pslldq xmm0, 3");
    hx!(psrldq_9, "psrldq xmm0, 9");
    hx!(psrldq_17, "psrldq xmm0, 17");
    hx!(psllw_i9, "psllw xmm0, 9");
    hx!(psraw_i20, "psraw xmm0, 20");
    hx!(unpcklps, "unpcklps xmm0, xmm1");
    hx!(unpckhpd, "unpckhpd xmm0, xmm1");
    hx!(andnps, "andnps xmm0, xmm1");
    hm!(pshufw_93, "pshufw mm0, mm1, 0x93");
    hm!(m_pmovmskb, "pmovmskb eax, mm1");
    let xs: Vec<(&str, Host, Ours, u32)> = vec![
        (
            "punpcklqdq",
            punpcklqdq,
            |a, b, w| (simd::unpack(a, b, 8, false, w), 0),
            16,
        ),
        (
            "punpckhqdq",
            punpckhqdq,
            |a, b, w| (simd::unpack(a, b, 8, true, w), 0),
            16,
        ),
        (
            "pshufd 1b",
            pshufd_1b,
            |_, b, w| (simd::pshuf(b, 4, 0x1b, w), 0),
            16,
        ),
        (
            "pshufd d8",
            pshufd_d8,
            |_, b, w| (simd::pshuf(b, 4, 0xd8, w), 0),
            16,
        ),
        (
            "pshuflw",
            pshuflw_4e,
            |_, b, _| (simd::pshuf_half(b, false, 0x4e), 0),
            16,
        ),
        (
            "pshufhw",
            pshufhw_b1,
            |_, b, _| (simd::pshuf_half(b, true, 0xb1), 0),
            16,
        ),
        (
            "shufps",
            shufps_9c,
            |a, b, _| (simd::shufps(a, b, 0x9c), 0),
            16,
        ),
        ("shufpd", shufpd_2, |a, b, _| (simd::shufpd(a, b, 2), 0), 16),
        (
            "pmovmskb",
            pmovmskb,
            |a, b, w| (a, simd::movmsk(b, 1, w) as u64),
            16,
        ),
        (
            "movmskps",
            movmskps,
            |a, b, w| (a, simd::movmsk(b, 4, w) as u64),
            16,
        ),
        (
            "movmskpd",
            movmskpd,
            |a, b, w| (a, simd::movmsk(b, 8, w) as u64),
            16,
        ),
        (
            "pextrw",
            pextrw_5,
            |a, b, w| (a, simd::pextrw(b, 5, w) as u64),
            16,
        ),
        (
            "pinsrw",
            pinsrw_3,
            |a, b, w| (simd::pinsrw(a, b as u32, 3, w), 0),
            16,
        ),
        (
            "pslldq",
            pslldq_3,
            |a, _, _| (simd::pshift_bytes(a, true, 3), 0),
            16,
        ),
        (
            "psrldq 9",
            psrldq_9,
            |a, _, _| (simd::pshift_bytes(a, false, 9), 0),
            16,
        ),
        (
            "psrldq 17",
            psrldq_17,
            |a, _, _| (simd::pshift_bytes(a, false, 17), 0),
            16,
        ),
        (
            "psllw imm",
            psllw_i9,
            |a, _, w| (simd::pshift(a, 2, Shift::Left, 9, w), 0),
            16,
        ),
        (
            "psraw imm",
            psraw_i20,
            |a, _, w| (simd::pshift(a, 2, Shift::Arith, 20, w), 0),
            16,
        ),
        (
            "unpcklps",
            unpcklps,
            |a, b, w| (simd::unpack(a, b, 4, false, w), 0),
            16,
        ),
        (
            "unpckhpd",
            unpckhpd,
            |a, b, w| (simd::unpack(a, b, 8, true, w), 0),
            16,
        ),
        ("andnps", andnps, |a, b, _| (simd::andn(a, b), 0), 16),
        (
            "pshufw",
            pshufw_93,
            |_, b, w| (simd::pshuf(b, 2, 0x93, w), 0),
            8,
        ),
        (
            "pmovmskb mmx",
            m_pmovmskb,
            |a, b, w| (a, simd::movmsk(b, 1, w) as u64),
            8,
        ),
    ];
    for (name, h, o, w) in xs {
        run(name, h, o, w, &mut fails, &mut count, &mut r);
    }
    eprintln!("simd integer/logic/shuffle: {count} cases");
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
