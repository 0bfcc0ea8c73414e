#!/usr/bin/env bash
# Build every plugin in plugins/ for wasm32-wasip2 and lay each one out as an installable
# folder, plugins/dist/<name>/ with plugin.toml and its component.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

target_dir="${CARGO_TARGET_DIR:-$PWD/plugins/target}/plugins"
echo "build-plugins: compiling plugins (release, wasm32-wasip2)"
(cd plugins && CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --quiet)

out=plugins/dist
mkdir -p "$out"
# A plugin is laid out as dist/NAME; a test plugin's next version (plugins/testing/*-next,
# for the upgrade tests) as dist/NAME-VERSION.
for manifest in plugins/*/plugin.toml plugins/testing/*/plugin.toml; do
    src=$(dirname "$manifest")
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest")
    component=$(sed -n 's/^component *= *"\(.*\)"/\1/p' "$manifest")
    wasm="$target_dir/wasm32-wasip2/release/$component"
    if [[ ! -f "$wasm" ]]; then
        echo "build-plugins: $manifest names component $component, but $wasm was not built" >&2
        exit 1
    fi
    dest="$name"
    if [[ "$src" == *-next ]]; then
        dest="$name-$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$manifest")"
    fi
    mkdir -p "$out/$dest"
    cp "$manifest" "$out/$dest/plugin.toml"
    cp "$wasm" "$out/$dest/$component"
    printf 'build-plugins: %-14s %7d bytes\n' "$dest" "$(stat -c %s "$wasm")"
done
