//! QEMU as the oracle for the x86 CPU's system-level behaviour: the bare-metal programs of
//! `tests/qemu_programs/` run in `qemu-system-x86_64 -M microvm` with a per-instruction
//! log and on pandare's [`pandare_x86::X86Cpu`] stepped beside it; the first instruction
//! after which the two states differ fails the test with a report (see
//! `qemu_oracle/mod.rs` and docs/TESTING.md). The same program then runs on pandare's
//! block-cached run loop and must print the same and exit the same.
//!
//! Without `qemu-system-x86_64` or binutils each test prints `SKIP: …` and passes; under
//! `CI=true` it fails with what to install (`scripts/install-test-tools.sh`).

mod qemu_oracle;

use qemu_oracle::{build, corrected, lockstep, run_blocks, run_qemu, tools};

fn oracle(name: &str) {
    let tools = match tools() {
        Ok(tools) => tools,
        Err(reason) => return pandare_test_support::unavailable(&format!("{name}: {reason}")),
    };
    let program = build(&tools, name).unwrap_or_else(|e| panic!("building {name}: {e}"));
    let qemu = run_qemu(&tools, &program).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        qemu.exit,
        Some(0),
        "{name}: QEMU's run did not end with status 0; output:\n{}",
        String::from_utf8_lossy(&qemu.output)
    );
    let agreement = lockstep(&program, &qemu).unwrap_or_else(|report| panic!("{report}"));
    assert_eq!(
        String::from_utf8_lossy(&agreement.output),
        String::from_utf8_lossy(&qemu.output),
        "{name}: debug-console output (stepped)"
    );
    assert_eq!(agreement.exit, qemu.exit);
    for deviation in &agreement.deviations {
        println!("{name}: known QEMU deviation, masked: {deviation}");
    }
    // On its own, pandare prints what QEMU printed, corrected where QEMU deviates.
    let expected =
        corrected(&qemu.output, &agreement.corrections).unwrap_or_else(|e| panic!("{name}: {e}"));
    let blocks = run_blocks(&program, &qemu).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&blocks.output),
        String::from_utf8_lossy(&expected),
        "{name}: debug-console output (block-cached run loop)"
    );
    assert_eq!(
        blocks.exit, qemu.exit,
        "{name}: exit (block-cached run loop)"
    );
    println!(
        "{name}: {} instructions and {} exceptions identical to QEMU",
        agreement.instructions, agreement.exceptions
    );
    // Passed: the log (megabytes) is not needed.
    let _ = std::fs::remove_dir_all(&program.dir);
}

#[test]
fn long_mode() {
    oracle("long_mode");
}

#[test]
fn protected_mode_32() {
    oracle("protected32");
}

/// The comparison can fail: a register changed in one of QEMU's logged states is reported
/// as the first divergence, with the register, both values and the instruction before it.
#[test]
fn a_planted_difference_is_reported() {
    let tools = match tools() {
        Ok(tools) => tools,
        Err(reason) => return pandare_test_support::unavailable(&format!("planted: {reason}")),
    };
    let program = build(&tools, "protected32").unwrap_or_else(|e| panic!("{e}"));
    let mut qemu = run_qemu(&tools, &program).unwrap_or_else(|e| panic!("{e}"));
    let steps: Vec<usize> = qemu
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, qemu_oracle::trace::Record::Step(_)))
        .map(|(i, _)| i)
        .collect();
    let victim = steps[steps.len() / 2];
    let qemu_oracle::trace::Record::Step(dump) = &mut qemu.records[victim] else {
        unreachable!()
    };
    dump.gpr[3] ^= 0x100;
    let report = match lockstep(&program, &qemu) {
        Ok(_) => panic!("a changed RBX in QEMU's log went unnoticed"),
        Err(report) => report,
    };
    assert!(
        report.contains("first divergence after instruction"),
        "{report}"
    );
    assert!(report.contains("RBX"), "{report}");
    assert!(report.contains("instructions before"), "{report}");
    let _ = std::fs::remove_dir_all(&program.dir);
}
