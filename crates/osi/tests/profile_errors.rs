//! Kernels the profile cannot come from, and damaged inputs: each gets a clear error,
//! never a panic, a hang or a huge allocation.

use std::sync::OnceLock;

use pandare_osi::{Profile, ProfileError};
use pandare_test_support::unavailable;

fn kernel() -> Option<&'static [u8]> {
    static KERNEL: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let bytes = KERNEL.get_or_init(|| {
        let image = pandare_images::cached("riscv64")?;
        std::fs::read(image.kernel).ok()
    });
    if bytes.is_none() {
        unavailable("the riscv64 generic image is not built: run `panda image build riscv64`");
    }
    bytes.as_deref()
}

const BTF_MAGIC: [u8; 8] = [0x9f, 0xeb, 0x01, 0x00, 0x18, 0x00, 0x00, 0x00];

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The riscv64 kernel's BTF blob.
fn btf_range(kernel: &[u8]) -> std::ops::Range<usize> {
    let start = find(kernel, &BTF_MAGIC).expect("the kernel has BTF");
    let word = |at: usize| {
        u32::from_le_bytes(kernel[start + at..start + at + 4].try_into().unwrap()) as usize
    };
    start..start + 24 + word(16) + word(20)
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn a_kernel_without_btf_is_refused_naming_the_option() {
    let Some(kernel) = kernel() else { return };
    let mut bytes = kernel.to_vec();
    let at = find(&bytes, &BTF_MAGIC).expect("BTF");
    bytes[at..at + 8].fill(0);
    let error = Profile::derive(&bytes).expect_err("no BTF");
    assert!(matches!(error, ProfileError::NoBtf), "{error}");
    assert!(
        error.to_string().contains("CONFIG_DEBUG_INFO_BTF"),
        "{error}"
    );
}

#[test]
fn a_kernel_without_kallsyms_is_refused_naming_the_option() {
    let Some(kernel) = kernel() else { return };
    let mut bytes = kernel.to_vec();
    // Break every copy of the token table's run of digit tokens.
    let digits = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
    while let Some(at) = find(&bytes, digits) {
        bytes[at] = b'x';
    }
    let error = Profile::derive(&bytes).expect_err("no kallsyms");
    assert!(matches!(error, ProfileError::NoKallsyms), "{error}");
    assert!(error.to_string().contains("CONFIG_KALLSYMS"), "{error}");
}

#[test]
fn truncated_kernels_are_refused() {
    let Some(kernel) = kernel() else { return };
    let btf = btf_range(kernel);
    // Cut inside the BTF: the header promises more than there is.
    let error = Profile::derive(&kernel[..btf.start + 1000]).expect_err("truncated BTF");
    assert!(matches!(error, ProfileError::Malformed(_)), "{error}");
    assert!(error.to_string().contains("BTF"), "{error}");
    // Cut before the BTF: none of it is there.
    let error = Profile::derive(&kernel[..1 << 20]).expect_err("no BTF left");
    assert!(matches!(error, ProfileError::NoBtf), "{error}");
    // Not a kernel at all.
    for bytes in [&[][..], &[0u8; 100][..], &kernel[100..4096]] {
        let error = Profile::derive(bytes).expect_err("not a kernel");
        assert!(matches!(error, ProfileError::Malformed(_)), "{error}");
    }
    // A bzImage header whose payload lies outside the file.
    let mut bz = vec![0u8; 4096];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    bz[0x1f1] = 4;
    bz[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
    bz[0x24c..0x250].copy_from_slice(&1_000_000u32.to_le_bytes());
    let error = Profile::derive(&bz).expect_err("truncated bzImage");
    assert!(error.to_string().contains("bzImage"), "{error}");
    // An ELF with absurd header offsets.
    let mut elf = vec![0u8; 128];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[0x12] = 0xf3;
    elf[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
    elf[0x38] = 0xff;
    elf[0x39] = 0xff;
    assert!(Profile::derive(&elf).is_err());
}

#[test]
fn mutated_btf_gives_errors_or_answers_never_panics() {
    let Some(kernel) = kernel() else { return };
    let blob = &kernel[btf_range(kernel)];
    assert_eq!(
        pandare_osi::fuzzing::btf(blob, 1000).expect("the real BTF parses"),
        100_733
    );
    let mut rng = Rng(0x0005_eed0_fb7f);
    let (mut parsed, mut refused) = (0, 0);
    for round in 0..60 {
        let mut bytes = blob.to_vec();
        let mutations = 1 + rng.below(8);
        for _ in 0..mutations {
            let at = match round % 3 {
                // The header and the first types.
                0 => rng.below(4096),
                // Anywhere.
                1 => rng.below(bytes.len()),
                // The type section's records: a 32-bit word replaced.
                _ => (24 + rng.below(bytes.len() / 2)) & !3,
            };
            if round % 3 == 2 {
                let word = match rng.below(4) {
                    0 => u32::MAX,
                    1 => 0x8000_ffff,
                    2 => rng.next() as u32 & 0x1f_ffff,
                    _ => rng.next() as u32,
                };
                bytes[at..at + 4].copy_from_slice(&word.to_le_bytes());
            } else {
                bytes[at] = rng.next() as u8;
            }
        }
        match pandare_osi::fuzzing::btf(&bytes, 3000) {
            Ok(_) => parsed += 1,
            Err(ProfileError::Malformed(_)) => refused += 1,
            Err(other) => panic!("round {round}: unexpected error {other}"),
        }
    }
    // Both outcomes happen: the mutations reach the checks.
    assert!(
        parsed > 0 && refused > 0,
        "parsed {parsed}, refused {refused}"
    );
}

#[test]
fn damaged_serialized_profiles_are_refused() {
    let Some(kernel) = kernel() else { return };
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| Profile::derive(kernel).expect("derives").to_bytes());
    let message = |r: Result<Profile, ProfileError>| match r {
        Ok(_) => panic!("damaged input accepted"),
        Err(e @ ProfileError::BadSerialized(_)) => e.to_string(),
        Err(other) => panic!("unexpected error {other}"),
    };
    assert!(message(Profile::from_bytes(b"")).contains("not a pandare kernel profile"));
    let mut other_version = bytes.clone();
    other_version[16] = 99;
    assert!(message(Profile::from_bytes(&other_version)).contains("version 99"));
    let mut huge = bytes.clone();
    huge[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
    message(Profile::from_bytes(&huge));
    let mut rng = Rng(42);
    for _ in 0..40 {
        let cut = rng.below(bytes.len());
        message(Profile::from_bytes(&bytes[..cut]));
        let mut flipped = bytes.clone();
        let at = 28 + rng.below(bytes.len() - 28);
        flipped[at] ^= 1 << rng.below(8);
        // The checksum catches any change of the body.
        message(Profile::from_bytes(&flipped));
    }
}
