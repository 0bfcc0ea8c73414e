#!/usr/bin/env bash
# How long `osprey serve` takes to be ready with the bundled plugins installed and their
# compiled components cached, against the floor of starting the same binary at all
# (`osprey --version`), measured in the same run. Prints medians over N runs (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey/target}"
runs="${1:-20}"

bash scripts/build-plugins.sh >/dev/null
cargo build --release --locked --quiet -p osprey
osprey="$CARGO_TARGET_DIR/release/osprey"
data=$(mktemp -d /tmp/osprey-bench.XXXXXX)
trap 'rm -rf "$data"' EXIT
"$osprey" --data-dir "$data" plugin install plugins/dist/ipinfo --grant-requested >/dev/null
"$osprey" --data-dir "$data" plugin install plugins/dist/test-echo >/dev/null

now_us() { echo $(( $(date +%s%N) / 1000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

ready=()
floor=()
for _ in $(seq "$runs"); do
    start=$(now_us)
    "$osprey" --version >/dev/null
    floor+=($(( $(now_us) - start )))

    fifo="$data/log.fifo"
    rm -f "$fifo"; mkfifo "$fifo"
    start=$(now_us)
    OSPREY_LOG_FORMAT=json "$osprey" --data-dir "$data" serve --listen 127.0.0.1:0 2>"$fifo" &
    pid=$!
    while IFS= read -r line; do
        if [[ "$line" == *'"osprey is ready"'* ]]; then
            ready+=($(( $(now_us) - start )))
            break
        fi
    done <"$fifo"
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done

r=$(printf '%s\n' "${ready[@]}" | median)
f=$(printf '%s\n' "${floor[@]}" | median)
echo "serve ready (2 plugins, cached): median ${r} µs over ${runs} runs"
echo "process start floor (--version): median ${f} µs"
awk -v r="$r" -v f="$f" 'BEGIN { printf "ratio ready/floor: %.1f\n", r / f }'
