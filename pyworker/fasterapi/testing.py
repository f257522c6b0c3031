"""TestClient: test an app through the real server, as its users reach it.

    from fasterapi.testing import TestClient
    from myapp import app

    def test_read():
        with TestClient(app) as client:
            r = client.get("/items/1", params={"q": "x"})
            assert r.status_code == 200 and r.json() == {"id": 1}

TestClient(app) starts `fasterapi run` on a free loopback port (one HTTP
worker and one Python worker unless args= says otherwise) and sends real
HTTP requests to it; the C front end, the shared-memory rings and the Python
worker all take part. It stops the server on close() or at the end of the
with block (or at interpreter exit).

app: an App object (its module must be importable: the server imports it
again in its own process) or a "module:attr" string, imported from app_dir
(default: the current directory).

The fasterapi binary: $FASTERAPI_BIN, else $FASTERAPI_BUILDDIR/fasterapi,
else the build tree beside the package (a build in the source tree), else
`fasterapi` on PATH.

Unlike Starlette's TestClient, an exception in a handler is not re-raised in
the test: the test sees the 500 (and the traceback is in client.log()).
"""

import atexit
import http.client
import itertools
import json as _json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urljoin, urlsplit

from .forms import encode_multipart
from .request import Headers

__all__ = ["TestClient", "TestResponse", "find_binary"]

_counter = itertools.count(1)


def find_binary():
    """The path of the fasterapi binary (see the module docstring), or
    FileNotFoundError saying where it looked."""
    tried = []
    env = os.environ.get("FASTERAPI_BIN")
    if env:
        if os.access(env, os.X_OK):
            return env
        tried.append(f"$FASTERAPI_BIN={env}")
    builddir = os.environ.get("FASTERAPI_BUILDDIR")
    candidates = []
    if builddir:
        candidates.append(os.path.join(builddir, "fasterapi"))
    package_dir = os.path.dirname(os.path.abspath(__file__))
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(package_dir)), "fasterapi"))
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        tried.append(path)
    found = shutil.which("fasterapi")
    if found:
        return found
    tried.append("fasterapi on PATH")
    raise FileNotFoundError("cannot find the fasterapi binary; tried " + ", ".join(tried) +
                            " (build it with make, or set FASTERAPI_BIN)")


def _spec_of(app):
    """(spec, app_dir) for an App object: the module attribute it is bound to."""
    best = None
    for name, module in list(sys.modules.items()):
        if module is None or name.startswith("_fa_test_app"):
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            if value is app and not attr.startswith("_"):
                path = getattr(module, "__file__", None)
                if path is None:
                    continue
                if best is None or name != "__main__":
                    best = (name, attr, path)
    if best is None:
        raise TypeError("TestClient: cannot find the module that holds this app (it must be a "
                        "module-level variable of an importable module); pass "
                        "'module:attr' instead")
    name, attr, path = best
    path = os.path.abspath(path)
    if name == "__main__":
        return f"{os.path.splitext(os.path.basename(path))[0]}:{attr}", os.path.dirname(path)
    root = os.path.dirname(path)
    parts = name.split(".")
    if os.path.basename(path) == "__init__.py":
        parts = parts + ["__init__"]
    for _ in parts[:-1]:
        root = os.path.dirname(root)
    return f"{name}:{attr}", root


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class TestResponse:
    """What a request returns: status_code, headers (case-insensitive;
    get_list() for repeated ones), content (bytes), text, json(), cookies,
    url, reason_phrase, is_success, raise_for_status()."""

    __test__ = False

    def __init__(self, status_code, reason, headers, content, url):
        self.status_code = status_code
        self.reason_phrase = reason
        self.headers = Headers(raw=[(n.lower(), v) for n, v in headers])
        self.content = content
        self.url = url
        self.history = []

    @property
    def text(self):
        ctype = self.headers.get("content-type", "")
        charset = "utf-8"
        if "charset=" in ctype:
            charset = ctype.split("charset=", 1)[1].split(";")[0].strip() or "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self):
        return _json.loads(self.content)

    @property
    def cookies(self):
        jar = {}
        for value in self.headers.getlist("set-cookie"):
            c = SimpleCookie()
            c.load(value)
            for key, morsel in c.items():
                jar[key] = morsel.value
        return jar

    @property
    def is_success(self):
        return 200 <= self.status_code < 300

    def raise_for_status(self):
        if not self.is_success:
            raise AssertionError(f"{self.status_code} {self.reason_phrase} for {self.url}: "
                                 f"{self.content[:300]!r}")

    def __repr__(self):
        return f"<TestResponse [{self.status_code}]>"


