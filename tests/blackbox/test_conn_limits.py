"""Connection limits and timeouts (issue 6): --keepalive-timeout,
--header-timeout, --body-timeout (408, then close), --max-connections (stop
accepting at the limit, resume below it, existing clients unaffected); idle
and slow connections do not slow the others; after an error response the
connection is closed and nothing more of it is parsed."""
import socket
import threading
import time

import pytest

TIMEOUTS = ["--keepalive-timeout", "1", "--header-timeout", "1", "--body-timeout", "1"]


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server("kinds_app:app", "--workers", "1", "--py-workers", "1", *TIMEOUTS)


def _closed_after(c, at_least, at_most):
    """The server closes c without a byte, between at_least and at_most s from now."""
    t0 = time.monotonic()
    assert c.closed_by_server(timeout=at_most + 1), "still open after %g s" % (at_most + 1)
    took = time.monotonic() - t0
    assert at_least <= took <= at_most, "closed after %.2f s, expected %g..%g" % (took, at_least, at_most)


# ---- keep-alive ------------------------------------------------------------------

def test_idle_keepalive_connection_is_closed(srv):
    with srv.raw() as c:
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"
        _closed_after(c, 0.7, 2.5)


def test_activity_restarts_the_keepalive_clock(srv):
    with srv.raw() as c:
        for _ in range(4):
            c.request("GET", "/health")
            assert c.read_response().body == b"ok"
            time.sleep(0.6)          # each gap is below the timeout; the total is not
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"


def test_keepalive_zero_means_no_limit(server):
    srv = server("kinds_app:app", "--py-workers", "1", "--keepalive-timeout", "0", "--header-timeout", "1")
    with srv.raw() as c:
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"
        assert not c.closed_by_server(timeout=2.0)
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"


# ---- slow heads --------------------------------------------------------------------

def test_silent_connection_is_closed_without_a_response(srv):
    with srv.raw() as c:
        _closed_after(c, 0.7, 2.5)


def test_slow_head_is_408_then_closed(srv):
    with srv.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        r = c.read_response()
        assert r.status == 408, r
        assert r.header("connection") == "close"
        assert 0.7 <= time.monotonic() - t0 <= 2.5
        assert c.closed_by_server()


def test_trickled_head_is_408_too(srv):
    """The head timeout is for the whole head: bytes dribbling in do not
    extend it (slowloris)."""
    with srv.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\n")
        t0 = time.monotonic()
        got = b""
        c.sock.settimeout(0.25)
        for i in range(20):
            try:
                c.send(b"X-%d: y\r\n" % i)
            except OSError:
                break
            try:
                got += c.sock.recv(4096)
            except socket.timeout:
                continue
            if got:
                break
        assert got.startswith(b"HTTP/1.1 408 "), got
        assert time.monotonic() - t0 <= 2.5


def test_head_timeout_counts_from_the_first_byte_of_the_next_request(srv):
    """After a response the next head gets its own full timeout."""
    with srv.raw() as c:
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"
        time.sleep(0.6)
        c.send(b"GET /health HTTP/1.1\r\n")
        time.sleep(0.6)               # 1.2 s since the response, 0.6 s into the head
        c.send(b"Host: x\r\n\r\n")
        assert c.read_response().body == b"ok"


# ---- slow bodies ------------------------------------------------------------------

