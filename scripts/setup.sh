#!/usr/bin/env bash
# Install what building Osprey needs on a fresh machine: the pinned Rust toolchain with the
# wasm32-wasip2 target. Safe to run again; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v rustup >/dev/null 2>&1; then
    echo "setup: rustup is required (https://rustup.rs); it is not on PATH" >&2
    exit 1
fi

# A C compiler, for the crates that build C (ring, the bundled SQLite).
if ! command -v cc >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing a C compiler (Debian's gcc)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null
    else
        echo "setup: a C compiler (cc) is required; install gcc" >&2
        exit 1
    fi
fi

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
# rustup does not install targets by itself here (RUSTUP_AUTO_INSTALL=0): ask explicitly.
if ! rustup toolchain list | grep -q "^${toolchain}"; then
    echo "setup: installing Rust ${toolchain}"
    rustup toolchain install "${toolchain}" --profile minimal
fi
if ! rustup target list --installed --toolchain "${toolchain}" | grep -qx wasm32-wasip2; then
    echo "setup: adding the wasm32-wasip2 target to Rust ${toolchain}"
    rustup target add wasm32-wasip2 --toolchain "${toolchain}"
fi
