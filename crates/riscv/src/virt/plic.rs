//! The platform-level interrupt controller, as on QEMU's and SiFive's "virt" boards.
//!
//! Sources are level-sensitive: a source is pending while its line is high and it is not
//! claimed; claiming hands out the highest-priority enabled pending source above the
//! context's threshold (ties to the lowest id); completing re-arms it. Context 0 is the
//! hart's M-mode external interrupt, context 1 its S-mode one.

/// Number of interrupt sources, including the unused source 0.
pub const SOURCES: usize = 96;
const WORDS: usize = SOURCES / 32;
/// Contexts: hart 0 M-mode and hart 0 S-mode.
pub const CONTEXTS: usize = 2;
/// Size of the register window.
pub const SIZE: u64 = 0x60_0000;

/// PLIC state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plic {
    priority: [u32; SOURCES],
    level: [u32; WORDS],
    pending: [u32; WORDS],
    claimed: [u32; WORDS],
    enable: [[u32; WORDS]; CONTEXTS],
    threshold: [u32; CONTEXTS],
}

impl Default for Plic {
    fn default() -> Self {
        Plic::new()
    }
}

impl Plic {
    /// A PLIC with every source idle, disabled and at priority 0.
    pub fn new() -> Plic {
        Plic {
            priority: [0; SOURCES],
            level: [0; WORDS],
            pending: [0; WORDS],
            claimed: [0; WORDS],
            enable: [[0; WORDS]; CONTEXTS],
            threshold: [0; CONTEXTS],
        }
    }

    /// Drives the line of `source`.
    pub fn set_level(&mut self, source: usize, high: bool) {
        if source == 0 || source >= SOURCES {
            return;
        }
        let (word, bit) = (source / 32, 1u32 << (source % 32));
        if high {
            self.level[word] |= bit;
        } else {
            self.level[word] &= !bit;
        }
        self.update_pending(source);
    }

    fn update_pending(&mut self, source: usize) {
        let (word, bit) = (source / 32, 1u32 << (source % 32));
        if self.level[word] & bit != 0 && self.claimed[word] & bit == 0 {
            self.pending[word] |= bit;
        } else {
            self.pending[word] &= !bit;
        }
    }

    fn best(&self, context: usize) -> Option<usize> {
        let mut best: Option<(u32, usize)> = None;
        for source in 1..SOURCES {
            let (word, bit) = (source / 32, 1u32 << (source % 32));
            if self.pending[word] & self.enable[context][word] & bit == 0 {
                continue;
            }
            let priority = self.priority[source];
            if priority > self.threshold[context] && best.is_none_or(|(p, _)| priority > p) {
                best = Some((priority, source));
            }
        }
        best.map(|(_, source)| source)
    }

    /// Whether context `context` has an interrupt to take.
    pub fn interrupt(&self, context: usize) -> bool {
        self.best(context).is_some()
    }

    /// Register read.
    pub fn read(&mut self, offset: u64) -> u32 {
        match offset {
            0..0x1000 => self.priority[(offset / 4) as usize % SOURCES],
            0x1000..0x1080 => self
                .pending
                .get((offset as usize - 0x1000) / 4)
                .copied()
                .unwrap_or(0),
            0x2000..0x1f_0000 => {
                let context = ((offset - 0x2000) / 0x80) as usize;
                let word = ((offset - 0x2000) % 0x80 / 4) as usize;
                self.enable
                    .get(context)
                    .and_then(|words| words.get(word))
                    .copied()
                    .unwrap_or(0)
            }
            0x20_0000.. => {
                let context = ((offset - 0x20_0000) / 0x1000) as usize;
                if context >= CONTEXTS {
                    return 0;
                }
                match offset & 0xfff {
                    0 => self.threshold[context],
                    4 => self.claim(context),
                    _ => 0,
                }
            }
            _ => 0,
        }
    }

