# Sourced by scripts/build-plugins.sh (or run on its own): make sure componentize-py is there,
# the PyPI tool that builds the Python plugins (plugins/sdk-python, plugins/virustotal,
# plugins/testing/echo-py) into WebAssembly components. Installs the pinned version with pip
# into its own virtualenv, ~/.cache/osprey/componentize-py (so the system's Python is left
# alone), only when that venv lacks it; as root on Debian, installs python3-venv first if it
# is missing. Exports OSPREY_COMPONENTIZE_PY, the binary to run.

COMPONENTIZE_PY_VERSION=0.25.1

ensure_componentize_py() {
    local venv="${OSPREY_COMPONENTIZE_PY_VENV:-$HOME/.cache/osprey/componentize-py}"
    local bin="$venv/bin/componentize-py"
    # pip's output is read whole before it is matched (grep -q would close the pipe early).
    local shown=""
    if [[ -x "$bin" ]]; then
        shown=$("$venv/bin/python" -m pip show componentize-py 2>/dev/null || true)
    fi
    if grep -qx "Version: ${COMPONENTIZE_PY_VERSION}" <<<"$shown"; then
        export OSPREY_COMPONENTIZE_PY="$bin"
        return 0
    fi
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "componentize-py: installing Debian's python3 and python3-venv (to build the Python plugins)"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
        else
            echo "componentize-py: python3 with venv is required to build the Python plugins; install them" >&2
            return 1
        fi
    fi
    echo "componentize-py: installing componentize-py ${COMPONENTIZE_PY_VERSION} into ${venv}"
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install --quiet \
        "componentize-py==${COMPONENTIZE_PY_VERSION}"
    "$bin" --version
    export OSPREY_COMPONENTIZE_PY="$bin"
}

# The Python SDK's and Python plugins' unit tests, on this machine's Python, with the bindings
# of the contract `$1` (a wit/ folder) generated into a temporary folder: their imports are
# stubs there, so the tests cover what does not call the host.
test_python_plugins() {
    local wit=$1 bindings
    ensure_componentize_py
    bindings=$(mktemp -d)
    "$OSPREY_COMPONENTIZE_PY" -d "$wit" -w integration bindings "$bindings" >/dev/null
    local status=0
    PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$bindings:plugins/sdk-python" \
        "$(dirname "$OSPREY_COMPONENTIZE_PY")/python" -m unittest discover -s plugins/sdk-python/tests || status=1
    for tests in plugins/*/tests plugins/testing/*/tests; do
        [[ -f "$(dirname "$tests")/app.py" ]] || continue
        PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$bindings:plugins/sdk-python:$(dirname "$tests")" \
            "$(dirname "$OSPREY_COMPONENTIZE_PY")/python" -m unittest discover -s "$tests" || status=1
    done
    rm -rf "$bindings"
    return $status
}

# Run on its own (`bash scripts/lib/componentize_py.sh`): install.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    ensure_componentize_py
fi
