//! A fast, non-cryptographic hasher for the per-block and per-access lookups of the
//! plugins (keys are guest addresses and ASIDs, never attacker-chosen host data), in the
//! style of rustc's FxHash: SipHash, the standard default, costs more than the rest of a
//! block callback.

use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing of whole words.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FastHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.write_u64(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(SEED);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Mix the high bits down: hashbrown takes its bucket index from the low bits and
        // its tag from the top seven.
        self.0 ^ (self.0 >> 29)
    }
}

/// `HashMap`/`HashSet` hasher builder for [`FastHasher`].
pub(crate) type FastBuild = BuildHasherDefault<FastHasher>;
