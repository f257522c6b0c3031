"""Crashes at the worst instant (issues 4 and 6): Python workers, then HTTP
workers, are SIGKILLed over and over while a load runs. Every request ends
exactly once, with its own answer or a 502 (or, for HTTP worker kills, a
closed connection); nothing hangs; afterwards the segment's counters are
back to idle: nothing in flight, nothing queued, every chunk free."""
import json
import os
import random
import signal
import subprocess
import threading
import time

# CI kills a few dozen times; FA_STRESS_KILLS=300 runs the long version.
KILLS = int(os.environ.get("FA_STRESS_KILLS", "25"))


def _wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


class Load:
    """Threads sending /seq/N with a unique N each and checking the answer
    is for that N (200) or a 502; anything else (another request's answer,
    a second answer, a hang) is a failure. Connection errors are counted
    apart: they are the expected outcome of an HTTP worker's death."""

    def __init__(self, srv, tools, threads=6):
        self.srv, self.tools = srv, tools
        self.ok = self.bad_gateway = self.conn_errors = 0
        self.failures = []
        self.seq = 0
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _next(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def _run(self):
        c = None
        while not self.stop_flag.is_set():
            n = self._next()
            try:
                if c is None:
                    c = self.tools.RawClient(self.srv.port, timeout=20)
                c.request("GET", "/seq/%d?delay_ms=%d" % (n, n % 3))
                r = c.read_response()
            except (ConnectionError, EOFError) as e:
                with self.lock:
                    self.conn_errors += 1
                c = None
                continue
            except OSError as e:     # a timeout: something hung
                with self.lock:
                    self.failures.append("request %d: %r" % (n, e))
                c = None
                continue
            with self.lock:
                if r.status == 200 and r.json()["i"] == n:
                    self.ok += 1
                elif r.status == 502:
                    self.bad_gateway += 1
                else:
                    self.failures.append("request %d: %r" % (n, r))

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"


def _snapshot(srv):
    binary = os.path.join(os.path.dirname(srv.args[0]), "shm-stat")
    r = subprocess.run([binary, srv.name, "--json"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _idle(srv):
    snap = _snapshot(srv)
    per = snap["chunks_per_arena"]
    http = [w for w in snap["http"]]
    py = [w for w in snap["python"]]
    return (all(w["chunks_free"] == per for w in http + py) and
            all(w["in_flight"] == 0 for w in py) and
            all(w["queued"] == 0 for w in http)), snap


def _check_idle(srv):
    ok = _wait_until(lambda: _idle(srv)[0], 10)
    assert ok, json.dumps(_idle(srv)[1], indent=1)


def _ready_py_pids(srv):
    r = subprocess.run([srv.args[0], "status", "--name", srv.name], capture_output=True, text=True, timeout=10)
    return [int(f[2]) for f in (ln.split() for ln in r.stdout.splitlines()[2:])
            if f[0] == "python" and f[3] == "ready" and int(f[2]) > 0]


def test_python_workers_killed_during_load(server, tools):
    srv = server("testapp:app", "--workers", "1", "--py-workers", "3", "--max-py-workers", "6")
    rng = random.Random(1)
    kills = 0
    with Load(srv, tools) as load:
        deadline = time.monotonic() + 2 * KILLS
        while kills < KILLS and time.monotonic() < deadline:
            pids = _ready_py_pids(srv)
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(rng.uniform(0.02, 0.1))
        assert _wait_until(lambda: len(_ready_py_pids(srv)) == 3, 20), srv.log()
        time.sleep(0.5)
    assert load.failures == [], (load.failures[:5], srv.log()[-3000:])
    assert load.conn_errors == 0, load.conn_errors
    assert kills >= KILLS * 2 // 3, kills
    assert load.ok > 200 and load.bad_gateway > 0, (load.ok, load.bad_gateway)
    assert srv.get("/pid").status == 200
    _check_idle(srv)


def test_http_workers_killed_during_load(server, tools):
    srv = server("testapp:app", "--workers", "2", "--py-workers", "2")
    rng = random.Random(2)
    kills = 0
    with Load(srv, tools) as load:
        deadline = time.monotonic() + 3 * KILLS   # restarts back off: no HTTP worker to kill for a while
        while kills < KILLS and time.monotonic() < deadline:
            pids = list(srv.http_workers())
            if pids:
                try:
                    os.kill(rng.choice(pids), signal.SIGKILL)
                    kills += 1
                except ProcessLookupError:
                    pass
            time.sleep(rng.uniform(0.1, 0.3))
        _wait_until(lambda: len(srv.http_workers()) == 2, 15)
        time.sleep(0.5)
    assert load.failures == [], load.failures[:5]
    assert kills >= KILLS // 2, kills
    assert load.ok > 200, load.ok
    assert srv.get("/pid").status == 200
    _check_idle(srv)
