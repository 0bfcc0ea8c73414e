# Sourced by scripts/test.sh: make sure Debian's minisign is there, the standard tool the audit
# tests use to check Osprey's signed checkpoints from outside (tests/e2e/audit.rs), and the
# pack tests use to sign packs and check Osprey's signatures (tests/e2e/packs.rs). Installs
# the package `minisign` with apt when run as root and it is missing; OSPREY_MINISIGN points the
# tests elsewhere.

ensure_minisign() {
    local minisign="${OSPREY_MINISIGN:-/usr/bin/minisign}"
    if [[ -x "$minisign" ]]; then
        return 0
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "minisign: installing Debian's minisign (for the audit checkpoint and pack tests)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq minisign >/dev/null
    else
        echo "minisign: the audit checkpoint and pack tests need the minisign tool;" \
            "install Debian's minisign (or set OSPREY_MINISIGN)" >&2
        return 1
    fi
    "$minisign" -v
}
