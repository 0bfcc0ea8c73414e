# Sourced by scripts/test.sh (or run on its own): make sure schemathesis is there, the API
# fuzzer that tests/e2e/schemathesis.rs runs against a real server and its OpenAPI document.
# Installs the pinned version with pip into its own virtualenv, ~/.cache/osprey/schemathesis
# (so the system's Python is left alone), only when that venv lacks it; as root on Debian,
# installs python3-venv first if it is missing. Exports OSPREY_SCHEMATHESIS, the binary the
# test runs (the test looks in the same place when it is not set).

SCHEMATHESIS_VERSION=4.32.5

ensure_schemathesis() {
    local venv="${OSPREY_SCHEMATHESIS_VENV:-$HOME/.cache/osprey/schemathesis}"
    local bin="$venv/bin/schemathesis"
    if [[ -x "$bin" ]] && "$venv/bin/python" -m pip show schemathesis 2>/dev/null \
        | grep -qx "Version: ${SCHEMATHESIS_VERSION}"; then
        export OSPREY_SCHEMATHESIS="$bin"
        return 0
    fi
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "schemathesis: installing Debian's python3 and python3-venv (for the API fuzzing test)"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
        else
            echo "schemathesis: python3 with venv is required for the API fuzzing test; install them" >&2
            return 1
        fi
    fi
    echo "schemathesis: installing schemathesis ${SCHEMATHESIS_VERSION} into ${venv}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet \
        "schemathesis==${SCHEMATHESIS_VERSION}"
    "$bin" --version
    export OSPREY_SCHEMATHESIS="$bin"
}

# Run on its own (`bash scripts/lib/schemathesis.sh`): install.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    ensure_schemathesis
fi