class TestClient:
    """A requests-like client for an app served by the real server (see the
    module docstring). Methods: get, post, put, patch, delete, head,
    options, request; each takes params=, headers=, cookies=, json=, data=
    (a dict: a form; bytes or str: the raw body), files= ({name: (filename,
    bytes[, content_type])} or {name: bytes}), content=, follow_redirects=.
    Cookies the server sets are kept and sent back, as a browser would.
    """

    __test__ = False

    def __init__(self, app, *, app_dir=None, args=(), base_url="http://testserver",
                 headers=None, cookies=None, follow_redirects=True, timeout=30.0,
                 start_timeout=30.0):
        if isinstance(app, str):
            self.spec, self.app_dir = app, os.path.abspath(app_dir or os.getcwd())
        else:
            self.spec, found_dir = _spec_of(app)
            self.app_dir = os.path.abspath(app_dir) if app_dir else found_dir
        self.args = list(args)
        self.base_url = base_url
        self.headers = dict(headers or {})
        self.cookies = dict(cookies or {})
        self.follow_redirects = follow_redirects
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self._conn = None
        self._log = None

    # -------------------------------------------------------------- server

    def start(self):
        """Starts the server (done by the first request or the with block)."""
        if self.proc is not None:
            return self
        binary = find_binary()
        self.port = _free_port()
        self.name = f"tc{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        args = self.args
        cmd = [binary, "run", self.spec, "--app-dir", self.app_dir,
               "--bind", f"127.0.0.1:{self.port}", "--name", self.name]
        if not any(a.startswith("--workers") for a in args):
            cmd += ["--workers", "1"]
        if not any(a.startswith("--py-workers") for a in args):
            cmd += ["--py-workers", "1"]
        cmd += args
        self._log = tempfile.NamedTemporaryFile(prefix="fasterapi-testclient-", suffix=".log",
                                                delete=False)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        atexit.register(self.close)
        deadline = time.monotonic() + self.start_timeout
        ready = f"on http://127.0.0.1:{self.port} "
        while True:
            if ready in self.log():
                return self
            code = self.proc.poll()
            if code is not None:
                log = self.log()
                self._cleanup()
                raise RuntimeError(f"fasterapi run {self.spec} exited with status {code} before "
                                   f"serving:\n{log}")
            if time.monotonic() > deadline:
                log = self.log()
                self.close()
                raise RuntimeError(f"fasterapi run {self.spec} did not start within "
                                   f"{self.start_timeout} s:\n{log}")
            time.sleep(0.02)

    def log(self):
        """The server's output so far (tracebacks of handlers that raised)."""
        if self._log is None:
            return ""
        with open(self._log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def close(self):
        """Stops the server (SIGTERM, then SIGKILL after 15 s)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup()

    def _cleanup(self):
        self.proc = None
        if self._log is not None:
            self._log.close()
            try:
                os.unlink(self._log.name)
            except OSError:
                pass
            self._log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------- requests

    def request(self, method, url, *, params=None, headers=None, cookies=None, json=None,
                data=None, files=None, content=None, follow_redirects=None, timeout=None):
        self.start()
        method = method.upper()
        parts = urlsplit(url)
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urlencode(list(params.items()) if hasattr(params, "items") else params,
                              doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target += "?" + query
        out_headers = {k.lower(): str(v) for k, v in self.headers.items()}
        out_headers.update({k.lower(): str(v) for k, v in (headers or {}).items()})
        body = None
        if json is not None:
            body = _json.dumps(json).encode()
            out_headers.setdefault("content-type", "application/json")
        elif files:
            fields = list((data or {}).items())
            parts_ = []
            for name, value in files.items():
                if isinstance(value, (bytes, str)):
                    value = (name, value)
                filename, payload = value[0], value[1]
                ctype = value[2] if len(value) > 2 else "application/octet-stream"
                if hasattr(payload, "read"):
                    payload = payload.read()
                if isinstance(payload, str):
                    payload = payload.encode()
                parts_.append((name, (filename, payload, ctype)))
            body, ctype = encode_multipart(fields, parts_, uuid.uuid4().hex)
            out_headers["content-type"] = ctype
        elif isinstance(data, dict):
            body = urlencode(list(data.items()), doseq=True).encode()
            out_headers.setdefault("content-type", "application/x-www-form-urlencoded")
        elif data is not None or content is not None:
            body = data if data is not None else content
            if isinstance(body, str):
                body = body.encode()
        jar = dict(self.cookies)
        jar.update(cookies or {})
        if jar:
            out_headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        response = self._send(method, target, out_headers, body, timeout)
        for key, value in response.cookies.items():
            if value == "" and "max-age=0" in " ".join(response.headers.getlist("set-cookie")
                                                       ).lower():
                self.cookies.pop(key, None)
            else:
                self.cookies[key] = value
        follow = self.follow_redirects if follow_redirects is None else follow_redirects
        hops = 0
        while follow and response.status_code in (301, 302, 303, 307, 308) and hops < 20:
            location = response.headers.get("location")
            if not location:
                break
            hops += 1
            nxt = urljoin(target, location)
            n = urlsplit(nxt)
            if n.netloc and n.netloc not in ("testserver", f"127.0.0.1:{self.port}"):
                break
            target = (n.path or "/") + (f"?{n.query}" if n.query else "")
            if response.status_code in (301, 302, 303) and method != "HEAD":
                method, body = "GET", None
                out_headers.pop("content-type", None)
            history = response.history + [response]
            response = self._send(method, target, out_headers, body, timeout)
            response.history = history
        return response

    def _send(self, method, target, headers, body, timeout):
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                        timeout=timeout or self.timeout)
            try:
                self._conn.request(method, target, body=body, headers=headers)
                r = self._conn.getresponse()
                content = r.read()
                response = TestResponse(r.status, r.reason, r.getheaders(), content,
                                        self.base_url + target)
                if r.will_close:
                    self._conn.close()
                    self._conn = None
                return response
            except (ConnectionError, http.client.RemoteDisconnected,
                    http.client.BadStatusLine):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise

    def get(self, url, **kw):
        return self.request("GET", url, **kw)

    def post(self, url, **kw):
        return self.request("POST", url, **kw)

    def put(self, url, **kw):
        return self.request("PUT", url, **kw)

    def patch(self, url, **kw):
        return self.request("PATCH", url, **kw)

    def delete(self, url, **kw):
        return self.request("DELETE", url, **kw)

    def head(self, url, **kw):
        return self.request("HEAD", url, **kw)

    def options(self, url, **kw):
        return self.request("OPTIONS", url, **kw)

