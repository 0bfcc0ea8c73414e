# Sourced by scripts/test.sh: start a throwaway PostgreSQL server on loopback for the store's
# PostgreSQL tests, and stop it on exit. Sets OSPREY_TEST_POSTGRES_URL, or explains why the
# PostgreSQL half is skipped. Also by scripts/lib/nodes.sh (the load scripts), with two knobs:
#   PG_TEST_OPTIONS="-c name=value ..."   server settings over the tests' (the last one wins)
#   PG_TEST_NO_TRAP=1                     no EXIT trap here: the caller calls stop_test_postgres

find_pg_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

start_test_postgres() {
    if [[ -n "${OSPREY_TEST_POSTGRES_URL:-}" ]]; then
        echo "postgres: using OSPREY_TEST_POSTGRES_URL from the environment"
        return 0
    fi
    local bin
    if ! bin=$(find_pg_bin); then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "postgres: installing Debian's postgresql"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
            bin=$(find_pg_bin)
        elif [[ -n "${CI:-}" ]]; then
            # In CI the PostgreSQL half must run: a pass without it would prove nothing.
            echo "postgres: PostgreSQL is not installed and this script can only install it when run" \
                 "as root on Debian; CI is set, so the tests cannot pass without it" >&2
            return 1
        else
            echo "postgres: SKIPPING the PostgreSQL half of the store tests: PostgreSQL is not installed" \
                 "and this script can only install it when run as root on Debian (with CI set, this fails)." >&2
            return 0
        fi
    fi

    PG_TEST_DIR=$(mktemp -d /tmp/osprey-pg.XXXXXX)
    local run=()
    if [[ $(id -u) -eq 0 ]]; then
        # PostgreSQL refuses to run as root: run it as the postgres user.
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_TEST_DIR"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bin/initdb" -D "$PG_TEST_DIR/data" -U postgres --auth=trust >/dev/null
    local port attempt
    for attempt in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        if "${run[@]}" "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/log" -w -t 30 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TEST_DIR -c fsync=off -c synchronous_commit=off -c max_connections=200 ${PG_TEST_OPTIONS:-}" \
            start >/dev/null; then
            PG_TEST_BIN=$bin
            PG_TEST_RUN=("${run[@]}")
            export OSPREY_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
            echo "postgres: throwaway server on 127.0.0.1:$port"
            [[ -n "${PG_TEST_NO_TRAP:-}" ]] || trap stop_test_postgres EXIT
            return 0
        fi
    done
    echo "postgres: could not start a server; see $PG_TEST_DIR/log" >&2
    return 1
}

stop_test_postgres() {
    if [[ -n "${PG_TEST_DIR:-}" ]]; then
        "${PG_TEST_RUN[@]}" "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_TEST_DIR"
    fi
}
