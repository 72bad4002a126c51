//! Memory images of the FPU state: FXSAVE/FXRSTOR (512 bytes, 64-bit and 32-bit forms),
//! FSTENV/FLDENV (28-byte protected-mode environment, 14-byte 16-bit form) and FSAVE/FRSTOR
//! (environment + eight 80-bit registers), and the MMX aliasing of the x87 registers.
//!
//! Real-mode/virtual-8086 environment layouts (FIP/FDP as 20-bit linear addresses) are not
//! provided: TODO(issue 10) if a PC boot path needs them.

use crate::sse::{ReservedMxcsr, SseState, MXCSR_MASK};
use crate::x87::{F80Bits, X87State};

/// Which FXSAVE layout: the 64-bit form (REX.W FXSAVE64: 64-bit FIP/FDP) or the legacy form
/// (32-bit FIP/FDP with FCS/FDS selectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FxForm {
    /// FXSAVE64/FXRSTOR64.
    Bits64,
    /// FXSAVE/FXRSTOR without REX.W.
    Bits32,
}

/// Errors of restoring an image; the CPU raises #GP(0) and leaves the state unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The image's MXCSR sets reserved bits.
    #[error(transparent)]
    Mxcsr(#[from] ReservedMxcsr),
    /// The caller passed fewer bytes than the image format has (a caller bug, not a guest
    /// fault: the CPU must read the whole operand first).
    #[error("an x87 state image needs {needed} bytes, {got} were given")]
    Short {
        /// Bytes the format needs.
        needed: usize,
        /// Bytes given.
        got: usize,
    },
}

fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}
fn get16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn get32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn get64(b: &[u8], o: usize) -> u64 {
    let mut x = [0; 8];
    x.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(x)
}
fn reg(b: &[u8], o: usize) -> F80Bits {
    let mut x = [0; 10];
    x.copy_from_slice(&b[o..o + 10]);
    F80Bits::from_bytes(x)
}

/// FXSAVE: writes the 512-byte image's architectural part (bytes 0–415 for 16 XMM registers;
/// `xmm_count` is 8 outside 64-bit mode, when XMM8–15 are not saved). Bytes 416–511 (and the
/// bytes of unsaved XMM registers) are left as they are, as hardware does.
pub fn fxsave(x: &X87State, s: &SseState, form: FxForm, xmm_count: usize, img: &mut [u8; 512]) {
    put16(img, 0, x.fcw);
    put16(img, 2, x.fsw);
    img[4] = x.tags;
    img[5] = 0;
    put16(img, 6, x.fop);
    match form {
        FxForm::Bits64 => {
            put64(img, 8, x.fip);
            put64(img, 16, x.fdp);
        }
        FxForm::Bits32 => {
            put32(img, 8, x.fip as u32);
            put16(img, 12, x.fcs);
            put16(img, 14, 0);
            put32(img, 16, x.fdp as u32);
            put16(img, 20, x.fds);
            put16(img, 22, 0);
        }
    }
    put32(img, 24, s.mxcsr);
    put32(img, 28, MXCSR_MASK);
    for i in 0..8u8 {
        let o = 32 + 16 * i as usize;
        img[o..o + 10].copy_from_slice(&x.st(i).to_bytes());
        img[o + 10..o + 16].fill(0);
    }
    for (i, v) in s.xmm.iter().enumerate().take(xmm_count) {
        img[160 + 16 * i..176 + 16 * i].copy_from_slice(&v.to_le_bytes());
    }
}

