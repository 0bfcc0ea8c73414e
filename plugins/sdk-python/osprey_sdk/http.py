"""A small blocking HTTP client over `wasi:http`, the only way out of the sandbox.

    resp = http.get(f"{base}/api/v3/domains/{domain}", headers={"x-apikey": key.expose()})
    resp.raise_for_status()   # 401/403 denied, 404 not-found, 429 rate-limited, 5xx unavailable
    data = resp.json()

Every request is checked by the host against the operator's grant before any connection; a
refused one raises a `denied` error that says so. Redirects are not followed: a 3xx comes
back as a response. Written on the generated `wasi:http` bindings with the standard library
only, so a plugin needs no other package.
"""

import email.utils
import encodings.idna  # noqa: F401  (the codec must be there before the first call)
import json
import time
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _t

from .errors import Error, ErrorKind

_CHUNK = 4096
_READ = 64 * 1024


class Response:
    """A response with its whole body read (bodies are capped by the host)."""

    def __init__(self, url: str, status: int, headers: List[Tuple[str, str]], body: bytes):
        self.url = url  # without its query string, safe to show
        self.status = status
        self.headers = headers  # names in lower case
        self.body = body

    def header(self, name: str) -> Optional[str]:
        """The first header called `name` (any case)."""
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded from JSON; a body that does not decode is an `upstream` error."""
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Error.upstream(f"{self.url} answered with something that is not JSON: {e}") from None

    def raise_for_status(self) -> "Response":
        """Raise the matching error for a non-2xx status: 401/403 denied, 404 not-found,
        429 rate-limited, 5xx unavailable, other statuses upstream. The message carries the
        status and the start of the body."""
        if 200 <= self.status < 300:
            return self
        kind = status_kind(self.status)
        wait = self.retry_after() if kind in (ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE) else None
        raise Error(kind, f"{self.url} answered HTTP {self.status}: {self.text[:300]}", retry_after=wait)

    def retry_after(self, now: Optional[float] = None) -> Optional[int]:
        """The `Retry-After` header in milliseconds (it may be seconds or an HTTP date), or
        None when there is none or it does not parse. `raise_for_status` puts it on a 429's
        or a 5xx's error, so the host waits that long before a run retries."""
        value = (self.header("retry-after") or "").strip()
        if not value:
            return None
        if value.isdigit():
            return min(int(value), 86_400) * 1000
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        now = time.time() if now is None else now
        return int(min(max(when - now, 0), 86_400) * 1000)


def status_kind(status: int) -> ErrorKind:
    """The error kind of a non-2xx HTTP status."""
    if status in (401, 403):
        return ErrorKind.DENIED
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if 500 <= status <= 599:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.UPSTREAM


def request(
    method: str,
    url: str,
    *,
    headers: Optional[Dict[str, str]] = None,
    params: Optional[Dict[str, str]] = None,
    json_body: Any = None,
    body: bytes = b"",
    timeout: Optional[float] = None,
) -> Response:
    """Send one request and read the whole response. `params` are appended to the query,
    percent-encoded; `json_body` is sent as JSON with its content type; `timeout` (seconds)
    bounds the connection and each wait for the response (the call's deadline applies in
    any case)."""
    pairs = [(k.lower(), str(v)) for k, v in (headers or {}).items()]
    if params:
        url += ("&" if "?" in url else "?") + urlencode(params, quote_via=quote)
    if json_body is not None:
        body = json.dumps(json_body, separators=(",", ":")).encode()
        pairs.append(("content-type", "application/json"))
    target = split_url(url)
    return _send(method.upper(), target, pairs, bytes(body), timeout)


def get(url: str, **kwargs) -> Response:
    """`GET url`; see `request`."""
    return request("GET", url, **kwargs)


def post(url: str, **kwargs) -> Response:
    """`POST url`; see `request`."""
    return request("POST", url, **kwargs)


class Target:
    """A URL split the way `wasi:http` takes it."""

    def __init__(self, scheme: str, authority: str, path_and_query: str):
        self.scheme = scheme
        self.authority = authority
        self.path_and_query = path_and_query

    @property
    def shown(self) -> str:
        """The URL without its query: what error messages show."""
        return f"{self.scheme}://{self.authority}{self.path_and_query.split('?', 1)[0]}"


def split_url(raw: str) -> Target:
    """Scheme, authority, path and query of `raw`; international host names in their ASCII
    form, the fragment dropped. An unusable URL is `invalid-input` saying why."""

    def bad(why: str) -> Error:
        return Error.invalid_input(f"'{raw}' is not a usable URL: {why}")

    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as e:
        raise bad(str(e)) from None
    if parts.scheme not in ("http", "https"):
        raise bad("only http and https are supported")
    if parts.username is not None or parts.password is not None:
        raise bad("credentials in URLs are not supported; use a header")
    host = parts.hostname
    if not host:
        raise bad("no host")
    if ":" in host:
        host = f"[{host}]"
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as e:
            raise bad(f"host name: {e}") from None
    authority = host if port is None else f"{host}:{port}"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(parts.scheme, authority, path)


