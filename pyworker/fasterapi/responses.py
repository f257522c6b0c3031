"""Responses (FastAPI/Starlette names) and how a handler's return value
becomes dispatch's (status, headers, body) triple.

Return values: dict, list and other JSON values -> application/json (compact,
UTF-8, not ASCII-escaped, NaN refused, as FastAPI); None -> JSON null; str ->
text/plain; bytes -> application/octet-stream; a Response -> its status,
headers and body. Other values (dataclasses, pydantic models, datetimes...)
go through encoders.jsonable_encoder first.

JSON bodies: inside fasterapi-pyworker, whose built-in module _fasterapi has
dumps(), a dict or list (a handler's result, a JSONResponse's content) is
returned to the C side as the object itself and the C side encodes it
straight into shared memory (PROTOCOL.md); elsewhere (unit tests) the body
is encoded here with json. C_JSON says which.

Header names are sent in lower case. The C side adds Content-Length, Date,
Server and Connection, so those are dropped from what a handler sets, and so
is Transfer-Encoding (the C side sends Content-Length, or chunks a
StreamingResponse).

FileResponse: the HTTP worker sends the file itself. The triple carries the
internal header x-fasterapi-sendfile (an absolute path) and an empty body;
the C side opens the file, sets Content-Length and sendfile()s it, and never
sends that header to the client.
"""

import email.utils
import hashlib
import json
import mimetypes
import os
import stat as _stat
from collections.abc import Mapping
from json.encoder import c_make_encoder, encode_basestring
from urllib.parse import quote

from .background import make_after, tasks_of
from .encoders import encode_default, jsonable_encoder
from .request import Headers

try:
    import _fasterapi
except ImportError:
    _fasterapi = None

__all__ = ["Response", "JSONResponse", "PlainTextResponse", "HTMLResponse", "RedirectResponse",
           "FileResponse", "StreamingResponse", "MutableHeaders", "render_result", "C_JSON",
           "SENDFILE_HEADER"]

# The C side encodes non-bytes bodies as JSON (PROTOCOL.md); values it does
# not know (datetime, UUID, pydantic models...) go through encode_default, as
# they do with the json module here.
C_JSON = _fasterapi is not None and hasattr(_fasterapi, "dumps")
if C_JSON and hasattr(_fasterapi, "set_json_default"):
    _fasterapi.set_json_default(encode_default)

SENDFILE_HEADER = "x-fasterapi-sendfile"

# json.dumps(..., ensure_ascii=False, allow_nan=False, separators=(",", ":")),
# as FastAPI's JSONResponse, with the encoder built once instead of per call.
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                            default=encode_default)
if c_make_encoder is not None:
    # The C encoder JSONEncoder.encode() builds on every call, built once.
    # markers=None: no cycle check (a cycle ends in RecursionError, a 500);
    # a shared markers dict would keep stale ids after a failed encoding.
    _c_encode = c_make_encoder(None, encode_default, encode_basestring, None, ":", ",",
                               False, False, False)

    def _encode_json(obj):
        return "".join(_c_encode(obj, 0))
else:
    _encode_json = _encoder.encode


def encode_json(obj):
    """obj as compact UTF-8 JSON bytes, as FastAPI's JSONResponse."""
    return _encode_json(obj).encode()


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
    "; charset=utf-8". background: a BackgroundTask(s) run after the
    response is sent. After construction: .body (bytes), .status_code,
    .headers (mutable, case-insensitive), .media_type, .raw_headers (the
    list of (name, value) str pairs behind .headers), .background.
    """

    media_type = None
    charset = "utf-8"
    _streams = False     # a StreamingResponse: sent by _stream(), not _triple()

    def __init__(self, content=None, status_code=200, headers=None, media_type=None,
                 background=None):
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
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

    def set_cookie(self, key, value="", max_age=None, expires=None, path="/", domain=None,
                   secure=False, httponly=False, samesite="lax"):
        """Adds a Set-Cookie header, as Starlette does. expires: seconds from
        now (int), a datetime, or a ready-made string."""
        parts = [f"{key}={_cookie_value(value)}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if expires is not None:
            if isinstance(expires, (int, float)):
                import time
                expires = email.utils.formatdate(time.time() + expires, usegmt=True)
            elif hasattr(expires, "timestamp"):
                expires = email.utils.format_datetime(expires, usegmt=True) \
                    if expires.tzinfo is not None else \
                    email.utils.formatdate(expires.timestamp(), usegmt=True)
            parts.append(f"expires={expires}")
        if domain is not None:
            parts.append(f"Domain={domain}")
        if path is not None:
            parts.append(f"Path={path}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            if samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError("samesite must be either 'strict', 'lax' or 'none'")
            parts.append(f"SameSite={samesite.lower()}")
        self.raw_headers.append(("set-cookie", "; ".join(parts)))

    def delete_cookie(self, key, path="/", domain=None, secure=False, httponly=False,
                      samesite="lax"):
        self.set_cookie(key, "", max_age=0, expires=0, path=path, domain=domain, secure=secure,
                        httponly=httponly, samesite=samesite)

    @property
    def body_iterator(self):
        """The body as an async iterator of one bytes chunk (for middleware
        code written for Starlette's streaming responses)."""
        async def chunks(body=self.body):
            yield body
        return chunks()

    def _body_for_c(self):
        """The body for dispatch's triple: bytes, or an object the C side
        encodes as JSON."""
        body = self.body
        return body if type(body) is bytes else bytes(body)

    def _triple(self):
        """(status, headers, body) for dispatch. Raises ValueError for a
        status the C side would refuse."""
        status = self.status_code
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"{type(self).__name__}.status_code must be an int from 100 to "
                             f"599, got {status!r}")
        headers = [p for p in self.raw_headers if p[0] not in _DROPPED]
        if not body_allowed(status):
            return status, headers, b""
        return status, headers, self._body_for_c()

    def __repr__(self):
        return f"<{type(self).__name__} {self.status_code} {len(self.body)} bytes>"