/// FXRSTOR: loads the state from an image. A reserved MXCSR bit makes the CPU raise #GP(0);
/// then nothing is loaded.
pub fn fxrstor(
    x: &mut X87State,
    s: &mut SseState,
    form: FxForm,
    xmm_count: usize,
    img: &[u8; 512],
) -> Result<(), RestoreError> {
    let mxcsr = get32(img, 24);
    if mxcsr & !MXCSR_MASK != 0 {
        return Err(ReservedMxcsr(mxcsr).into());
    }
    // As FLDCW: reserved FCW bits read back as on hardware (bit 6 set, 13–15 clear), and
    // ES/B follow the loaded flags and masks rather than the image's bits (measured on an
    // Intel host).
    x.fsw = get16(img, 2);
    x.fldcw(get16(img, 0));
    x.tags = img[4];
    x.fop = get16(img, 6) & 0x7ff;
    match form {
        FxForm::Bits64 => {
            x.fip = get64(img, 8);
            x.fdp = get64(img, 16);
            x.fcs = 0;
            x.fds = 0;
        }
        FxForm::Bits32 => {
            x.fip = get32(img, 8) as u64;
            x.fcs = get16(img, 12);
            x.fdp = get32(img, 16) as u64;
            x.fds = get16(img, 20);
        }
    }
    let top = x.top();
    for i in 0..8u8 {
        x.regs[((top + i) & 7) as usize] = reg(img, 32 + 16 * i as usize);
    }
    s.mxcsr = mxcsr;
    for (i, v) in s.xmm.iter_mut().enumerate().take(xmm_count) {
        let mut b = [0; 16];
        b.copy_from_slice(&img[160 + 16 * i..176 + 16 * i]);
        *v = u128::from_le_bytes(b);
    }
    Ok(())
}

/// Operand size of FSTENV/FLDENV/FSAVE/FRSTOR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvForm {
    /// 32-bit protected mode: 28-byte environment.
    Bits32,
    /// 16-bit protected mode: 14-byte environment.
    Bits16,
}

impl EnvForm {
    /// Size of the environment in bytes.
    pub fn env_len(self) -> usize {
        match self {
            EnvForm::Bits32 => 28,
            EnvForm::Bits16 => 14,
        }
    }
}

/// FNSTENV: the environment image. Afterwards the CPU masks all exceptions, as FNSTENV
/// does (done here).
pub fn fstenv(x: &mut X87State, form: EnvForm) -> Vec<u8> {
    let env = env_bytes(x, form);
    // Masking everything also clears ES and B.
    x.fldcw(x.fcw | 0x3f);
    env
}

fn env_bytes(x: &X87State, form: EnvForm) -> Vec<u8> {
    let tw = x.full_tag_word();
    match form {
        EnvForm::Bits32 => {
            // The reserved upper halves read as ones on current processors.
            let mut b = vec![0xffu8; 28];
            put16(&mut b, 0, x.fcw);
            put16(&mut b, 4, x.fsw);
            put16(&mut b, 8, tw);
            put32(&mut b, 12, x.fip as u32);
            put16(&mut b, 16, x.fcs);
            put16(&mut b, 18, x.fop & 0x7ff);
            put32(&mut b, 20, x.fdp as u32);
            put16(&mut b, 24, x.fds);
            b
        }
        EnvForm::Bits16 => {
            let mut b = vec![0u8; 14];
            put16(&mut b, 0, x.fcw);
            put16(&mut b, 2, x.fsw);
            put16(&mut b, 4, tw);
            put16(&mut b, 6, x.fip as u16);
            put16(&mut b, 8, x.fcs);
            put16(&mut b, 10, x.fdp as u16);
            put16(&mut b, 12, x.fds);
            b
        }
    }
}

/// FLDENV from an image of `form.env_len()` bytes (longer input is fine; shorter is an
/// error and loads nothing).
pub fn fldenv(x: &mut X87State, form: EnvForm, b: &[u8]) -> Result<(), RestoreError> {
    check_len(b, form.env_len())?;
    let (cw, sw, tw) = match form {
        EnvForm::Bits32 => {
            x.fip = get32(b, 12) as u64;
            x.fcs = get16(b, 16);
            x.fop = get16(b, 18) & 0x7ff;
            x.fdp = get32(b, 20) as u64;
            x.fds = get16(b, 24);
            (get16(b, 0), get16(b, 4), get16(b, 8))
        }
        EnvForm::Bits16 => {
            // The 16-bit protected-mode layout has no opcode field: FOP becomes 0.
            x.fop = 0;
            x.fip = get16(b, 6) as u64;
            x.fcs = get16(b, 8);
            x.fdp = get16(b, 10) as u64;
            x.fds = get16(b, 12);
            (get16(b, 0), get16(b, 2), get16(b, 4))
        }
    };
    x.fsw = sw;
    x.fldcw(cw);
    x.set_full_tag_word(tw);
    Ok(())
}

fn check_len(b: &[u8], needed: usize) -> Result<(), RestoreError> {
    if b.len() < needed {
        Err(RestoreError::Short {
            needed,
            got: b.len(),
        })
    } else {
        Ok(())
    }
}

