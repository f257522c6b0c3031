"""Issue 4: reload (SIGHUP / fasterapi reload) under load: zero failed
requests, the new code answers afterwards, a broken reload keeps serving."""
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

APP_V1 = '''
from fasterapi import App
app = App()

@app.get("/v")
def v():
    return {"v": %d}
'''

APP_V2 = APP_V1 + '''
@app.get("/added")
def added():
    return "new route"
'''


def _wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    shutil.rmtree(os.path.join(os.path.dirname(path), "__pycache__"), ignore_errors=True)


class Load:
    """Keep-alive clients hammering /v; every request must be answered 200."""

    def __init__(self, srv, tools, threads=4):
        self.srv, self.tools = srv, tools
        self.ok = 0
        self.versions = []
        self.failures = []
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        c = None
        while not self.stop_flag.is_set():
            try:
                if c is None:
                    c = self.tools.RawClient(self.srv.port, timeout=15)
                c.request("GET", "/v")
                r = c.read_response()
            except (OSError, EOFError, AssertionError) as e:
                with self.lock:
                    self.failures.append("no answer: %r" % (e,))
                c = None
                continue
            with self.lock:
                if r.status == 200:
                    self.ok += 1
                    self.versions.append(r.json()["v"])
                else:
                    self.failures.append(repr(r))
            if r.header("connection") == "close":
                c.close()
                c = None

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(20)


def test_reload_under_load_loses_nothing_and_serves_new_code(server, tools, tmp_path):
    app = str(tmp_path / "reloadapp.py")
    _write(app, APP_V1 % 1)
    srv = server("reloadapp:app", "--workers", "1", "--py-workers", "2", app_dir=tmp_path)
    old_http = set(srv.http_workers())
    old_py = set(srv.py_workers())
    assert srv.get("/added").status == 404
    with Load(srv, tools) as load:
        assert _wait_until(lambda: load.ok > 200, 10)
        _write(app, APP_V2 % 2)
        r = subprocess.run([srv.args[0], "reload", "--name", srv.name], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert srv.wait_log(r"reload: version 1 is serving", 20), srv.log()
        n = load.ok
        assert _wait_until(lambda: load.ok > n + 200, 10)
    assert load.failures == [], load.failures[:5]
    assert load.versions[0] == 1 and load.versions[-1] == 2, load.versions[-5:]
    assert srv.get("/v").json() == {"v": 2}
    r = srv.get("/added")
    assert r.status == 200 and r.body == b"new route"
    # Every worker was replaced.
    assert _wait_until(lambda: not (set(srv.py_workers()) & old_py), 15), srv.log()
    assert not (set(srv.http_workers()) & old_http)
    assert len(srv.http_workers()) == 1 and len(srv.py_workers()) == 2


def test_reload_with_broken_code_keeps_the_old_workers(server, tmp_path):
    app = str(tmp_path / "brokenreload.py")
    _write(app, APP_V1 % 1)
    srv = server("brokenreload:app", "--py-workers", "1", app_dir=tmp_path)
    before = set(srv.children())
    _write(app, APP_V1 % 1 + "\nthis is not python(\n")
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_log(r"reload failed: cannot load the app 'brokenreload:app'.*still serving version 0", 15), \
        srv.log()
    assert "SyntaxError" in srv.log()
    assert srv.get("/v").json() == {"v": 1}
    assert set(srv.children()) == before


def test_reload_whose_workers_die_at_start_is_aborted(server, tmp_path):
    app = str(tmp_path / "dyingreload.py")
    _write(app, APP_V1 % 1)
    srv = server("dyingreload:app", "--py-workers", "1", app_dir=tmp_path)
    _write(app, APP_V1 % 2 + '''
import os, _fasterapi
if _fasterapi.worker_info()["slot"] >= 0:
    os._exit(3)
''')
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_log(r"reload failed: a new worker keeps dying at start-up; still serving version 0", 20), \
        srv.log()
    assert srv.get("/v").json() == {"v": 1}
    assert _wait_until(lambda: len(srv.py_workers()) == 1, 10), srv.log()
