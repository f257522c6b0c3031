"""app.static: precomputed responses sent by the HTTP worker (kinds_app.py),
with a current Date, whatever the Python workers are doing."""
import os
import signal
import time

import pytest


@pytest.fixture(scope="module")
def kinds(module_server):
    return module_server("kinds_app:app", "--workers", "1", "--py-workers", "1")


def test_static_body_and_headers(kinds, tools):
    r = kinds.get("/health")
    assert r.status == 200, r
    assert r.body == b"ok"
    assert r.header("content-type") == "text/plain"
    assert r.header("content-length") == "2"
    tools.check_common_headers(r)
    # exactly these headers, in this order
    assert [n.lower() for n, _ in r.headers] == ["server", "date", "content-length", "content-type"]


def test_static_status_and_app_headers(kinds, tools):
    r = kinds.get("/teapot")
    assert r.status == 418, r
    assert r.reason == "I'm a teapot"
    assert r.json() == {"short": "stout"}
    assert r.header("x-tea") == "earl grey"
    assert r.header("cache-control") == "no-store"
    assert r.header("content-type") == "application/json"
    tools.check_common_headers(r)


def test_static_204_has_no_body(kinds):
    with kinds.raw() as c:
        c.request("GET", "/nothing")
        r = c.read_response()
        assert r.status == 204, r
        assert r.header("content-length") is None
        # nothing follows it: the next response starts right away
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"


def test_static_head(kinds):
    r = kinds.request("HEAD", "/health")
    assert r.status == 200 and r.body == b""
    assert r.header("content-length") == "2"


def test_static_big_body(kinds):
    r = kinds.get("/big-static")
    assert r.status == 200
    assert r.body == b"0123456789abcdef" * 20000


def test_static_other_method_is_405(kinds):
    r = kinds.request("POST", "/health", b"x")
    assert r.status == 405, r
    assert r.header("allow") == "GET, HEAD"


def test_static_date_is_current(kinds):
    first = kinds.get("/health").header("date")
    time.sleep(1.1)
    second = kinds.get("/health").header("date")
    assert first != second, "the Date of a static response did not move: %s" % first


def test_static_connection_close(kinds):
    with kinds.raw() as c:
        c.request("GET", "/health", headers=[("Connection", "close")])
        r = c.read_response()
        assert r.body == b"ok"
        assert r.header("connection") == "close"
        assert c.closed_by_server()


def test_static_request_body_is_read_and_dropped(kinds, tools):
    """A GET with a body to a static route: answered, the body skipped, the
    connection usable for the next request (sent in the same packet)."""
    with kinds.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello worldGET /teapot HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().body == b"ok"
        assert c.read_response().status == 418
    body = os.urandom(200000)
    with kinds.raw() as c:
        c.request("GET", "/health", tools.chunked(body, 7000), [("Transfer-Encoding", "chunked")])
        assert c.read_response().body == b"ok"
        c.request("GET", "/health")
        assert c.read_response().body == b"ok"


def test_static_with_expect_continue_closes_after_answer(kinds):
    """Answered before the body: the client that waits for 100-continue will
    not send it, so the server says it closes, and does."""
    with kinds.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"
        assert r.header("connection") == "close"
        assert c.closed_by_server()


def test_static_answers_without_python(kinds):
    py = list(kinds.py_workers())
    os.kill(py[0], signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        for _ in range(50):
            assert kinds.get("/health", timeout=3).body == b"ok"
        assert time.monotonic() - t0 < 5
    finally:
        os.kill(py[0], signal.SIGCONT)


def test_static_pipelined(kinds, tools):
    n = 100
    with kinds.raw() as c:
        c.send(tools.build_request("GET", "/health", port=kinds.port) * n)
        for _ in range(n):
            assert c.read_response().body == b"ok"
