#!/usr/bin/env bash
# Alert in, automation done: the whole path through the real binary. An alert about an IP is
# posted to `osprey serve` (SQLite, or PostgreSQL with one or more nodes; the `profiling`
# build: release with line tables, so `perf record -p <pid>` can run alongside), a rule opens
# an incident for it, the incident
# starts a playbook that looks the IP up with the bundled ipinfo plugin against a fake ipinfo
# on loopback, and the run completes with the answer as its output (the lookup journaled
# before the script sees it, as always).
#
#   scripts/bench-e2e.sh [ALERTS [RATE [SECONDS]]]     (defaults 10000, 1000, 10)
#   OSPREY_BIN=/path/to/osprey scripts/bench-e2e.sh     (an already built binary)
#   E2E_TIMEOUT=600 scripts/bench-e2e.sh                (seconds a phase may take to finish)
#   E2E_KEEP=1 scripts/bench-e2e.sh                     (keep the data directory to look at)
#   DB=postgres NODES=3 scripts/bench-e2e.sh            (a throwaway PostgreSQL, 3 nodes on it)
#   E2E_CONFIG=$'[runs]\nworkers = 128' scripts/bench-e2e.sh   (more lines for osprey.toml)
#
# DB=sqlite (the default) or DB=postgres, NODES=N (default 1; N > 1 with PostgreSQL only): see
# scripts/lib/nodes.sh. PostgreSQL runs with fsync=off and synchronous_commit=on: a commit is
# written to the OS before it answers, the durability of Osprey's SQLite (WAL +
# synchronous=NORMAL: it survives a crash of the server process, not of the OS). With N nodes the
# sender spreads its requests over them round-robin; alerts decided, runs and latencies are read
# from the shared database, so they count the whole cluster's work.
#
# In one run, against one server (or cluster):
#   vendor   the fake ipinfo's own capacity: wrk -t2 -c64 for SECONDS, one lookup per request,
#            keep-alive (the baseline)
#   ndjson   ALERTS alerts in NDJSON bodies of 1,000, as fast as answered
#   single   ALERTS alerts, one per request, 64 keep-alive connections, as fast as answered
#   paced    RATE alerts/s for SECONDS, one per request, on a fixed clock
# ndjson and single report automations/s = runs completed / (first alert sent → last run
# completed) and the ratio to the vendor's requests/s; paced reports alert-to-done latency
# (the run's finished_at minus the alert's received_at, both read from the store, in ms)
# p50 and p99, and the alerts whose automation did not complete. Each phase starts once the
# last one has finished. The last line gives the servers' CPU time per automation. The fake vendor and the alert sender are `host/examples/bench_e2e`,
# built in the dev profile (it shares the e2e tests' build; the fake serves tens of
# thousands of lookups a second even so, which the vendor line shows).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey/target}"
alerts="${1:-10000}"
rate="${2:-1000}"
seconds="${3:-10}"
timeout="${E2E_TIMEOUT:-300}"
vendor_token=tok_bench_e2e

source scripts/lib/wrk.sh
source scripts/lib/nodes.sh
ensure_wrk
if [[ "${DB:-sqlite}" == sqlite ]] && ! command -v sqlite3 >/dev/null; then
    echo "bench-e2e: the sqlite3 tool reads the results from the store (apt-get install sqlite3)" >&2
    exit 1
fi

bash scripts/build-plugins.sh >/dev/null
if [[ -n "${OSPREY_BIN:-}" ]]; then
    osprey="$OSPREY_BIN"
else
    cargo build --profile profiling --locked --quiet -p osprey
    osprey="$CARGO_TARGET_DIR/profiling/osprey"
fi
build="${OSPREY_BIN:+$OSPREY_BIN}"
build="${build:-profiling build (release + line tables)}"
cargo build --locked --quiet -p osprey --example bench_e2e
tool="$CARGO_TARGET_DIR/debug/examples/bench_e2e"

data=$(mktemp -d /tmp/osprey-e2e.XXXXXX)
vendor_pid=""
cleanup() {
    nodes_stop
    if [[ -n "$vendor_pid" ]]; then
        # A killed process's status is not a failure of the script (set -e).
        kill "$vendor_pid" 2>/dev/null || true
        wait "$vendor_pid" 2>/dev/null || true
    fi
    if [[ -n "${E2E_KEEP:-}" ]]; then
        echo "bench-e2e: kept $data" >&2
    else
        rm -rf "$data"
    fi
}
trap cleanup EXIT
nodes_init "$osprey" "$data"

