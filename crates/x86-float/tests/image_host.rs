//! Host-CPU oracle for the state images: random FXSAVE images are restored on the host
//! (FXRSTOR64) and through the crate, then saved again with FXSAVE64, FNSTENV or FNSAVE, or
//! modified by FLDENV/FRSTOR, and the resulting bytes compared.
#![cfg(target_arch = "x86_64")]

mod common;

use common::{f80_input, Rng};
use core::arch::asm;
use pandare_x86_float::image::{self, EnvForm, FxForm};
use pandare_x86_float::sse::SseState;
use pandare_x86_float::x87::X87State;

#[repr(C, align(16))]
struct Img([u8; 512]);

/// Runs: FXRSTOR64 `input`; then `op` on `mem`; then FXSAVE64 into the result; restores the
/// host's MXCSR and reinitialises the FPU.
macro_rules! host {
    ($name:ident, $op:literal) => {
        fn $name(input: &[u8; 512], mem: &mut [u8; 128]) -> [u8; 512] {
            let inp = Img(*input);
            let mut out = Img([0; 512]);
            let mut saved: u32 = 0;
            // SAFETY: FXRSTOR64/FXSAVE64 use 16-byte aligned locals; `mem` is a live buffer;
            // every XMM register is declared clobbered, MXCSR is saved and restored, and FNINIT
            // leaves the x87 stack empty as the ABI requires.
            unsafe {
                asm!(
                    "stmxcsr [{saved}]",
                    "fxrstor64 [{i}]",
                    $op,
                    "fxsave64 [{o}]",
                    "fninit",
                    "ldmxcsr [{saved}]",
                    saved = in(reg) &mut saved,
                    i = in(reg) inp.0.as_ptr(),
                    o = in(reg) out.0.as_mut_ptr(),
                    m = in(reg) mem.as_mut_ptr(),
                    out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                    out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                    out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                    out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                );
            }
            out.0
        }
    };
}

host!(h_nop, "lea {m}, [{m}]");

/// FXRSTOR64 then FXSAVE without REX.W (the 32-bit layout).
fn h_fxsave32(input: &[u8; 512]) -> [u8; 512] {
    let inp = Img(*input);
    let mut out = Img([0; 512]);
    let mut saved: u32 = 0;
    // SAFETY: as for `host!`: aligned locals, XMM registers clobbered, MXCSR restored, FNINIT.
    unsafe {
        asm!(
            "stmxcsr [{saved}]",
            "fxrstor64 [{i}]",
            "fxsave [{o}]",
            "fninit",
            "ldmxcsr [{saved}]",
            saved = in(reg) &mut saved,
            i = in(reg) inp.0.as_ptr(),
            o = in(reg) out.0.as_mut_ptr(),
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
        );
    }
    out.0
}
host!(h_fldcw, "fldcw [{m}]");
host!(h_movq_mm3, "movq mm3, [{m}]");
host!(h_paddb_mm1, "lea {m}, [{m}]\npaddb mm1, mm2");
host!(h_emms, "lea {m}, [{m}]\nemms");
host!(h_fnstenv, "fnstenv [{m}]");
host!(h_fnsave, "fnsave [{m}]");
host!(h_fnstenv16, ".byte 0x66\nfnstenv [{m}]");
host!(h_fnsave16, ".byte 0x66\nfnsave [{m}]");
host!(h_frstor16, ".byte 0x66\nfrstor [{m}]");
host!(h_fldenv, "fldenv [{m}]");
host!(h_frstor, "frstor [{m}]");

