//! x87, MMX, SSE and SSE2 semantics for pandare's x86 CPU, exact to a real CPU: the state and
//! the operations only. It knows no instruction encodings, no memory, no privilege and no
//! exception delivery; the CPU crate (`pandare-x86`) decodes, fetches operands, stores results
//! and raises the faults these functions report. The host x86_64 CPU is the oracle: every
//! operation is compared with it bit for bit by the tests in `tests/` (see `docs` in the
//! report of issue 10 for the case counts).
//!
//! # Interface for the CPU crate
//!
//! **State.** Keep one [`x87::X87State`] and one [`sse::SseState`] per CPU. They are plain
//! structs (registers, FCW/FSW/tags/FOP/FIP/FDP, XMM0–15/MXCSR); reset is
//! `X87State::default()` (= FNINIT) and `SseState::default()` (MXCSR 0x1F80). Both derive
//! serde's `Serialize`/`Deserialize` for snapshots; after restoring, call
//! [`sse::SseState::validate`] (reserved MXCSR bits); any x87 state is acceptable.
//!
//! **x87 instructions** are methods on [`x87::X87State`]; memory operands are passed by value
//! as [`x87::MemOperand`] (the CPU reads memory first, so a page fault leaves the FPU
//! untouched), and stores return bytes to write (`None` when an unmasked exception suppresses
//! the store, in which case the stack is not popped either):
//! - loads: `fld(Operand::Mem(MemOperand::F32(bits)))`, `fld(Operand::St(i))`, FILD/FBLD via
//!   `MemOperand::I16/I32/I64/Bcd`; constants `fld_const(Constant::Pi)`;
//! - stores: `fst(StoreKind::F64, pop) -> Option<Vec<u8>>` (FST/FSTP/FIST/FISTP/FISTTP/FBSTP),
//!   `fst_st(i, pop)`;
//! - arithmetic: `arith(Arith::Sub, dst, src, pop)` computes `ST(dst) = ST(dst) - src`
//!   (`Arith::SubR`: `src - ST(dst)`), with the manual's operand order (Intel's, not AT&T's
//!   reversed FSUBP mnemonics): `FADD ST(0), ST(i)` is `arith(Add, 0, St(i), false)`,
//!   `FSUBP ST(i), ST(0)` is `arith(Sub, i, St(0), true)`, `FIMUL m32` is
//!   `arith(Mul, 0, Mem(I32(v)), false)`;
//! - `fsqrt`, `frndint`, `fscale`, `fxtract`, `fprem(ieee)`, `fchs`, `fabs`, `fxch(i)`,
//!   `ffree(i)`, `fincstp`, `fdecstp`, `fxam`, `ftst`, `fcom(kind, src, pops)` (FCOM/FCOMP/
//!   FCOMPP/FUCOM*/FICOM*), `fcomi(kind, i, pop) -> u64` (the ZF|PF|CF bits for RFLAGS; clear
//!   OF, SF, AF), transcendentals `fsin_fcos(cos)`, `fsincos`, `fptan`, `fpatan`, `f2xm1`,
//!   `fyl2x(plus_one)`;
//! - control: `finit`, `fclex`, `fldcw(cw)`, `fcw`/`fsw` fields for FSTCW/FSTSW,
//!   `set_last(fop, fip, fcs, fdp, fds)` after each non-control x87 instruction;
//! - environment images in [`image`]: `fstenv`/`fldenv`/`fsave`/`frstor` (32- and 16-bit
//!   protected-mode layouts), `fxsave`/`fxrstor` (64- and 32-bit layouts; `fxrstor` returns
//!   an error when MXCSR has reserved bits: raise #GP(0)).
//!
//! Unmasked x87 exceptions are delayed as on hardware: the instruction sets the flags and
//! ES/B; before every *waiting* x87/MMX instruction (all but FN*-forms) the CPU checks
//! [`x87::X87State::exception_pending`] and raises #MF (CR0.NE=1) if it is true.
//!
//! **MMX**: before any MMX instruction but EMMS call `X87State::mmx_enter` (TOP=0, all tags
//! valid); read/write MMi with `mm(i)`/`set_mm(i, v)` (writes set the exponent field to
//! 0xFFFF); `emms()`. The integer operations are in [`simd`] with `width = 8`.
//!
//! **SSE/SSE2 floating point** in [`sse`]: lane functions `binop`, `sqrt`, `cmp`, `comis`,
//! `convert`, `from_int`, `to_int` on raw bits with [`soft::F32`]/[`soft::F64`], and register
//! forms `arith`, `sqrt_reg`, `cmp_reg`, `cvt_packed_float`, `cvt_from_dq`, `cvt_to_dq` taking
//! [`sse::Width::Scalar`] or `Packed`, `cvtsi2s`, `cvt_scalar_float`, and the MMX-operand
//! conversions `cvtpi2ps`, `cvtpi2pd`, `cvt_to_pi` (the caller performs the MMX transition);
//! RCP/RSQRT approximations in [`approx`]. Each returns the result and the MXCSR flags raised;
//! pass the flags to [`sse::SseState::raise`], and write the destination only if it returns
//! `Ok` (otherwise raise #XM, or #UD when CR4.OSXMMEXCPT is clear). COMISS/UCOMISS return the
//! RFLAGS bits. LDMXCSR is `SseState::ldmxcsr` (error → #GP(0)).
//!
//! **SSE2 integer and shuffles** in [`simd`]: `padd`, `psub` (wrap/saturating), `pmullw`,
//! `pmulhw`, `pmuludq`, `pmaddwd`, `psadbw`, `pavg`, `pminmax`, `pcmpeq`, `pcmpgt`, `andn`,
//! `pshift` (count from imm8 or the register's low 64 bits), `pshift_bytes`, `pack`, `unpack`
//! (also UNPCKLPS/HPD), `pshuf` (PSHUFD/PSHUFW), `pshuf_half`, `shufps`, `shufpd`, `movmsk`
//! (PMOVMSKB/MOVMSKPS/PD), `pextrw`, `pinsrw`; AND/OR/XOR are the caller's `&`, `|`, `^`.
//!
//! # Example
//!
//! ```
//! use pandare_x86_float::x87::{Arith, MemOperand, Operand, StoreKind, X87State};
//! let mut fpu = X87State::default();
//! fpu.fld(Operand::Mem(MemOperand::F64(1.0f64.to_bits())));
//! fpu.arith(Arith::Div, 0, Operand::Mem(MemOperand::I32(3)), false); // FIDIV m32
//! let bytes = fpu.fst(StoreKind::F64, true).expect("masked exceptions never suppress");
//! assert_eq!(f64::from_le_bytes(bytes.try_into().unwrap()), 1.0 / 3.0);
//! assert!(!fpu.exception_pending());
//! ```

#![warn(missing_docs)]

pub mod approx;
pub mod image;
pub mod simd;
pub mod soft;
pub mod sse;
pub mod trans;
pub mod x87;
