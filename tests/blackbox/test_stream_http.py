"""Streamed responses on the wire, from the HTTP worker's side
(worker/dispatch.c, worker/conn.c; apps/async_app.py): a HEAD of a stream
gets the head alone and the connection goes on, a request pipelined behind
a stream is answered after the stream's end, the chunked framing is ours
alone. Every test runs twice: with the default request batching and with
FASTERAPI_NO_BATCH=1 (each request committed and its doorbell rung at
once), which must serve the same."""

import os
import time

import pytest


@pytest.fixture(scope="module", params=["batch", "no-batch"])
def srv(request, module_server, tmp_path_factory):
    notes = str(tmp_path_factory.mktemp("stream-http-notes"))
    os.environ["FA_TEST_STREAM_DIR"] = os.environ["FA_TEST_STREAM_DIR_SEEN"] = notes
    if request.param == "no-batch":
        os.environ["FASTERAPI_NO_BATCH"] = "1"
    try:
        return module_server("async_app:app", "--py-workers", "1")
    finally:
        os.environ.pop("FA_TEST_STREAM_DIR", None)
        os.environ.pop("FASTERAPI_NO_BATCH", None)


PARTS = b"".join(b"part %d\n" % i for i in range(4))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream_http__chunked_body(srv, kind):
    with srv.raw() as c:
        c.request("GET", "/stream/%s?n=4" % kind)
        r = c.read_response()
        assert r.status == 200 and r.header("transfer-encoding") == "chunked"
        assert r.header("content-length") is None and r.body == PARTS
        assert b"\r\nTransfer-Encoding: chunked" in r.raw_head     # once, ours
        assert r.raw_head.lower().count(b"transfer-encoding") == 1


def test_stream_http__head_gets_the_head_only(srv):
    with srv.raw() as c:
        c.request("HEAD", "/stream/async?n=3")
        r = c.read_response(head=True)
        assert r.status == 200 and r.header("transfer-encoding") == "chunked"
        assert r.header("x-stream") == "async"
        # No body bytes came: the next answer follows the head at once.
        c.request("GET", "/now")
        r2 = c.read_response()
        assert r2.status == 200 and b"pid" in r2.body


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream_http__head_of_an_endless_stream(srv, kind):
    """HEAD of a stream that never ends: the head alone comes at once, and
    the generator is stopped (its finally runs), as for a client gone."""
    tag = "head-forever-%s" % kind
    with srv.raw() as c:
        c.request("HEAD", "/stream/forever?tag=%s&kind=%s" % (tag, kind))
        r = c.read_response(head=True)
        assert r.status == 200 and r.header("content-type").startswith("text/plain")
        c.request("GET", "/now")
        assert c.read_response().status == 200
    path = os.path.join(os.environ.get("FA_TEST_STREAM_DIR_SEEN", ""), tag)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (os.path.exists(path) and "closed" in open(path).read()):
        time.sleep(0.02)
    assert os.path.exists(path) and "closed" in open(path).read()


def test_stream_http__pipelined_request_waits_for_the_stream(srv):
    with srv.raw() as c:
        c.send(b"GET /stream/async?n=4 HTTP/1.1\r\nHost: a\r\n\r\n"
               b"GET /now HTTP/1.1\r\nHost: a\r\n\r\n")
        r1 = c.read_response()
        assert r1.status == 200 and r1.body == PARTS
        r2 = c.read_response()
        assert r2.status == 200 and b"pid" in r2.body


def test_stream_http__many_requests_in_a_row(srv):
    """Plain and streamed answers alternate on one connection, pipelined."""
    with srv.raw() as c:
        c.send(b"".join(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % p
                        for p in [b"/now", b"/stream/sync?n=4", b"/now", b"/stream/async?n=4"] * 3))
        for _ in range(3):
            assert b"pid" in c.read_response().body
            assert c.read_response().body == PARTS
            assert b"pid" in c.read_response().body
            assert c.read_response().body == PARTS
