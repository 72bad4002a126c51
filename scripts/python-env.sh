#!/usr/bin/env bash
# Creates .venv/ at the repository root (if missing) and installs the Python package
# `pandare` into it with maturin (from PyPI). Idempotent; a rebuild is incremental.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        # Debian's python3 lacks venv/ensurepip until python3-venv is installed.
        rm -rf .venv
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
        "$PYTHON" -m venv .venv
    fi
fi
.venv/bin/python -m pip install --quiet --upgrade 'maturin>=1.9,<2'
.venv/bin/maturin develop --release --quiet -m crates/python/Cargo.toml
.venv/bin/python -c 'import pandare; print("pandare installed in .venv:", pandare.__file__)'
