#!/usr/bin/env bash
# Alert ingest throughput over real HTTP on loopback, driven by wrk (Debian's `wrk`, installed
# here when missing and running as root), against `osprey serve` built with the `profiling`
# profile (release with line tables, so `perf record -p <pid>` can run alongside) on SQLite (or
# PostgreSQL, with one or more nodes) with a dedup rule active, so pre-processing works while the
# load runs.
#
#   scripts/bench-ingest.sh [SECONDS]      (default 10 per case)
#   DB=postgres NODES=3 scripts/bench-ingest.sh   (a throwaway PostgreSQL, 3 `osprey serve` on it)
#   OSPREY_BIN=/path/to/osprey scripts/bench-ingest.sh   (an already built binary)
#   PROFILE=ndjson scripts/bench-ingest.sh   (perf record -g the server during that case, and
#                                             until its lag ends, into /tmp/perf-ndjson.data;
#                                             the first node's, with several)
#
# DB=sqlite (the default) or DB=postgres, NODES=N (default 1; N > 1 with PostgreSQL only): see
# scripts/lib/nodes.sh. PostgreSQL runs with fsync=off and synchronous_commit=on: a commit is
# written to the OS before it answers, the durability of Osprey's SQLite (WAL +
# synchronous=NORMAL: it survives a crash of the server process, not of the OS). With N nodes,
# each case runs one wrk per node at the same time, the threads and connections below divided
# between them, and adds up their requests and non-2xx answers; the lag is read from the first
# node's /metrics (osprey_alerts_undecided is read from the database: cluster-wide).
#
# Cases, in the same run:
#   floor   GET /healthz, one per request (what the HTTP stack alone does; the baseline)
#   single  POST /api/v1/alerts, one JSON alert per request, keep-alive
#   ndjson  POST /api/v1/alerts, 1,000 NDJSON alerts per request
# Every 2xx answer means the alerts are committed. For each case it prints requests/s, the
# alerts accepted per second (2xx only), the alerts DECIDED per second (dropped,
# deduplicated, linked or opened as incidents, committed: accepted alerts over the time from
# the start of the load to the last decision), the lag (from the end of the load to the last
# decision, read from /metrics' osprey_alerts_undecided), and the non-2xx answers (503s with
# Retry-After when pre-processing lags past intake.max_undecided are backpressure, and
# counted as such).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey/target}"
seconds="${1:-10}"

source scripts/lib/wrk.sh
source scripts/lib/nodes.sh
ensure_wrk

# OSPREY_BIN=path benchmarks that binary instead of building the profiling one.
if [[ -n "${OSPREY_BIN:-}" ]]; then
    osprey="$OSPREY_BIN"
else
    cargo build --profile profiling --locked --quiet -p osprey
    osprey="$CARGO_TARGET_DIR/profiling/osprey"
fi
data=$(mktemp -d /tmp/osprey-ingest.XXXXXX)
wrk_pids=()
cleanup() {
    local pid
    for pid in "${wrk_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    nodes_stop
    rm -rf "$data"
}
trap cleanup EXIT
nodes_init "$osprey" "$data"

export OSPREY_PLAYBOOKS_DIR="$data/playbooks"
mkdir -p "$OSPREY_PLAYBOOKS_DIR"
printf '[intake]\nmax_in_flight = 256\n' > "$data/osprey.toml"
export OSPREY_CONFIG="$data/osprey.toml"
token=$(node_cli token create bench --scope intake 2>/dev/null)
node_cli rules set by-source-ip --match 'alert.source == "fw"' --action dedup \
    --key 'alert.data.src' --window 1h >/dev/null
nodes_start

# One alert per request: 256 source IPs, so the dedup rule folds most into a few incidents.
cat > "$data/single.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format('{"source":"fw","title":"conn","src":"10.0.0.%d","dst_port":8333}', n % 256))
end
EOF
# 1,000 alerts per request.
for i in $(seq 0 999); do
    printf '{"source":"fw","title":"conn","src":"10.0.%d.%d","dst_port":8333}\n' $((i / 256)) $((i % 256))
