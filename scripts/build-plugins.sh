#!/usr/bin/env bash
# Build every plugin in plugins/ for wasm32-wasip2 and lay each one out as an installable
# folder, plugins/dist/<name>/ with plugin.toml and its component: the Rust plugins (a folder
# with Cargo.toml) with cargo, then the Python plugins (a folder with app.py) with
# componentize-py over plugins/sdk-python, installed from PyPI by scripts/lib/componentize_py.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# The contract the Python plugins are built against (the Rust SDK names its own in
# plugins/sdk/src/bindings.rs). Switch to a newer wit/ folder here; scripts/test.sh reads it.
python_wit=wit/v0.2.0
if [[ "${1:-}" == "--python-wit" ]]; then
    echo "$python_wit"
    exit 0
fi

bash scripts/setup.sh
source scripts/lib/componentize_py.sh

target_dir="${CARGO_TARGET_DIR:-$PWD/plugins/target}/plugins"
echo "build-plugins: compiling plugins (release, wasm32-wasip2)"
(cd plugins && CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --quiet)

# A Python component is rebuilt only when its sources, the SDK, the contract or the tool
# changed: their hash is stamped next to the component in the target dir.
python_hash() {
    local src=$1
    {
        echo "componentize-py ${COMPONENTIZE_PY_VERSION} ${python_wit}"
        find "$src" plugins/sdk-python/osprey_sdk "$python_wit" -type f \
            \( -name '*.py' -o -name '*.wit' \) -not -path '*/tests/*' -print0 | sort -z | xargs -0 sha256sum
    } | sha256sum | cut -d' ' -f1
}

build_python() {
    local src=$1 component=$2 out=$3
    local hash
    hash=$(python_hash "$src")
    if [[ -f "$out" && -f "$out.stamp" && $(cat "$out.stamp") == "$hash" ]]; then
        return 0
    fi
    ensure_componentize_py
    echo "build-plugins: componentize-py $src (a CPython component takes a few seconds)"
    mkdir -p "$(dirname "$out")"
    rm -f "$out.stamp"
    "$OSPREY_COMPONENTIZE_PY" -d "$python_wit" -w integration componentize \
        -p plugins/sdk-python -p "$src" app -o "$out" >/dev/null
    echo "$hash" >"$out.stamp"
}

out=plugins/dist
mkdir -p "$out"
# A plugin is laid out as dist/NAME; a test plugin's next version (plugins/testing/*-next,
# for the upgrade tests) as dist/NAME-VERSION.
for manifest in plugins/*/plugin.toml plugins/testing/*/plugin.toml; do
    src=$(dirname "$manifest")
    name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest")
    component=$(sed -n 's/^component *= *"\(.*\)"/\1/p' "$manifest")
    if [[ -f "$src/Cargo.toml" ]]; then
        wasm="$target_dir/wasm32-wasip2/release/$component"
    elif [[ -f "$src/app.py" ]]; then
        wasm="$target_dir/python/$name/$component"
        build_python "$src" "$component" "$wasm"
    else
        echo "build-plugins: $src has a plugin.toml but neither Cargo.toml nor app.py" >&2
        exit 1
    fi
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
    if [[ -f "$src/README.md" ]]; then
        cp "$src/README.md" "$out/$dest/README.md"
    fi
    printf 'build-plugins: %-14s %8d bytes\n' "$dest" "$(stat -c %s "$wasm")"
done
