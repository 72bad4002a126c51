//! `Machine::with_cpu`: the CPU read and written between run slices, through the guest ABI,
//! without firing any callback (PANDA's `top_loop`, `main_loop_wait`) and without using up
//! `after_machine_init`, which fires once, at the first run, whatever was read before.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use pandare::{Convention, Machine};
use pandare_core::instrument::Callback;
use pandare_riscv::{Virt, VirtConfig};

/// `li a0, 7` then `j .`.
fn program() -> Vec<u8> {
    [0x0070_0513u32, 0x0000_006f]
        .iter()
        .flat_map(|word| word.to_le_bytes())
        .collect()
}

#[derive(Default)]
struct Counts {
    init: AtomicU32,
    top: AtomicU32,
    wait: AtomicU32,
}

impl Counts {
    fn get(&self) -> [u32; 3] {
        [&self.init, &self.top, &self.wait].map(|count| count.load(Ordering::Relaxed))
    }
}

fn machine_with_counters() -> (Box<dyn Machine>, Arc<Counts>) {
    let config = VirtConfig {
        ram_bytes: 16 << 20,
        ..VirtConfig::default()
    };
    let mut machine: Box<dyn Machine> = Box::new(Virt::new_bare_metal(config, &program()).unwrap());
    let counts = Arc::new(Counts::default());
    let instrumentation = machine.instrumentation();
    let c = Arc::clone(&counts);
    instrumentation
        .register(
            "init",
            Callback::AfterMachineInit(Box::new(move |_| {
                c.init.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
    let c = Arc::clone(&counts);
    instrumentation
        .register(
            "top",
            Callback::TopLoop(Box::new(move |_| {
                c.top.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
    let c = Arc::clone(&counts);
    instrumentation
        .register(
            "wait",
            Callback::MainLoopWait(Box::new(move || {
                c.wait.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
    (machine, counts)
}

#[test]
fn reads_and_writes_between_slices_fire_nothing_and_init_fires_once() {
    let (mut machine, counts) = machine_with_counters();
    let mut start_pc = 0;
    machine.with_cpu(&mut |cpu| {
        start_pc = cpu.pc();
        let abi = cpu.abi();
        abi.set_argument(cpu, Convention::Default, 1, 5).unwrap();
    });
    assert_ne!(start_pc, 0);
    assert_eq!(
        counts.get(),
        [0, 0, 0],
        "a read before the first run fires nothing"
    );

    machine.run(10);
    assert_eq!(
        counts.get(),
        [1, 1, 1],
        "the first run fires after_machine_init once"
    );

    let mut seen = (0, 0, String::new());
    machine.with_cpu(&mut |cpu| {
        let abi = cpu.abi();
        seen.0 = abi.return_value(cpu, Convention::Default).unwrap();
        seen.1 = abi.argument(cpu, Convention::Default, 1).unwrap();
        seen.2 = abi.dump(cpu);
    });
    assert_eq!(
        (seen.0, seen.1),
        (7, 5),
        "the guest's write and ours are both there"
    );
    assert_eq!(counts.get(), [1, 1, 1]);

    machine.run(10);
    assert_eq!(
        counts.get(),
        [1, 2, 2],
        "after_machine_init never fires again"
    );

    let abi = pandare_riscv::DESCRIPTION.abi;
    for register in abi.registers() {
        assert!(
            seen.2.contains(&format!("{:<8} ", register.name)),
            "{} missing from\n{}",
            register.name,
            seen.2
        );
    }
}

#[test]
fn system_registers_are_readable_by_name_and_read_only() {
    let (mut machine, _) = machine_with_counters();
    machine.with_cpu(&mut |cpu| {
        let abi = cpu.abi();
        for name in abi.system_registers() {
            assert!(cpu.register(name).is_ok(), "{name}");
            assert!(cpu.set_register(name, 0).is_err(), "{name}");
        }
        assert_eq!(
            cpu.register(abi.asid_register()).unwrap(),
            cpu.asid(),
            "asid() is the ASID register"
        );
        assert!(cpu.register("no_such_register").is_err());
    });
}
