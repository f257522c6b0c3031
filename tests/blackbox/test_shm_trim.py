"""After a burst, the pages of the shared segment it used go back to the
kernel: the HTTP worker's and the Python worker's resident shared memory
(RssShmem) falls back to about what it was before the burst, within a few
seconds of idleness (shm/chunk.c, fa_arena_idle_trim)."""
import os
import signal
import threading
import time

MIB = 1024 * 1024
BODY = b"b" * (256 * 1024)      # 16 chunks of 16 KiB each way
CLIENTS = 48     # 48 x 16 chunks: 3/4 of an arena (1,024 chunks; a full one answers 503)


def rss_shmem(pid):
    """Resident pages of shared memory of pid, bytes (/proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("RssShmem:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no RssShmem in /proc/%d/status" % pid)


def burst(srv, py=None, http=None):
    """CLIENTS concurrent POST /echo of 256 KiB, each answered with its body.
    With py: that Python worker is stopped (SIGSTOP) until the HTTP worker
    `http` holds the requests in the segment, then continued; returns the
    most shared memory the HTTP worker held meanwhile."""
    errors = []
    start = threading.Barrier(CLIENTS)

    def one():
        try:
            start.wait(10)
            r = srv.request("POST", "/echo", body=BODY,
                            headers=[("Content-Type", "application/octet-stream")], timeout=30)
            if r.status != 200 or r.body != BODY:
                errors.append("%d, %d bytes" % (r.status, len(r.body)))
        except Exception as e:     # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=one) for _ in range(CLIENTS)]
    most = 0
    if py is not None:
        os.kill(py, signal.SIGSTOP)
    try:
        for t in threads:
            t.start()
        if py is not None:
            # The requests pile up in the HTTP worker's arena while nobody
            # takes them: wait until it stops growing.
            last, steady = -1, 0
            deadline = time.monotonic() + 10
            while steady < 4 and time.monotonic() < deadline:
                now = rss_shmem(http)
                steady = steady + 1 if now == last else 0
                last, most = now, max(most, now)
                time.sleep(0.1)
    finally:
        if py is not None:
            os.kill(py, signal.SIGCONT)
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    return most


def test_burst_pages_go_back_when_idle(server, tools):
    srv = server("hello:app", "--workers", "1", "--py-workers", "1", app_dir=tools.examples_dir)
    (http, _), = srv.http_workers().items()
    (py, _), = srv.py_workers().items()
    assert srv.get("/json").status == 200
    time.sleep(2.5)                     # the start-up trim
    before = {p: rss_shmem(p) for p in (http, py)}

    most = burst(srv, py, http)
    # The burst held up to 48 x 256 KiB of requests in the segment at once.
    assert most - before[http] >= 6 * MIB, (before, most)

    # Idle: within ~3 s each owner gives its arena's free pages back, from
    # every process's RSS (the Python worker read the requests). What stays
    # is the arenas' low ends (FA_ARENA_KEEP chunks, 1 MiB each) that light
    # loads live in.
    deadline = time.monotonic() + 8
    while True:
        now = {p: rss_shmem(p) for p in (http, py)}
        if all(now[p] - before[p] <= 2.5 * MIB for p in (http, py)):
            break
        assert time.monotonic() < deadline, (
            "shared pages not given back 8 s after the burst (bytes): before %r, most %d, "
            "now %r" % (before, most, now))
        time.sleep(0.25)

    # The trimmed chunks work as before.
    burst(srv)
    assert srv.get("/json").body == b'{"message":"Hello, World!"}'
