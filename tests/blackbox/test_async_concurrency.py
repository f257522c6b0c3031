"""Many requests in flight per Python worker (apps/async_app.py): async
handlers that wait run concurrently on the worker's event loop, bounded by
--py-concurrency; one that awaits a socket does not stall the others; plain
def handlers that block run on --py-threads threads.

These check concurrency, not speed: the bounds are far from both the
concurrent and the serial timings."""

import socket
import threading
import time

import pytest


def _parallel(srv, paths, timeout=30.0):
    """GETs every path at once, each on its own connection; returns the
    responses (in order) and the seconds it took."""
    out = [None] * len(paths)
    errors = []

    def one(i, path):
        try:
            out[i] = srv.get(path, timeout=timeout)
        except BaseException as e:     # reported by the test
            errors.append(e)
    threads = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(paths)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert not errors, errors
    return out, elapsed


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server("async_app:app", "--py-workers", "1")


def test_async__sleeping_handlers_overlap_in_one_worker(srv):
    rs, elapsed = _parallel(srv, ["/sleep?t=0.5"] * 20)
    assert all(r.status == 200 for r in rs), rs
    assert len({r.json()["pid"] for r in rs}) == 1          # one Python worker did them all
    assert elapsed < 5.0, f"20 x 0.5 s took {elapsed:.2f} s: not concurrent"


def test_async__a_handler_awaiting_a_socket_does_not_stall_others(srv):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    result = []
    waiting = threading.Thread(target=lambda: result.append(
        srv.get(f"/socket?port={port}", timeout=20)))
    waiting.start()
    try:
        listener.settimeout(10)
        conn, _ = listener.accept()        # the handler connected and now waits for a line
        with conn:
            t0 = time.monotonic()
            for _ in range(5):
                assert srv.get("/now").status == 200
            assert time.monotonic() - t0 < 2.0
            assert result == [] and waiting.is_alive()
            conn.sendall(b"hello from the peer\n")
            waiting.join(10)
    finally:
        listener.close()
    assert result and result[0].json() == {"line": "hello from the peer"}


def test_async__finished_requests_free_their_place(srv):
    # Far more requests than fit at once in the rings' first round, twice.
    for _ in range(2):
        rs, _ = _parallel(srv, ["/sleep?t=0.05"] * 50)
        assert all(r.status == 200 for r in rs)


def test_py_concurrency__bounds_the_requests_in_flight(server):
    srv = server("async_app:app", "--py-workers", "1", "--py-concurrency", "2")
    rs, elapsed = _parallel(srv, ["/sleep?t=0.5"] * 20)
    assert all(r.status == 200 for r in rs)
    # 2 at a time: 10 rounds of 0.5 s; unbounded it would take 0.5 s.
    assert 2.5 <= elapsed < 10.0, f"took {elapsed:.2f} s"


def test_py_threads__blocking_def_handlers_overlap(server):
    srv = server("async_app:app", "--py-workers", "1", "--py-threads", "4")
    rs, elapsed = _parallel(srv, ["/block?t=0.5"] * 4)
    assert all(r.status == 200 and r.json() == {"slept": 0.5} for r in rs)
    assert elapsed < 1.6, f"4 x 0.5 s on 4 threads took {elapsed:.2f} s"
    # Async handlers still run on the loop beside the threads.
    rs, elapsed = _parallel(srv, ["/block?t=0.5"] * 2 + ["/sleep?t=0.5"] * 4)
    assert all(r.status == 200 for r in rs) and elapsed < 1.6
    # A handler with dependencies (the general path) too.
    rs, elapsed = _parallel(srv, ["/block-dep?t=0.5"] * 4)
    assert all(r.json() == {"slept": 0.5, "d": "dep"} for r in rs)
    assert elapsed < 1.6, f"4 x 0.5 s on 4 threads took {elapsed:.2f} s"


def test_py_threads__off_by_default_blocking_handlers_are_serial(srv):
    rs, elapsed = _parallel(srv, ["/block?t=0.3"] * 4)
    assert all(r.status == 200 for r in rs)
    assert elapsed >= 1.1, f"took {elapsed:.2f} s: ran in parallel without --py-threads"


def test_cli__flags_are_checked(cli):
    r = cli("run", "async_app:app", "--py-threads", "-1")
    assert r.returncode == 64 and b"--py-threads: expected a whole number" in r.stderr
    r = cli("run", "async_app:app", "--py-concurrency", "0")
    assert r.returncode == 64 and b"--py-concurrency: expected a whole number" in r.stderr
    r = cli("--help")
    assert b"--py-concurrency N" in r.stdout + r.stderr and b"--py-threads N" in r.stdout + r.stderr


def test_timeout__a_waiting_handler_gets_504_and_the_worker_serves_on(server):
    srv = server("async_app:app", "--py-workers", "1", "--timeout", "1")
    pids = srv.py_workers()
    t0 = time.monotonic()
    r = srv.get("/sleep?t=5")
    assert r.status == 504 and time.monotonic() - t0 < 3
    assert srv.get("/now").status == 200 and srv.py_workers() == pids
    assert srv.wait_log(r"GET /sleep\): open for")
    assert "CancelledError" not in srv.log()       # the cancelled handler is no error
