"""WSGI (PEP 3333) through the real server: apps/wsgi_environ.py answers its
whole environ, checked key by key against the PEP; start_response, write(),
exc_info, close(), file_wrapper (sendfile) and errors over sockets."""

import os

import pytest

APPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps")


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server("wsgi_environ:application", "--py-workers", "1")   # auto: a plain callable


@pytest.fixture(scope="module")
def rooted(module_server):
    return module_server("wsgi_environ:application", "--interface", "wsgi",
                         "--root-path", "/mount")


def test_environ__cgi_keys_from_the_request(srv):
    r = srv.request("POST", "/caf%C3%A9/a%2Fb%20c?x=1&y=%20&z", body=b"line1\nline2\n",
                    headers=[("Content-Type", "text/plain; charset=latin-1"),
                             ("X-Dup", "one"), ("X-Dup", "two"), ("Accept", "*/*")])
    assert r.status == 200, r.body
    e = r.json()
    assert e["REQUEST_METHOD"] == "POST"
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/caf\xc3\xa9/a/b c"      # decoded bytes as latin-1 (PEP 3333)
    assert e["QUERY_STRING"] == "x=1&y=%20&z"
    assert e["CONTENT_TYPE"] == "text/plain; charset=latin-1"
    assert e["CONTENT_LENGTH"] == "12"
    assert e["SERVER_NAME"] == "127.0.0.1" and e["SERVER_PORT"] == str(srv.port)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["REMOTE_ADDR"] == "127.0.0.1" and 0 < int(e["REMOTE_PORT"]) < 65536
    assert e["HTTP_X_DUP"] == "one, two"
    assert e["HTTP_ACCEPT"] == "*/*"
    assert e["HTTP_HOST"] == "127.0.0.1:%d" % srv.port
    assert "HTTP_CONTENT_TYPE" not in e and "HTTP_CONTENT_LENGTH" not in e
    assert e["_body"] == "line1\nline2\n"
    # every CGI key and HTTP_* is a native str
    for key, kind in e["_types"].items():
        if key.isupper():
            assert kind == "str", key


def test_environ__wsgi_keys(srv):
    e = srv.get("/").json()
    assert e["wsgi.version"] == [1, 0]
    assert e["_types"]["wsgi.version"] == "tuple"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.input"] == "input"
    assert e["wsgi.errors"] == "stderr"
    assert e["wsgi.multithread"] is False
    assert e["wsgi.multiprocess"] is True
    assert e["wsgi.run_once"] is False
    assert e["wsgi.file_wrapper"] == "callable"
    assert "CONTENT_LENGTH" not in e and "CONTENT_TYPE" not in e   # no body, no header
    assert e["QUERY_STRING"] == ""


def test_environ__host_header_gives_server_name_and_port(srv):
    e = srv.request("GET", "/", headers=[("Host", "example.org:8443")]).json()
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.org", "8443")
    e = srv.request("GET", "/", headers=[("Host", "example.org")]).json()
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.org", "80")


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_reaches_the_app(srv, method):
    r = srv.request(method, "/any/deep/path", body=b"x" if method in ("POST", "PUT") else None)
    assert r.status == 200
    assert r.json()["REQUEST_METHOD"] == method


def test_head_is_served_by_the_get_route_without_body(srv):
    r = srv.request("HEAD", "/x")
    assert r.status == 200 and r.body == b""


def test_input__readline_readlines_and_iteration(srv):
    e = srv.request("POST", "/?lines", body=b"a\nbb\nccc").json()
    assert e["_body"] == {"readline": "a\n", "readlines": ["bb\n", "ccc"]}
    e = srv.request("POST", "/?iter", body=b"1\n2\n3").json()
    assert e["_body"] == ["1\n", "2\n", "3"]


def test_input__chunked_request_body(srv):
    with srv.raw() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        e = c.read_response().json()
    assert e["_body"] == "abcde" and e["CONTENT_LENGTH"] == "5"


def test_root_path__script_name_and_path_info(rooted):
    e = rooted.get("/mount/a/b").json()
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/mount", "/a/b")
    e = rooted.get("/mount").json()
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/mount", "")
    e = rooted.get("/elsewhere").json()      # a proxy that strips the prefix
    assert (e["SCRIPT_NAME"], e["PATH_INFO"]) == ("/mount", "/elsewhere")


def test_start_response__write_and_duplicate_headers(srv):
    r = srv.get("/write")
    assert r.status == 201
    assert r.body == b"written and returned"
    assert r.header_all("x-two") == ["a", "b"]
    assert r.header("content-length") == str(len(r.body))


def test_start_response__exc_info_replaces_the_status_before_output(srv):
    r = srv.get("/exc_info")
    assert (r.status, r.body) == (503, b"replaced")


def test_close__called_on_success_and_on_error(srv):
    before = int(srv.get("/closed").body)
    assert srv.get("/close").body == b"part1 part2"
    r = srv.get("/close_error")
    assert r.status == 500
    assert int(srv.get("/closed").body) == before + 2


def test_errors__500_with_traceback_and_the_worker_lives(srv):
    pids = srv.py_workers()
    r = srv.get("/error")
    assert r.status == 500 and r.body == b"Internal Server Error"
    srv.wait_log("RuntimeError: boom from the WSGI app")
    assert srv.get("/").status == 200
    assert srv.py_workers() == pids


def test_file_wrapper__real_file_sent_whole(srv):
    r = srv.get("/file")
    with open(os.path.join(APPS, "wsgi_environ.py"), "rb") as f:
        expected = f.read()
    assert r.status == 200 and r.body == expected
    assert r.header("content-length") == str(len(expected))
    assert r.header("x-fasterapi-sendfile") is None      # internal: never on the wire


def test_file_wrapper__file_like_is_buffered(srv):
    r = srv.get("/filelike")
    assert r.status == 200 and r.body == b"from a BytesIO\n" * 3
