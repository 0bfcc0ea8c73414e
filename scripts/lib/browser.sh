# Sourced by scripts/test.sh: make sure Debian's Chromium and ChromeDriver are there, the
# headless browser that the web UI's browser tests drive (tests/e2e/browser.rs). Installs the
# packages `chromium` and `chromium-driver` with apt when run as root and they are missing;
# OSPREY_CHROMIUM and OSPREY_CHROMEDRIVER point the tests elsewhere.

ensure_browser() {
    local chromium="${OSPREY_CHROMIUM:-/usr/bin/chromium}"
    local driver="${OSPREY_CHROMEDRIVER:-/usr/bin/chromedriver}"
    if [[ -x "$chromium" && -x "$driver" ]]; then
        return 0
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "browser: installing Debian's chromium and chromium-driver (for the web UI tests)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "browser: Chromium and ChromeDriver are required for the web UI tests;" \
            "install Debian's chromium and chromium-driver (or set OSPREY_CHROMIUM and" \
            "OSPREY_CHROMEDRIVER)" >&2
        return 1
    fi
    "$chromium" --version
    "$driver" --version
}
