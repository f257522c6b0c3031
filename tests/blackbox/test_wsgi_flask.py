"""A real Flask app (Debian's python3-flask: apps/flask_app.py) served by
the real server as WSGI: routing, JSON, forms, file upload, send_file,
cookies, Flask's own 404/403/500, url_for under --root-path.

Flask must be importable: if it is not, these tests fail (apt-get install
python3-flask), unless FASTERAPI_ALLOW_SKIP is set."""

import json
import os

import pytest

try:
    import flask  # noqa: F401
except ImportError:
    if os.environ.get("FASTERAPI_ALLOW_SKIP"):
        pytest.skip("flask is not installed (FASTERAPI_ALLOW_SKIP is set)",
                    allow_module_level=True)
    raise ImportError("these tests need Flask: apt-get install python3-flask "
                      "(or set FASTERAPI_ALLOW_SKIP=1 to skip them)")

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server("flask_app:app")      # auto: a Flask object is a WSGI callable


def test_routing_and_text(srv):
    r = srv.get("/")
    assert (r.status, r.body) == (200, b"hello from flask")
    assert r.header("content-type") == "text/html; charset=utf-8"


def test_path_converter_and_query(srv):
    r = srv.get("/users/42?verbose=1")
    assert r.status == 200 and r.json() == {"id": 42, "verbose": "1"}
    assert srv.get("/users/abc").status == 404       # Flask's int converter


def test_json_body(srv):
    body = json.dumps({"a": [1, 2], "b": "é"}).encode()
    r = srv.request("POST", "/json", body=body, headers=[("Content-Type", "application/json")])
    assert r.status == 201
    assert r.json() == {"got": {"a": [1, 2], "b": "é"}, "type": "application/json"}


def test_urlencoded_form(srv):
    r = srv.request("POST", "/form", body=b"name=Ada+L&tag=x&tag=y",
                    headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert r.status == 200 and r.json() == {"name": "Ada L", "tags": ["x", "y"]}


def test_file_upload_multipart(srv):
    content = bytes(range(256)) * 40
    boundary = "fasterapiBoundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"data.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    r = srv.request("POST", "/upload", body=body,
                    headers=[("Content-Type", f"multipart/form-data; boundary={boundary}")])
    assert r.status == 200, r.body
    assert r.json() == {"filename": "data.bin", "size": len(content),
                        "head": content[:10].decode("latin-1"), "note": "hi"}


def test_other_methods_with_bodies(srv):
    for method in ("PUT", "PATCH", "DELETE"):
        r = srv.request(method, "/methods", body=b"payload")
        assert r.json() == {"method": method, "body": "payload"}
    assert srv.request("POST", "/methods").status == 405        # Flask's own 405


def test_flask_errors(srv):
    r = srv.get("/no/such/page")
    assert r.status == 404 and b"Not Found" in r.body
    assert srv.get("/forbidden").status == 403
    r = srv.get("/boom")
    assert r.status == 500 and b"Internal Server Error" in r.body
    srv.wait_log("RuntimeError: flask handler failed")
    assert srv.get("/").status == 200


def test_send_file(srv):
    r = srv.get("/download")
    with open(os.path.join(APPS, "flask_app.py"), "rb") as f:
        assert r.body == f.read()
    assert r.header("content-type").startswith("text/x-python")


def test_cookies(srv):
    r = srv.request("GET", "/cookie", headers=[("Cookie", "flavour=rye")])
    assert r.json() == {"seen": "rye"}
    assert "flavour=oat" in r.header("set-cookie")


def test_head(srv):
    r = srv.request("HEAD", "/")
    assert r.status == 200 and r.body == b""


def test_root_path_url_for(module_server):
    s = module_server("flask_app:app", "--interface", "wsgi", "--root-path", "/shop",
                      "--py-workers", "1")
    r = s.get("/shop/url")
    assert r.status == 200
    data = r.json()
    assert data["url"] == "/shop/users/3"
    assert data["root"] == "/shop" and data["path"] == "/url"
    assert data["full"] == "http://127.0.0.1:%d/shop/url" % s.port


def test_generator_response_is_streamed_chunked(srv):
    r = srv.get("/stream")
    assert r.status == 200 and r.body == b"line 0\nline 1\nline 2\n"
    assert r.header("transfer-encoding") == "chunked"      # a generator: streamed
    assert r.header("content-length") is None
