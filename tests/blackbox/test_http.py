"""HTTP behaviour seen by a client: examples/hello.py and tests/blackbox/apps/testapp.py."""
import hashlib
import http.client
import json
import os
import random
import signal
import socket
import time

import pytest

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


@pytest.fixture(scope="module")
def hello(module_server, tools):
    return module_server("hello:app", "--workers", "2", "--py-workers", "2", app_dir=tools.examples_dir)


@pytest.fixture(scope="module")
def app(module_server):
    # One Python worker: "the same worker answers next" is then checkable.
    return module_server("testapp:app", "--workers", "1", "--py-workers", "1")


def _detail_422(resp, loc):
    """FastAPI's validation error shape, with exactly one error at loc."""
    assert resp.status == 422, resp
    assert resp.header("content-type") == JSON, resp
    body = resp.json()
    assert list(body) == ["detail"], body
    assert isinstance(body["detail"], list) and len(body["detail"]) == 1, body
    err = body["detail"][0]
    assert err["loc"] == loc, body
    assert isinstance(err["msg"], str) and err["msg"], body
    assert isinstance(err["type"], str) and err["type"], body


# ---- examples/hello.py -------------------------------------------------------

def test_plaintext(hello, tools):
    r = hello.get("/plaintext")
    assert r.status == 200, r
    assert r.body == b"Hello, World!"
    assert r.header("content-type") == TEXT
    assert r.header("content-length") == "13"
    tools.check_common_headers(r)


def test_json(hello, tools):
    r = hello.get("/json")
    assert r.status == 200, r
    assert r.body == b'{"message":"Hello, World!"}'
    assert r.header("content-type") == JSON
    tools.check_common_headers(r)


def test_user_id_int(hello):
    r = hello.get("/users/42")
    assert r.status == 200, r
    assert r.header("content-type") == JSON
    assert r.json() == {"id": 42}
    assert hello.get("/users/-7").json() == {"id": -7}


@pytest.mark.parametrize("bad", ["abc", "4.5", "12x"])
def test_user_id_not_int_is_422(hello, tools, bad):
    r = hello.get("/users/" + bad)
    _detail_422(r, ["path", "user_id"])
    tools.check_common_headers(r)


def test_echo_content_length(hello):
    body = b'{"a": [1, 2, 3], "b": "caf\xc3\xa9"}'
    r = hello.request("POST", "/echo", body, [("Content-Type", "application/x-test")])
    assert r.status == 200, r
    assert r.body == body
    assert r.header("content-type") == "application/x-test"


def test_echo_chunked(hello, tools):
    with hello.raw() as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-test\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"hello world"
        assert r.header("content-type") == "application/x-test"
        assert r.header("content-length") == "11"
        assert r.header("transfer-encoding") is None
        # The connection goes on after a chunked request.
        c.request("GET", "/plaintext")
        assert c.read_response().body == b"Hello, World!"


def test_echo_empty_body(hello):
    r = hello.request("POST", "/echo", b"", [("Content-Type", "application/x-test")])
    assert r.status == 200, r
    assert r.body == b""
    assert r.header("content-length") == "0"


def test_keep_alive_ten_requests(hello, tools):
    with hello.raw() as c:
        for i in range(10):
            c.request("GET", "/users/%d" % i)
            r = c.read_response()
            assert r.status == 200, (i, r)
            assert r.json() == {"id": i}
            assert r.header("connection") in (None, "keep-alive"), r
            tools.check_common_headers(r)


def test_keep_alive_with_http_client(hello):
    conn = http.client.HTTPConnection("127.0.0.1", hello.port, timeout=10)
    try:
        socks = set()
        for i in range(10):
            conn.request("GET", "/users/%d" % i)
            resp = conn.getresponse()
            assert resp.status == 200
            assert json.loads(resp.read()) == {"id": i}
            socks.add(id(conn.sock))
        assert len(socks) == 1, "the connection was not kept alive"
    finally:
        conn.close()


def test_pipelined_twenty_in_one_send(hello, tools):
    reqs = b"".join(tools.build_request("GET", "/users/%d" % i, port=hello.port) for i in range(20))
    with hello.raw() as c:
        c.send(reqs)
        for i in range(20):
            r = c.read_response()
            assert r.status == 200, (i, r)
            assert r.json() == {"id": i}, "response %d out of order: %r" % (i, r)
        assert c.closed_by_server(timeout=0.5) is False


