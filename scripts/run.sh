#!/usr/bin/env bash
# Run the Osprey server on the embedded default: SQLite in ./data, with the bundled plugins
# installed. On first run their requested capabilities are granted; after that your grants
# are left alone. Extra arguments go to `osprey serve` (for example --listen 0.0.0.0:8080).
#
# `scripts/run.sh --demo` builds the same way and runs `osprey demo` instead: its own data
# directory (./demo-data, never ./data), the bundled connectors mocked, a user per role, sample
# alerts and scenarios (see `osprey demo --help`); extra arguments go to `osprey demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=false
if [[ "${1:-}" == "--demo" ]]; then
    demo=true
    shift
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osprey/target}"
bash scripts/setup.sh
bash scripts/build-plugins.sh
echo "run: building osprey (release)"
cargo build --release --locked --quiet -p osprey
osprey="$CARGO_TARGET_DIR/release/osprey"
if [[ "$demo" == true ]]; then
    echo "run: starting the demo (Ctrl-C to stop)"
    exec "$osprey" demo --plugins-dir plugins/dist --playbooks-dir playbooks --demo-dir demo "$@"
fi
data_dir="${OSPREY_DATA_DIR:-data}"

# The connectors that ship with Osprey (test plugins are not bundled).
bundled=(ipinfo autofocus virustotal)
for name in "${bundled[@]}"; do
    src="plugins/dist/$name"
    installed="$data_dir/plugins/$name"
    if [[ ! -d "$installed" ]]; then
        "$osprey" --data-dir "$data_dir" plugin install "$src" --grant-requested
    elif ! diff -rq "$src" "$installed" >/dev/null 2>&1; then
        "$osprey" --data-dir "$data_dir" plugin install "$src"
    fi
done

# A server nobody can sign in to is no use: on a fresh data directory this makes the user
# `admin` and prints its generated password, once; after that it only names the admins.
"$osprey" --data-dir "$data_dir" user first-admin

echo "run: starting the server (Ctrl-C to stop)"
exec "$osprey" --data-dir "$data_dir" serve "$@"