_COOKIE_SAFE = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ:/?@[]=(){}")


def _cookie_value(value):
    # As http.cookies: quote a value that holds characters a token cannot.
    value = str(value)
    if all(c in _COOKIE_SAFE for c in value):
        return value
    from http.cookies import _quote
    return _quote(value)


_UNRENDERED = object()


class JSONResponse(Response):
    """content encoded as JSON (compact, UTF-8, NaN refused), as FastAPI.

    The encoding is deferred: .body encodes on first access (a middleware
    that reads it, a test); a response whose body was never read hands its
    content to the C encoder when there is one (C_JSON).
    """

    media_type = "application/json"

    def __init__(self, content, status_code=200, headers=None, media_type=None,
                 background=None):
        self.content = content
        self._body = _UNRENDERED
        super().__init__(content, status_code, headers, media_type, background)

    def render(self, content):
        return _UNRENDERED

    @property
    def body(self):
        body = self._body
        if body is _UNRENDERED:
            body = self._body = encode_json(self.content)
        return body

    @body.setter
    def body(self, value):
        self._body = value

    def _body_for_c(self):
        body = self._body
        if body is _UNRENDERED:
            content = self.content
            t = type(content)
            if C_JSON and (t is dict or t is list):
                return content
            body = self._body = encode_json(content)
        return body if type(body) is bytes else bytes(body)


class PlainTextResponse(Response):
    media_type = "text/plain"


class HTMLResponse(Response):
    media_type = "text/html"


class RedirectResponse(Response):
    """A redirect to url (307 by default, as Starlette)."""

    def __init__(self, url, status_code=307, headers=None, background=None):
        super().__init__(b"", status_code, headers, background=background)
        self.raw_headers.append(("location", quote(str(url), safe=":/%#?=@[]!$&'()*+,;")))


class FileResponse(Response):
    """The file at `path`, sent by the HTTP worker with sendfile().

    Content-Type from the file name (mimetypes; text/plain if unknown),
    Last-Modified and ETag from its stat, Content-Disposition when filename
    is given. A relative path is taken from the Python worker's current
    directory. A file that is missing or not a regular file when the
    response is returned is a 500 (as in Starlette).
    """

    chunk_size = 64 * 1024

    def __init__(self, path, status_code=200, headers=None, media_type=None, background=None,
                 filename=None, stat_result=None, method=None,
                 content_disposition_type="attachment"):
        self.path = os.path.abspath(os.fspath(path))
        self.filename = filename
        if media_type is None:
            media_type = mimetypes.guess_type(filename or self.path)[0] or "text/plain"
        super().__init__(b"", status_code, headers, media_type, background)
        if filename is not None:
            quoted = quote(filename)
            if quoted != filename:
                disposition = f"{content_disposition_type}; filename*=utf-8''{quoted}"
            else:
                disposition = f'{content_disposition_type}; filename="{filename}"'
            self.raw_headers.append(("content-disposition", disposition))
        self.stat_result = stat_result

    def _triple(self):
        status, headers, _ = super()._triple()
        st = self.stat_result
        if st is None:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                raise RuntimeError(f"File at path {self.path} does not exist.") from None
        if not _stat.S_ISREG(st.st_mode):
            raise RuntimeError(f"File at path {self.path} is not a file.")
        names = {n for n, _ in headers}
        if "last-modified" not in names:
            headers.append(("last-modified", email.utils.formatdate(st.st_mtime, usegmt=True)))
        if "etag" not in names:
            tag = hashlib.md5(f"{st.st_mtime}-{st.st_size}".encode(),
                              usedforsecurity=False).hexdigest()
            headers.append(("etag", f'"{tag}"'))
        # Header values are latin-1 text: the path's bytes, whatever its encoding.
        headers.append((SENDFILE_HEADER, os.fsencode(self.path).decode("latin-1")))
        return status, headers, b""


