"""Secrets the operator stored for this plugin (`osprey secret set PLUGIN NAME`).

A plugin reads only the names its grant lists: another name is a `denied` error, a granted
name with no value yet is `not-found`.
"""

from wit_world.imports import secrets as _wit

from ._host import call


class Secret:
    """A secret value. Its `str` and `repr` print `[redacted]`, so it cannot end up in a log
    line or an error message by accident; `expose()` gives the value to the one place that
    needs it (a header)."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def expose(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret([redacted])"

    __str__ = __repr__


def get(name: str) -> Secret:
    """The secret `name`, as granted to this plugin."""
    return Secret(call(_wit.get, name))
