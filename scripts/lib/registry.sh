# Sourced by scripts/test.sh: start a throwaway OCI registry on loopback for the pack tests
# that push and pull through a real registry (tests/e2e/packs_oci.rs), and stop it on exit.
# The registry is Debian's docker-registry (the CNCF Distribution registry), installed with apt
# when run as root. Sets OSPREY_TEST_REGISTRY (HOST:PORT) and OSPREY_TEST_REGISTRY_STORAGE (its
# storage folder, where the tests tamper with a blob), or explains why those tests skip; with
# CI set, a registry that cannot be started fails the run.

registry_unavailable() {
    if [[ -n "${CI:-}" ]]; then
        # In CI the registry tests must run: a pass without them would prove nothing.
        echo "registry: $1; CI is set, so the tests cannot pass without it" >&2
        return 1
    fi
    echo "registry: SKIPPING the OCI registry tests: $1 (with CI set, this fails)." >&2
    return 0
}

ensure_registry() {
    if command -v docker-registry >/dev/null 2>&1; then
        return 0
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "registry: installing Debian's docker-registry (for the OCI pack tests)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # The package's service is not wanted: the tests start their own registry.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
        command -v docker-registry >/dev/null 2>&1
        return
    fi
    return 1
}

start_test_registry() {
    if [[ -n "${OSPREY_TEST_REGISTRY:-}" ]]; then
        echo "registry: using OSPREY_TEST_REGISTRY from the environment"
        return 0
    fi
    if ! ensure_registry; then
        registry_unavailable "docker-registry is not installed and this script can only install it when run as root on Debian"
        return
    fi
    REGISTRY_TEST_DIR=$(mktemp -d /tmp/osprey-registry.XXXXXX)
    local port attempt deadline
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        cat >"$REGISTRY_TEST_DIR/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $REGISTRY_TEST_DIR/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
        docker-registry serve "$REGISTRY_TEST_DIR/config.yml" >"$REGISTRY_TEST_DIR/log" 2>&1 &
        REGISTRY_TEST_PID=$!
        deadline=$((SECONDS + 30))
        while kill -0 "$REGISTRY_TEST_PID" 2>/dev/null && ((SECONDS < deadline)); do
            if curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null; then
                export OSPREY_TEST_REGISTRY="127.0.0.1:$port"
                export OSPREY_TEST_REGISTRY_STORAGE="$REGISTRY_TEST_DIR/storage"
                echo "registry: throwaway docker-registry on 127.0.0.1:$port"
                add_exit_trap stop_test_registry
                return 0
            fi
            sleep 0.2
        done
        kill "$REGISTRY_TEST_PID" 2>/dev/null || true
        wait "$REGISTRY_TEST_PID" 2>/dev/null || true
    done
    registry_unavailable "could not start docker-registry; see $REGISTRY_TEST_DIR/log"
}

stop_test_registry() {
    if [[ -n "${REGISTRY_TEST_PID:-}" ]]; then
        kill "$REGISTRY_TEST_PID" 2>/dev/null || true
        wait "$REGISTRY_TEST_PID" 2>/dev/null || true
    fi
    if [[ -n "${REGISTRY_TEST_DIR:-}" ]]; then
        rm -rf "$REGISTRY_TEST_DIR"
    fi
}

# Run COMMAND on exit too, after whatever already runs then (postgres.sh's trap).
add_exit_trap() {
    local previous
    previous=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
    trap "$1${previous:+; $previous}" EXIT
}
