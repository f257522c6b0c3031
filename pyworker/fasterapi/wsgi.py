"""Serving a WSGI application (PEP 3333) from a Python worker.

`fasterapi run module:app --interface wsgi` (or auto: any callable that is
neither a fasterapi App nor an ASGI app) describes catch-all routes (see
catchall_routes) and dispatches every request to make_dispatch()'s function,
which builds the environ, calls the app and turns what it answers into the
(status, headers, body) triple of PROTOCOL.md.

The response is buffered: the C protocol has no streaming yet, so the
iterable is read to its end (and closed) before anything is sent; write()
appends to the same buffer. A `wsgi.file_wrapper` over a real file is sent by
the HTTP worker with sendfile() (header x-fasterapi-sendfile).

In front of a fasterapi App: `fasterapi.wsgi.mount(app, wsgi_app)` (see
docs/wsgi-asgi.md) makes wsgi_app the fallback for the paths the App does not
route.
"""

import io
import os
import sys
import traceback
from urllib.parse import unquote_to_bytes

__all__ = ["FileWrapper", "catchall_routes", "make_dispatch", "mount", "environ_base"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Response headers the C side writes itself (PROTOCOL.md): dropped from the
# app's headers, as is Transfer-Encoding (the body is sent whole, with its
# Content-Length) and the hop-by-hop headers.
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


def environ_base(method, path, query, headers, client, body, root_path):
    """The PEP 3333 environ of one request (body: bytes)."""
    script_name, path_info = split_path(path, root_path)
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
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


def call_wsgi(app, environ):
    """Calls the WSGI app; returns (status, headers, body) where body is
    bytes, or a str path for sendfile (then headers carry the header)."""
    state = {"status": None, "headers": None, "sent": False}
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
        return write

    result = app(environ, start_response)
    try:
        if isinstance(result, FileWrapper) and not chunks:
            path = result.sendfile_path()
            if path is not None and state["status"] is not None:
                headers = [h for h in state["headers"] if h[0].lower() != _SENDFILE]
                headers.append((_SENDFILE, os.fsencode(path).decode("latin-1")))
                return state["status"], headers, b""
        if isinstance(result, (list, tuple)) and len(result) == 1 and not chunks:
            data = result[0]
            if not isinstance(data, (bytes, bytearray)):
                raise TypeError(f"the app's iterable yielded {type(data).__name__}, not bytes")
            if data:
                state["sent"] = True
            chunks.append(bytes(data))
        else:
            for data in result:
                if not isinstance(data, (bytes, bytearray)):
                    raise TypeError(f"the app's iterable yielded {type(data).__name__}, "
                                    f"not bytes")
                if data:
                    if state["status"] is None:
                        raise AssertionError("the app yielded a body before start_response()")
                    state["sent"] = True
                    chunks.append(bytes(data))
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if state["status"] is None:
        raise AssertionError("the WSGI app returned without calling start_response()")
    return state["status"], state["headers"], b"".join(chunks)


def make_dispatch(wsgi_app, root_path=None, first_id=0, native=None):
    """dispatch() for wsgi_app (see PROTOCOL.md). Route ids below first_id
    go to native (the dispatch of the fasterapi App it is mounted on)."""
    if root_path is None:
        root_path = root_path_from_env()

    def dispatch(route_id, method, path, query, params, headers, client, body, flags=0):
        if route_id < first_id:
            return native(route_id, method, path, query, params, headers, client, body)
        try:
            environ = environ_base(method, path, query, headers, client, bytes(body),
                                   root_path)
            return call_wsgi(wsgi_app, environ)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            print(f"fasterapi: {method} {path}: the WSGI app raised, answering 500:",
                  file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            return _INTERNAL_ERROR

    return dispatch
