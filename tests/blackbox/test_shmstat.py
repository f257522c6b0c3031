"""shm-stat against a live server: counters, rates, latency, RSS, --watch."""
import json
import os
import subprocess
import time


def _shm_stat(srv, *args, timeout=10):
    binary = os.path.join(os.path.dirname(srv.args[0]), "shm-stat")
    return subprocess.run([binary, srv.name, *args], capture_output=True, text=True, timeout=timeout)


def test_json_snapshot_of_a_busy_server(server, tools):
    srv = server("testapp:app", "--workers", "1", "--py-workers", "2")
    with srv.raw() as c:
        for i in range(50):
            c.request("GET", "/seq/%d" % i)
            assert c.read_response().status == 200
    time.sleep(1.2)    # the master samples RSS every second
    r = _shm_stat(srv, "--json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    assert snap["name"] == srv.name
    http = [w for w in snap["http"] if w["pid"] > 0]
    py = [w for w in snap["python"] if w["pid"] > 0]
    assert len(http) == 1 and len(py) == 2
    assert {w["pid"] for w in py} == set(srv.py_workers())
    assert http[0]["requests"] >= 50
    assert sum(w["requests"] for w in py) >= 50
    assert snap["totals"]["python"]["requests"] == sum(w["requests"] for w in snap["python"])
    busy = [w for w in py if w["requests"] > 0]
    assert all(w["latency_avg_ms"] is not None and 0 < w["latency_avg_ms"] < 1000 for w in busy), busy
    assert all(w["latency_p99_ms"] >= w["latency_avg_ms"] for w in busy), busy
    assert all(w["rss_kb"] > 1000 for w in py), py
    assert all(w["state"] == "ready" and w["in_flight"] == 0 for w in py), py


def test_watch_redraws(server):
    srv = server("testapp:app", "--py-workers", "1")
    try:
        r = _shm_stat(srv, "--watch", "0.3", timeout=1.5)
        out = r.stdout
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode()
    assert out.count("server '%s'" % srv.name) >= 2, out


def test_missing_server(tmp_path):
    binary = os.path.join(os.environ.get("FASTERAPI_BUILDDIR", "."), "shm-stat")
    r = subprocess.run([binary, "nosuch%d" % os.getpid()], capture_output=True, text=True)
    assert r.returncode == 1
    assert "no server named 'nosuch%d'" % os.getpid() in r.stderr, r.stderr


def test_prometheus_metrics_served_in_c(server):
    srv = server("testapp:app", "--py-workers", "1", "--metrics", "/metrics")
    for i in range(5):
        assert srv.get("/seq/%d" % i).status == 200
    r = srv.get("/metrics")
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    assert "# TYPE fasterapi_python_requests_total counter" in text
    py = [ln for ln in text.splitlines() if ln.startswith('fasterapi_python_requests_total{python_worker="0"}')]
    assert py and int(py[0].split()[-1]) >= 5, text
    assert 'fasterapi_worker_state{kind="python",slot="0",state="ready"} 1' in text
    count = [ln for ln in text.splitlines()
             if ln.startswith('fasterapi_python_latency_seconds_count{python_worker="0"}')]
    assert count and int(count[0].split()[-1]) >= 5, text
    # The Python workers never saw /metrics.
    assert srv.get("/pid").status == 200


def test_metrics_path_clash_is_refused(cli):
    r = cli("run", "testapp:app", "--app-dir", cli.apps_dir, "--bind", "127.0.0.1:1", "--metrics", "/pid",
            "--name", "clash%d" % os.getpid())
    assert r.returncode != 0
    assert b"--metrics /pid" in r.stderr, r.stderr
