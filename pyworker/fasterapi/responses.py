"""Responses (FastAPI/Starlette names) and how a handler's return value
becomes dispatch's (status, headers, body) triple.

Return values: dict, list and other JSON values -> application/json (compact,
UTF-8, not ASCII-escaped, as FastAPI); None -> JSON null; str -> text/plain;
bytes -> application/octet-stream; a Response -> its status, headers and body.

Header names are sent in lower case. The C side adds Content-Length, Date,
Server and Connection, so those are dropped from what a handler sets, and so
is Transfer-Encoding (the C side always sends Content-Length).
"""

import json
from collections.abc import Mapping
from json.encoder import c_make_encoder, encode_basestring

from .request import Headers

__all__ = ["Response", "JSONResponse", "PlainTextResponse", "HTMLResponse", "MutableHeaders",
           "render_result"]

# json.dumps(..., ensure_ascii=False, allow_nan=False, separators=(",", ":")),
# as FastAPI's JSONResponse, with the encoder built once instead of per call.
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
if c_make_encoder is not None:
    # The C encoder JSONEncoder.encode() builds on every call, built once.
    # markers=None: no cycle check (a cycle ends in RecursionError, a 500);
    # a shared markers dict would keep stale ids after a failed encoding.
    _c_encode = c_make_encoder(None, _encoder.default, encode_basestring, None, ":", ",",
                               False, False, False)

    def _encode_json(obj):
        return "".join(_c_encode(obj, 0))
else:
    _encode_json = _encoder.encode

# Shared by every response; the C side only reads them.
_JSON_HEADERS = [("content-type", "application/json")]
_TEXT_HEADERS = [("content-type", "text/plain; charset=utf-8")]
_BYTES_HEADERS = [("content-type", "application/octet-stream")]

_DROPPED = frozenset(("content-length", "date", "server", "connection", "transfer-encoding"))

INTERNAL_ERROR = (500, _TEXT_HEADERS, b"Internal Server Error")


def body_allowed(status):
    """False for the statuses that carry no body: 1xx, 204, 205, 304."""
    return not (status < 200 or status == 204 or status == 205 or status == 304)


def _header_value(value):
    return value if type(value) is str else str(value)


class MutableHeaders(Headers):
    """A response's headers: Headers that can be changed in place.

    Changes go to the response's raw_headers list. Setting a name replaces
    every value it had; append() adds one more (for Set-Cookie).
    """

    __slots__ = ()

    def __setitem__(self, key, value):
        key = key.lower()
        value = _header_value(value)
        found = None
        for i, (name, _) in enumerate(self._list):
            if name == key:
                found = i
                break
        if found is None:
            self._list.append((key, value))
            return
        self._list[found] = (key, value)
        self._list[found + 1:] = [p for p in self._list[found + 1:] if p[0] != key]

    def __delitem__(self, key):
        key = key.lower()
        kept = [p for p in self._list if p[0] != key]
        if len(kept) == len(self._list):
            raise KeyError(key)
        self._list[:] = kept

    def append(self, key, value):
        self._list.append((key.lower(), _header_value(value)))

    def setdefault(self, key, value):
        current = self.get(key)
        if current is None:
            self.append(key, value)
            return _header_value(value)
        return current

    def update(self, other=(), **kwargs):
        pairs = other.items() if isinstance(other, Mapping) else other
        for key, value in pairs:
            self[key] = value
        for key, value in kwargs.items():
            self[key] = value


class Response:
    """A response with a body given as bytes or str (Starlette's Response).

    content: bytes, str (encoded with `charset`) or None (empty).
    headers: a mapping or a list of (name, value) pairs. media_type, when
    set, becomes Content-Type unless headers has one; text/* gets
    "; charset=utf-8". After construction: .body (bytes), .status_code,
    .headers (mutable, case-insensitive), .media_type, .raw_headers (the
    list of (name, value) str pairs behind .headers).
    """

    media_type = None
    charset = "utf-8"

    def __init__(self, content=None, status_code=200, headers=None, media_type=None):
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.body = self.render(content)
        self._init_headers(headers)

    def render(self, content):
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode(self.charset)
        if isinstance(content, (bytearray, memoryview)):
            return bytes(content)
        raise TypeError(f"{type(self).__name__} content must be bytes or str, got "
                        f"{type(content).__name__} (return it, or use JSONResponse, for JSON)")

    def _init_headers(self, headers):
        if headers is None:
            raw = []
        else:
            pairs = headers.items() if isinstance(headers, Mapping) else headers
            raw = [(str(k).lower(), _header_value(v)) for k, v in pairs]
        media_type = self.media_type
        if media_type is not None:
            for name, _ in raw:
                if name == "content-type":
                    break
            else:
                if media_type.startswith("text/") and "charset=" not in media_type.lower():
                    media_type += "; charset=" + self.charset
                raw.append(("content-type", media_type))
        self.raw_headers = raw
        self._headers = None

    @property
    def headers(self):
        if self._headers is None:
            self._headers = MutableHeaders(raw=self.raw_headers)
        return self._headers

    def _triple(self):
        """(status, headers, body) for dispatch. Raises ValueError for a
        status the C side would refuse."""
        status = self.status_code
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"{type(self).__name__}.status_code must be an int from 100 to "
                             f"599, got {status!r}")
        headers = [p for p in self.raw_headers if p[0] not in _DROPPED]
        body = self.body
        if type(body) is not bytes:
            body = bytes(body)
        if not body_allowed(status):
            body = b""
        return status, headers, body

    def __repr__(self):
        return f"<{type(self).__name__} {self.status_code} {len(self.body)} bytes>"


class JSONResponse(Response):
    """content encoded as JSON (compact, UTF-8, NaN refused), as FastAPI."""

    media_type = "application/json"

    def __init__(self, content, status_code=200, headers=None, media_type=None):
        super().__init__(content, status_code, headers, media_type)

    def render(self, content):
        return _encode_json(content).encode()


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


def render_result(result):
    """A handler's return value as (status, headers, body)."""
    t = type(result)
    if t is dict or t is list:
        return 200, _JSON_HEADERS, _encode_json(result).encode()
    if t is str:
        return 200, _TEXT_HEADERS, result.encode()
    if isinstance(result, Response):
        return result._triple()
    if result is None:
        return 200, _JSON_HEADERS, b"null"
    if isinstance(result, str):
        return 200, _TEXT_HEADERS, result.encode()
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, _BYTES_HEADERS, bytes(result)
    return 200, _JSON_HEADERS, _encode_json(result).encode()


def render_http_exception(exc):
    """An HTTPException as FastAPI's handler answers it."""
    status = exc.status_code
    headers = exc.headers
    if type(status) is not int or not 100 <= status <= 599:
        raise ValueError(f"HTTPException status_code must be an int from 100 to 599, "
                         f"got {status!r}")
    if body_allowed(status):
        return JSONResponse({"detail": exc.detail}, status, headers)._triple()
    return Response(None, status, headers)._triple()


def render_validation_error(exc):
    """A RequestValidationError as FastAPI answers it: 422 {"detail": [...]}."""
    return 422, _JSON_HEADERS, _encode_json({"detail": exc.errors()}).encode()
