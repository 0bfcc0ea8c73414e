"""This plugin's private key-value store: what must outlive one call (a token and its
expiry, a rate-limit window). Keys and values together are capped by the grant; a write
over the cap raises `limit-exceeded` and changes nothing."""

from wit_world.imports import kv as _wit

import json
from typing import Any, Optional

from ._host import call
from .errors import Error


def get(key: str) -> Optional[bytes]:
    """The bytes under `key`, or None if there are none or they expired."""
    return call(_wit.get, key)


def set(key: str, value: bytes, ttl_seconds: Optional[int] = None) -> None:
    """Store `value` under `key`; with `ttl_seconds`, it expires after that long."""
    call(_wit.set, key, bytes(value), ttl_seconds)


def delete(key: str) -> bool:
    """Remove `key`; returns whether something was removed."""
    return call(_wit.delete, key)


def get_json(key: str) -> Any:
    """`get`, decoded from JSON (None when absent)."""
    raw = get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise Error.internal(f"kv value under '{key}' is not JSON: {e}") from None


def set_json(key: str, value: Any, ttl_seconds: Optional[int] = None) -> None:
    """`set`, encoded as JSON."""
    set(key, json.dumps(value, separators=(",", ":")).encode(), ttl_seconds)
