"""Issue 5 through the real server: tests/blackbox/apps/fastapi_features.py
served by `fasterapi run`, driven by fasterapi.testing.TestClient (itself
under test) and, where the bytes on the wire matter, by raw sockets."""

import gzip
import os
import socket
import sys
import time
from pathlib import Path

import pytest

SRCDIR = Path(__file__).resolve().parents[2]
if str(SRCDIR / "pyworker") not in sys.path:
    sys.path.insert(0, str(SRCDIR / "pyworker"))

from fasterapi.testing import TestClient, find_binary  # noqa: E402

APPS = Path(__file__).resolve().parent / "apps"
INT_MSG = "Input should be a valid integer, unable to parse string as an integer"


@pytest.fixture(scope="module")
def shutdown_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fastapi") / "shutdown.txt"


@pytest.fixture(scope="module")
def client(shutdown_file):
    os.environ["FA_TEST_SHUTDOWN_FILE"] = str(shutdown_file)
    try:
        with TestClient("fastapi_features:app", app_dir=APPS) as c:
            yield c
    finally:
        os.environ.pop("FA_TEST_SHUTDOWN_FILE", None)


def raw_get(port, target, headers=()):
    """(head, body) of one GET over a fresh socket, as bytes."""
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
             *[f"{n}: {v}" for n, v in headers]]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_lifespan_state_reaches_requests(client):
    reply = client.get("/state")
    assert reply.json() == {"started_at": "boot", "pid": reply.json()["pid"], "mine": True}
    assert "startup" in client.get("/events").json()


