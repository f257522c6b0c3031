"""Serving a WSGI application (PEP 3333) from a Python worker.

`fasterapi run module:app --interface wsgi` (or auto: any callable that is
neither a fasterapi App nor an ASGI app) describes catch-all routes (see
catchall_routes) and dispatches every request to make_dispatch()'s function,
which builds the environ, calls the app and turns what it answers into the
(status, headers, body) triple of PROTOCOL.md.

A list (or tuple) body, or an iterable that yields one item, is sent whole,
with Content-Length. One that yields more is streamed from its second item
on: chunked (unless the app set Content-Length), each part sent as it comes
and the worker waiting while the client has no room; close() is called once
it ended. write() output goes first, in order. A `wsgi.file_wrapper` over a
real file is sent by the HTTP worker with sendfile() (header
x-fasterapi-sendfile). With --py-threads the app runs on the worker's
thread pool (aio.defer_to_thread), and streams from there.

In front of a fasterapi App: `fasterapi.wsgi.mount(app, wsgi_app)` (see
docs/wsgi-asgi.md) makes wsgi_app the fallback for the paths the App does not
route.
"""

import io
import os
import sys
import traceback
from urllib.parse import unquote_to_bytes

from . import aio

__all__ = ["FileWrapper", "catchall_routes", "make_dispatch", "mount", "environ_base"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Response headers the C side writes itself (PROTOCOL.md): dropped from the
# app's headers, as is Transfer-Encoding (the C side chunks a stream itself)
# and the hop-by-hop headers; a stream keeps the app's Content-Length.
_DROPPED = frozenset(("content-length", "date", "server", "connection", "transfer-encoding",
                      "keep-alive"))

_SENDFILE = "x-fasterapi-sendfile"
_INTERNAL_ERROR = (500, [("content-type", "text/plain; charset=utf-8")],
                   b"Internal Server Error")


def catchall_routes(first_id):
    """The route rows of a WSGI/ASGI app: "/" and "/{path:path}" for each
    method (HEAD is served by the GET route), ids from first_id."""
    rows = []
    for method in METHODS:
        for pattern in ("/", "/{path:path}"):
            rows.append((first_id + len(rows), method, pattern, "python", {}))
    return rows


def root_path_from_env(value=None):
    """--root-path (FASTERAPI_ROOT_PATH) normalised: "" or "/prefix"."""
    if value is None:
        value = os.environ.get("FASTERAPI_ROOT_PATH", "")
    value = value.rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    return value


def mount(app, wsgi_app):
    """Makes wsgi_app the fallback of the fasterapi App `app`: the App's own
    routes (app.static, app.native, app.mount_static, its Python routes) are
    served as usual, every other path goes to wsgi_app. Returns app."""
    app._fasterapi_fallback = ("wsgi", wsgi_app)
    return app


# ------------------------------------------------------------------ input

class InputStream(io.BufferedIOBase):
    """wsgi.input: read, readline, readlines and iteration over the request
    body (a bytes copy: the shared-memory view lives only during dispatch)."""

    def __init__(self, data):
        self._raw = io.BytesIO(data)

    def readable(self):
        return True

    def read(self, size=-1):
        return self._raw.read(-1 if size is None else size)

    def read1(self, size=-1):
        return self.read(size)

    def readline(self, size=-1):
        return self._raw.readline(-1 if size is None else size)

    def readlines(self, hint=-1):
        return self._raw.readlines(-1 if hint is None else hint)

    def readinto(self, b):
        return self._raw.readinto(b)

    def __iter__(self):
        return iter(self._raw.readline, b"")

    def __next__(self):
        line = self._raw.readline()
        if not line:
            raise StopIteration
        return line


# ------------------------------------------------------------------ file_wrapper

class FileWrapper:
    """wsgi.file_wrapper(filelike, blksize=8192). The adapter recognises it:
    a regular file with a name, read from its start, is sent by the HTTP
    worker with sendfile(); anything else is read in blocks and buffered."""

    def __init__(self, filelike, blksize=8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def sendfile_path(self):
        """The absolute path of the file to sendfile(), or None."""
        f = self.filelike
        name = getattr(f, "name", None)
        if not isinstance(name, (str, bytes)) or "b" not in getattr(f, "mode", "b"):
            return None
        try:
            if f.tell() != 0:
                return None
            fd = f.fileno()
            st = os.fstat(fd)
            path = os.path.abspath(name)
            if not os.path.samestat(st, os.stat(path)):
                return None
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return None
        import stat
        if not stat.S_ISREG(st.st_mode):
            return None
        return path


# ------------------------------------------------------------------ environ

def _server_of(host):
    """(SERVER_NAME, SERVER_PORT) from a Host header value."""
    if not host:
        return "localhost", "80"
    if host.startswith("["):
        end = host.find("]")
        if end > 0:
            name, rest = host[:end + 1], host[end + 1:]
            port = rest[1:] if rest.startswith(":") and rest[1:].isdigit() else "80"
            return name, port
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and name:
        return name, port
    return host, "80"


def split_path(raw_path, root_path):
    """(SCRIPT_NAME, PATH_INFO) as latin-1 str (PEP 3333): the path
    percent-decoded; root_path removed from its start when it is there."""
    decoded = unquote_to_bytes(raw_path).decode("latin-1")
    script = root_path.encode("utf-8").decode("latin-1")
    if script and (decoded == script or decoded.startswith(script + "/")):
        decoded = decoded[len(script):]
    return script, decoded


def environ_base(method, path, query, headers, client, body, root_path,
                 protocol="HTTP/1.1"):
    """The PEP 3333 environ of one request (body: bytes)."""
    script_name, path_info = split_path(path, root_path)
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": protocol,
        "REMOTE_ADDR": str(client[0]) if client else "",
        "REMOTE_PORT": str(client[1]) if client else "0",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": InputStream(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    host = None
    chunked = False
    for name, value in headers:
        if name == "content-type":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "content-length":
            environ["CONTENT_LENGTH"] = value
            continue
        if name == "transfer-encoding":
            chunked = True     # the body arrives de-chunked, with its length
            continue
        if "_" in name:
            continue           # HTTP_X_A would be ambiguous (x-a or x_a): dropped, as gunicorn
        if name == "host" and host is None:
            host = value
        key = "HTTP_" + name.upper().replace("-", "_")
        old = environ.get(key)
        environ[key] = value if old is None else old + ", " + value
    if body or chunked:
        environ["CONTENT_LENGTH"] = str(len(body))
    environ["SERVER_NAME"], environ["SERVER_PORT"] = _server_of(host)
    return environ


# ------------------------------------------------------------------ dispatch

def _status_code(status):
    if not isinstance(status, str):
        raise TypeError(f"start_response: status must be a str, got {type(status).__name__}")
    code = status.split(" ", 1)[0]
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 599:
        raise ValueError(f"start_response: bad status {status!r}")
    return int(code)


def _check_headers(headers):
    if not isinstance(headers, list):
        raise TypeError(f"start_response: headers must be a list, got {type(headers).__name__}")
    out = []
    for item in headers:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"start_response: each header must be a (name, value) tuple, "
                            f"got {item!r}")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"start_response: header names and values must be str, got "
                            f"{item!r}")
        if name.lower() in _DROPPED:
            continue
        out.append((name, value))
    return out


