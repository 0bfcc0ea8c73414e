"""virustotal: domain and IP reports from VirusTotal API v3, written in Python on osprey_sdk.

`GET {base_url}/api/v3/domains/{domain}` and `GET {base_url}/api/v3/ip_addresses/{ip}`, with
the API key (the secret `api-key`) in the `x-apikey` header. VirusTotal's answers map to
error kinds a playbook can act on: 404 not-found, 401/403 denied, 429 rate-limited (with how
long to wait: a minute for TooManyRequestsError, until 00:00 UTC for a QuotaExceededError),
5xx unavailable.
"""

import ipaddress
import re
import time
from urllib.parse import quote

from osprey_sdk import Error, ErrorKind, Plugin, config, http, log, secrets

plugin = Plugin(
    "virustotal",
    "0.1.0",
    "Threat intelligence from VirusTotal: reputation and engine verdicts of domains and IP addresses",
)

STATS = {
    "type": "object",
    "description": "How many engines found it harmless, malicious, suspicious, undetected, or timed out",
    "properties": {k: {"type": "integer"} for k in ("harmless", "malicious", "suspicious", "undetected", "timeout")},
}
REPORT = {
    "reputation": {"type": "integer", "description": "VirusTotal's community score (negative is bad)"},
    "last_analysis_stats": STATS,
    "last_analysis_date": {"type": ["integer", "null"], "description": "Unix seconds of the last analysis"},
    "malicious": {"type": "boolean", "description": "True when at least one engine says malicious"},
}


@plugin.action(
    "domain-report",
    description="Reputation, engine verdicts, categories and creation date of a domain",
    input={
        "type": "object",
        "properties": {"domain": {"type": "string", "minLength": 1, "maxLength": 253, "description": "For example example.com"}},
        "required": ["domain"],
        "additionalProperties": False,
    },
    output={
        "type": "object",
        "properties": {
            "domain": {"type": "string"},
            **REPORT,
            "categories": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Category by categorisation service",
            },
            "creation_date": {"type": ["integer", "null"], "description": "Unix seconds, from whois"},
        },
        "required": ["domain", "reputation", "last_analysis_stats", "malicious", "categories"],
    },
)
def domain_report(ctx, input):
    domain = normalise_domain(input["domain"])
    data = fetch(f"/api/v3/domains/{quote(domain, safe='')}", f"domain {domain}")
    attributes = read_attributes(data, "domain")
    report = summary(attributes)
    report["domain"] = data.get("id", domain)
    report["categories"] = {str(k): str(v) for k, v in (attributes.get("categories") or {}).items()}
    report["creation_date"] = attributes.get("creation_date")
    return report


@plugin.action(
    "ip-report",
    description="Reputation, engine verdicts, owner and network of an IP address",
    input={
        "type": "object",
        "properties": {"ip": {"type": "string", "minLength": 1, "maxLength": 64, "description": "IPv4 or IPv6 address"}},
        "required": ["ip"],
        "additionalProperties": False,
    },
    output={
        "type": "object",
        "properties": {
            "ip": {"type": "string"},
            **REPORT,
            "as_owner": {"type": ["string", "null"]},
            "asn": {"type": ["integer", "null"]},
            "country": {"type": ["string", "null"]},
            "network": {"type": ["string", "null"]},
        },
        "required": ["ip", "reputation", "last_analysis_stats", "malicious"],
    },
)
def ip_report(ctx, input):
    try:
        ip = str(ipaddress.ip_address(input["ip"].strip()))
    except ValueError:
        raise Error.invalid_input(f"'{input['ip']}' is not an IPv4 or IPv6 address") from None
    data = fetch(f"/api/v3/ip_addresses/{ip}", f"IP address {ip}")
    attributes = read_attributes(data, "ip_address")
    report = summary(attributes)
    report["ip"] = data.get("id", ip)
    for key in ("as_owner", "asn", "country", "network"):
        report[key] = attributes.get(key)
    return report


DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def normalise_domain(raw: str) -> str:
    """`raw` in lower case without a trailing dot, international names in their ASCII form;
    anything else than a domain name is invalid input."""
    domain = raw.strip().rstrip(".").lower()
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    if not DOMAIN.match(domain):
        raise Error.invalid_input(f"'{raw}' is not a domain name")
    return domain


def fetch(path: str, what: str) -> dict:
    """`GET {base_url}{path}` with the API key; VirusTotal's answer as a dict, or its error
    as a typed one."""
    key = secrets.get("api-key")
    base = config.require("base_url").rstrip("/")
    response = http.get(base + path, headers={"x-apikey": key.expose(), "accept": "application/json"}, timeout=20)
    if response.status != 200:
        raise answer_error(response.status, body_error(response), what)
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise Error.upstream(f"VirusTotal's answer about {what} has no 'data' object")
    log.debug("virustotal answered", what=what, url=response.url)
    return body["data"]


def body_error(response) -> tuple:
    """The `(code, message)` of VirusTotal's JSON error body, `("", "")` when there is none."""
    try:
        err = response.json().get("error") or {}
        return str(err.get("code", "")), str(err.get("message", ""))
    except (Error, AttributeError):
        return "", ""


def answer_error(status: int, error: tuple, what: str, now: float = None) -> Error:
    """The typed error of a non-200 answer about `what` with VirusTotal's `(code, message)`."""
    code, message = error
    said = f"VirusTotal answered HTTP {status}" + (f" {code}: {message}" if code else "")
    if status == 404:
        return Error.not_found(f"VirusTotal has no report on {what} ({said})")
    if status in (401, 403):
        return Error.denied(f"{said}; check the secret 'api-key' (`osprey secret set virustotal api-key`)")
    if status == 429:
        if code == "QuotaExceededError":
            # The daily quota: nothing helps before it resets at 00:00 UTC.
            now = time.time() if now is None else now
            wait_ms = int((86400 - now % 86400) * 1000)
            return Error.rate_limited(f"{said} (the API key's quota; daily quotas reset at 00:00 UTC)", retry_after=wait_ms)
        return Error.rate_limited(f"{said} (too many requests a minute)", retry_after=60_000)
    if 500 <= status <= 599:
        return Error.unavailable(said)
    return Error(ErrorKind.UPSTREAM, said)


def read_attributes(data: dict, kind: str) -> dict:
    """The `attributes` of a `{"id", "type", "attributes"}` object of type `kind`."""
    if data.get("type") != kind:
        raise Error.upstream(f"VirusTotal answered with an object of type {data.get('type')!r}, not {kind!r}")
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        raise Error.upstream("VirusTotal's answer has no 'attributes' object")
    return attributes


def summary(attributes: dict) -> dict:
    """What both reports share: reputation, engine counts and the last analysis."""
    stats = {k: int(v) for k, v in (attributes.get("last_analysis_stats") or {}).items() if isinstance(v, int)}
    return {
        "reputation": int(attributes.get("reputation") or 0),
        "last_analysis_stats": stats,
        "last_analysis_date": attributes.get("last_analysis_date"),
        "malicious": stats.get("malicious", 0) > 0,
    }


WitWorld = plugin.export()
