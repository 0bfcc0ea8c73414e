"""Typed errors: the nine kinds of the WIT contract, in terms a playbook can act on."""

from dataclasses import fields
from enum import Enum
from typing import Optional


class ErrorKind(Enum):
    """What went wrong. See `wit/v0.1.0/plugin.wit` for each kind."""

    INVALID_INPUT = "invalid-input"
    NOT_FOUND = "not-found"
    DENIED = "denied"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate-limited"
    UPSTREAM = "upstream"
    TIMEOUT = "timeout"
    LIMIT_EXCEEDED = "limit-exceeded"
    INTERNAL = "internal"


_RETRYABLE = {ErrorKind.UNAVAILABLE, ErrorKind.RATE_LIMITED, ErrorKind.TIMEOUT}


class Error(Exception):
    """A typed error: raise it from an action. `message` reaches run timelines and logs:
    never put a secret in it.

    `retryable` defaults to True for the kinds where waiting helps (unavailable,
    rate-limited, timeout). `retry_after` (milliseconds) says how long to wait before a
    retry; a host on the 0.1.0 contract does not carry it and it is dropped there.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        retryable: Optional[bool] = None,
        retry_after: Optional[int] = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retryable = kind in _RETRYABLE if retryable is None else retryable
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.kind.value}: {self.message}"

    def __repr__(self) -> str:
        return f"Error({self.kind.value!r}, {self.message!r}, retryable={self.retryable})"

    @classmethod
    def invalid_input(cls, message: str) -> "Error":
        """The input was wrong (not retryable)."""
        return cls(ErrorKind.INVALID_INPUT, message)

    @classmethod
    def not_found(cls, message: str) -> "Error":
        """Nothing by that name at the vendor."""
        return cls(ErrorKind.NOT_FOUND, message)

    @classmethod
    def denied(cls, message: str) -> "Error":
        """Refused: a capability not granted, or the vendor's 401/403."""
        return cls(ErrorKind.DENIED, message)

    @classmethod
    def unavailable(cls, message: str) -> "Error":
        """The vendor is down or unreachable (retryable)."""
        return cls(ErrorKind.UNAVAILABLE, message)

    @classmethod
    def rate_limited(cls, message: str, retry_after: Optional[int] = None) -> "Error":
        """The vendor asked us to slow down (retryable), after `retry_after` ms if known."""
        return cls(ErrorKind.RATE_LIMITED, message, retry_after=retry_after)

    @classmethod
    def upstream(cls, message: str) -> "Error":
        """The vendor's answer was unusable."""
        return cls(ErrorKind.UPSTREAM, message)

    @classmethod
    def internal(cls, message: str) -> "Error":
        """A bug."""
        return cls(ErrorKind.INTERNAL, message)

    def to_wit(self, wit_types):
        """This error as the bindings' `error` record (`wit_types` is the generated
        `osprey_plugin_types` module). `retry_after` is set only where the contract has it."""
        kind = getattr(wit_types.ErrorKind, self.kind.name)
        record = {"kind": kind, "message": self.message, "retryable": self.retryable}
        if "retry_after" in {f.name for f in fields(wit_types.Error)}:
            wait = self.retry_after
            record["retry_after"] = None if wait is None else min(max(int(wait), 0), 2**32 - 1)
        return wit_types.Error(**record)

    @classmethod
    def from_wit(cls, err) -> "Error":
        """An error the host returned (a bindings' `error` record)."""
        return cls(
            ErrorKind[err.kind.name],
            err.message,
            retryable=err.retryable,
            retry_after=getattr(err, "retry_after", None),
        )
