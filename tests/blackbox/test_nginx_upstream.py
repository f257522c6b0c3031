"""Two instances on Unix sockets behind Debian's nginx (the deployment recipe of
perf/SCALING.md and examples/deploy/nginx.conf): a keep-alive load through nginx
loses no request while one instance is stopped with SIGTERM (graceful drain) and
started again on the same socket and name.

The second test checks the drain refuses new connections (connect() fails, which nginx
retries for every method) instead of queueing them and resetting them at exit.

Needs /usr/sbin/nginx (Debian package nginx); without it the test
fails, unless FASTERAPI_ALLOW_SKIP is set (then it is skipped)."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

NGINX = "/usr/sbin/nginx"
THREADS = 6


def _need_nginx():
    if os.access(NGINX, os.X_OK):
        return
    msg = ("%s is missing: install Debian's nginx (apt-get install nginx, or "
           "scripts/install-deps --test) to run the nginx upstream test" % NGINX)
    if os.environ.get("FASTERAPI_ALLOW_SKIP"):
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


def _wait_unix_ready(srv, spec, sock, timeout=20.0):
    line = re.compile(r"serving %s on http://unix:%s " % (re.escape(spec), re.escape(sock)))
    deadline = time.monotonic() + timeout
    while not line.search(srv.log()):
        if srv.proc.poll() is not None:
            srv.returncode = srv.proc.returncode
            srv.checked = True
            srv.fail("the instance exited with status %d before serving" % srv.returncode)
        if time.monotonic() > deadline:
            srv.fail("no 'serving %s on http://unix:%s' line within %g s" % (spec, sock, timeout))
        time.sleep(0.05)
    return srv


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
%(user)s
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %(dir)s/client_body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;

    upstream fasterapi {
        server unix:%(sock_a)s max_fails=1 fail_timeout=1s;
        server unix:%(sock_b)s max_fails=1 fail_timeout=1s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:%(port)d;
        keepalive_requests 100000;
        location / {
            proxy_pass http://fasterapi;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 0;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }
    }
}
"""


class Nginx:
    def __init__(self, conf_dir, sock_a, sock_b, port):
        self.dir = conf_dir
        self.port = port
        user = "user root;" if os.geteuid() == 0 else ""   # the workers must reach the sockets
        self.conf = os.path.join(conf_dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF % dict(user=user, dir=conf_dir, sock_a=sock_a, sock_b=sock_b, port=port))
        self.log = open(os.path.join(conf_dir, "stderr.log"), "wb")
        self.proc = subprocess.Popen([NGINX, "-c", self.conf, "-p", conf_dir, "-e",
                                      os.path.join(conf_dir, "error.log")],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def error_log(self):
        out = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read().decode(errors="replace")
            except FileNotFoundError:
                pass
        return out

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("nginx exited with status %d\n%s" % (self.proc.returncode, self.error_log()),
                            pytrace=False)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("nginx does not listen on 127.0.0.1:%d\n%s" % (self.port, self.error_log()),
                    pytrace=False)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)   # nginx's graceful shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Load:
    """THREADS threads, each a keep-alive connection to nginx: half do GET /pid,
    half POST /work (a 100-byte body, 20 ms in the handler: requests are in
    flight when an instance is stopped, and nginx never retries a POST it has
    sent, so a request cut by the restart shows). Every answer must be 200
    "instance <pid>" (plus the body length for POST) with pid one of the live
    masters; anything else (an error status, a wrong body, a connection error)
    is a failure. Hits are counted per instance pid and per phase."""

    def __init__(self, tools, port):
        self.tools = tools
        self.port = port
        self.lock = threading.Lock()
        self.phase = "before"
        self.hits = {}            # (phase, pid) -> count
        self.failures = []
        self.valid = set()        # master pids whose answers are right
        self.total = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i % 2 == 1,), daemon=True)
                        for i in range(THREADS)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)

    def count(self, phase, pid):
        with self.lock:
            return self.hits.get((phase, pid), 0)

    def _fail(self, what):
        with self.lock:
            self.failures.append(what)

    def _run(self, post):
        client = None
        body = b"p" * 100
        want = rb"^instance (\d+) 100$" if post else rb"^instance (\d+)$"
        while not self.stopping.is_set():
            try:
                if client is None:
                    client = self.tools.RawClient(self.port, timeout=10)
                if post:
                    client.request("POST", "/work", body=body,
                                   headers=[("Content-Type", "application/octet-stream")])
                else:
                    client.request("GET", "/pid")
                resp = client.read_response()
            except Exception as e:    # noqa: BLE001 - every error is a lost request
                self._fail("connection error: %r" % e)
                if client is not None:
                    client.close()
                client = None
                time.sleep(0.01)
                continue
            m = re.match(want, resp.body)
            with self.lock:
                phase = self.phase
                self.total += 1
                if resp.status != 200 or not m or int(m.group(1)) not in self.valid:
                    self.failures.append("bad answer: %r" % resp)
                else:
                    key = (phase, int(m.group(1)))
                    self.hits[key] = self.hits.get(key, 0) + 1
            if (resp.header("connection") or "").lower() == "close":
                client.close()
                client = None
        if client is not None:
            client.close()


