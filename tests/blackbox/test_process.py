"""The process tree: worker counts, the segment, one server per name,
stopping by signal, the master's death, a Python worker's death."""
import os
import signal
import stat
import subprocess
import time

import pytest


def _wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def _answers_200(srv, path="/pid"):
    """True if one GET path is answered 200 within 2 s."""
    try:
        return srv.get(path, timeout=2).status == 200
    except (OSError, EOFError):
        return False


def _pid_ok(srv):
    r = srv.get("/pid")
    assert r.status == 200, r
    return r


def test_worker_counts(server):
    srv = server("testapp:app", "--workers", "2", "--py-workers", "3")
    http = srv.http_workers()
    py = srv.py_workers()
    assert len(http) == 2, "HTTP workers %r, all children %r" % (http, srv.children())
    assert len(py) == 3, "Python workers %r, all children %r" % (py, srv.children())
    # HTTP workers are forks of the master: the same program.
    for pid in http:
        assert os.path.basename(os.readlink("/proc/%d/exe" % pid)) == "fasterapi"
    # The log line says so too.
    assert srv.wait_log(r"serving testapp:app on http://127\.0\.0\.1:%d \(2 HTTP workers, 3 Python workers, "
                        r"name '%s'\)" % (srv.port, srv.name), timeout=0), srv.log()


def test_single_workers(server):
    srv = server("testapp:app", "--workers", "1", "--py-workers", "1")
    assert len(srv.http_workers()) == 1, srv.children()
    assert len(srv.py_workers()) == 1, srv.children()


def test_segment_exists_with_mode_0600(server):
    srv = server("testapp:app", "--py-workers", "1")
    st = os.stat(srv.segment)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.getuid()
    assert st.st_size > 0


def test_second_server_with_same_name_is_refused(server, cli, tools):
    first = server("testapp:app", "--py-workers", "1")
    before = _pid_ok(first).json()
    port2 = tools.free_port()
    cp = cli("run", "testapp:app", "--app-dir", tools.apps_dir, "--bind", "127.0.0.1:%d" % port2,
             "--name", first.name, "--py-workers", "1", timeout=15)
    err = cp.stderr.decode(errors="replace")
    assert cp.returncode != 0, err
    assert "'%s'" % first.name in err, "the message does not name %r:\n%s" % (first.name, err)
    assert "already running" in err, err
    assert "serving" not in err
    # The first one is untouched: segment, workers, answers.
    assert os.path.exists(first.segment), "the refused server removed the live segment"
    assert first.proc.poll() is None
    assert _pid_ok(first).json() == before
    with pytest.raises(ConnectionRefusedError):
        tools.RawClient(port2, timeout=2)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_everything_cleanly(server, tools, sig):
    srv = server("testapp:app", "--workers", "2", "--py-workers", "2")
    _pid_ok(srv)
    kids = srv.children()
    assert len(kids) == 4, kids
    rc = srv.stop(sig)
    assert rc == 0, "exit status %d after %s\n%s" % (rc, sig.name, srv.log())
    left = [p for p, t in kids.items() if tools.alive(p, t)]
    assert left == [], "children still running after the master exited: %r" % left
    assert not os.path.exists(srv.segment), "segment not unlinked"
    with pytest.raises(ConnectionRefusedError):
        tools.RawClient(srv.port, timeout=2)


def test_stop_command(server, cli, tools):
    srv = server("testapp:app", "--py-workers", "1")
    kids = srv.children()
    cp = cli("stop", "--name", srv.name, timeout=10)
    assert cp.returncode == 0, cp.stderr
    assert srv.wait_exit() == 0, srv.log()
    assert not os.path.exists(srv.segment)
    assert [p for p, t in kids.items() if tools.alive(p, t)] == []


def test_stop_command_without_server(cli, tools):
    name = tools.unique_name()
    cp = cli("stop", "--name", name, timeout=10)
    assert cp.returncode != 0
    assert name in cp.stderr.decode(errors="replace")


def test_sigkill_to_master_takes_children_along(server, tools):
    srv = server("testapp:app", "--workers", "2", "--py-workers", "2")
    kids = srv.children()
    assert len(kids) == 4, kids
    srv.send_signal(signal.SIGKILL)
    srv.checked = True
    assert srv.wait_exit() == -signal.SIGKILL
    try:
        gone = _wait_until(lambda: not any(tools.alive(p, t) for p, t in kids.items()), 5.0)
        assert gone, "children alive 5 s after the master's SIGKILL: %r" % [
            p for p, t in kids.items() if tools.alive(p, t)]
    finally:
        # Nobody unlinks after a SIGKILL.
        try:
            os.unlink(srv.segment)
        except FileNotFoundError:
            pass


def test_stale_segment_of_killed_master_is_replaced(server):
    old = server("testapp:app", "--py-workers", "1")
    old.send_signal(signal.SIGKILL)
    old.checked = True
    old.wait_exit()
    assert os.path.exists(old.segment)
    # Same name: the segment left behind names a dead master, so it is replaced.
    new = server("testapp:app", "--py-workers", "1", name=old.name)
    assert new.get("/pid").status == 200