done > "$data/ndjson.body"
cat > "$data/ndjson.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["Content-Type"] = "application/x-ndjson"
local f = io.open("$data/ndjson.body", "rb")
wrk.body = f:read("*a")
f:close()
EOF

# Two wrk threads in all, divided between the nodes (at least one each).
threads=$((2 / NODES_COUNT > 0 ? 2 / NODES_COUNT : 1))

# run_case NAME ALERTS_PER_REQUEST CONNECTIONS PATH [WRK ARGS...]: one wrk per node at once, on
# PATH of each, with CONNECTIONS divided between them.
run_case() {
    local name=$1 per_request=$2 connections=$3 path=$4; shift 4
    local rps=0 requests=0 non2xx=0 start end decided lag i out
    local per_node=$((connections / NODES_COUNT > threads ? connections / NODES_COUNT : threads))
    local perf_pid=""
    if [[ "${PROFILE:-}" == "$name" ]]; then
        perf record -F 499 -g -p "${NODE_PIDS[0]}" -o "${TMPDIR:-/tmp}/perf-$name.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    start=$(date +%s.%N)
    wrk_pids=()
    for i in "${!NODE_URLS[@]}"; do
        wrk -t"$threads" -c"$per_node" -d"${seconds}s" "$@" "${NODE_URLS[$i]}$path" >"$data/wrk-$name-$i.out" &
        wrk_pids+=($!)
    done
    for i in "${!wrk_pids[@]}"; do
        wait "${wrk_pids[$i]}" || { echo "bench-ingest: wrk against node $((i + 1)) failed" >&2; exit 1; }
    done
    wrk_pids=()
    end=$(date +%s.%N)
    for i in "${!NODE_URLS[@]}"; do
        out=$(<"$data/wrk-$name-$i.out")
        rps=$(awk -v a="$rps" '/^Requests\/sec/ {print a + $2}' <<<"$out")
        requests=$((requests + $(awk '/requests in/ {print $1}' <<<"$out")))
        non2xx=$((non2xx + $(awk '/Non-2xx/ {n = $5} END {print n + 0}' <<<"$out")))
    done
    if [[ "$per_request" == 0 ]]; then
        printf '%-7s %10.0f requests/s  non-2xx: %s\n' "$name" "$rps" "$non2xx"
        return
    fi
    # Every accepted alert decided: the end of this case's lag.
    while [[ "$(node_metric 0 osprey_alerts_undecided)" != "0" ]]; do
        sleep 0.05
    done
    decided=$(date +%s.%N)
    if [[ -n "$perf_pid" ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        echo "profile: perf report -i ${TMPDIR:-/tmp}/perf-$name.data --no-children"
    fi
    awk -v r="$requests" -v n="$non2xx" -v p="$per_request" -v s="$start" -v e="$end" -v d="$decided" \
        -v name="$name" -v rps="$rps" 'BEGIN {
        accepted = (r - n) * p
        printf "%-7s %10.0f requests/s  accepted %9.0f alerts/s  decided %9.0f alerts/s  lag %5.2f s  (%d alerts; non-2xx: %d)\n",
            name, rps, accepted / (e - s), accepted / (d - s), d - e, accepted, n
    }'
}

echo "bench-ingest: ${seconds}s per case, wrk -t2 (-t$threads per node), profiling build (release + line tables), $NODES_SUMMARY"
run_case floor 0 64 /healthz
run_case single 1 64 /api/v1/alerts -s "$data/single.lua"
run_case ndjson 1000 16 /api/v1/alerts -s "$data/ndjson.lua"
throttled=0
for i in "${!NODE_URLS[@]}"; do
    throttled=$((throttled + $(node_metric "$i" osprey_intake_throttled_total)))
done
echo "throttled (503 while pre-processing lagged): $throttled requests"
echo "budgets: ndjson >= 100,000 alerts/s accepted and decided, lag <= 2 s; single >= 20,000 alerts/s, lag <= 2 s"
