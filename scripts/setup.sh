#!/usr/bin/env bash
# The README's first command: install what pandare needs on a Debian 12 machine, build it,
# build the riscv64 generic image from Debian's packages, and boot it to run `uname -a`.
set -euo pipefail
cd "$(dirname "$0")/.."

panda="${CARGO_TARGET_DIR:-target}/release/panda"

say() { printf 'setup: %s\n' "$*" >&2; }

need_packages=()
for package in ca-certificates debian-archive-keyring gcc libc6-dev pkg-config; do
    dpkg -s "$package" >/dev/null 2>&1 || need_packages+=("$package")
done
if ((${#need_packages[@]})); then
    say "installing ${need_packages[*]}"
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is missing: install the Rust toolchain named in rust-toolchain.toml (rustup), then run this again"
    exit 1
fi

say "building pandare (release)"
cargo build --release --locked --quiet

say "building the riscv64 generic image (Debian's kernel and busybox, cached after the first time)"
"$panda" image build riscv64

say "booting riscv64 and running: uname -a"
"$panda" run --generic riscv64 --cmd 'uname -a'

say "installing the Python package pandare into .venv (import it with .venv/bin/python)"
bash scripts/python-env.sh
