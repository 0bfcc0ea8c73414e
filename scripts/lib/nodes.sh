# Sourced by the load scripts (scripts/bench-ingest.sh, scripts/bench-e2e.sh): the database they
# run on and the `osprey serve` nodes that share it, chosen by two variables:
#
#   DB=sqlite (the default)   one node on its own SQLite file
#   DB=postgres               a throwaway PostgreSQL server on loopback (scripts/lib/postgres.sh,
#                             which installs Debian's postgresql when missing and run as root)
#   NODES=N                   N `osprey serve` processes on that one database (default 1; more
#                             than one only with DB=postgres: SQLite is one process's file)
#   NODE_LOG=FILTER           each node logs with OSPREY_LOG=FILTER to its osprey.log (say
#                             osprey::store=debug,osprey::runs=debug: the group commits', triages'
#                             and claims' timings); otherwise warnings only, to the terminal
#
# PostgreSQL runs with fsync=off and synchronous_commit=on: a commit is written to the OS before
# the server answers, so a 2xx still means committed as far as a crash of the PostgreSQL or
# Osprey process goes, not of the OS: the durability of Osprey's SQLite (WAL with
# synchronous=NORMAL). (Unlike SQLite's, a crash of the OS may also corrupt the database with
# fsync off; that costs nothing here, the server is thrown away.)
#
# Each node has a data directory of its own (NODE_DIRS[i]) with the same master.key and plugins
# folder as the first, and they all read the same osprey.toml and playbooks folder (the caller's
# OSPREY_CONFIG and OSPREY_PLAYBOOKS_DIR), as README "Several nodes" says. The caller sets up
# through the first node's CLI (`node_cli`: tokens, rules, plugins, grants, secrets all go to the
# shared database), then calls `nodes_start`, and calls `nodes_stop` from its EXIT trap.

source "$(dirname "${BASH_SOURCE[0]}")/postgres.sh"

NODE_DIRS=()
NODE_URLS=()
NODE_PIDS=()

# nodes_init OSPREY DATA: check DB and NODES, start PostgreSQL if asked for, and lay out one data
# directory per node under DATA. Sets NODES_DB, NODES_COUNT, NODES_OSPREY and NODES_SUMMARY (what
# the scripts' header line says of the database and the nodes).
nodes_init() {
    NODES_OSPREY=$1
    local data=$2
    NODES_DB=${DB:-sqlite}
    NODES_COUNT=${NODES:-1}
    if ! [[ "$NODES_COUNT" =~ ^[1-9][0-9]*$ ]]; then
        echo "nodes: NODES must be a whole number of nodes, at least 1 (got '$NODES_COUNT')" >&2
        return 1
    fi
    case "$NODES_DB" in
        sqlite)
            if ((NODES_COUNT != 1)); then
                echo "nodes: NODES=$NODES_COUNT needs DB=postgres: several nodes share one PostgreSQL database, never a SQLite file" >&2
                return 1
            fi
            ;;
        postgres)
            # Always a server of our own, started with the settings above (not one named by the
            # environment for the tests, whose settings we do not know).
            unset OSPREY_TEST_POSTGRES_URL
            PG_TEST_NO_TRAP=1 \
                PG_TEST_OPTIONS="-c synchronous_commit=on -c max_connections=$((100 + 50 * NODES_COUNT))" \
                start_test_postgres >&2
            if [[ -z "${OSPREY_TEST_POSTGRES_URL:-}" ]]; then
                echo "nodes: DB=postgres, but no PostgreSQL server could be started (see above)" >&2
                return 1
            fi
            # Every `osprey` command (CLI and servers) of the caller uses it.
            export OSPREY_DATABASE_URL=$OSPREY_TEST_POSTGRES_URL
            ;;
        *)
            echo "nodes: DB must be sqlite or postgres (got '$NODES_DB')" >&2
            return 1
            ;;
    esac
    local i
    for ((i = 1; i <= NODES_COUNT; i++)); do
        NODE_DIRS+=("$data/node$i")
        mkdir -p "$data/node$i"
    done
    if [[ "$NODES_DB" == sqlite ]]; then
        NODES_SUMMARY="SQLite in ${NODE_DIRS[0]}, 1 node"
    else
        local version
        version=$("$PG_TEST_BIN/postgres" --version | awk '{print $3}')
        NODES_SUMMARY="PostgreSQL $version (fsync=off, synchronous_commit=on) on loopback, $NODES_COUNT node$( ((NODES_COUNT == 1)) || echo s)"
    fi
}