def call_wsgi(app, environ, where="the WSGI app", d=None):
    """Calls the WSGI app; returns (status, headers, body) where body is
    bytes (headers carry x-fasterapi-sendfile for a file to sendfile()),
    or None once it streamed the response (see _stream). d: the request's
    aio.Deferred when this runs on a pool thread (--py-threads)."""
    state = {"status": None, "headers": None, "sent": False, "length": None}
    chunks = []

    def write(data):
        if state["status"] is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"write() takes bytes, got {type(data).__name__}")
        if data:
            state["sent"] = True
            chunks.append(bytes(data))

    def start_response(status, headers, exc_info=None):
        if exc_info:
            try:
                if state["sent"]:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif state["status"] is not None:
            raise AssertionError("start_response() called again without exc_info")
        code = _status_code(status)
        checked = _check_headers(headers)
        state["status"], state["headers"] = code, checked
        state["length"] = next((v for n, v in headers if n.lower() == "content-length"), None)
        return write

    result = app(environ, start_response)
    close = getattr(result, "close", None)
    try:
        if isinstance(result, FileWrapper) and not chunks:
            path = result.sendfile_path()
            if path is not None and state["status"] is not None:
                headers = [h for h in state["headers"] if h[0].lower() != _SENDFILE]
                headers.append((_SENDFILE, os.fsencode(path).decode("latin-1")))
                return state["status"], headers, b""
        if isinstance(result, (list, tuple)):
            for data in result:
                _check_item(state, data)
                if data:
                    chunks.append(bytes(data))
        else:
            iterator = iter(result)
            items = 0
            for data in iterator:
                _check_item(state, data)
                if data:
                    chunks.append(bytes(data))
                items += 1
                if items >= 2 and state["status"] is not None and aio.can_defer():
                    response = _stream(state, chunks, iterator, close, where, d)
                    close = None     # _stream closes it once the stream ended
                    return response
    finally:
        if close is not None:
            close()
    if state["status"] is None:
        raise AssertionError("the WSGI app returned without calling start_response()")
    return state["status"], state["headers"], b"".join(chunks)


