"""Black-box test harness: start the real ./fasterapi, talk HTTP to it over
loopback sockets, look at its processes in /proc, stop it and check that it
left nothing behind.

Everything the tests need comes through fixtures (no `from conftest import`),
so this directory can be collected beside tests/python, which has its own
conftest.

Environment:
  FASTERAPI_BUILDDIR  the build tree holding ./fasterapi and
                      ./fasterapi-pyworker (default: the source tree root)
"""
import email.utils
import itertools
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SRCDIR = Path(__file__).resolve().parents[2]
BUILDDIR = Path(os.environ.get("FASTERAPI_BUILDDIR", str(SRCDIR))).resolve()
FASTERAPI = BUILDDIR / "fasterapi"
PYWORKER = BUILDDIR / "fasterapi-pyworker"
APPS_DIR = Path(__file__).resolve().parent / "apps"
EXAMPLES_DIR = SRCDIR / "examples"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0

_names = itertools.count(1)


def unique_name():
    """An instance name no other test (nor an earlier run) uses."""
    return "t%d_%d_%d" % (os.getpid(), next(_names), int(time.time() * 1000) % 100000)


def segment_path(name):
    return "/dev/shm/fasterapi." + name


def free_port():
    """A loopback port nobody listens on right now (bind to 0, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _require_binaries():
    missing = [str(p) for p in (FASTERAPI, PYWORKER) if not os.access(str(p), os.X_OK)]
    if missing:
        pytest.fail("not built: %s (set FASTERAPI_BUILDDIR to the build tree)" % ", ".join(missing),
                    pytrace=False)


# ---- /proc ------------------------------------------------------------------

def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[1]), int(rest[19])


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError):
        return []


def proc_exe(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return ""


def is_pyworker(pid):
    exe = os.path.basename(proc_exe(pid))
    argv = proc_cmdline(pid)
    return exe == "fasterapi-pyworker" or bool(argv and os.path.basename(argv[0]) == "fasterapi-pyworker")


def children_of(ppid):
    """Live (not zombie) children of ppid: {pid: starttime}."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st and st[1] == ppid and st[0] != "Z":
            out[int(entry)] = st[2]
    return out


def alive(pid, starttime):
    """True if the process pid started at starttime still runs (a zombie is dead)."""
    st = proc_stat(pid)
    return st is not None and st[2] == starttime and st[0] != "Z"


# ---- HTTP over a raw socket ---------------------------------------------------

