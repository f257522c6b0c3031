"""StreamingResponse through the real server (apps/async_app.py): sync and
async generators sent chunked as they produce, backpressure (a client that
does not read pauses the generator: the worker does not buffer the body),
a client that goes away stops the generator (its finally runs), and a
generator that raises cuts the response."""

import os
import socket
import time

import pytest


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    return str(tmp_path_factory.mktemp("stream-notes"))


@pytest.fixture(scope="module")
def srv(module_server, notes):
    os.environ["FA_TEST_STREAM_DIR"] = notes
    try:
        return module_server("async_app:app", "--py-workers", "1")
    finally:
        os.environ.pop("FA_TEST_STREAM_DIR", None)


def _lines(notes, tag):
    try:
        with open(os.path.join(notes, tag)) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def _wait_for(what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream__chunked_with_the_parts(srv, kind):
    with srv.raw() as c:
        c.request("GET", f"/stream/{kind}?n=5")
        status, headers = c.read_head()
        assert status == "HTTP/1.1 200 OK"
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["x-stream"] == kind
        chunks = c.read_chunks()
        assert b"".join(chunks) == b"".join(b"part %d\n" % i for i in range(5))
        assert len(chunks) >= 2
        # The connection stays usable (keep-alive).
        c.request("GET", "/now")
        assert c.read_response().status == 200


def test_stream__parts_arrive_as_they_are_produced(srv, notes):
    with srv.raw() as c:
        c.request("GET", "/stream/forever?tag=early&kind=async")
        _, headers = c.read_head()
        assert headers["transfer-encoding"] == "chunked"
        size = int(c._line(), 16)      # an endless stream: the first part came on its own
        assert c._take(size) == b"tick\n"
    assert _wait_for(lambda: "closed" in _lines(notes, "early"))


def test_stream__http_10_client_gets_the_body_until_close(srv):
    with srv.raw() as c:
        c.send(b"GET /stream/async?n=3 HTTP/1.0\r\n\r\n")
        status, headers = c.read_head()
        assert status.startswith("HTTP/1.1 200") and "transfer-encoding" not in headers
        assert c.read_until_close() == b"part 0\npart 1\npart 2\n"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream__slow_client_pauses_the_generator(srv, notes, kind):
    tag = f"slow-{kind}"
    n = 1000                                   # 64 MB of 64 KiB parts
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", srv.port))
    with sock:
        sock.sendall(b"GET /stream/big-%s?tag=%s&n=%d HTTP/1.1\r\nHost: x\r\n\r\n"
                     % (kind.encode(), tag.encode(), n))
        assert _wait_for(lambda: len(_lines(notes, tag)) > 0)
        time.sleep(1.0)
        made = len(_lines(notes, tag))
        time.sleep(0.5)
        assert len(_lines(notes, tag)) == made, "the generator runs on while nobody reads"
        # 16 parts in flight, plus what the sockets' buffers hold.
        assert made < 200, f"{made} parts made for a client that reads nothing"
        # Reading resumes it; the whole body arrives.
        sock.settimeout(20)
        got = 0
        buf = b""
        while not buf.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(1 << 20)
            assert data, "closed early"
            got += len(data)
            buf = buf[-16:] + data
        assert got > n * 65536
    lines = _lines(notes, tag)
    assert lines[-2:] == [str(n - 1), "closed"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream__client_going_away_stops_the_generator(srv, notes, kind):
    tag = f"gone-{kind}"
    with srv.raw() as c:
        c.request("GET", f"/stream/forever?tag={tag}&kind={kind}")
        c.read_head()
        assert int(c._line(), 16) == 5
    assert _wait_for(lambda: "closed" in _lines(notes, tag)), \
        "the generator's finally did not run after the client left"
    assert srv.get("/now").status == 200       # the worker serves on


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream__generator_that_raises_cuts_the_response(srv, kind):
    pids = srv.py_workers()
    with srv.raw() as c:
        c.request("GET", f"/stream/raises?kind={kind}")
        with pytest.raises(EOFError):
            c.read_response()
    assert srv.wait_log(r"RuntimeError: the stream broke")
    assert srv.get("/now").status == 200
    assert srv.py_workers() == pids