def test_python_worker_killed_is_restarted(server, tools):
    srv = server("testapp:app", "--py-workers", "1")
    (victim, t0), = srv.py_workers().items()
    assert _pid_ok(srv).json() == {"pid": victim}
    os.kill(victim, signal.SIGKILL)
    assert _wait_until(lambda: not tools.alive(victim, t0), 5.0)

    answered = {}

    def answers():
        try:
            r = srv.get("/pid", timeout=3)
        except (OSError, EOFError):
            return False
        if r.status == 200:
            answered["pid"] = r.json()["pid"]
            return True
        assert r.status in (502, 503), r    # while no worker is up
        return False

    assert _wait_until(answers, 10.0, step=0.1), "no answer within 10 s of the kill\n" + srv.log()
    new = answered["pid"]
    assert new != victim
    py = srv.py_workers()
    assert list(py) == [new], "Python workers now %r (killed %d)" % (py, victim)
    assert srv.wait_log(r"\(pid %d\)[^\n]*restarting" % victim, timeout=0), srv.log()


def test_python_worker_killed_among_several(server, tools):
    srv = server("testapp:app", "--py-workers", "3")
    before = srv.py_workers()
    assert len(before) == 3
    victim = sorted(before)[1]
    os.kill(victim, signal.SIGKILL)

    def back_to_three():
        now = srv.py_workers()
        return len(now) == 3 and victim not in now

    assert _wait_until(back_to_three, 10.0), "Python workers %r after killing %d" % (srv.py_workers(), victim)
    for _ in range(20):
        assert srv.get("/pid").status == 200



def test_request_in_flight_when_its_python_worker_dies_gets_502(server, tools):
    srv = server("testapp:app", "--py-workers", "1")
    (victim, t0), = srv.py_workers().items()
    with srv.raw(timeout=10) as c:
        c.request("GET", "/seq/1?delay_ms=3000")
        time.sleep(0.5)             # the handler is sleeping now
        os.kill(victim, signal.SIGKILL)
        t = time.monotonic()
        r = c.read_response()
        assert r.status == 502, r
        assert time.monotonic() - t < 3.0, "502 came only after %.1f s" % (time.monotonic() - t)
        tools.check_common_headers(r)
    # The restarted worker takes requests again.
    assert _wait_until(lambda: _answers_200(srv), 10.0, step=0.1), \
        "no 200 within 10 s after the 502\n" + srv.log()


def test_sigterm_finishes_the_request_in_flight(server):
    srv = server("testapp:app", "--py-workers", "1", "--graceful-timeout", "10")
    with srv.raw(timeout=15) as c:
        c.request("GET", "/seq/7?delay_ms=1500")
        time.sleep(0.3)
        srv.send_signal(signal.SIGTERM)
        r = c.read_response()
        assert r.status == 200, r
        assert r.json()["i"] == 7
    assert srv.wait_exit() == 0, srv.log()
    assert not os.path.exists(srv.segment)


def test_sigterm_does_not_wait_for_idle_keep_alive_connections(server):
    srv = server("testapp:app", "--py-workers", "1", "--graceful-timeout", "10")
    with srv.raw() as c:
        c.request("GET", "/pid")
        assert c.read_response().status == 200
        t = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        assert srv.wait_exit() == 0, srv.log()
        assert time.monotonic() - t < 3.0, "stopping took %.1f s with one idle connection" % (
            time.monotonic() - t)
        assert c.closed_by_server(timeout=2)


def test_name_defaults_to_default(cli, tools, tmp_path):
    """Without --name the instance is `default`: /dev/shm/fasterapi.default,
    mode 0600, while it runs; unlinked by a SIGTERM stop."""
    segment = tools.segment_path("default")
    if os.path.exists(segment):
        pytest.fail("%s already exists: another server named 'default' runs (or a killed one left it); "
                    "this test needs the name to itself" % segment, pytrace=False)
    port = tools.free_port()
    log_path = tmp_path / "default.log"
    args = [str(cli.binary), "run", "testapp:app", "--app-dir", str(tools.apps_dir),
            "--bind", "127.0.0.1:%d" % port, "--py-workers", "1"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    killed = False
    try:
        serving = "serving testapp:app on http://127.0.0.1:%d " % port
        assert _wait_until(lambda: serving in log_path.read_text() or proc.poll() is not None, 20.0), \
            "not serving within 20 s:\n" + log_path.read_text()
        assert proc.poll() is None, "exited with %s:\n%s" % (proc.returncode, log_path.read_text())
        assert os.path.exists(segment), "no %s while the server runs; log:\n%s" % (segment, log_path.read_text())
        assert "name 'default'" in log_path.read_text(), log_path.read_text()
        st = os.stat(segment)
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert st.st_uid == os.getuid()
        with tools.RawClient(port) as c:
            c.request("GET", "/pid")
            assert c.read_response().status == 200
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
            pytest.fail("no exit within 15 s of SIGTERM:\n" + log_path.read_text(), pytrace=False)
        assert rc == 0, "exit status %d after SIGTERM:\n%s" % (rc, log_path.read_text())
        assert not os.path.exists(segment), "%s not unlinked after SIGTERM" % segment
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed = True
        if killed:
            # Ours (it did not exist before): nobody unlinks after a SIGKILL.
            try:
                os.unlink(segment)
            except FileNotFoundError:
                pass