class Response:
    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)] in wire order
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        """The value of the only header called name (any case), or None."""
        vals = self.header_all(name)
        assert len(vals) <= 1, "header %s repeated: %r" % (name, vals)
        return vals[0] if vals else None

    def header_all(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (
            self.status, self.reason, self.headers, self.body[:300])


class RawClient:
    """One TCP connection; send any bytes, read exactly one response at a time."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.port = port

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, body=None, headers=(), version="HTTP/1.1"):
        """Sends one request (Host and, with a body, Content-Length added)."""
        self.send(build_request(method, path, body, headers, version, self.port))

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server; unparsed bytes: %r" % self.buf[:300])
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_head(self):
        """Reads a response head alone (a streamed body is read on its own):
        (status line, {lower-case name: value})."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        return lines[0], {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}

    def read_chunks(self):
        """Reads a chunked body after read_head(): its chunks, without the
        last empty one."""
        chunks = []
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                assert self._line() == b""
                return chunks
            chunks.append(self._take(size))
            assert self._take(2) == b"\r\n"

    def read_response(self, head=False):
        """Reads one whole response (skipping 100 Continue). head=True: the
        request was HEAD, so no body follows whatever the headers say."""
        while True:
            while b"\r\n\r\n" not in self.buf:
                self._fill()
            raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            lines = raw_head.split(b"\r\n")
            m = re.match(rb"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", lines[0])
            assert m, "bad status line %r" % lines[0]
            version, status, reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1")
            headers = []
            for ln in lines[1:]:
                assert b":" in ln and not ln[:1].isspace(), "bad header line %r in %r" % (ln, raw_head)
                n, v = ln.split(b":", 1)
                assert n == n.strip() and n, "bad header name %r" % n
                headers.append((n.decode("latin-1"), v.strip().decode("latin-1")))
            if status == 100:
                continue
            resp = Response(version, status, reason, headers, b"", raw_head)
            te = resp.header("transfer-encoding")
            cl = resp.header("content-length")
            if head or status in (204, 304) or 100 <= status < 200:
                body = b""
            elif te is not None:
                assert te.lower() == "chunked", "transfer-encoding %r" % te
                body = b""
                while True:
                    size = int(self._line().split(b";")[0], 16)
                    if size == 0:
                        while self._line() != b"":
                            pass
                        break
                    body += self._take(size)
                    assert self._take(2) == b"\r\n"
            elif cl is not None:
                body = self._take(int(cl))
            else:
                body = self.read_until_close()
            resp.body = body
            return resp

    def read_until_close(self):
        chunks = [self.buf]
        self.buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)

    def closed_by_server(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within
        timeout without sending anything more; False if it stays open.
        Bytes received meanwhile fail the assertion."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
        assert data == b"" and self.buf == b"", "unexpected bytes after the response: %r" % (self.buf + data)
        return True


def build_request(method, path, body=None, headers=(), version="HTTP/1.1", port=None):
    lines = ["%s %s %s" % (method, path, version)]
    names = {n.lower() for n, _ in headers}
    if "host" not in names and version == "HTTP/1.1":
        lines.append("Host: 127.0.0.1:%d" % port)
    for n, v in headers:
        lines.append("%s: %s" % (n, v))
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body
    return data


def chunked(body, size):
    """body in chunked transfer coding, pieces of size bytes."""
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def check_common_headers(resp):
    """Date (IMF-fixdate, about now), Server and Content-Length (== body) on
    every response."""
    date = resp.header("date")
    assert date is not None, "no Date header: %r" % resp
    assert re.match(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                    r"\d{4} \d\d:\d\d:\d\d GMT$", date), "Date not in IMF-fixdate: %r" % date
    when = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(when - time.time()) < 120, "Date %r is not now" % date
    assert resp.header("server") == "fasterapi", resp
    cl = resp.header("content-length")
    assert cl is not None, "no Content-Length: %r" % resp


# ---- the server ----------------------------------------------------------------

class Server:
    """One running `fasterapi run`. Stop it with stop(); the fixture that made
    it stops it (SIGTERM) at teardown if the test did not, and checks a clean
    exit: status 0 and the segment unlinked."""

    def __init__(self, spec, extra, app_dir, log_dir, name=None, port=None):
        self.spec = spec
        self.name = name or unique_name()
        self.port = port or free_port()
        self.log_path = Path(log_dir) / ("%s.log" % self.name)
        self.args = [str(FASTERAPI), "run", spec, "--app-dir", str(app_dir),
                     "--bind", "127.0.0.1:%d" % self.port, "--name", self.name] + list(extra)
        self.returncode = None
        self.checked = False      # the test dealt with the exit itself
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=str(BUILDDIR))
        self.pid = self.proc.pid

    @property
    def segment(self):
        return segment_path(self.name)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def fail(self, why):
        pytest.fail("%s\n$ %s\n--- server log ---\n%s" % (why, " ".join(self.args), self.log()),
                    pytrace=False)

    def wait_ready(self, timeout=START_TIMEOUT):
        line = re.compile(r"serving %s on http://127\.0\.0\.1:%d " % (re.escape(self.spec), self.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if line.search(self.log()):
                return self
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self.checked = True
                self.fail("the server exited with status %d before serving" % rc)
            time.sleep(0.05)
        self.fail("no 'serving ... on http://127.0.0.1:%d' line within %g s" % (self.port, timeout))

    def wait_log(self, pattern, timeout=5.0):
        """Waits for a regex in the log; returns the match or None."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m or time.monotonic() >= deadline:
                return m
            time.sleep(0.05)

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            self.checked = True
            self.fail("the master did not exit within %g s (killed it)" % timeout)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig to the master and waits for it; returns the exit status."""
        if self.proc.poll() is None:
            self.send_signal(sig)
        return self.wait_exit(timeout)

    def teardown(self):
        try:
            if self.proc.poll() is None:
                self.stop()
                if not self.checked:
                    if self.returncode != 0:
                        self.fail("SIGTERM at teardown: exit status %d, expected 0" % self.returncode)
                    if os.path.exists(self.segment):
                        self.fail("%s still exists after a clean stop" % self.segment)
        finally:
            self._log.close()

    # -- processes --
    def children(self):
        """{pid: starttime} of the master's live children."""
        return children_of(self.pid)

    def py_workers(self):
        return {p: t for p, t in self.children().items() if is_pyworker(p)}

    def http_workers(self):
        return {p: t for p, t in self.children().items() if not is_pyworker(p)}

    # -- HTTP --
    def raw(self, timeout=10.0):
        return RawClient(self.port, timeout)

    def request(self, method, path, body=None, headers=(), timeout=10.0):
        """One request on a fresh connection; returns the Response."""
        with self.raw(timeout) as c:
            c.request(method, path, body, headers)
            return c.read_response(head=(method == "HEAD"))

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


class ServerFactory:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.servers = []

    def __call__(self, spec="testapp:app", *extra, app_dir=APPS_DIR, name=None, port=None, wait=True):
        """Starts `fasterapi run spec --app-dir app_dir --bind 127.0.0.1:port
        --name name *extra` and waits for its 'serving' line."""
        _require_binaries()
        srv = Server(spec, extra, app_dir, self.log_dir, name=name, port=port)
        self.servers.append(srv)
        if wait:
            srv.wait_ready()
        return srv

    def teardown(self):
        errors = []
        for srv in reversed(self.servers):
            try:
                srv.teardown()
            except BaseException as e:   # pytest.fail raises a BaseException
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture
def server(tmp_path):
    """Factory: server(spec, *extra_args, app_dir=..., name=..., port=...)."""
    f = ServerFactory(tmp_path)
    yield f
    f.teardown()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    """The same factory, for servers shared by a whole test module."""
    f = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield f
    f.teardown()


class Cli:
    """Runs fasterapi to completion (for commands that must exit by themselves)."""
    binary = FASTERAPI
    apps_dir = APPS_DIR
    examples_dir = EXAMPLES_DIR

    def __call__(self, *args, timeout=20.0):
        _require_binaries()
        try:
            return subprocess.run([str(FASTERAPI)] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout, cwd=str(BUILDDIR))
        except subprocess.TimeoutExpired as e:
            pytest.fail("fasterapi %s did not exit within %g s (a restart loop?)\n--- stderr ---\n%s"
                        % (" ".join(map(str, args)), timeout,
                           (e.stderr or b"").decode(errors="replace")), pytrace=False)


@pytest.fixture
def cli():
    return Cli()


class Tools:
    """Helpers for the tests, handed out as a fixture."""
    RawClient = RawClient
    Response = Response
    build_request = staticmethod(build_request)
    chunked = staticmethod(chunked)
    check_common_headers = staticmethod(check_common_headers)
    children_of = staticmethod(children_of)
    alive = staticmethod(alive)
    proc_stat = staticmethod(proc_stat)
    is_pyworker = staticmethod(is_pyworker)
    free_port = staticmethod(free_port)
    unique_name = staticmethod(unique_name)
    segment_path = staticmethod(segment_path)
    apps_dir = APPS_DIR
    examples_dir = EXAMPLES_DIR


@pytest.fixture(scope="session")
def tools():
    return Tools()