# node_cli ARGS...: the osprey CLI of the first node (set-up goes to the shared database).
node_cli() {
    "$NODES_OSPREY" --data-dir "${NODE_DIRS[0]}" "$@"
}

# nodes_start: start every node on a port of its own and wait until each is ready. The other
# nodes get copies of the first one's master.key and plugins folder, made now, after set-up.
nodes_start() {
    local i dir port
    for i in "${!NODE_DIRS[@]}"; do
        dir=${NODE_DIRS[$i]}
        if ((i > 0)); then
            cp -p "${NODE_DIRS[0]}/master.key" "$dir/master.key"
            if [[ -d "${NODE_DIRS[0]}/plugins" ]]; then
                cp -a "${NODE_DIRS[0]}/plugins" "$dir/plugins"
            fi
        fi
        # A port no other node took.
        while port=$((20000 + RANDOM % 20000)) && [[ " ${NODE_URLS[*]} " == *":$port "* ]]; do :; done
        # NODE_LOG=FILTER (an OSPREY_LOG filter) logs more, to each node's osprey.log.
        if [[ -n "${NODE_LOG:-}" ]]; then
            OSPREY_LOG="$NODE_LOG" "$NODES_OSPREY" --data-dir "$dir" serve --listen "127.0.0.1:$port" \
                >"$dir/osprey.log" 2>&1 &
        else
            OSPREY_LOG=warn "$NODES_OSPREY" --data-dir "$dir" serve --listen "127.0.0.1:$port" &
        fi
        NODE_PIDS+=($!)
        NODE_URLS+=("http://127.0.0.1:$port")
    done
    local deadline=$((SECONDS + 60))
    for i in "${!NODE_URLS[@]}"; do
        until curl -fsS "${NODE_URLS[$i]}/readyz" >/dev/null 2>&1; do
            if ! kill -0 "${NODE_PIDS[$i]}" 2>/dev/null; then
                echo "nodes: node $((i + 1)) (${NODE_URLS[$i]}) exited before it was ready" >&2
                return 1
            fi
            if ((SECONDS >= deadline)); then
                echo "nodes: node $((i + 1)) (${NODE_URLS[$i]}) was not ready within 60 s" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}

# nodes_alive: every node started is still running.
nodes_alive() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null || return 1
    done
}

# nodes_stop: stop every node, then PostgreSQL if it was started here. For the EXIT trap.
nodes_stop() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        # A killed process's status is not a failure of the script (set -e).
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
    stop_test_postgres
}

# node_metric NODE NAME: the value of the metric NAME (without labels) at node NODE (0-based).
node_metric() {
    curl -fsS "${NODE_URLS[$1]}/metrics" | awk -v m="$2" '$1 == m {print $2}'
}

# db_query SQL: run SQL on the nodes' database; rows on stdout, columns joined by `|`.
db_query() {
    if [[ "$NODES_DB" == sqlite ]]; then
        sqlite3 -cmd '.timeout 5000' "${NODE_DIRS[0]}/osprey.db" "$1"
    else
        "$PG_TEST_BIN/psql" -X -q -A -t -F '|' -v ON_ERROR_STOP=1 "$OSPREY_DATABASE_URL" -c "$1"
    fi
}

# db_json_text COLUMN FIELD: the SQL expression for the text of FIELD in the JSON held in COLUMN.
db_json_text() {
    if [[ "$NODES_DB" == sqlite ]]; then
        echo "json_extract($1, '\$.$2')"
    else
        echo "($1)::jsonb->>'$2'"
    fi
}
