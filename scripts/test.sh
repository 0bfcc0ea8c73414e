#!/usr/bin/env bash
# Run every test, from a fresh machine: installs the wasm target, builds the plugins, starts a
# throwaway PostgreSQL on loopback (installing Debian's postgresql when run as root), installs
# the mail tests' SMTP server (Python's aiosmtpd), the browser tests' headless Chromium and
# chromedriver (Debian's chromium, chromium-driver), the audit tests' minisign (Debian's
# minisign), a throwaway OCI registry on loopback for the pack tests (Debian's docker-registry)
# and the API fuzzing test's schemathesis (in a virtualenv under ~/.cache/osprey)
# if missing, then runs the plugins' unit tests (on the host target) and the unit and
# end-to-end tests against SQLite and PostgreSQL (the end-to-end suite runs twice: its servers
# on SQLite files, then each test on a fresh PostgreSQL database). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse one build directory outside the clone between runs (a cold build still works).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey/target}"

bash scripts/setup.sh
bash scripts/build-plugins.sh

# The plugins ship for wasm32-wasip2 only, but their pure parts (the SDK, reading vendor
# answers, building requests) are tested on this machine's own target: wit-bindgen's imports
# compile there to stubs that are never called.
echo "test: plugin unit tests (SDK and connectors, on the host target)"
host_target=$(rustc -vV | sed -n 's/^host: //p')
(cd plugins && CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" \
    cargo test --locked --target "$host_target" -p osprey-sdk -p ipinfo -p autofocus -p unifi -p bonusly -p servicenow -p msgraph -p slack -p aws-ec2 -p probe)
echo "test: Python SDK and Python plugin unit tests"
source scripts/lib/componentize_py.sh
test_python_plugins "$(bash scripts/build-plugins.sh --python-wit)"

source scripts/lib/postgres.sh
start_test_postgres
source scripts/lib/smtp.sh
ensure_smtp_sink
source scripts/lib/browser.sh
ensure_browser
source scripts/lib/minisign.sh
ensure_minisign
source scripts/lib/registry.sh
start_test_registry
source scripts/lib/schemathesis.sh
ensure_schemathesis

echo "test: cargo test (host library, CLI and end-to-end tests)"
cargo test --workspace --locked "$@"

# The whole end-to-end suite again with every server and command on PostgreSQL: each test's
# `Cli`/`TestHost` makes a fresh database on the throwaway server (tests/e2e/support/postgres.rs).
# Without PostgreSQL, start_test_postgres has failed already in CI, and said it skips here.
if [[ -n "${OSPREY_TEST_POSTGRES_URL:-}" ]]; then
    echo "test: the end-to-end tests again, on PostgreSQL"
    OSPREY_E2E_POSTGRES_URL="$OSPREY_TEST_POSTGRES_URL" cargo test --locked -p osprey --test e2e "$@"
fi