/// FNSAVE: environment followed by ST(0)–ST(7), then the FPU is reinitialised (FNINIT).
pub fn fsave(x: &mut X87State, form: EnvForm) -> Vec<u8> {
    let mut b = env_bytes(x, form);
    for i in 0..8 {
        b.extend_from_slice(&x.st(i).to_bytes());
    }
    x.finit();
    b
}

/// FRSTOR from an image of `form.env_len() + 80` bytes (shorter is an error and loads
/// nothing).
pub fn frstor(x: &mut X87State, form: EnvForm, b: &[u8]) -> Result<(), RestoreError> {
    let n = form.env_len();
    check_len(b, n + 80)?;
    fldenv(x, form, b)?;
    let top = x.top();
    for i in 0..8u8 {
        x.regs[((top + i) & 7) as usize] = reg(b, n + 10 * i as usize);
    }
    Ok(())
}

impl X87State {
    /// Entering MMX (any MMX instruction but EMMS): TOP = 0 and all registers valid.
    pub fn mmx_enter(&mut self) {
        self.fsw &= !0x3800;
        self.tags = 0xff;
    }

    /// MMi: the significand of physical register i.
    pub fn mm(&self, i: u8) -> u64 {
        self.regs[(i & 7) as usize].m
    }

    /// Writes MMi: the significand, with the sign/exponent field set to all ones, as hardware
    /// does. (Call [`X87State::mmx_enter`] first.)
    pub fn set_mm(&mut self, i: u8, v: u64) {
        self.regs[(i & 7) as usize] = F80Bits { m: v, se: 0xffff };
    }

    /// EMMS: all registers empty; like the other MMX instructions it also sets TOP to 0
    /// (measured on the host).
    pub fn emms(&mut self) {
        self.fsw &= !0x3800;
        self.tags = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fxrstor_rejects_reserved_mxcsr_bits() {
        let mut img = [0u8; 512];
        img[24..28].copy_from_slice(&0x1_0000u32.to_le_bytes());
        let (mut x, mut s) = (X87State::default(), SseState::default());
        let before = s.clone();
        assert!(matches!(
            fxrstor(&mut x, &mut s, FxForm::Bits64, 16, &img),
            Err(RestoreError::Mxcsr(_))
        ));
        assert_eq!(s, before);
    }

    #[test]
    fn short_environment_images_are_errors_not_panics() {
        let mut x = X87State::default();
        let before = x.clone();
        assert_eq!(
            fldenv(&mut x, EnvForm::Bits32, &[0; 27]),
            Err(RestoreError::Short {
                needed: 28,
                got: 27
            })
        );
        assert_eq!(
            frstor(&mut x, EnvForm::Bits16, &[0; 93]),
            Err(RestoreError::Short {
                needed: 94,
                got: 93
            })
        );
        assert_eq!(x, before);
    }

    #[test]
    fn fxsave_then_fxrstor_round_trips() {
        let mut x = X87State::default();
        x.fld(crate::x87::Operand::Mem(crate::x87::MemOperand::F64(
            1.5f64.to_bits(),
        )));
        x.set_last(0x1d9, 0x1234_5678_9abc, 0x33, 0xdead_beef_0000, 0x2b);
        let mut s = SseState::default();
        s.xmm[15] = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        let mut img = [0u8; 512];
        fxsave(&x, &s, FxForm::Bits64, 16, &mut img);
        let (mut x2, mut s2) = (X87State::default(), SseState::default());
        fxrstor(&mut x2, &mut s2, FxForm::Bits64, 16, &img).expect("valid image");
        assert_eq!(
            (x2.fcw, x2.fsw, x2.tags, x2.st(0), x2.fip, x2.fdp),
            (x.fcw, x.fsw, x.tags, x.st(0), x.fip, x.fdp)
        );
        assert_eq!(s2, s);
    }

    #[test]
    fn mmx_write_sets_exponent_to_ones_and_all_tags_valid() {
        let mut x = X87State::default();
        x.mmx_enter();
        x.set_mm(3, 42);
        assert_eq!(
            (x.tags, x.top(), x.regs[3].se, x.mm(3)),
            (0xff, 0, 0xffff, 42)
        );
        x.emms();
        assert_eq!(x.tags, 0);
    }
}
