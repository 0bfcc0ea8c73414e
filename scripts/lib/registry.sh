# Sourced by scripts/test.sh: start a throwaway OCI registry on loopback for the pack tests
# that push and pull through a real registry (tests/e2e/packs_oci.rs), and stop it on exit.
# The registry is Debian's docker-registry (the CNCF Distribution registry), installed with apt
# when run as root. Sets OSPREY_TEST_REGISTRY (HOST:PORT), OSPREY_TEST_REGISTRY_STORAGE (its
# storage folder, where the tests tamper with a blob) and OSPREY_TEST_REGISTRY_AUTH
# (USER@HOST:PORT of a second registry that wants a sign-in), or explains why those tests
# skip; with CI set, a registry that cannot be started fails the run.

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

# The second registry's one user. A test credential, not a secret: the tests sign in with it
# (password osprey-test-password, in tests/e2e/packs_oci.rs), and the registry checks its
# bcrypt hash (cost 4).
REGISTRY_TEST_USER=osprey-test
REGISTRY_TEST_HTPASSWD='osprey-test:$2b$04$n9KOGpB2IfUpYWz6bqrPJOTkm22HR3Mw2hTBXISBt.q4VZgN8D/lW'

# Start a registry with its config in DIR, its storage in DIR/storage and EXTRA appended to
# its config, on a free loopback port: sets REGISTRY_TEST_PORT and adds its pid to
# REGISTRY_TEST_PIDS.
launch_registry() {
    local dir=$1 extra=$2 port attempt deadline pid
    mkdir -p "$dir"
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$extra
EOF
        docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
        pid=$!
        deadline=$((SECONDS + 30))
        # /v2/ answers 200, or 401 when the registry wants a sign-in: either way it is up.
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            case $(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null) in
            200 | 401)
                REGISTRY_TEST_PORT=$port
                REGISTRY_TEST_PIDS+=("$pid")
                return 0
                ;;
            esac
            sleep 0.2
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
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
    REGISTRY_TEST_PIDS=()
    add_exit_trap stop_test_registry
    if ! launch_registry "$REGISTRY_TEST_DIR/open" ""; then
        registry_unavailable "could not start docker-registry; see $REGISTRY_TEST_DIR/open/log"
        return
    fi
    local open_port=$REGISTRY_TEST_PORT
    echo "$REGISTRY_TEST_HTPASSWD" >"$REGISTRY_TEST_DIR/htpasswd"
    if ! launch_registry "$REGISTRY_TEST_DIR/auth" "auth:
  htpasswd:
    realm: osprey-test
    path: $REGISTRY_TEST_DIR/htpasswd"; then
        registry_unavailable "could not start docker-registry with a sign-in; see $REGISTRY_TEST_DIR/auth/log"
        return
    fi
    export OSPREY_TEST_REGISTRY="127.0.0.1:$open_port"
    export OSPREY_TEST_REGISTRY_STORAGE="$REGISTRY_TEST_DIR/open/storage"
    export OSPREY_TEST_REGISTRY_AUTH="$REGISTRY_TEST_USER@127.0.0.1:$REGISTRY_TEST_PORT"
    echo "registry: throwaway docker-registry on 127.0.0.1:$open_port, and one with a sign-in on 127.0.0.1:$REGISTRY_TEST_PORT"
}

stop_test_registry() {
    local pid
    for pid in "${REGISTRY_TEST_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
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