def test_typed_parameters_and_exact_422(client):
    reply = client.get("/typed/5?size=large&mode=b&tag=x&tag=y&page=2",
                       headers={"X-Token": "tok"}, cookies={"session": "abc"})
    assert reply.status_code == 200
    assert reply.json() == {"n": 5, "size": "large", "mode": "b", "tag": ["x", "y"], "page": 2,
                            "token": "tok", "session": "abc"}
    reply = client.get("/typed/five?size=huge&page=0")
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"detail": [
        {"type": "int_parsing", "loc": ["path", "n"], "msg": INT_MSG, "input": "five"},
        {"type": "enum", "loc": ["query", "size"], "msg": "Input should be 'small' or 'large'",
         "input": "huge", "ctx": {"expected": "'small' or 'large'"}},
        {"type": "greater_than_equal", "loc": ["query", "page"],
         "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}}]}


def test_json_body_model_status_code_and_response_model(client):
    reply = client.post("/items", json={"name": "pen", "price": "2.5", "tags": ["a"]})
    assert reply.status_code == 201
    assert reply.json() == {"name": "pen", "price": 2.5}      # tags filtered out
    reply = client.post("/items", json={"price": "x"})
    assert reply.status_code == 422
    assert reply.json()["detail"] == [
        {"type": "missing", "loc": ["body", "name"], "msg": "Field required",
         "input": {"price": "x"}},
        {"type": "float_parsing", "loc": ["body", "price"],
         "msg": "Input should be a valid number, unable to parse string as a number",
         "input": "x"}]
    assert client.post("/embed", json={"item": {"name": "e", "price": 1}}).json() == {"name": "e"}
    bad = client.post("/embed", content=b"{oops", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["type"] == "json_invalid"


def test_forms_and_uploads(client):
    assert client.post("/form", data={"username": "ann", "age": "33"}).json() == {
        "username": "ann", "age": 33}
    reply = client.post("/form", data={"username": "ann", "age": "old"})
    assert reply.status_code == 422 and reply.json()["detail"][0]["loc"] == ["body", "age"]
    payload = bytes(range(256)) * 40
    reply = client.post("/upload", files={"file": ("blob.bin", payload, "application/x-blob")},
                        data={"label": "L"})
    assert reply.json() == {"filename": "blob.bin", "size": len(payload),
                            "type": "application/x-blob", "label": "L",
                            "head": payload[:5].decode("latin-1")}


def test_depends_cache_and_yield_cleanup_after_the_response(client):
    assert client.delete("/events").status_code == 204
    reply = client.get("/me", headers={"X-User": "bo"})
    assert reply.json() == {"user": "bo", "db": "db"}
    events = client.get("/events").json()
    # db_session ran once (cached) and was closed after the response was sent.
    assert events == ["db open", "handler", "db close"]
    assert client.get("/me").status_code == 422


def test_background_tasks_run_after_the_response(client):
    client.delete("/events")
    assert client.post("/notify/ann").json() == {"queued": "ann"}
    deadline = time.monotonic() + 5
    while "notified ann" not in client.get("/events").json():
        assert time.monotonic() < deadline, "the background task never ran"
        time.sleep(0.02)


def test_middleware_exception_handlers_and_http_exception(client):
    reply = client.get("/teapot")
    assert (reply.status_code, reply.json()) == (418, {"teapot": "short and stout"})
    assert reply.headers["x-stamp"] == "GET"
    reply = client.get("/missing")
    assert (reply.status_code, reply.json()) == (404, {"detail": "no such thing"})
    assert reply.headers["x-why"] == "gone" and reply.headers["x-stamp"] == "GET"


def test_cors_preflight_through_the_c_router(client):
    reply = client.options("/typed/1", headers={"Origin": "https://front.example",
                                                "Access-Control-Request-Method": "GET",
                                                "Access-Control-Request-Headers": "X-Token"})
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "https://front.example"
    reply = client.get("/text", headers={"Origin": "https://front.example"})
    assert reply.headers["access-control-allow-origin"] == "https://front.example"
    assert client.options("/text").status_code == 405


def test_gzip(client):
    port = client.port
    head, body = raw_get(port, "/big", [("Accept-Encoding", "gzip")])
    assert "content-encoding: gzip" in head.lower()
    assert gzip.decompress(body) == b'{"data":"' + b"abc" * 500 + b'"}'
    head, body = raw_get(port, "/big")
    assert "content-encoding" not in head.lower() and len(body) > 1500


def test_response_classes_cookies_and_redirects(client):
    reply = client.get("/html")
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    assert reply.text == "<h1>hi</h1>"
    reply = client.get("/redirect")
    assert reply.text == "plain text" and reply.history[0].status_code == 307
    assert client.get("/redirect", follow_redirects=False).headers["location"] == "/text"
    reply = client.get("/cookie")
    assert reply.headers["set-cookie"] == "session=s3cr3t; Path=/; HttpOnly; SameSite=lax"
    assert client.get("/typed/1").json()["session"] == "s3cr3t"   # the client kept it
    client.cookies.clear()


def test_file_response_is_sent_by_the_http_worker(client):
    source = (APPS / "fastapi_features.py").read_bytes()
    head, body = raw_get(client.port, "/file")
    assert head.startswith("HTTP/1.1 200")
    assert body == source
    lowered = head.lower()
    assert f"content-length: {len(source)}" in lowered
    assert "content-type: text/x-python" in lowered
    assert "x-fasterapi-sendfile" not in lowered
    assert client.get("/file/missing").status_code == 500


def test_json_values_encoded_by_the_server(client):
    assert client.get("/values").json() == {
        "when": "2024-05-06T07:08:09", "id": "00000000-0000-0000-0000-000000000005",
        "size": "large", "item": {"name": "x", "price": 1.5}}


def test_router_prefix(client):
    assert client.get("/v1/users/9").json() == {"id": 9}


def test_openapi_and_docs(client):
    doc = client.get("/openapi.json").json()
    assert doc["info"] == {"title": "Features", "version": "1.2.3"}
    assert "/v1/users/{user_id}" in doc["paths"]
    assert doc["paths"]["/items"]["post"]["responses"]["201"]["content"]["application/json"][
        "schema"] == {"$ref": "#/components/schemas/ItemOut"}
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    assert 'src="/docs/swagger-ui-bundle.js"' in page.text and "cdn" not in page.text.lower()


def test_docs_assets_are_local_files_sent_by_the_http_worker(client):
    static = SRCDIR / "pyworker" / "fasterapi" / "static"
    js = client.get("/docs/swagger-ui-bundle.js")
    assert js.status_code == 200
    assert js.content == (static / "swagger-ui-bundle.js").read_bytes()
    assert js.headers["content-type"] in ("text/javascript; charset=utf-8",
                                          "application/javascript")
    css = client.get("/docs/swagger-ui.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.content == (static / "swagger-ui.css").read_bytes()


def test_lifespan_shutdown_runs_when_the_server_stops(shutdown_file):
    os.environ["FA_TEST_SHUTDOWN_FILE"] = str(shutdown_file)
    try:
        shutdown_file.unlink(missing_ok=True)
        with TestClient("fastapi_features:app", app_dir=APPS) as c:
            pid = c.get("/state").json()["pid"]
    finally:
        os.environ.pop("FA_TEST_SHUTDOWN_FILE", None)
    assert shutdown_file.read_text() == f"shutdown {pid}\n"


def test_testclient_with_an_app_object_and_a_bad_spec(tmp_path):
    (tmp_path / "tc_small_app.py").write_text(
        "from fasterapi import FastAPI\napp = FastAPI()\n"
        "@app.get('/hi')\ndef hi(name: str = 'you'):\n    return {'hi': name}\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import tc_small_app
        with TestClient(tc_small_app.app) as c:
            assert c.get("/hi", params={"name": "bo"}).json() == {"hi": "bo"}
            assert c.get("/nope").status_code == 404
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("tc_small_app", None)
    with pytest.raises(RuntimeError, match="exited with status"):
        TestClient("tc_no_such_module:app", app_dir=tmp_path).start()
    assert os.access(find_binary(), os.X_OK)
