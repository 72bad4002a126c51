//! Builds the real riscv64 image from Debian's packages. Needs the network (about 130 MB
//! on the first run), so it only runs when `PANDARE_NETWORK_TESTS=1`.

use std::fs;

use pandare_images::{check, initramfs, Metadata, METADATA_FILE, PROMPT_REGEX};

/// One newc entry: name, mode, rdev (major, minor), data.
type Entry = (String, u32, (u32, u32), Vec<u8>);

/// Reads a newc archive (independently of the crate's writer).
fn read_newc(archive: &[u8]) -> Vec<Entry> {
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let align = |x: usize| (x + 3) & !3;
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        let h = &archive[pos..pos + 110];
        assert_eq!(&h[..6], b"070701");
        let f = |i: usize| hex(&h[6 + 8 * i..14 + 8 * i]);
        let namesize = f(11) as usize;
        let name =
            String::from_utf8(archive[pos + 110..pos + 110 + namesize - 1].to_vec()).unwrap();
        let start = align(pos + 110 + namesize);
        let size = f(6) as usize;
        let data = archive[start..start + size].to_vec();
        pos = align(start + size);
        if name == "TRAILER!!!" {
            return entries;
        }
        entries.push((name, f(1), (f(9), f(10)), data));
    }
}

#[test]
fn builds_the_riscv64_image_from_debian() {
    if std::env::var("PANDARE_NETWORK_TESTS").as_deref() != Ok("1") {
        eprintln!(
            "skipping the real image build: it downloads ~130 MB from a Debian mirror; \
             set PANDARE_NETWORK_TESTS=1 to run it"
        );
        return;
    }
    let image = pandare_images::ensure("riscv64", &mut |m| eprintln!("{m}")).unwrap();
    assert_eq!(image.arch, "riscv64");
    assert_eq!(image.memory_mib, 512);
    assert_eq!(image.prompt, PROMPT_REGEX);
    assert!(image.append.contains("console=ttyS0"));

    let kernel = fs::read(&image.kernel).unwrap();
    let header = check::riscv_image_header(&kernel).unwrap();
    assert_eq!(header.text_offset, 0x20_0000);
    assert!(header.image_size as usize >= kernel.len());

    let entries = read_newc(&fs::read(&image.initrd).unwrap());
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e.0 == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let busybox = find("bin/busybox");
    assert_eq!(busybox.1, 0o100_755);
    check::static_elf(&busybox.3, check::EM_RISCV).unwrap();
    assert_eq!(find("dev/console").1, 0o020_600);
    assert_eq!(find("dev/console").2, (5, 1));
    assert_eq!(find("dev/null").2, (1, 3));
    assert_eq!(find("init").3, initramfs::init_script().as_bytes());
    for dir in [
        "bin", "sbin", "dev", "proc", "sys", "tmp", "root", "etc", "usr/bin", "usr/sbin",
    ] {
        assert_eq!(find(dir).1 & 0o170_000, 0o040_000, "{dir}");
    }

    let meta =
        Metadata::from_json(&fs::read_to_string(image.directory.join(METADATA_FILE)).unwrap())
            .unwrap();
    assert!(
        meta.kernel_release.ends_with("-riscv64"),
        "{}",
        meta.kernel_release
    );
    assert_eq!(meta.kernel.size, kernel.len() as u64);
    assert_eq!(meta.packages.len(), 2);

    // The cache is now valid, so this is instant and says so.
    let mut said = String::new();
    let again = pandare_images::ensure("riscv64", &mut |m| said.push_str(m)).unwrap();
    assert_eq!(again, image);
    assert!(said.contains("already built"), "{said}");
    assert_eq!(pandare_images::cached("riscv64"), Some(image));
}
