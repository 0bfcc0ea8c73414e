"""Webhooks: HTTP requests a vendor sends to Osprey at `/hooks/PLUGIN/...`.

Osprey does not authenticate them (vendors hold no Osprey token): the plugin must check the
vendor's signature with its own secret before it trusts anything in the request, and answer
401 when the check fails. `verify_hmac_sha256` compares in constant time (Python's `hmac`).
"""

import hashlib
import hmac
import json
from typing import Any, List, Optional, Tuple, Union


class Request:
    """One request: the method, the path below `/hooks/PLUGIN` (`/` when none), the query
    string without `?` (not decoded), the headers (names in lower case, in the order sent),
    and the body exactly as sent."""

    def __init__(self, method: str, path: str, query: str, headers: List[Tuple[str, str]], body: bytes):
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The first value of the header `name` (any case), or None."""
        name = name.lower()
        return next((v for (n, v) in self.headers if n == name), None)

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON raises ValueError."""
        return json.loads(self.body)


class Response:
    """The answer to the vendor, and alerts for Osprey's intake (each one object, as
    `POST /api/v1/alerts` takes one alert; it goes through rules, deduplication, incidents)."""

    def __init__(self, status: int = 200, body: Union[bytes, str] = b"", headers: Optional[List[Tuple[str, str]]] = None):
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = list(headers or [])
        self.alerts: List[str] = []

    @classmethod
    def json(cls, value: Any, status: int = 200) -> "Response":
        """A JSON answer with its content type."""
        return cls(status, json.dumps(value, separators=(",", ":")), [("content-type", "application/json")])

    def alert(self, alert: dict) -> "Response":
        """Also hand `alert` to Osprey's intake once the response is sent."""
        if not isinstance(alert, dict):
            raise TypeError("an alert is one JSON object (a dict)")
        self.alerts.append(json.dumps(alert, separators=(",", ":")))
        return self


def hmac_sha256_hex(secret: Union[bytes, str], message: bytes) -> str:
    """The HMAC-SHA256 of `message` under `secret`, in lower-case hex."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def verify_hmac_sha256(secret: Union[bytes, str], message: bytes, signature_hex: Optional[str]) -> bool:
    """Whether `signature_hex` (hex, any case) is the HMAC-SHA256 of `message` under
    `secret`, compared in constant time. A missing signature is False."""
    if not signature_hex:
        return False
    return hmac.compare_digest(hmac_sha256_hex(secret, message), signature_hex.strip().lower())
