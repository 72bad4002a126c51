#!/usr/bin/env bash
# Rebuilds the committed seed corpus in fuzz/corpus/ from the assembly sources beside this
# script: fuzz/corpus-src/<target>/<name>.S becomes fuzz/corpus/<target>/<name>.bin, a raw
# binary (objcopy -O binary) of its .text, linked at 0x8000_0000. Needs GNU binutils for riscv64
# (Debian: apt-get install binutils-riscv64-linux-gnu).
#
# Only the .bin files named after a source are rewritten; files that libFuzzer or a person
# added to fuzz/corpus/ without a source (regressions found by fuzzing) are left alone.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
corpus="$here/../corpus"
prefix="${RISCV_PREFIX:-riscv64-linux-gnu-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

for target in decode bare_metal; do
    mkdir -p "$corpus/$target"
    for source in "$here/$target"/*.S; do
        name="$(basename "$source" .S)"
        "${prefix}as" -march=rv64gc -mabi=lp64d -I "$here" -o "$work/$name.o" "$source"
        # Linked at the start of RAM, where the bare-metal machine loads a program.
        "${prefix}ld" -nostdlib --no-relax -Ttext=0x80000000 -e 0x80000000 \
            -o "$work/$name.elf" "$work/$name.o"
        "${prefix}objcopy" -O binary --only-section=.text "$work/$name.elf" "$corpus/$target/$name.bin"
    done
done
ls -l "$corpus"/decode "$corpus"/bare_metal | awk 'NR > 1 && $5 > 8192 { print "large corpus file:", $9 }'
echo "corpus rebuilt: $(ls "$corpus/decode" | wc -l) decode, $(ls "$corpus/bare_metal" | wc -l) bare_metal files"