def _method(name: str):
    known = {
        "GET": _t.Method_Get,
        "HEAD": _t.Method_Head,
        "POST": _t.Method_Post,
        "PUT": _t.Method_Put,
        "DELETE": _t.Method_Delete,
        "OPTIONS": _t.Method_Options,
        "PATCH": _t.Method_Patch,
    }
    return known[name]() if name in known else _t.Method_Other(name)


def _send(method: str, target: Target, headers, body: bytes, timeout: Optional[float]) -> Response:
    shown = target.shown
    try:
        fields = _t.Fields.from_list([(k, v.encode()) for k, v in headers])
    except Err as e:
        raise Error.invalid_input(f"request header rejected: {e.value}") from None
    req = _t.OutgoingRequest(fields)

    def invalid(what: str) -> Error:
        return Error.invalid_input(f"{what} of {shown} rejected")

    for setter, value, what in [
        (req.set_method, _method(method), "method"),
        (req.set_scheme, _t.Scheme_Https() if target.scheme == "https" else _t.Scheme_Http(), "scheme"),
        (req.set_authority, target.authority, "authority"),
        (req.set_path_with_query, target.path_and_query, "path"),
    ]:
        try:
            setter(value)
        except Err:
            raise invalid(what) from None

    outgoing_body = req.body()
    options = None
    if timeout is not None:
        options = _t.RequestOptions()
        ns = int(timeout * 1e9)
        for setter in (options.set_connect_timeout, options.set_first_byte_timeout, options.set_between_bytes_timeout):
            try:
                setter(ns)
            except Err:
                pass  # the host may refuse an option; then its own deadline applies
    # Hand the request over first, then stream the body: the host reads the body while the
    # guest writes it.
    try:
        future = outgoing_handler.handle(req, options)
    except Err as e:
        raise error_from_code(shown, e.value) from None
    with outgoing_body.write() as stream:
        for start in range(0, len(body), _CHUNK):
            try:
                stream.blocking_write_and_flush(body[start : start + _CHUNK])
            except Err as e:
                raise Error.unavailable(f"{shown}: sending the body failed: {e.value}") from None
    try:
        _t.OutgoingBody.finish(outgoing_body, None)
    except Err as e:
        raise error_from_code(shown, e.value) from None

    with future:
        while True:
            outcome = future.get()
            if outcome is not None:
                break
            with future.subscribe() as pollable:
                pollable.block()
    if isinstance(outcome, Err) or not isinstance(outcome, Ok):
        raise Error.internal("response taken twice")
    if isinstance(outcome.value, Err):
        raise error_from_code(shown, outcome.value.value)
    with outcome.value.value as incoming:
        status = incoming.status()
        with incoming.headers() as fields:
            got = [(k.lower(), v.decode("utf-8", errors="replace")) for k, v in fields.entries()]
        with incoming.consume() as incoming_body:
            data = _read_body(shown, incoming_body)
    return Response(shown, status, got, data)


def _read_body(shown: str, incoming_body) -> bytes:
    chunks = []
    with incoming_body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(_READ))
            except Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    break
                code = _t.http_error_code(e.value.value)
                if code is not None:
                    raise error_from_code(shown, code) from None
                raise Error.unavailable(
                    f"{shown}: reading the response body failed: {e.value.value.to_debug_string()}"
                ) from None
    return b"".join(chunks)


def error_from_code(url: str, code) -> Error:
    """A `wasi:http` error code as a typed error that says what happened."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    if name == "HttpRequestDenied":
        return Error.denied(
            f"request to {url} was refused by Osprey: it is not covered by this plugin's grant "
            "(ask the operator to grant it with `osprey plugin grant`)"
        )
    if name == "DestinationIpProhibited":
        return Error.denied(
            f"request to {url} was refused by Osprey: the address is not allowed by this plugin's grant"
        )
    if name == "HttpResponseBodySize":
        return Error(
            ErrorKind.LIMIT_EXCEEDED,
            f"response from {url} is larger than this plugin's limit ({code.value} bytes)",
        )
    if name == "TlsCertificateError":
        return Error.upstream(
            f"{url}: its TLS certificate is not trusted (TLS certificate error); "
            "the operator can add the issuing CA to the system's trust store"
        )
    if name in ("TlsProtocolError", "TlsAlertReceived"):
        return Error.upstream(f"{url}: the TLS handshake failed ({name})")
    if name in ("DnsTimeout", "DnsError", "DestinationNotFound"):
        return Error.unavailable(f"{url}: DNS lookup failed ({name})")
    if name in ("ConnectionTimeout", "ConnectionReadTimeout", "ConnectionWriteTimeout", "HttpResponseTimeout"):
        return Error(ErrorKind.TIMEOUT, f"{url}: timed out ({name})")
    if name in (
        "ConnectionRefused",
        "ConnectionTerminated",
        "DestinationUnavailable",
        "DestinationIpUnroutable",
        "ConnectionLimitReached",
    ):
        return Error.unavailable(f"{url}: {name}")
    if name in ("HttpRequestUriInvalid", "HttpRequestMethodInvalid"):
        return Error.invalid_input(f"{url}: {name}")
    return Error.upstream(f"{url}: {name}")