# wait_for WHAT SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds (and the
# servers, once started, are still there).
wait_for() {
    local what=$1 limit=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ! nodes_alive; then
            echo "bench-e2e: a server exited while waiting for $what" >&2
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            echo "bench-e2e: $what did not happen within ${limit}s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# The fake vendor, on a free port it prints.
"$tool" vendor --token "$vendor_token" >"$data/vendor.url" &
vendor_pid=$!
wait_for "the fake vendor's start" 30 test -s "$data/vendor.url"
vendor=$(cat "$data/vendor.url")

# The playbook, the rule, the plugin pointed at the fake (its cache off: every run is one
# lookup at the vendor) and granted exactly that address.
export OSPREY_PLAYBOOKS_DIR="$data/playbooks"
mkdir -p "$OSPREY_PLAYBOOKS_DIR/bench-enrich"
cat >"$OSPREY_PLAYBOOKS_DIR/bench-enrich/playbook.toml" <<'EOF'
name = "bench-enrich"
description = "scripts/bench-e2e.sh's automation: look the alert's address up with ipinfo"
plugins = ["ipinfo"]

[[triggers]]
kind = "manual"
EOF
cat >"$OSPREY_PLAYBOOKS_DIR/bench-enrich/playbook.rhai" <<'EOF'
let info = invoke("ipinfo", "lookup", #{ ip: alert.data.src });
#{ ip: info.ip, country: info.country, asn: info.asn }
EOF
printf '[intake]\nmax_in_flight = 256\n%s\n' "${E2E_CONFIG:-}" >"$data/osprey.toml"
export OSPREY_CONFIG="$data/osprey.toml"
cli() { node_cli "$@"; }
token=$(cli token create bench --scope intake 2>/dev/null)
cli plugin install plugins/dist/ipinfo --grant-requested >/dev/null
cli plugin config ipinfo "base_url=$vendor" cache_ttl_seconds=0 >/dev/null
cli plugin grant ipinfo --http "$vendor" >/dev/null
printf '%s\n' "$vendor_token" | cli secret set ipinfo token >/dev/null 2>&1
cli rules set bench-incident --match 'alert.source.starts_with("bench-")' --action incident \
    --playbook bench-enrich >/dev/null

nodes_start
# Every node's intake, for the sender's round-robin.
intake=()
for url in "${NODE_URLS[@]}"; do
    intake+=(--url "$url/api/v1/alerts")
done

sql() { db_query "$1"; }
# Idle: every alert decided and no run left to finish (both read through partial indexes,
# so polling costs little while the server works).
idle() {
    [[ $(sql "SELECT (SELECT count(*) FROM alerts WHERE processed_at IS NULL)
                   + (SELECT count(*) FROM runs WHERE status IN ('queued', 'waiting', 'running'))") == 0 ]]
}
# The automations of the alerts from SOURCE: completed, ended otherwise, latest finished_at.
outcomes() {
    sql "SELECT count(*) FILTER (WHERE r.status = 'completed'), count(*) FILTER (WHERE r.status <> 'completed'),
                coalesce(max(r.finished_at), 0)
         FROM alerts a JOIN runs r ON r.origin = 'incident ' || a.incident_id
         WHERE a.source = '$1'" | tr '|' ' '
}
# `key=value` from the sender's report line.
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }
# send SOURCE FIRST ARGS...: send alerts, wait until the server is idle, print the report.
send() {
    local source=$1 first=$2
    shift 2
    local report
    report=$("$tool" send "${intake[@]}" --token "$token" --source "$source" --first "$first" "$@")
    wait_for "the $source phase's end (E2E_TIMEOUT=$timeout)" "$timeout" idle
    echo "$report"
}

echo "bench-e2e: $alerts alerts a phase, paced at $rate/s for ${seconds}s; $build; $NODES_SUMMARY"
echo "budgets: >= 5,000 automations/s over 10,000 alerts; at 1,000 alerts/s offered, alert-to-done p50 <= 50 ms, p99 <= 250 ms"

out=$(wrk -t2 -c64 -d"${seconds}s" -H "Authorization: Bearer $vendor_token" "$vendor/11.0.0.1/json")
vendor_rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
printf '%-7s %10.0f lookups/s at the fake vendor (wrk -t2 -c64, keep-alive; the baseline)  non-2xx: %s\n' \
    vendor "$vendor_rps" "$(awk '/Non-2xx/ {print $5}' <<<"$out" | grep . || echo 0)"

# throughput NAME SOURCE FIRST ARGS...: a phase sent as fast as answered.
throughput() {
    local name=$1 source=$2 first=$3
    shift 3
    local report completed other last started
    report=$(send "$source" "$first" --alerts "$alerts" "$@")
    read -r completed other last < <(outcomes "$source")
    started=$(field "$report" started_ms)
    awk -v n="$completed" -v o="$other" -v ms="$((last - started))" -v v="$vendor_rps" \
        -v name="$name" -v a="$alerts" -v acc="$(field "$report" accepted)" \
        -v bad="$(($(field "$report" non_2xx) + $(field "$report" errors)))" 'BEGIN {
        rate = ms > 0 ? n * 1000 / ms : 0
        printf "%-7s %10.0f automations/s (%d of %d done in %.2f s, first alert sent to last run completed)  %.2fx the vendor  accepted: %d  refused: %d  runs not completed: %d  budget >= 5000: %s\n",
            name, rate, n, a, ms / 1000, rate / v, acc, bad, o, (rate >= 5000 && n == a) ? "met" : "MISSED"
    }'
}
throughput ndjson bench-ndjson 0 --batch 1000 --connections 4
throughput single bench-single "$alerts" --batch 1 --connections 64

paced=$(awk -v r="$rate" -v s="$seconds" 'BEGIN {printf "%d", r * s}')
report=$(send bench-paced "$((2 * alerts))" --alerts "$paced" --rate "$rate" --connections 256)
sql "SELECT r.finished_at - a.received_at
     FROM alerts a JOIN runs r ON r.origin = 'incident ' || a.incident_id
     WHERE a.source = 'bench-paced' AND r.status = 'completed' ORDER BY 1" >"$data/latency"
awk -v total="$paced" -v rate="$rate" -v sending="$(field "$report" sending_s)" \
    -v acc="$(field "$report" accepted)" '{ ms[NR] = $1 } END {
    n = NR
    p50 = n ? ms[int(n * 0.50 + 0.999999)] : -1
    p99 = n ? ms[int(n * 0.99 + 0.999999)] : -1
    printf "%-7s alert-to-done p50 %d ms  p99 %d ms  max %d ms  (%d alerts offered at %d/s, sent in %.2f s, %d accepted)  not completed: %d  budget p50 <= 50, p99 <= 250: %s\n",
        "paced", p50, p99, n ? ms[n] : -1, total, rate, sending, acc, total - n,
        (n == total && p50 <= 50 && p99 <= 250) ? "met" : "MISSED"
}' "$data/latency"

# What was measured is what was meant: one incident per alert, one journaled lookup per run,
# and every completed run's output is the fake vendor's answer (its country for 11.x.y.z).
read -r sent incidents lookups answered completed < <(sql "SELECT
    (SELECT count(*) FROM alerts WHERE source LIKE 'bench-%'),
    (SELECT count(*) FROM incidents WHERE rule = 'bench-incident'),
    (SELECT count(*) FROM run_steps s JOIN runs r ON r.id = s.run_id
         WHERE r.playbook = 'bench-enrich' AND r.status = 'completed' AND s.kind = 'invoke' AND s.ok = 1),
    (SELECT count(*) FROM runs WHERE playbook = 'bench-enrich' AND status = 'completed'
         AND $(db_json_text output country) = 'NL'),
    (SELECT count(*) FROM runs WHERE playbook = 'bench-enrich' AND status = 'completed')" | tr '|' ' ')
echo "check   $incidents incidents for $sent alerts; $completed runs completed with $lookups journaled lookups, $answered with the vendor's answer as output"
if ((incidents != sent || lookups != completed || answered != completed)); then
    echo "bench-e2e: the path measured is not the one meant (see the check line)" >&2
    exit 1
fi
# The servers' CPU time (user and system, read from /proc) over the whole script, per
# automation: steadier than the rates on a shared machine, and what a change to the hot
# path moves even when the rates do not show it (the vendor phase leaves the servers idle).
ticks=0
for pid in "${NODE_PIDS[@]}"; do
    read -r user system < <(awk '{print $14, $15}' "/proc/$pid/stat")
    ticks=$((ticks + user + system))
done
awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$sent" 'BEGIN {
    printf "cpu     %.1f s of the servers'"'"' CPU (user + system) for %d automations: %.0f us each\n", t / hz, n, t / hz * 1e6 / n
}'
