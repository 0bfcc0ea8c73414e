"""Structured logs, attributed to the plugin and the run in Osprey's own log. Keyword
arguments are the record's fields: `log.info("looked up", domain=d)`. At most 256 records
per call, 4 KiB each; `print` also reaches the log (64 KiB per stream per call)."""

from wit_world.imports import log as _wit


def _write(level: str, message: str, fields: dict) -> None:
    pairs = [(str(k), str(v)) for k, v in fields.items()]
    _wit.write(getattr(_wit.Level, level), message, pairs)


def trace(message: str, **fields) -> None:
    _write("TRACE", message, fields)


def debug(message: str, **fields) -> None:
    _write("DEBUG", message, fields)


def info(message: str, **fields) -> None:
    _write("INFO", message, fields)


def warn(message: str, **fields) -> None:
    _write("WARN", message, fields)


def error(message: str, **fields) -> None:
    _write("ERROR", message, fields)
