# Sourced by scripts/test.sh: make sure Python's aiosmtpd is there, the real SMTP server that
# the mail tests send to (tests/e2e/support/smtp_sink.py). Installs the pinned version with pip
# only when `import aiosmtpd` fails; as root on Debian, installs python3 and pip first if they
# are missing.

AIOSMTPD_VERSION=1.4.6

ensure_smtp_sink() {
    if command -v python3 >/dev/null 2>&1 && python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
            echo "smtp: installing Debian's python3 and pip (for the mail tests' SMTP server)"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >/dev/null
        else
            echo "smtp: python3 with pip is required for the mail tests' SMTP server; install them" >&2
            return 1
        fi
    fi
    echo "smtp: installing aiosmtpd ${AIOSMTPD_VERSION} (the mail tests' SMTP server)"
    # A Python whose packages belong to the system (PEP 668, Debian 12 and later) refuses a
    # plain install; the package goes to pip's own folders, which the system does not manage.
    if ! PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet "aiosmtpd==${AIOSMTPD_VERSION}"; then
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --break-system-packages \
            "aiosmtpd==${AIOSMTPD_VERSION}"
    fi
    python3 -c 'import aiosmtpd'
}
