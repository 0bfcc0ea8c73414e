# Sourced by the load scripts (scripts/bench-ingest.sh, scripts/bench-e2e.sh): make sure Debian's wrk, the HTTP load
# generator, is there. Installs the package `wrk` with apt when run as root and it is missing.

ensure_wrk() {
    if command -v wrk >/dev/null 2>&1; then
        return 0
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "wrk: installing Debian's wrk (the HTTP load generator)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "wrk: this benchmark needs wrk; install Debian's wrk (apt-get install wrk)" >&2
        return 1
    fi
}