def _check_item(state, data):
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"the app's iterable yielded {type(data).__name__}, not bytes")
    if data:
        if state["status"] is None:
            raise AssertionError("the app yielded a body before start_response()")
        state["sent"] = True


def _stream(state, chunks, iterator, close, where, d):
    """Streams a response whose iterable yields more than one item: what it
    gave so far (chunks, with what write() added), then the rest as it
    comes, chunked unless the app set Content-Length; close() once it
    ended. Each part waits for room: inline (aio.stream), or on a pool
    thread (d given: aio.stream_from_thread)."""
    headers = list(state["headers"])
    if state["length"] is not None:
        headers.append(("content-length", state["length"]))

    def parts():
        while True:
            while chunks:
                yield chunks.pop(0)
            data = next(iterator, None)
            if data is None:
                return
            _check_item(state, data)
            if data:
                chunks.append(bytes(data))

    if d is not None:
        aio.stream_from_thread(d, state["status"], headers, parts(), close, where)
        return None
    return aio.stream(state["status"], headers, parts(), "latin-1", close, where)


def make_dispatch(wsgi_app, root_path=None, first_id=0, native=None):
    """dispatch() for wsgi_app (see PROTOCOL.md). Route ids below first_id
    go to native (the dispatch of the fasterapi App it is mounted on)."""
    if root_path is None:
        root_path = root_path_from_env()
    pooled = aio.threads() > 0

    def dispatch(route_id, method, path, query, params, headers, client, body, flags=0):
        if route_id < first_id:
            return native(route_id, method, path, query, params, headers, client, body, flags)
        try:
            environ = environ_base(method, path, query, headers, client, bytes(body),
                                   root_path, "HTTP/1.0" if flags & 4 else "HTTP/1.1")
            where = f"{method} {path}: the WSGI app"
            if pooled:
                # --py-threads: the app runs on the pool, as in gunicorn's
                # gthread workers; the worker serves others meanwhile.
                environ["wsgi.multithread"] = True
                aio.defer_to_thread(lambda d: call_wsgi(wsgi_app, environ, where, d),
                                    lambda future: _pool_result(future, method, path))
                return None
            return call_wsgi(wsgi_app, environ, where)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            _log_error(method, path)
            return _INTERNAL_ERROR

    return dispatch


def _log_error(method, path):
    print(f"fasterapi: {method} {path}: the WSGI app raised, answering 500:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


def _pool_result(future, method, path):
    """dispatch's result for a request the pool served: its triple, or None
    when it streamed the response itself."""
    try:
        return aio.outcome(future)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        _log_error(method, path)
        return _INTERNAL_ERROR