def _wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for %s" % what, pytrace=False)
        time.sleep(0.05)


def test_restart_behind_nginx_loses_nothing(server, tools, tmp_path):
    _need_nginx()
    spec = "upstream_app:app"
    # Unix socket paths are limited to 107 bytes: keep them short.
    sock_dir = tempfile.mkdtemp(prefix="fa-ngx-", dir="/tmp")
    ngx = None
    load = None
    try:
        sock_a = os.path.join(sock_dir, "a.sock")
        sock_b = os.path.join(sock_dir, "b.sock")
        name_a, name_b = tools.unique_name() + "a", tools.unique_name() + "b"
        args = ("--workers", "1", "--py-workers", "1")
        srv_a = server(spec, *args, "--bind", "unix:" + sock_a, name=name_a, wait=False)
        srv_b = server(spec, *args, "--bind", "unix:" + sock_b, name=name_b, wait=False)
        _wait_unix_ready(srv_a, spec, sock_a)
        _wait_unix_ready(srv_b, spec, sock_b)

        ngx_dir = str(tmp_path / "nginx")
        os.mkdir(ngx_dir)
        ngx = Nginx(ngx_dir, sock_a, sock_b, tools.free_port())
        ngx.wait_ready()

        # The health route (served in C) through nginx.
        with tools.RawClient(ngx.port) as c:
            c.request("GET", "/health")
            r = c.read_response()
            assert r.status == 200 and r.body == b"ok", r

        load = Load(tools, ngx.port)
        load.valid = {srv_a.pid, srv_b.pid}
        load.start()
        _wait_for(lambda: load.count("before", srv_a.pid) >= 50 and load.count("before", srv_b.pid) >= 50,
                  10, "both instances to serve 50 requests before the restart")

        # Restart A under load: SIGTERM (graceful drain), exit 0, start again
        # on the same socket and name.
        with load.lock:
            load.phase = "during"
        assert srv_a.stop() == 0, srv_a.log()
        srv_a.checked = True
        assert not os.path.exists(srv_a.segment), "segment left behind after SIGTERM"
        new_a = server(spec, *args, "--bind", "unix:" + sock_a, name=name_a, wait=False)
        with load.lock:
            load.valid.add(new_a.pid)
        _wait_unix_ready(new_a, spec, sock_a)
        with load.lock:
            load.phase = "after"
        _wait_for(lambda: load.count("after", new_a.pid) >= 50 and load.count("after", srv_b.pid) >= 50,
                  15, "both instances (A restarted) to serve 50 requests after the restart")
        load.stop()

        hits = dict(load.hits)
        assert not load.failures, "%d failed requests of %d, first ones: %s\nhits: %r\n--- nginx ---\n%s" % (
            len(load.failures), load.total, load.failures[:5], hits, ngx.error_log())
        assert load.count("after", srv_a.pid) == 0, "the stopped instance answered after its restart"
        assert load.count("during", srv_b.pid) > 0, "the load stopped while A restarted: %r" % hits
        assert load.total >= 200, hits
    finally:
        if load is not None:
            load.stop()
        if ngx is not None:
            ngx.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_connection_after_sigterm_is_refused_not_reset(server, tools):
    """After SIGTERM a new connection must fail at connect() (which nginx retries
    for every method), not be accepted into the backlog and reset at exit."""
    spec = "upstream_app:app"
    sock_dir = tempfile.mkdtemp(prefix="fa-drain-", dir="/tmp")
    try:
        sock = os.path.join(sock_dir, "d.sock")
        srv = server(spec, "--py-workers", "1", "--bind", "unix:" + sock, wait=False)
        _wait_unix_ready(srv, spec, sock)
        busy = socket.socket(socket.AF_UNIX)
        busy.settimeout(10)
        busy.connect(sock)
        busy.sendall(b"GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n")   # keeps the drain going
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_log(r"SIGTERM", 5), srv.log()
        time.sleep(0.2)
        late = socket.socket(socket.AF_UNIX)
        late.settimeout(10)
        try:
            late.connect(sock)
        except (FileNotFoundError, ConnectionRefusedError):
            refused = True
        else:
            refused = False
            late.sendall(b"POST /pid HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            try:
                answer = late.recv(65536)
            except ConnectionResetError:
                answer = b"<reset>"
        finally:
            late.close()
        first = busy.recv(65536)
        busy.close()
        assert first.startswith(b"HTTP/1.1 200 "), first    # the in-flight request is answered
        assert srv.wait_exit() == 0
        srv.checked = True
        assert refused, "a connection made during the drain was accepted; it got %r" % answer
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