    /// Register write.
    pub fn write(&mut self, offset: u64, value: u32) {
        match offset {
            4..0x1000 => self.priority[(offset / 4) as usize % SOURCES] = value & 7,
            0x2000..0x1f_0000 => {
                let context = ((offset - 0x2000) / 0x80) as usize;
                let word = ((offset - 0x2000) % 0x80 / 4) as usize;
                if let Some(slot) = self.enable.get_mut(context).and_then(|w| w.get_mut(word)) {
                    *slot = if word == 0 { value & !1 } else { value };
                }
            }
            0x20_0000.. => {
                let context = ((offset - 0x20_0000) / 0x1000) as usize;
                if context >= CONTEXTS {
                    return;
                }
                match offset & 0xfff {
                    0 => self.threshold[context] = value & 7,
                    4 => self.complete(context, value as usize),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The state as data, for snapshots.
    pub(crate) fn save(&self) -> super::state::PlicState {
        super::state::PlicState {
            priority: self.priority.to_vec(),
            level: self.level.to_vec(),
            pending: self.pending.to_vec(),
            claimed: self.claimed.to_vec(),
            enable: self.enable.iter().map(|words| words.to_vec()).collect(),
            threshold: self.threshold.to_vec(),
        }
    }

    /// Rebuilds a PLIC from saved state, checking every array's size.
    pub(crate) fn restore(state: &super::state::PlicState) -> Result<Plic, String> {
        let words = |v: &[u32]| -> Result<[u32; WORDS], String> {
            v.try_into().map_err(|_| "PLIC bit array size".to_string())
        };
        let mut plic = Plic::new();
        plic.priority = state
            .priority
            .as_slice()
            .try_into()
            .map_err(|_| "PLIC priority count".to_string())?;
        plic.level = words(&state.level)?;
        plic.pending = words(&state.pending)?;
        plic.claimed = words(&state.claimed)?;
        if state.enable.len() != CONTEXTS || state.threshold.len() != CONTEXTS {
            return Err("PLIC context count".to_string());
        }
        for (context, enable) in state.enable.iter().enumerate() {
            plic.enable[context] = words(enable)?;
        }
        plic.threshold.copy_from_slice(&state.threshold);
        Ok(plic)
    }

    fn claim(&mut self, context: usize) -> u32 {
        let Some(source) = self.best(context) else {
            return 0;
        };
        let (word, bit) = (source / 32, 1u32 << (source % 32));
        self.claimed[word] |= bit;
        self.pending[word] &= !bit;
        source as u32
    }

    fn complete(&mut self, context: usize, source: usize) {
        if source == 0 || source >= SOURCES {
            return;
        }
        let (word, bit) = (source / 32, 1u32 << (source % 32));
        // A completion for a source not enabled for this context is ignored (PLIC spec).
        if self.enable[context][word] & bit == 0 {
            return;
        }
        self.claimed[word] &= !bit;
        self.update_pending(source);
    }
}

/// 32-bit registers: a read of any size returns the register, a write takes its low word.
impl pandare_core::MmioDevice for Plic {
    fn read(&mut self, offset: u64, _size: u8, _now: u64) -> u64 {
        u64::from(Plic::read(self, offset))
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: u64) {
        Plic::write(self, offset, value as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plic_with_uart_enabled() -> Plic {
        let mut plic = Plic::new();
        plic.write(10 * 4, 1);
        plic.write(0x2080, 1 << 10);
        plic
    }

    #[test]
    fn claim_returns_the_source_and_blocks_it_until_complete() {
        let mut plic = plic_with_uart_enabled();
        plic.set_level(10, true);
        assert!(plic.interrupt(1));
        assert_eq!(plic.read(0x20_1004), 10);
        assert!(!plic.interrupt(1), "claimed source stays quiet");
        plic.write(0x20_1004, 10);
        assert!(plic.interrupt(1), "line still high: pending again");
        plic.set_level(10, false);
        assert!(!plic.interrupt(1));
    }

    #[test]
    fn threshold_masks_equal_priorities() {
        let mut plic = plic_with_uart_enabled();
        plic.set_level(10, true);
        plic.write(0x20_1000, 1);
        assert!(!plic.interrupt(1));
        assert_eq!(plic.read(0x20_1004), 0);
    }

    #[test]
    fn m_mode_context_is_separate() {
        let mut plic = plic_with_uart_enabled();
        plic.set_level(10, true);
        assert!(!plic.interrupt(0));
    }
}