def test_pipelined_mixed(hello, tools):
    """Different routes and answers built in C (404, 405) between Python ones."""
    reqs = [("GET", "/plaintext", None), ("GET", "/nowhere", None), ("GET", "/users/5", None),
            ("DELETE", "/json", None), ("POST", "/echo", b"xyz"), ("HEAD", "/plaintext", None),
            ("GET", "/json", None)]
    data = b"".join(tools.build_request(m, p, b, [("Content-Type", "application/x-test")] if b else [],
                                        port=hello.port) for m, p, b in reqs)
    with hello.raw() as c:
        c.send(data)
        got = [c.read_response(head=(m == "HEAD")) for m, _, _ in reqs]
    assert [r.status for r in got] == [200, 404, 200, 405, 200, 200, 200]
    assert got[0].body == b"Hello, World!"
    assert got[2].json() == {"id": 5}
    assert got[4].body == b"xyz"
    assert got[5].body == b"" and got[5].header("content-length") == "13"
    assert got[6].body == b'{"message":"Hello, World!"}'


def test_pipelined_answers_in_order_when_workers_finish_out_of_order(server, tools):
    srv = server("testapp:app", "--workers", "1", "--py-workers", "4")
    n = 20
    # The first requests sleep longest, so later ones are done first.
    data = b"".join(tools.build_request("GET", "/seq/%d?delay_ms=%d" % (i, (n - i) * 10), port=srv.port)
                    for i in range(n))
    with srv.raw(timeout=20) as c:
        c.send(data)
        got = [c.read_response() for _ in range(n)]
    assert [r.status for r in got] == [200] * n, got
    assert [r.json()["i"] for r in got] == list(range(n))
    # More than one Python worker really took part.
    assert len({r.json()["pid"] for r in got}) > 1


def test_head(hello, tools):
    with hello.raw() as c:
        c.send(tools.build_request("HEAD", "/plaintext", port=hello.port) +
               tools.build_request("GET", "/json", port=hello.port))
        h = c.read_response(head=True)
        assert h.status == 200, h
        assert h.header("content-length") == "13"
        assert h.header("content-type") == TEXT
        tools.check_common_headers(h)
        # No body after the HEAD head: the next response starts right there.
        g = c.read_response()
        assert g.status == 200, g
        assert g.body == b'{"message":"Hello, World!"}'


def test_head_json_length(hello):
    h = hello.request("HEAD", "/json")
    g = hello.get("/json")
    assert h.status == 200
    assert h.header("content-length") == g.header("content-length") == str(len(g.body))


def test_not_found(hello, tools):
    for path in ["/nowhere", "/users/1/more", "/plaintext/x", "/json/"]:
        r = hello.get(path)
        assert r.status == 404, (path, r)
        assert r.header("content-type") == JSON
        assert r.json() == {"detail": "Not Found"}
        tools.check_common_headers(r)
        assert int(r.header("content-length")) == len(r.body)


def test_method_not_allowed_with_allow(hello, tools):
    r = hello.request("POST", "/plaintext", b"")
    assert r.status == 405, r
    assert r.json() == {"detail": "Method Not Allowed"}
    allow = [m.strip() for m in r.header("allow").split(",")]
    assert sorted(allow) == ["GET", "HEAD"], r
    tools.check_common_headers(r)
    r = hello.get("/echo")
    assert r.status == 405, r
    assert [m.strip() for m in r.header("allow").split(",")] == ["POST"], r


