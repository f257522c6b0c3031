"""WSGI streaming through the real server: a real Flask app
(apps/flask_stream_app.py) whose generator response (stream_with_context)
is sent chunked, one with a Content-Length sent as is, one that runs until
the client goes away (then closed: its finally runs), and SERVER_PROTOCOL
from the request line.

Flask must be importable: if it is not, these tests fail (apt-get install
python3-flask), unless FASTERAPI_ALLOW_SKIP is set."""

import os
import threading
import time

import pytest

try:
    import flask  # noqa: F401
except ImportError:
    if os.environ.get("FASTERAPI_ALLOW_SKIP"):
        pytest.skip("flask is not installed (FASTERAPI_ALLOW_SKIP is set)",
                    allow_module_level=True)
    raise ImportError("these tests need Flask: apt-get install python3-flask "
                      "(or set FASTERAPI_ALLOW_SKIP=1 to skip them)")


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    return str(tmp_path_factory.mktemp("wsgi-notes"))


@pytest.fixture(scope="module")
def srv(module_server, notes):
    os.environ["FA_TEST_STREAM_DIR"] = notes
    try:
        return module_server("flask_stream_app:app", "--py-workers", "1")
    finally:
        os.environ.pop("FA_TEST_STREAM_DIR", None)


def _closed(notes, tag, timeout=5.0):
    """Waits until the app noted "closed" (once) in the file `tag`."""
    path = os.path.join(notes, tag)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                if f.read() == "closed\n":
                    return True
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_generator_with_stream_with_context_is_chunked(srv):
    with srv.raw() as c:
        c.request("GET", "/stream?who=ann")
        status, headers = c.read_head()
        assert status == "HTTP/1.1 200 OK"
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        chunks = []
        while True:
            size = int(c._line(), 16)
            if size == 0:
                assert c._line() == b""
                break
            chunks.append(c._take(size))
            assert c._take(2) == b"\r\n"
        assert b"".join(chunks) == b"ann 0\nann 1\nann 2\n" and len(chunks) >= 2


def test_content_length_of_the_app_is_kept(srv):
    r = srv.get("/sized")
    assert r.body == b"1234567890"
    assert r.header("content-length") == "10" and r.header("transfer-encoding") is None


def test_client_going_away_closes_the_iterable(srv, notes):
    with srv.raw() as c:
        c.request("GET", "/forever?tag=wsgi-forever")
        c.read_head()
        assert int(c._line(), 16) == 5
    assert _closed(notes, "wsgi-forever"), "the iterable was not closed after the client left"
    assert srv.get("/protocol").status == 200


def test_server_protocol_from_the_request_line(srv):
    assert srv.get("/protocol").json() == {"protocol": "HTTP/1.1"}
    with srv.raw() as c:
        c.send(b"GET /protocol HTTP/1.0\r\n\r\n")
        assert c.read_response().json() == {"protocol": "HTTP/1.0"}


def test_py_threads__the_app_runs_on_the_pool_and_still_streams(server, notes):
    os.environ["FA_TEST_STREAM_DIR"] = notes
    try:
        srv = server("flask_stream_app:app", "--py-workers", "1", "--py-threads", "4")
    finally:
        os.environ.pop("FA_TEST_STREAM_DIR", None)
    out = []
    threads = [threading.Thread(target=lambda: out.append(srv.get("/sleep?t=0.5")))
               for _ in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert [r.json() for r in out] == [{"multithread": True}] * 4
    assert elapsed < 1.6, f"4 x 0.5 s on 4 threads took {elapsed:.2f} s"
    r = srv.get("/stream?who=bob")
    assert r.body == b"bob 0\nbob 1\nbob 2\n" and r.header("transfer-encoding") == "chunked"
    with srv.raw() as c:
        c.request("GET", "/forever?tag=pooled-forever")
        c.read_head()
        assert int(c._line(), 16) == 5
    assert _closed(notes, "pooled-forever"), "the iterable was not closed after the client left"