class StreamingResponse(Response):
    """A body sent as it is produced (Starlette's StreamingResponse).

    content: an iterable or async iterable of bytes or str (str encoded
    with `charset`), typically a generator. Sent chunked (or with the
    Content-Length the headers give, which the parts must then add up to),
    each part as it comes, with backpressure: the generator is not resumed
    while the client has 16 parts it did not take yet. A client that goes
    away stops it (an async one is cancelled; a sync one is closed: its
    finally runs); one that raises cuts the response (traceback logged).
    background runs once the stream ended.

    A sync iterable returned by a plain def handler is sent by the worker
    inline, which then serves nothing else (as while the handler ran; with
    --py-threads, next() runs on the pool instead); an async one, or one
    returned by an async handler, from the worker's event loop, among the
    other requests. Middlewares see an empty .body.
    """

    _streams = True
    body = b""
    body_iterator = None

    def __init__(self, content, status_code=200, headers=None, media_type=None,
                 background=None):
        self.status_code = status_code
        if media_type is not None:
            self.media_type = media_type
        self.background = background
        if not (hasattr(content, "__aiter__") or hasattr(content, "__iter__")) or \
                isinstance(content, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"StreamingResponse content must be an iterable or async iterable "
                            f"of bytes or str (a generator), got {type(content).__name__}")
        self.body_iterator = content
        self._init_headers(headers)

    def _stream(self, after, where):
        """Starts sending (aio.stream): returns None, dispatch's answer for a
        request it deferred, or outside a serve loop the whole triple."""
        status = self.status_code
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"StreamingResponse.status_code must be an int from 100 to 599, "
                             f"got {status!r}")
        headers = [p for p in self.raw_headers if p[0] not in _STREAM_DROPPED]
        from .aio import stream
        return stream(status, headers, self.body_iterator, self.charset, after, where)

    def _triple(self):
        raise TypeError("a StreamingResponse is sent as a stream, not as one body")

    def __repr__(self):
        return f"<StreamingResponse {self.status_code}>"


# A stream keeps a Content-Length the app set (PROTOCOL.md: it sends exactly
# that many bytes); the C side chunks the others.
_STREAM_DROPPED = _DROPPED - {"content-length"}


def render_result(result, status=200):
    """A handler's return value as (status, headers, body)."""
    t = type(result)
    if t is dict or t is list:
        return status, _JSON_HEADERS, result if C_JSON else _encode_json(result).encode()
    if t is str:
        return status, _TEXT_HEADERS, result.encode()
    if isinstance(result, Response):
        after = None
        if result.background is not None:
            from contextvars import copy_context
            after = make_after(tasks_of(result.background), (), copy_context(),
                               f"{type(result).__name__} background")
        if result._streams:
            return result._stream(after, type(result).__name__)
        triple = result._triple()
        return triple if after is None else (*triple, after)
    if result is None:
        return status, _JSON_HEADERS, b"null"
    if isinstance(result, str):
        return status, _TEXT_HEADERS, result.encode()
    if isinstance(result, (bytes, bytearray, memoryview)):
        return status, _BYTES_HEADERS, bytes(result)
    if t is int or t is float or t is bool:
        return status, _JSON_HEADERS, _encode_json(result).encode()
    data = jsonable_encoder(result) if not isinstance(result, tuple) else list(result)
    if C_JSON and type(data) in (dict, list):
        return status, _JSON_HEADERS, data
    return status, _JSON_HEADERS, _encode_json(data).encode()


def to_response(result, status_code=None, response_class=None):
    """A handler's return value as a Response object (for middlewares and
    exception handlers, which work on Response objects). JSON values stay
    unencoded until needed (JSONResponse)."""
    if isinstance(result, Response):
        return result
    status = 200 if status_code is None else status_code
    if response_class is not None and response_class is not JSONResponse:
        return response_class(result, status_code=status)
    t = type(result)
    if t is str:
        return PlainTextResponse(result, status)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), status, media_type="application/octet-stream")
    if isinstance(result, str):
        return PlainTextResponse(str(result), status)
    if not (t is dict or t is list or result is None or t is int or t is float or t is bool):
        result = jsonable_encoder(result) if not isinstance(result, tuple) else list(result)
    return JSONResponse(result, status)


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