fn random_image(r: &mut Rng) -> [u8; 512] {
    let mut img = [0u8; 512];
    for b in img.iter_mut() {
        *b = r.next() as u8;
    }
    // FCW: reserved bits as hardware keeps them (bit 6 set, 13-15 clear); mask most exceptions
    // so that no later instruction would fault.
    let fcw = ((r.next() as u16) & 0x0f3f) | 0x40;
    img[0..2].copy_from_slice(&fcw.to_le_bytes());
    // FSW: consistent ES/B with the masks.
    let mut fsw = (r.next() as u16) & 0x7f7f;
    if fsw & !fcw & 0x3f != 0 {
        fsw |= 0x8080;
    }
    img[2..4].copy_from_slice(&fsw.to_le_bytes());
    img[5] = 0;
    img[6..8].copy_from_slice(&((r.next() as u16) & 0x7ff).to_le_bytes());
    let mxcsr = (r.next() as u32) & 0xffff;
    img[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    img[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    for i in 0..8 {
        let (se, m) = f80_input(r);
        let o = 32 + 16 * i;
        img[o..o + 8].copy_from_slice(&m.to_le_bytes());
        img[o + 8..o + 10].copy_from_slice(&se.to_le_bytes());
        img[o + 10..o + 16].fill(0);
    }
    img
}

fn ours_restore(img: &[u8; 512]) -> (X87State, SseState) {
    let (mut x, mut s) = (X87State::default(), SseState::default());
    image::fxrstor(&mut x, &mut s, FxForm::Bits64, 16, img).expect("valid image");
    (x, s)
}

fn ours_save(x: &X87State, s: &SseState, like: &[u8; 512]) -> [u8; 512] {
    let mut out = *like;
    image::fxsave(x, s, FxForm::Bits64, 16, &mut out);
    out
}

#[test]
fn images_match_host() {
    let mut r = common::rng(0x1111_fff0_0000_0001);
    let mut fails = Vec::new();
    let mut count = 0;
    for _ in 0..500 * common::scale() {
        let img = random_image(&mut r);
        let mut mem = [0u8; 128];

        // FXRSTOR64 + FXSAVE64.
        let mut h = h_nop(&img, &mut mem);
        let (x, s) = ours_restore(&img);
        let mut o = ours_save(&x, &s, &h);
        // This host keeps FIP as a 55-bit sign-extended value (its top byte follows bit 54);
        // architecturally FIP holds a canonical RIP, so the crate keeps all 64 bits.
        h[15] = 0;
        o[15] = 0;
        count += 1;
        if h[..416] != o[..416] && fails.len() < 8 {
            fails.push(format!(
                "fxsave: in {:x?}\nhost {:x?}\nours {:x?}",
                &img[..32],
                &h[..32],
                &o[..32]
            ));
        }

        // FXSAVE without REX.W: the 32-bit layout (FIP/FCS, FDP/FDS).
        let hm = h_fxsave32(&img);
        let (x, s) = ours_restore(&img);
        let mut o32 = hm;
        image::fxsave(&x, &s, FxForm::Bits32, 16, &mut o32);
        count += 1;
        if hm[..416] != o32[..416] && fails.len() < 8 {
            fails.push(format!(
                "fxsave32: in {:x?}\nhost {:x?}\nours {:x?}",
                &img[..32],
                &hm[..32],
                &o32[..32]
            ));
        }

        // FLDCW of an arbitrary 16-bit value (reserved bits included); a waiting instruction,
        // so only without a pending exception.
        let pending = u16::from_le_bytes([img[2], img[3]]) & 0x80 != 0;
        let cw = r.next() as u16 | 0x3f;
        let mut hm = [0u8; 128];
        hm[..2].copy_from_slice(&cw.to_le_bytes());
        let h = if pending {
            [0; 512]
        } else {
            h_fldcw(&img, &mut hm)
        };
        let (mut x, s) = ours_restore(&img);
        x.fldcw(cw);
        let o = ours_save(&x, &s, &h);
        count += !pending as usize;
        if !pending && (h[..15] != o[..15] || h[16..32] != o[16..32]) && fails.len() < 8 {
            fails.push(format!(
                "fldcw {cw:#x}: in {:x?}\nhost {:x?}\nours {:x?}",
                &img[..32],
                &h[..32],
                &o[..32]
            ));
        }

        // MMX aliasing: an MMX instruction sets TOP = 0 and every tag valid and writes the
        // significand with the exponent field all ones; EMMS empties every tag. MMX
        // instructions are waiting ones too.
        if !pending {
            let v = r.next();
            let mut hm = [0u8; 128];
            hm[..8].copy_from_slice(&v.to_le_bytes());
            let h = h_movq_mm3(&img, &mut hm);
            let (mut x, s) = ours_restore(&img);
            x.mmx_enter();
            x.set_mm(3, v);
            let o = ours_save(&x, &s, &h);
            let h2 = h_paddb_mm1(&img, &mut hm);
            let (mut x2, s2) = ours_restore(&img);
            x2.mmx_enter();
            let sum = pandare_x86_float::simd::padd(
                x2.mm(1) as u128,
                x2.mm(2) as u128,
                1,
                pandare_x86_float::simd::Sat::Wrap,
                8,
            );
            x2.set_mm(1, sum as u64);
            let o2 = ours_save(&x2, &s2, &h2);
            let h3 = h_emms(&img, &mut hm);
            let (mut x3, s3) = ours_restore(&img);
            x3.emms();
            let o3 = ours_save(&x3, &s3, &h3);
            count += 3;
            for (name, h, o) in [
                ("movq mm3", h, o),
                ("paddb mm1, mm2", h2, o2),
                ("emms", h3, o3),
            ] {
                if (h[..15] != o[..15] || h[16..160] != o[16..160]) && fails.len() < 8 {
                    fails.push(format!(
                        "{name}: in {:x?}\nhost {:x?}\nours {:x?}",
                        &img[..160],
                        &h[..160],
                        &o[..160]
                    ));
                }
            }
        }

        // FNSTENV: the 28-byte environment and the state after it (exceptions masked).
        let mut hm = [0u8; 128];
        let h = h_fnstenv(&img, &mut hm);
        let (mut x, s) = ours_restore(&img);
        let env = image::fstenv(&mut x, EnvForm::Bits32);
        let o = ours_save(&x, &s, &h);
        count += 1;
        if (hm[..28] != env[..] || h[..15] != o[..15] || h[16..32] != o[16..32]) && fails.len() < 8
        {
            fails.push(format!(
                "fnstenv: in {:x?}\nhost {:x?} / {:x?}\nours {:x?} / {:x?}",
                &img[..32],
                &hm[..28],
                &h[..32],
                env,
                &o[..32]
            ));
        }

        // The 16-bit forms (operand-size prefix): 14-byte environment, 94-byte save area.
        let mut hm = [0u8; 128];
        let h = h_fnstenv16(&img, &mut hm);
        let (mut x, s) = ours_restore(&img);
        let env = image::fstenv(&mut x, EnvForm::Bits16);
        let o = ours_save(&x, &s, &h);
        count += 1;
        if (hm[..14] != env[..] || h[..15] != o[..15] || h[16..32] != o[16..32]) && fails.len() < 8
        {
            fails.push(format!(
                "fnstenv16: in {:x?}\nhost {:x?} / {:x?}\nours {:x?} / {:x?}",
                &img[..32],
                &hm[..14],
                &h[..32],
                env,
                &o[..32]
            ));
        }
        let mut hm = [0u8; 128];
        let h = h_fnsave16(&img, &mut hm);
        let (mut x, s) = ours_restore(&img);
        let b = image::fsave(&mut x, EnvForm::Bits16);
        let o = ours_save(&x, &s, &h);
        count += 1;
        if (hm[..94] != b[..] || h[..15] != o[..15] || h[16..160] != o[16..160]) && fails.len() < 8
        {
            fails.push(format!(
                "fnsave16: in {:x?}\nhost {:x?}\nours {:x?}",
                &img[..32],
                &hm[..94],
                b
            ));
        }

        // FNSAVE: 108 bytes, then the FPU is reinitialised.
        let mut hm = [0u8; 128];
        let h = h_fnsave(&img, &mut hm);
        let (mut x, s) = ours_restore(&img);
        let b = image::fsave(&mut x, EnvForm::Bits32);
        let o = ours_save(&x, &s, &h);
        count += 1;
        if (hm[..108] != b[..] || h[..15] != o[..15] || h[16..160] != o[16..160]) && fails.len() < 8
        {
            fails.push(format!(
                "fnsave: in {:x?}\nhost {:x?} / {:x?}\nours {:x?} / {:x?}",
                &img[..32],
                &hm[..108],
                &h[..32],
                b,
                &o[..32]
            ));
        }

        // FLDENV / FRSTOR of a random environment on top of the restored state. They are
        // waiting instructions: with an exception pending they would raise #MF first.
        if u16::from_le_bytes([img[2], img[3]]) & 0x80 != 0 {
            continue;
        }
        let mut env = [0u8; 128];
        for e in env.iter_mut() {
            *e = r.next() as u8;
        }
        let fcw = ((r.next() as u16) & 0x0f3f) | 0x40 | 0x3f;
        env[0..2].copy_from_slice(&fcw.to_le_bytes());
        let fsw = (r.next() as u16) & 0x7f7f;
        env[4..6].copy_from_slice(&fsw.to_le_bytes());
        type HostFn = fn(&[u8; 512], &mut [u8; 128]) -> [u8; 512];
        let forms: [(&str, HostFn, bool, EnvForm); 3] = [
            ("fldenv", h_fldenv, false, EnvForm::Bits32),
            ("frstor", h_frstor, true, EnvForm::Bits32),
            ("frstor16", h_frstor16, true, EnvForm::Bits16),
        ];
        for (name, host, frstor, form) in forms {
            let mut env = env;
            if form == EnvForm::Bits16 {
                // The 16-bit layout keeps FCW at 0 and FSW at 2.
                env[0..2].copy_from_slice(&fcw.to_le_bytes());
                env[2..4].copy_from_slice(&fsw.to_le_bytes());
            }
            let mut hm = env;
            let h = host(&img, &mut hm);
            let (mut x, s) = ours_restore(&img);
            if frstor {
                image::frstor(&mut x, form, &env).expect("long enough");
            } else {
                image::fldenv(&mut x, form, &env).expect("long enough");
            }
            let o = ours_save(&x, &s, &h);
            count += 1;
            if (h[..15] != o[..15] || h[16..160] != o[16..160]) && fails.len() < 8 {
                fails.push(format!(
                    "{name}: env {:x?}\nhost {:x?}\nours {:x?}",
                    &env[..28],
                    &h[..32],
                    &o[..32]
                ));
            }
        }
    }
    eprintln!("images: {count} cases");
    assert!(fails.is_empty(), "{}", fails.join("\n\n"));
}