def test_404_and_405_answered_in_c_while_the_python_worker_is_stopped(server, tools):
    """The route table is compiled into the C router: with the only Python
    worker frozen (SIGSTOP), 404 and 405 (with Allow) still come, at once."""
    srv = server("hello:app", "--workers", "1", "--py-workers", "1", app_dir=tools.examples_dir)
    (py, _), = srv.py_workers().items()
    os.kill(py, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 2
        while tools.proc_stat(py)[0] != "T" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert tools.proc_stat(py)[0] == "T", "Python worker %d not stopped: %r" % (py, tools.proc_stat(py))
        for method, path, want in [("GET", "/no/such/path", 404), ("DELETE", "/json", 405)]:
            t = time.monotonic()
            try:
                r = srv.request(method, path, timeout=2)
            except (socket.timeout, EOFError, OSError) as e:
                pytest.fail("%s %s: no answer within 2 s with the Python worker stopped (%r): "
                            "answered by Python, not the C router?" % (method, path, e), pytrace=False)
            assert time.monotonic() - t < 2.0
            assert r.status == want, (method, path, r)
            tools.check_common_headers(r)
            if want == 405:
                assert sorted(m.strip() for m in r.header("allow").split(",")) == ["GET", "HEAD"], r
        # The frozen worker really is the one Python routes need.
        with pytest.raises(socket.timeout):
            srv.get("/json", timeout=1)
    finally:
        os.kill(py, signal.SIGCONT)
    assert srv.get("/json").body == b'{"message":"Hello, World!"}'


def test_http10_without_keep_alive_closes(hello):
    with hello.raw() as c:
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"Hello, World!"
        assert c.closed_by_server(timeout=5), "HTTP/1.0 connection left open"


def test_connection_close_honoured(hello, tools):
    with hello.raw() as c:
        # A second request in the same send must not be answered.
        c.send(tools.build_request("GET", "/plaintext", headers=[("Connection", "close")], port=hello.port) +
               tools.build_request("GET", "/json", port=hello.port))
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == b"Hello, World!"
        assert r.header("connection") == "close"
        assert c.closed_by_server(timeout=5), "connection left open after Connection: close"


def test_big_bodies_both_ways_through_echo(hello):
    body = random.Random(1).randbytes(200 * 1024)
    r = hello.request("POST", "/echo", body, [("Content-Type", "application/octet-stream")])
    assert r.status == 200, r
    assert r.header("content-length") == str(len(body))
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(body).hexdigest()


def test_big_chunked_body_through_echo(hello, tools):
    body = random.Random(2).randbytes(200 * 1024 + 17)
    with hello.raw() as c:
        c.send(tools.build_request("POST", "/echo", headers=[("Content-Type", "application/octet-stream"),
                                                            ("Transfer-Encoding", "chunked")], port=hello.port)
               + tools.chunked(body, 10000))
        r = c.read_response()
    assert r.status == 200, r
    assert r.body == body


# ---- the test app: bodies ----------------------------------------------------------

@pytest.mark.parametrize("route", ["/body/async", "/body/sync"])
@pytest.mark.parametrize("size", [0, 1, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 200 * 1024, 1024 * 1024],
                         ids=lambda n: str(n))
def test_request_body_sizes(app, route, size):
    body = random.Random(size).randbytes(size)
    r = app.request("POST", route, body, [("Content-Type", "application/octet-stream")], timeout=30)
    assert r.status == 200, r
    assert r.json() == {"len": size, "sha256": hashlib.sha256(body).hexdigest()}


def test_request_body_chunked_big(app, tools):
    body = random.Random(3).randbytes(300 * 1024)
    with app.raw() as c:
        c.send(tools.build_request("POST", "/body/async", headers=[("Transfer-Encoding", "chunked")],
                                   port=app.port) + tools.chunked(body, 7777))
        r = c.read_response()
    assert r.status == 200, r
    assert r.json() == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest()}


@pytest.mark.parametrize("n", [0, 100, 16 * 1024, 16 * 1024 + 1, 200 * 1024, 1024 * 1024 + 3])
def test_response_body_sizes(app, n):
    r = app.get("/big?n=%d&seed=%d" % (n, n + 5), timeout=30)
    assert r.status == 200, r
    assert r.header("content-type") == "application/octet-stream"
    assert r.header("content-length") == str(n)
    want = random.Random(n + 5).randbytes(n)
    assert r.header("x-sha256") == hashlib.sha256(want).hexdigest()
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(want).hexdigest()


