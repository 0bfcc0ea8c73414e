#!/usr/bin/env bash
# Alert ingest throughput over real HTTP on loopback, driven by wrk (Debian's `wrk`, installed
# here when missing and running as root), against `osprey serve` built with the `profiling`
# profile (release with line tables, so `perf record -p <pid>` can run alongside) on SQLite with
# a dedup rule active, so pre-processing works while the load runs.
#
#   scripts/bench-ingest.sh [SECONDS]      (default 10 per case)
#   OSPREY_BIN=/path/to/osprey scripts/bench-ingest.sh   (an already built binary)
#   PROFILE=ndjson scripts/bench-ingest.sh   (perf record -g the server during that case, and
#                                             until its lag ends, into /tmp/perf-ndjson.data)
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
ensure_wrk

# OSPREY_BIN=path benchmarks that binary instead of building the profiling one.
if [[ -n "${OSPREY_BIN:-}" ]]; then
    osprey="$OSPREY_BIN"
else
    cargo build --profile profiling --locked --quiet -p osprey
    osprey="$CARGO_TARGET_DIR/profiling/osprey"
fi
data=$(mktemp -d /tmp/osprey-ingest.XXXXXX)
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap cleanup EXIT

export OSPREY_PLAYBOOKS_DIR="$data/playbooks"
mkdir -p "$OSPREY_PLAYBOOKS_DIR"
printf '[intake]\nmax_in_flight = 256\n' > "$data/osprey.toml"
export OSPREY_CONFIG="$data/osprey.toml"
token=$("$osprey" --data-dir "$data" token create bench --scope intake 2>/dev/null)
"$osprey" --data-dir "$data" rules set by-source-ip --match 'alert.source == "fw"' --action dedup \
    --key 'alert.data.src' --window 1h >/dev/null

port=$((20000 + RANDOM % 20000))
OSPREY_LOG=warn "$osprey" --data-dir "$data" serve --listen "127.0.0.1:$port" &
server_pid=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done

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

metric() {
    curl -fsS "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'
}

run_case() {
    local name=$1 per_request=$2 connections=$3; shift 3
    local out rps requests non2xx start end decided lag
    local perf_pid=""
    if [[ "${PROFILE:-}" == "$name" ]]; then
        perf record -F 499 -g -p "$server_pid" -o "${TMPDIR:-/tmp}/perf-$name.data" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    start=$(date +%s.%N)
    out=$(wrk -t2 -c"$connections" -d"${seconds}s" "$@")
    end=$(date +%s.%N)
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    non2xx=${non2xx:-0}
    if [[ "$per_request" == 0 ]]; then
        printf '%-7s %10.0f requests/s  non-2xx: %s\n' "$name" "$rps" "$non2xx"
        return
    fi
    # Every accepted alert decided: the end of this case's lag.
    while [[ "$(metric osprey_alerts_undecided)" != "0" ]]; do
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

echo "bench-ingest: ${seconds}s per case, wrk -t2, profiling build (release + line tables), SQLite in $data"
run_case floor 0 64 "http://127.0.0.1:$port/healthz"
run_case single 1 64 -s "$data/single.lua" "http://127.0.0.1:$port/api/v1/alerts"
run_case ndjson 1000 16 -s "$data/ndjson.lua" "http://127.0.0.1:$port/api/v1/alerts"
echo "throttled (503 while pre-processing lagged): $(metric osprey_intake_throttled_total) requests"
echo "budgets: ndjson >= 100,000 alerts/s accepted and decided, lag <= 2 s; single >= 20,000 alerts/s, lag <= 2 s"
