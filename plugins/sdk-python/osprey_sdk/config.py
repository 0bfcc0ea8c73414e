"""Operator settings for this plugin (a base URL, a site name), declared with defaults in
the `[config]` table of `plugin.toml` and set with `osprey plugin config`."""

from wit_world.imports import config as _wit

from typing import Optional

from .errors import Error


def get(key: str) -> Optional[str]:
    """The operator's value for `key`, else the default from `plugin.toml`, else None."""
    return _wit.get(key)


def require(key: str) -> str:
    """Like `get`, but a missing value is an `invalid-input` error naming the setting."""
    value = get(key)
    if value is None:
        raise Error.invalid_input(
            f"setting '{key}' is not configured; set it with `osprey plugin config <plugin> {key}=...`"
        )
    return value
