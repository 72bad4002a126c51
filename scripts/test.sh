#!/usr/bin/env bash
# The README's second command: the whole test suite. Installs the test tools (QEMU 10 and
# riscv64 binutils from Debian) and the generic image first, so nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

panda="${CARGO_TARGET_DIR:-target}/release/panda"

step() { printf '\n== %s\n' "$*" >&2; }

step "test tools (QEMU, riscv64 binutils)"
bash scripts/install-test-tools.sh

step "formatting"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked --quiet -- -D warnings

step "build (release)"
cargo build --release --locked --quiet

step "generic image"
"$panda" image build riscv64

step "tests"
cargo test --workspace --release --locked 2>&1

step "Python package (pandare, in .venv) and its tests"
bash scripts/python-env.sh
.venv/bin/pip install --quiet pytest
.venv/bin/python -m pytest -q crates/python/tests
