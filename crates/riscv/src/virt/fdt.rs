//! The device tree handed to the kernel, built at boot with vm-fdt.

use super::{VirtConfig, CLINT_BASE, PLIC_BASE, RAM_BASE, TEST_BASE, UART_BASE, UART_IRQ};

/// ISA string advertised in `riscv,isa`: what the hart implements, as QEMU's `rv64`
/// CPU with the same extensions switched off advertises it (Linux lists these in
/// `/proc/cpuinfo`). The hints of Zihintntl and Zihintpause execute as no-ops, Zihpm's
/// programmable counters read as zero, and Svvptc holds because the TLB never keeps a
/// translation that failed.
pub const ISA_STRING: &str = "rv64imafdc_zicntr_zicsr_zifencei_zihintntl_zihintpause_zihpm_svvptc";
/// The same, one extension per entry (`riscv,isa-extensions`).
pub const ISA_EXTENSIONS: &[&str] = &[
    "i",
    "m",
    "a",
    "f",
    "d",
    "c",
    "zicntr",
    "zicsr",
    "zifencei",
    "zihintntl",
    "zihintpause",
    "zihpm",
    "svvptc",
];
/// `timebase-frequency`: ticks of `time` per second.
pub const TIMEBASE_HZ: u32 = 10_000_000;

const CPU_INTC_PHANDLE: u32 = 1;
const PLIC_PHANDLE: u32 = 2;

/// Builds the flattened device tree. `initrd` is the loaded initrd's [start, end).
pub fn build(config: &VirtConfig, initrd: Option<(u64, u64)>) -> Result<Vec<u8>, vm_fdt::Error> {
    let mut fdt = vm_fdt::FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "riscv-virtio")?;
    fdt.property_string("model", "pandare,virt")?;

    let chosen = fdt.begin_node("chosen")?;
    fdt.property_string("bootargs", &config.command_line)?;
    fdt.property_string("stdout-path", &format!("/soc/serial@{UART_BASE:x}"))?;
    if let Some((start, end)) = initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    fdt.end_node(chosen)?;

    let memory = fdt.begin_node(&format!("memory@{RAM_BASE:x}"))?;
    fdt.property_string("device_type", "memory")?;
    fdt.property_array_u64("reg", &[RAM_BASE, config.ram_bytes])?;
    fdt.end_node(memory)?;

    let cpus = fdt.begin_node("cpus")?;
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    fdt.property_u32("timebase-frequency", TIMEBASE_HZ)?;
    let cpu = fdt.begin_node("cpu@0")?;
    fdt.property_string("device_type", "cpu")?;
    fdt.property_u32("reg", 0)?;
    fdt.property_string("status", "okay")?;
    fdt.property_string("compatible", "riscv")?;
    fdt.property_string("riscv,isa", ISA_STRING)?;
    fdt.property_string("riscv,isa-base", "rv64i")?;
    fdt.property_string_list(
        "riscv,isa-extensions",
        ISA_EXTENSIONS.iter().map(|s| s.to_string()).collect(),
    )?;
    fdt.property_string("mmu-type", "riscv,sv48")?;
    let intc = fdt.begin_node("interrupt-controller")?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_string("compatible", "riscv,cpu-intc")?;
    fdt.property_phandle(CPU_INTC_PHANDLE)?;
    fdt.end_node(intc)?;
    fdt.end_node(cpu)?;
    fdt.end_node(cpus)?;

    let soc = fdt.begin_node("soc")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "simple-bus")?;
    fdt.property_null("ranges")?;

    let plic = fdt.begin_node(&format!("plic@{PLIC_BASE:x}"))?;
    fdt.property_string_list(
        "compatible",
        vec!["sifive,plic-1.0.0".to_string(), "riscv,plic0".to_string()],
    )?;
    fdt.property_array_u64("reg", &[PLIC_BASE, super::plic::SIZE])?;
    fdt.property_u32("#interrupt-cells", 1)?;
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_u32("riscv,ndev", (super::plic::SOURCES - 1) as u32)?;
    // Context 0: M-mode external interrupt (11); context 1: S-mode external interrupt (9).
    fdt.property_array_u32(
        "interrupts-extended",
        &[CPU_INTC_PHANDLE, 11, CPU_INTC_PHANDLE, 9],
    )?;
    fdt.property_phandle(PLIC_PHANDLE)?;
    fdt.end_node(plic)?;

    let clint = fdt.begin_node(&format!("clint@{CLINT_BASE:x}"))?;
    fdt.property_string_list(
        "compatible",
        vec!["sifive,clint0".to_string(), "riscv,clint0".to_string()],
    )?;
    fdt.property_array_u64("reg", &[CLINT_BASE, super::clint::SIZE])?;
    // M-mode software (3) and timer (7) interrupts: S-mode kernels leave this to firmware.
    fdt.property_array_u32(
        "interrupts-extended",
        &[CPU_INTC_PHANDLE, 3, CPU_INTC_PHANDLE, 7],
    )?;
    fdt.end_node(clint)?;

    let serial = fdt.begin_node(&format!("serial@{UART_BASE:x}"))?;
    fdt.property_string("compatible", "ns16550a")?;
    fdt.property_array_u64("reg", &[UART_BASE, super::UART_SIZE])?;
    fdt.property_u32("clock-frequency", 3_686_400)?;
    fdt.property_u32("interrupt-parent", PLIC_PHANDLE)?;
    fdt.property_u32("interrupts", UART_IRQ as u32)?;
    fdt.end_node(serial)?;

    let test = fdt.begin_node(&format!("test@{TEST_BASE:x}"))?;
    fdt.property_string_list(
        "compatible",
        vec!["sifive,test1".to_string(), "sifive,test0".to_string()],
    )?;
    fdt.property_array_u64("reg", &[TEST_BASE, 0x1000])?;
    fdt.end_node(test)?;

    fdt.end_node(soc)?;
    fdt.end_node(root)?;
    fdt.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_isa_string_and_the_extension_list_agree() {
        let (base, rest) = ISA_STRING.split_at(4);
        assert_eq!(base, "rv64");
        let mut from_string: Vec<String> = rest
            .split('_')
            .next()
            .unwrap()
            .chars()
            .map(String::from)
            .collect();
        from_string.extend(rest.split('_').skip(1).map(String::from));
        assert_eq!(from_string, ISA_EXTENSIONS);
    }

    #[test]
    fn hints_of_the_advertised_extensions_decode_as_no_ops() {
        use crate::decode::{decode, Kind};
        // pause (fence w, 0), ntl.all (add x0, x0, x5), c.ntl.all (c.add x0, x5).
        assert_eq!(decode(0x0100_000f).kind, Kind::Fence);
        let ntl = decode(0x0050_0033);
        assert_eq!((ntl.kind, ntl.rd), (Kind::Add, crate::decode::ZERO_SINK));
        let expanded = crate::compressed::expand(0x9016).expect("c.ntl.all is a HINT");
        assert_eq!(decode(expanded).rd, crate::decode::ZERO_SINK);
    }
}
