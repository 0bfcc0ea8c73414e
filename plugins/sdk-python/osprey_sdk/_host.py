"""Calling the host's imports: a WIT `result` error comes back from the bindings as
`componentize_py_types.Err`, turned here into the SDK's typed `Error`."""

from componentize_py_types import Err

from .errors import Error


def call(function, *args):
    try:
        return function(*args)
    except Err as e:
        raise Error.from_wit(e.value) from None
