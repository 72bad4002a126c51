//! Shared helpers of the host-CPU oracle tests: a deterministic generator of edge-case and
//! random floating-point inputs.

#![allow(dead_code)]

/// xorshift64* — deterministic, so a failure names a reproducible case.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Interesting binary32 patterns.
pub const F32_EDGES: &[u32] = &[
    0x0000_0000,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000,
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x0080_0000,
    0x0080_0001,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x3f80_0000,
    0xbf80_0000,
    0x7fc0_0000,
    0xffc0_0000,
    0x7fc1_2345,
    0xffa0_0001,
    0x7f80_0001,
    0x4000_0000,
    0x3f80_0001,
    0x0040_0000,
    0x3400_0000,
    0x3300_0000,
    0x4b80_0000,
    0x4f00_0000,
    0xcf00_0000,
    0x5f00_0000,
    0xdf00_0000,
];

/// Interesting binary64 patterns.
pub const F64_EDGES: &[u64] = &[
    0,
    0x8000_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    1,
    0x8000_0000_0000_0001,
    0x000f_ffff_ffff_ffff,
    0x0010_0000_0000_0000,
    0x0010_0000_0000_0001,
    0x7fef_ffff_ffff_ffff,
    0xffef_ffff_ffff_ffff,
    0x3ff0_0000_0000_0000,
    0xbff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0xfff8_0000_0000_0000,
    0x7ff8_1234_5678_9abc,
    0xfff4_0000_0000_0001,
    0x7ff0_0000_0000_0001,
    0x4000_0000_0000_0000,
    0x3ff0_0000_0000_0001,
    0x0008_0000_0000_0000,
    0x41e0_0000_0000_0000,
    0xc1e0_0000_0000_0000,
    0x43e0_0000_0000_0000,
    0xc3e0_0000_0000_0000,
    0x36a0_0000_0000_0000,
    0x3810_0000_0000_0000,
    0x47ef_ffff_e000_0000,
    0x47ef_ffff_f000_0000,
    0x3690_0000_0000_0000,
    0x41df_ffff_ffc0_0000,
    0xc1e0_0000_0010_0000,
];

/// A random binary32: an edge case, a random pattern, or a value near the extremes.
pub fn f32_input(r: &mut Rng) -> u32 {
    match r.below(4) {
        0 => F32_EDGES[r.below(F32_EDGES.len() as u64) as usize],
        1 => r.next() as u32,
        2 => {
            // Exponent near the bottom or top, random fraction and sign.
            let e = [0u32, 1, 2, 24, 25, 126, 127, 128, 150, 253, 254][r.below(11) as usize];
            ((r.next() as u32) & 0x807f_ffff) | (e << 23)
        }
        _ => {
            // Moderate values that make ties and cancellations likely.
            let e = 120 + r.below(16) as u32;
            ((r.next() as u32) & 0x8000_0000) | (e << 23) | ((r.next() as u32) & 0x7f_f000)
        }
    }
}

/// A random binary64, as [`f32_input`].
pub fn f64_input(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 => F64_EDGES[r.below(F64_EDGES.len() as u64) as usize],
        1 => r.next(),
        2 => {
            let e = [
                0u64, 1, 2, 53, 54, 1022, 1023, 1024, 1075, 2045, 2046, 0x380, 0x36a, 0x47e,
            ][r.below(14) as usize];
            (r.next() & 0x800f_ffff_ffff_ffff) | (e << 52)
        }
        _ => {
            let e = 1015 + r.below(16);
            (r.next() & 0x8000_0000_0000_0000) | (e << 52) | (r.next() & 0xf_ffff_f000_0000)
        }
    }
}

/// A random 80-bit value (sign+exponent, significand), including unsupported encodings.
pub fn f80_input(r: &mut Rng) -> (u16, u64) {
    let sign = (r.below(2) as u16) << 15;
    match r.below(6) {
        0 => {
            let edges: &[(u16, u64)] = &[
                (0, 0),
                (0x7fff, 1 << 63),
                (0x7fff, 0xc000_0000_0000_0000),
                (0x7fff, 0xc000_0000_1234_5678),
                (0x7fff, 0x8000_0000_0000_0001),
                (0x7fff, 0xa000_0000_0000_0000),
                (0, 1),
                (0, 0x7fff_ffff_ffff_ffff),
                (0, 0x8000_0000_0000_0000),
                (1, 0x8000_0000_0000_0000),
                (0x7ffe, u64::MAX),
                (0x3fff, 1 << 63),
                (0x3fff, 0),
                (0x3fff, 0x4000_0000_0000_0000),
                (0x7fff, 0),
                (0x7fff, 0x4000_0000_0000_0000),
                (0x403e, 1 << 63),
                (0x401e, 1 << 63),
                (0x400e, 1 << 63),
            ];
            let (se, m) = edges[r.below(edges.len() as u64) as usize];
            (se | sign, m)
        }
        1 => {
            let e = [
                0u16, 1, 2, 63, 64, 0x3f80, 0x3c00, 0x3c01, 0x3f81, 0x4380, 0x43ff, 0x7ffd, 0x7ffe,
            ][r.below(13) as usize];
            (sign | e, r.next() | (1 << 63))
        }
        2 => (sign | (0x3ff0 + r.below(32) as u16), r.next() | (1 << 63)),
        3 => (
            sign | (0x3ff0 + r.below(32) as u16),
            (r.next() | (1 << 63)) & !0xff_ffff,
        ),
        4 => (
            sign | (0x3fc0 + r.below(128) as u16),
            (r.next() & 0xffff_ff00_0000_0000) | (1 << 63),
        ),
        _ => (sign | (r.below(0x7fff) as u16), r.next() | (1 << 63)),
    }
}

/// Case-count multiplier from `PANDARE_ORACLE_SCALE` (default 1), for longer hunts.
pub fn scale() -> usize {
    std::env::var("PANDARE_ORACLE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A generator seeded from the test's constant, perturbed by `PANDARE_ORACLE_SEED` if set (the
/// failure messages print inputs, so any run is reproducible from its seed).
pub fn rng(seed: u64) -> Rng {
    let extra: u64 = std::env::var("PANDARE_ORACLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Rng(seed ^ extra.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
}
