#!/usr/bin/env bash
# Installs the tools the test suite needs, from Debian's packages: QEMU 10
# (qemu-system-riscv64 from bookworm-backports) for differential tests and boot
# comparisons, QEMU's user-mode emulators (qemu-riscv64, qemu-x86_64, Debian's qemu-user)
# for `panda exec`'s tests, riscv64 binutils to assemble the test programs, QEMU 10's
# qemu-system-x86_64 as the x86 system-level oracle, and gcc-multilib and musl-tools to
# build the static x86_64 and i386 test programs (glibc and musl) that run natively and
# under `panda exec`.
# Idempotent and quiet: when everything is already there it only checks versions.
set -euo pipefail

say() { printf 'install-test-tools: %s\n' "$*" >&2; }
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

# QEMU 10.0 or later (bookworm itself only has 7.2, which lacks CPU properties we use).
qemu_ok() {
    command -v qemu-system-riscv64 >/dev/null 2>&1 &&
        qemu-system-riscv64 --version 2>/dev/null |
        awk 'NR == 1 { split($4, v, "."); exit !(v[1] + 0 >= 10) }'
}
qemu_user_ok() {
    command -v qemu-riscv64 >/dev/null 2>&1 && command -v qemu-x86_64 >/dev/null 2>&1
}
qemu_x86_ok() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 &&
        qemu-system-x86_64 --version 2>/dev/null |
        awk 'NR == 1 { split($4, v, "."); exit !(v[1] + 0 >= 10) }'
}
c_ok() {
    command -v musl-gcc >/dev/null 2>&1 &&
        [ -e /usr/lib/gcc/x86_64-linux-gnu/12/32/libgcc.a ] &&
        [ -e /usr/lib32/libc.a ]
}
binutils_ok() {
    command -v riscv64-linux-gnu-as >/dev/null 2>&1 &&
        command -v riscv64-linux-gnu-ld >/dev/null 2>&1 &&
        command -v riscv64-linux-gnu-objcopy >/dev/null 2>&1
}

if qemu_ok && qemu_user_ok && qemu_x86_ok && binutils_ok && c_ok; then
    exit 0
fi

packages=()
binutils_ok || packages+=(binutils-riscv64-linux-gnu)
qemu_user_ok || packages+=(qemu-user)
c_ok || packages+=(gcc-multilib musl-tools)
if ! qemu_ok || ! qemu_user_ok || ! qemu_x86_ok; then
    qemu_ok || packages+=(qemu-system-misc)
    qemu_x86_ok || packages+=(qemu-system-x86)
    # Add bookworm-backports, reusing the mirror and keyring of the host's own Debian
    # suite (never a host name written here).
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        host=/etc/apt/sources.list.d/debian.sources
        uris= signed_by=
        if [ -r "$host" ]; then
            # The first stanza that is not the security suite.
            read -r uris signed_by < <(awk '
                /^[[:space:]]*$/ { if (u != "" && !sec) { print u, s; done = 1; exit } u = ""; s = ""; sec = 0; next }
                /^URIs:/ { u = $2 }
                /^Signed-By:/ { s = $2 }
                /^Suites:/ && /security/ { sec = 1 }
                END { if (!done && u != "" && !sec) print u, s }' "$host") || true
        fi
        if [ -z "$uris" ] && [ -r /etc/apt/sources.list ]; then
            uris=$(awk '$1 == "deb" && $0 !~ /security/ {
                for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
            signed_by=$(awk '$1 == "deb" && $0 !~ /security/ && match($0, /signed-by=[^] ]+/) {
                print substr($0, RSTART + 10, RLENGTH - 10); exit }' /etc/apt/sources.list)
        fi
        if [ -z "$uris" ]; then
            say "cannot find the host's Debian mirror in /etc/apt/sources.list(.d); add bookworm-backports yourself"
            exit 1
        fi
        [ -n "$signed_by" ] || signed_by=/usr/share/keyrings/debian-archive-keyring.gpg
        say "adding the bookworm-backports suite for QEMU 10"
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
            "$uris" "$signed_by" | $SUDO tee /etc/apt/sources.list.d/pandare-backports.sources >/dev/null
    fi
fi

say "installing ${packages[*]}"
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports "${packages[@]}" >/dev/null
qemu_ok || { say "QEMU 10 did not install; the differential tests will skip"; exit 1; }
qemu_user_ok || { say "qemu-user did not install; the panda exec comparisons will skip"; exit 1; }
binutils_ok || { say "riscv64 binutils did not install; the differential tests will skip"; exit 1; }
qemu_x86_ok || { say "qemu-system-x86_64 10 did not install; the x86 system oracle tests will skip"; exit 1; }
c_ok || { say "gcc-multilib or musl-tools did not install; the x86 program tests will skip"; exit 1; }