def test_stalled_body_is_408_then_closed(srv):
    with srv.raw() as c:
        c.send(b"POST /py/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        t0 = time.monotonic()
        r = c.read_response()
        assert r.status == 408, r
        assert 0.7 <= time.monotonic() - t0 <= 2.5
        assert c.closed_by_server()


def test_body_making_progress_is_not_cut(srv):
    """Each piece comes within the body timeout, the whole takes longer."""
    body = b"0123456789" * 6
    with srv.raw() as c:
        c.send(b"POST /py/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 10):
            c.send(body[i:i + 10])
            time.sleep(0.45)
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == body


def test_stalled_chunked_body_is_408(srv):
    with srv.raw() as c:
        c.send(b"POST /py/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        r = c.read_response()
        assert r.status == 408, r
        assert c.closed_by_server()


def test_stalled_body_of_an_answered_request_closes(srv):
    """A static route answers at once; a body that then stalls still times out
    (the connection closes, no second response)."""
    with srv.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel")
        r = c.read_response()
        assert r.body == b"ok"
        _closed_after(c, 0.5, 2.5)


def test_waiting_for_the_app_is_not_a_timeout(srv):
    """While the server itself works on a request, no client timeout runs."""
    py = list(srv.py_workers())
    import os
    import signal
    os.kill(py[0], signal.SIGSTOP)
    try:
        with srv.raw() as c:
            c.request("GET", "/py/slow")
            time.sleep(2.0)
            os.kill(py[0], signal.SIGCONT)
            r = c.read_response()
            assert r.status == 200, r
            assert r.json() == {"x": "slow"}
    finally:
        os.kill(py[0], signal.SIGCONT)


# ---- errors close ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /health HTTP/1.1\r\nBad Header: y\r\nHost: x\r\n\r\n",
    b"GET /health HTTP/9.1\r\nHost: x\r\n\r\n",
    b"POST /py/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
])
def test_after_an_error_nothing_more_is_parsed(srv, bad):
    """A bad request followed, in the same packet, by good ones: one error
    response, then the connection closes; the good ones are never answered."""
    good = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    with srv.raw() as c:
        c.send(bad + good)
        r = c.read_response()
        assert 400 <= r.status < 600, r
        assert r.header("connection") == "close"
        assert c.closed_by_server(), "more after the error"


def test_error_after_good_pipelined_requests(srv):
    """Good requests before the bad one are answered, in order, then the error."""
    with srv.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /x HTTP/1.1\r\n\r\n"
               + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().body == b"ok"
        assert c.read_response().body == b"ok"
        assert c.read_response().status == 400
        assert c.closed_by_server()


def test_timeout_408_goes_after_pending_answers(srv):
    with srv.raw() as c:
        c.send(b"GET /py/a HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\n")
        assert c.read_response().json() == {"x": "a"}
        r = c.read_response()
        assert r.status == 408
        assert c.closed_by_server()


# ---- many idle or slow connections -------------------------------------------------------

def test_many_idle_and_slow_connections_do_not_slow_the_others(server):
    srv = server("kinds_app:app", "--workers", "1", "--py-workers", "1", "--keepalive-timeout", "2",
                 "--header-timeout", "2", "--body-timeout", "2")
    base = []
    with srv.raw() as c:
        for _ in range(300):
            t0 = time.monotonic()
            c.request("GET", "/health")
            assert c.read_response().body == b"ok"
            base.append(time.monotonic() - t0)
    idle = []
    for i in range(800):
        s = socket.create_connection(("127.0.0.1", srv.port))
        if i % 2:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")    # slow heads
        idle.append(s)
    try:
        with srv.raw() as c:
            lat = []
            for _ in range(300):
                t0 = time.monotonic()
                c.request("GET", "/health")
                assert c.read_response().body == b"ok"
                lat.append(time.monotonic() - t0)
        lat.sort()
        base.sort()
        # the median hardly moves; generous bounds for a loaded test machine
        assert lat[len(lat) // 2] < max(10 * base[len(base) // 2], 0.005), (lat[len(lat) // 2], base[len(base) // 2])
        # and they are all cut by their timeouts, in about the time configured
        time.sleep(3.0)
        closed = 0
        for s in idle:
            s.settimeout(0.5)
            try:
                data = s.recv(4096)
                if data == b"" or data.startswith(b"HTTP/1.1 408"):
                    closed += 1
            except (socket.timeout, ConnectionResetError):
                pass
        assert closed == len(idle), "%d of %d idle/slow connections closed" % (closed, len(idle))
    finally:
        for s in idle:
            s.close()


# ---- --max-connections ------------------------------------------------------------------

def test_max_connections(server):
    srv = server("kinds_app:app", "--workers", "1", "--py-workers", "1", "--max-connections", "2",
                 "--keepalive-timeout", "30")
    a, b = srv.raw(), srv.raw()
    for c in (a, b):
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"
    # a third client is left in the kernel's accept queue: no answer
    third = srv.raw(timeout=10)
    third.request("GET", "/health")
    third.sock.settimeout(0.8)
    with pytest.raises(socket.timeout):
        third.sock.recv(100)
    # existing clients are unaffected
    for c in (a, b):
        c.request("GET", "/teapot")
        assert c.read_response().status == 418
    # one closes: the waiting client is accepted and answered
    a.close()
    third.sock.settimeout(5)
    assert third.read_response().body == b"ok"
    # at the limit again (b and third): a fourth waits until one goes
    fourth = srv.raw(timeout=10)
    fourth.request("GET", "/health")
    fourth.sock.settimeout(0.8)
    with pytest.raises(socket.timeout):
        fourth.sock.recv(100)
    b.close()
    fourth.sock.settimeout(5)
    assert fourth.read_response().body == b"ok"
    third.close()
    fourth.close()


def test_max_connections_with_many_clients_queueing(server):
    srv = server("kinds_app:app", "--workers", "1", "--py-workers", "1", "--max-connections", "3")
    ok = []

    def client():
        with srv.raw(timeout=20) as c:
            for _ in range(5):
                c.request("GET", "/health", headers=[("Connection", "keep-alive")])
                ok.append(c.read_response().body == b"ok")

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert ok == [True] * 100
