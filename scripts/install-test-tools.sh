#!/usr/bin/env bash
# Installs the tools the test suite needs, from Debian's packages: QEMU 10
# (qemu-system-riscv64, from bookworm-backports) for differential tests and boot
# comparisons, and riscv64 binutils to assemble test programs. Idempotent and quiet.
set -euo pipefail

say() { printf 'install-test-tools: %s\n' "$*" >&2; }
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

qemu_ok() {
    command -v qemu-system-riscv64 >/dev/null 2>&1 &&
        qemu-system-riscv64 --version | grep -qE 'version (9|1[0-9])\.'
}
binutils_ok() { command -v riscv64-linux-gnu-as >/dev/null 2>&1; }

if qemu_ok && binutils_ok; then
    exit 0
fi

if ! qemu_ok; then
    # bookworm itself has QEMU 7.2; 10.0 comes from bookworm-backports. Add that suite,
    # reusing the mirror and keyring the host already trusts.
    list=/etc/apt/sources.list.d/pandare-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        uris=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        if [ -z "$uris" ]; then
            uris=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)
        fi
        if [ -z "$uris" ]; then
            say "cannot find the host's Debian mirror in /etc/apt/sources.list(.d); add bookworm-backports yourself"
            exit 1
        fi
        say "adding bookworm-backports ($uris) for QEMU 10"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uris" |
            $SUDO tee "$list" >/dev/null
    fi
fi

say "installing qemu-system-misc (bookworm-backports) and binutils-riscv64-linux-gnu"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports qemu-system-misc binutils-riscv64-linux-gnu >/dev/null
qemu_ok || { say "QEMU 9+ did not install; differential tests will skip"; exit 1; }