def test_big_responses_pipelined(app, tools):
    sizes = [200 * 1024, 10, 100 * 1024, 0, 64 * 1024 + 1]
    with app.raw(timeout=30) as c:
        c.send(b"".join(tools.build_request("GET", "/big?n=%d&seed=%d" % (n, i), port=app.port)
                        for i, n in enumerate(sizes)))
        for i, n in enumerate(sizes):
            r = c.read_response()
            assert r.status == 200, r
            assert r.body == random.Random(i).randbytes(n), "response %d" % i


def test_body_over_max_body_is_413(server, tools):
    srv = server("testapp:app", "--py-workers", "1", "--max-body", "64k")
    limit = 64 * 1024
    # At the limit: fine.
    body = random.Random(4).randbytes(limit)
    r = srv.request("POST", "/body/sync", body)
    assert r.status == 200, r
    assert r.json()["len"] == limit
    # One byte over, announced by Content-Length: 413 without waiting for the body.
    with srv.raw() as c:
        c.send(b"POST /body/sync HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
        r = c.read_response()
        assert r.status == 413, r
        tools.check_common_headers(r)
    # Over the limit in chunks: 413 once the count passes it.
    with srv.raw() as c:
        c.send(b"POST /body/sync HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        data = tools.chunked(random.Random(5).randbytes(limit + 4096), 4096)
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = c.read_response()
        assert r.status == 413, r
    # The server is fine afterwards.
    assert srv.get("/pid").status == 200


def test_default_max_body_is_at_least_1mib(app):
    body = b"x" * (1024 * 1024)
    r = app.request("POST", "/body/sync", body, timeout=30)
    assert r.status == 200, r
    assert r.json()["len"] == len(body)


# ---- errors ---------------------------------------------------------------------

def test_http_exception(app, tools):
    r = app.get("/nope")
    assert r.status == 404, r
    assert r.header("content-type") == JSON
    assert r.json() == {"detail": "nope"}
    tools.check_common_headers(r)


def test_handler_exception_is_500_and_worker_survives(app, tools):
    before = app.get("/pid").json()["pid"]
    r = app.get("/boom")
    assert r.status == 500, r
    tools.check_common_headers(r)
    assert int(r.header("content-length")) == len(r.body)
    after = app.get("/pid")
    assert after.status == 200
    assert after.json()["pid"] == before, "a different Python worker answered after the 500"
    # The traceback is logged.
    assert app.wait_log(r"RuntimeError: boom for the black-box test", timeout=3), app.log()
    assert app.wait_log(r"Traceback \(most recent call last\)", timeout=0), app.log()
    assert "restarting" not in app.log()
    # And again, on a kept-alive connection this time.
    with app.raw() as c:
        c.request("GET", "/boom")
        assert c.read_response().status == 500
        c.request("GET", "/pid")
        assert c.read_response().json()["pid"] == before


# ---- return values -----------------------------------------------------------------

@pytest.mark.parametrize("path,status,ctype,check", [
    ("/ret/str", 200, TEXT, lambda r: r.body == b"just text"),
    ("/ret/bytes", 200, "application/octet-stream", lambda r: r.body == b"\x00\x01raw\xff"),
    ("/ret/dict", 200, JSON, lambda r: r.json() == {"a": 1, "b": [1, 2], "c": None}),
    ("/ret/list", 200, JSON, lambda r: r.json() == [1, "two", None, True]),
    ("/ret/response", 202, "application/xml", lambda r: r.body == b"<doc/>" and r.header("x-custom") == "yes"),
    ("/ret/json201", 201, JSON, lambda r: r.json() == {"created": True}),
], ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None)
def test_return_types(app, tools, path, status, ctype, check):
    r = app.get(path)
    assert r.status == status, r
    assert r.header("content-type") == ctype, r
    assert check(r), r
    tools.check_common_headers(r)
    assert int(r.header("content-length")) == len(r.body)


# ---- the Request ---------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "POST"])
def test_request_fields(app, method):
    r = app.request(method, "/inspect/fruit/apple?tag=a&q=a%20b+c&tag=b&tag=c",
                    b"" if method == "POST" else None, [("X-Test-Header", "Value 1")])
    assert r.status == 200, r
    assert r.json() == {
        "method": method,
        "path": "/inspect/fruit/apple",
        "tags": ["a", "b", "c"],
        "q": "a b c",
        "path_params": {"kind": "fruit", "item": "apple"},
        "h_lower": "Value 1",
        "h_upper": "Value 1",
        "h_mixed": "Value 1",
        "h_missing": None,
        "client": "127.0.0.1",
    }


def test_request_fields_without_query(app):
    r = app.request("GET", "/inspect/k/i", headers=[("x-TEST-header", "v")])
    assert r.status == 200, r
    body = r.json()
    assert body["tags"] == [] and body["q"] is None
    assert body["h_lower"] == body["h_upper"] == body["h_mixed"] == "v"


def test_path_params_and_request_by_name(app):
    r = app.get("/bind/alpha/12")
    assert r.status == 200, r
    assert r.json() == {"kind": "alpha", "num": 12, "method": "GET"}
    _detail_422(app.get("/bind/alpha/twelve"), ["path", "num"])


@pytest.mark.parametrize("route", ["/json/async", "/json/sync"])
def test_request_json(app, route):
    doc = {"name": "Zoë", "n": [1, 2.5, None, True], "nested": {"k": "v"}}
    r = app.request("POST", route, json.dumps(doc).encode(), [("Content-Type", "application/json")])
    assert r.status == 200, r
    assert r.json() == {"got": doc}


# ---- query parameters -----------------------------------------------------------------

def test_query_conversion(app):
    r = app.get("/conv?i=3&f=2.5&b=true&s=hello")
    assert r.status == 200, r
    assert r.json() == {"i": 3, "f": 2.5, "b": True, "s": "hello", "d": 7, "name": "anon",
                        "types": ["int", "float", "bool", "str", "int", "str"]}
    r = app.get("/conv?i=-4&f=1e3&b=0&s=x%20y&d=9&name=bob")
    assert r.status == 200, r
    assert r.json() == {"i": -4, "f": 1000.0, "b": False, "s": "x y", "d": 9, "name": "bob",
                        "types": ["int", "float", "bool", "str", "int", "str"]}
    r = app.get("/conv?i=1&f=3&b=1&s=")
    assert r.status == 200, r
    assert r.json()["f"] == 3.0 and r.json()["types"][1] == "float" and r.json()["s"] == ""


@pytest.mark.parametrize("text,value", [("true", True), ("1", True), ("yes", True), ("on", True),
                                        ("True", True), ("false", False), ("0", False), ("no", False),
                                        ("off", False), ("FALSE", False)])
def test_query_bool(app, text, value):
    r = app.get("/conv?i=1&f=1&s=s&b=" + text)
    assert r.status == 200, r
    assert r.json()["b"] is value


@pytest.mark.parametrize("query,loc", [
    ("i=abc&f=1&b=true&s=x", ["query", "i"]),
    ("i=1.5&f=1&b=true&s=x", ["query", "i"]),
    ("i=1&f=xyz&b=true&s=x", ["query", "f"]),
    ("i=1&f=1&b=maybe&s=x", ["query", "b"]),
    ("i=1&f=1&b=true&s=x&d=seven", ["query", "d"]),
    ("f=1&b=true&s=x", ["query", "i"]),
    ("i=1&f=1&b=true", ["query", "s"]),
])
def test_query_bad_value_is_422(app, tools, query, loc):
    r = app.get("/conv?" + query)
    _detail_422(r, loc)
    tools.check_common_headers(r)


# ---- methods ------------------------------------------------------------------------------

def test_route_with_several_methods(app):
    assert app.get("/multi").json() == {"method": "GET"}
    assert app.request("POST", "/multi", b"").json() == {"method": "POST"}
    for m in ["PUT", "DELETE", "PATCH"]:
        r = app.request(m, "/multi", b"")
        assert r.status == 405, (m, r)
        assert sorted(x.strip() for x in r.header("allow").split(",")) == ["GET", "HEAD", "POST"], r


def test_each_decorator_on_one_path(app):
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"]:
        r = app.request(m, "/verbs", b"" if m != "GET" else None)
        assert r.status == 200, (m, r)
        assert r.json() == {"verb": m.lower()}
    r = app.request("OPTIONS", "/verbs")
    assert r.status == 405, r
    assert sorted(x.strip() for x in r.header("allow").split(",")) == \
        ["DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"]
