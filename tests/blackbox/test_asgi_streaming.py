"""ASGI streaming through the real server: a real FastAPI app
(apps/fastapi_stream_app.py) whose StreamingResponse (Starlette's) is sent
chunked part by part, whose http.disconnect arrives when the client goes
away (Starlette then cancels the stream: its finally runs), with
http_version from the request line; apps/asgi_scope.py's more_body parts.

FastAPI must be importable: if it is not, these tests fail (apt-get install
python3-fastapi), unless FASTERAPI_ALLOW_SKIP is set."""

import os
import threading
import time

import pytest

try:
    import fastapi  # noqa: F401
except ImportError:
    if os.environ.get("FASTERAPI_ALLOW_SKIP"):
        pytest.skip("fastapi is not installed (FASTERAPI_ALLOW_SKIP is set)",
                    allow_module_level=True)
    raise ImportError("these tests need FastAPI: apt-get install python3-fastapi "
                      "(or set FASTERAPI_ALLOW_SKIP=1 to skip them)")


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    return str(tmp_path_factory.mktemp("asgi-notes"))


@pytest.fixture(scope="module")
def srv(module_server, notes):
    os.environ["FA_TEST_STREAM_DIR"] = notes
    try:
        return module_server("fastapi_stream_app:app", "--py-workers", "1")
    finally:
        os.environ.pop("FA_TEST_STREAM_DIR", None)


def _noted(notes, tag, text, timeout=5.0):
    path = os.path.join(notes, tag)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                if text in f.read().split():
                    return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("path, prefix", [("/stream", "part"), ("/stream-sync", "sync")])
def test_starlette_streaming_response_is_streamed(srv, path, prefix):
    with srv.raw() as c:
        c.request("GET", f"{path}?n=4")
        status, headers = c.read_head()
        assert status == "HTTP/1.1 200 OK"
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
        assert headers["content-type"].startswith("text/plain")
        chunks = c.read_chunks()
        assert b"".join(chunks) == b"".join(b"%s %d\n" % (prefix.encode(), i)
                                            for i in range(4))
        assert len(chunks) >= 2


def test_streams_do_not_stall_other_requests(srv):
    out = []
    t = threading.Thread(target=lambda: out.append(srv.get("/sleep?t=2")))
    t.start()
    t0 = time.monotonic()
    r = srv.get("/stream?n=2")
    assert r.body == b"part 0\npart 1\n" and time.monotonic() - t0 < 1.5
    t.join()
    assert out[0].status == 200


def test_disconnect__cancels_starlettes_stream(srv, notes):
    with srv.raw() as c:
        c.request("GET", "/forever?tag=forever")
        c.read_head()
        assert int(c._line(), 16) == 5
    assert _noted(notes, "forever", "closed"), "the stream's finally did not run"


def test_disconnect__request_is_disconnected_becomes_true(srv, notes):
    with srv.raw() as c:
        c.request("GET", "/wait-disconnect?tag=waiter")
        time.sleep(0.3)
        assert not os.path.exists(os.path.join(notes, "waiter"))     # still waiting
    assert _noted(notes, "waiter", "disconnected")
    assert srv.get("/sleep?t=0").status == 200


def test_http_version_from_the_request_line(srv):
    assert srv.get("/version").json() == {"http_version": "1.1"}
    with srv.raw() as c:
        c.send(b"GET /version HTTP/1.0\r\n\r\n")
        assert c.read_response().json() == {"http_version": "1.0"}


def test_raw_asgi_more_body_parts_are_streamed(module_server):
    srv = module_server("asgi_scope:app", "--py-workers", "1")
    r = srv.get("/chunks")
    assert r.status == 200 and r.body == b"chunk0 chunk1 chunk2 end"
    assert r.header("transfer-encoding") == "chunked" and r.header("content-length") is None
    assert r.header_all("x-multi") == ["1", "2"]
