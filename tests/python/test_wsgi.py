"""fasterapi.wsgi and the WSGI side of fasterapi._boot (interface detection,
catch-all routes, PEP 3333 environ, start_response, close(), file_wrapper),
driven as fasterapi-pyworker drives them: describe, load, dispatch."""

import io
import os
import sys
import types

import pytest

from fasterapi import App, _boot, wsgi


@pytest.fixture
def serve(monkeypatch):
    """serve(app, interface="auto", root_path="") -> (table, dispatch)."""
    def make(app, interface="auto", root_path=""):
        monkeypatch.setenv("FASTERAPI_INTERFACE", interface)
        monkeypatch.setenv("FASTERAPI_ROOT_PATH", root_path)
        name = f"_fa_wsgi_test_{id(app)}"
        module = types.ModuleType(name)
        module.app = app
        monkeypatch.setitem(sys.modules, name, module)
        return _boot.describe(f"{name}:app"), _boot.load(f"{name}:app")
    return make


def call(dispatch, method="GET", path="/", query="", headers=(), body=b"",
         client=("10.0.0.7", 41234), route_id=0):
    return dispatch(route_id, method, path, query, (), list(headers), client, body)


def echo_environ(environ, start_response):
    captured.clear()
    captured.update(environ)
    captured["_body"] = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


captured = {}


# ------------------------------------------------------------------ detection

def test_describe__a_wsgi_callable_gets_catch_all_routes_for_each_method(serve):
    table, _ = serve(echo_environ)
    assert table == [
        (i, m, p, "python", {}) for i, (m, p) in enumerate(
            (m, p) for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
            for p in ("/", "/{path:path}"))]


def test_detect__plain_function_is_wsgi_async_three_args_is_asgi():
    from fasterapi.asgi import is_asgi

    async def asgi_app(scope, receive, send):
        pass

    async def two(scope, receive):
        pass

    class Callable:
        async def __call__(self, scope, receive, send):
            pass

    class SyncCallable:
        def __call__(self, environ, start_response):
            pass

    assert is_asgi(asgi_app) and is_asgi(Callable())
    assert not is_asgi(echo_environ) and not is_asgi(two) and not is_asgi(SyncCallable())
    assert not is_asgi(Callable)


def test_detect__interface_env_forces_wsgi_and_native(serve, monkeypatch):
    async def asgi_app(scope, receive, send):
        pass
    _, dispatch = serve(lambda environ, sr: (sr("200 OK", []), [b"x"])[1], "wsgi")
    assert call(dispatch)[2] == b"x"
    with pytest.raises(TypeError, match="not a fasterapi.App"):
        serve(echo_environ, "native")


def test_detect__a_non_callable_is_still_a_type_error_naming_it(serve):
    with pytest.raises(TypeError, match=r"builtins\.dict, not a fasterapi\.App, nor a WSGI"):
        serve({"routes": []})


def test_detect__bad_interface_value(serve):
    with pytest.raises(ValueError, match="FASTERAPI_INTERFACE"):
        serve(echo_environ, "cgi")


def test_detect__an_app_stays_native_with_auto(serve):
    app = App(openapi_url=None)
    app.get("/a")(lambda: {"a": 1})
    table, dispatch = serve(app)
    assert table == [(0, "GET", "/a", "python", {})]
    assert call(dispatch, path="/a")[2] in ({"a": 1}, b"{\"a\":1}")


# ------------------------------------------------------------------ environ

def test_environ__pep3333_keys(serve):
    _, dispatch = serve(echo_environ)
    status, headers, body = call(dispatch, "POST", "/caf%C3%A9/x%20y", "a=1&b=%20",
                                 [("host", "example.com:8080"), ("content-type", "text/plain"),
                                  ("content-length", "5"), ("x-dup", "one"),
                                  ("x-dup", "two"), ("user-agent", "t")],
                                 b"hello", route_id=3)
    assert (status, body) == (200, b"ok")
    e = captured
    assert e["REQUEST_METHOD"] == "POST"
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/caf\xc3\xa9/x y"   # latin-1 str of the decoded bytes
    assert e["QUERY_STRING"] == "a=1&b=%20"
    assert e["CONTENT_TYPE"] == "text/plain" and e["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in e and "HTTP_CONTENT_LENGTH" not in e
    assert (e["SERVER_NAME"], e["SERVER_PORT"]) == ("example.com", "8080")
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (e["REMOTE_ADDR"], e["REMOTE_PORT"]) == ("10.0.0.7", "41234")
    assert e["HTTP_HOST"] == "example.com:8080"
    assert e["HTTP_X_DUP"] == "one, two"
    assert e["HTTP_USER_AGENT"] == "t"
    assert e["wsgi.version"] == (1, 0)
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.errors"] is sys.stderr
    assert e["wsgi.multithread"] is False and e["wsgi.multiprocess"] is True
    assert e["wsgi.run_once"] is False
    assert e["wsgi.file_wrapper"] is wsgi.FileWrapper
    assert e["_body"] == b"hello"
    for key, value in e.items():
        if key.isupper():
            assert type(value) is str, key


def test_environ__no_body_no_content_length(serve):
    _, dispatch = serve(echo_environ)
    call(dispatch)
    assert "CONTENT_LENGTH" not in captured and "CONTENT_TYPE" not in captured
    assert (captured["SERVER_NAME"], captured["SERVER_PORT"]) == ("localhost", "80")


def test_environ__chunked_body_gets_its_length(serve):
    _, dispatch = serve(echo_environ)
    call(dispatch, "POST", headers=[("transfer-encoding", "chunked")], body=b"abc")
    assert captured["CONTENT_LENGTH"] == "3"
    assert "HTTP_TRANSFER_ENCODING" not in captured


def test_environ__underscore_header_is_dropped(serve):
    _, dispatch = serve(echo_environ)
    call(dispatch, headers=[("x_a", "smuggled"), ("x-a", "real")])
    assert captured["HTTP_X_A"] == "real"


def test_environ__ipv6_host(serve):
    _, dispatch = serve(echo_environ)
    call(dispatch, headers=[("host", "[::1]:9000")])
    assert (captured["SERVER_NAME"], captured["SERVER_PORT"]) == ("[::1]", "9000")


@pytest.mark.parametrize("path, script, info", [
    ("/app/x/y", "/app", "/x/y"),
    ("/app", "/app", ""),
    ("/application", "/app", "/application"),
    ("/other", "/app", "/other"),
])
def test_environ__root_path_splits_script_name_and_path_info(serve, path, script, info):
    _, dispatch = serve(echo_environ, root_path="/app/")
    call(dispatch, path=path)
    assert (captured["SCRIPT_NAME"], captured["PATH_INFO"]) == (script, info)


def test_input__read_readline_readlines_iteration():
    stream = wsgi.InputStream(b"one\ntwo\nthree\nfour")
    assert stream.read(2) == b"on"
    assert stream.readline() == b"e\n"
    assert stream.readline(2) == b"tw"
    assert stream.readlines() == [b"o\n", b"three\n", b"four"]
    assert stream.read() == b""
    assert list(wsgi.InputStream(b"a\nb\n")) == [b"a\n", b"b\n"]
    assert wsgi.InputStream(b"abc").read(None) == b"abc"


def test_input__body_memoryview_is_copied(serve):
    _, dispatch = serve(echo_environ)
    buf = bytearray(b"payload")
    call(dispatch, "POST", body=memoryview(buf))
    buf[:] = b"changed"
    assert captured["_body"] == b"payload"


# ------------------------------------------------------------------ responses

def test_response__status_headers_and_reserved_headers_dropped(serve):
    def app(environ, start_response):
        start_response("404 Not Here", [("Content-Type", "text/html"), ("Content-Length", "2"),
                                        ("Connection", "close"), ("X-A", "1"), ("X-A", "2")])
        return [b"no"]
    _, dispatch = serve(app)
    assert call(dispatch) == (404, [("Content-Type", "text/html"), ("X-A", "1"), ("X-A", "2")],
                              b"no")


def test_response__write_and_iterable_are_concatenated(serve):
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"a")
        write(b"b")
        return iter([b"c", b"", b"d"])
    _, dispatch = serve(app)
    assert call(dispatch)[2] == b"abcd"


def test_response__start_response_inside_the_generator(serve):
    def app(environ, start_response):
        start_response("202 Accepted", [])
        yield b"lazy"
    _, dispatch = serve(app)
    assert call(dispatch)[:3:2] == (202, b"lazy")


class Closing:
    def __init__(self, fail=False):
        self.closed = 0
        self.fail = fail

    def __iter__(self):
        yield b"x"
        if self.fail:
            raise RuntimeError("iteration failed")

    def close(self):
        self.closed += 1


def test_close__called_after_iteration(serve):
    it = Closing()

    def app(environ, start_response):
        start_response("200 OK", [])
        return it
    _, dispatch = serve(app)
    assert call(dispatch)[2] == b"x"
    assert it.closed == 1


def test_close__called_when_iteration_raises_and_answers_500(serve, capsys):
    it = Closing(fail=True)

    def app(environ, start_response):
        start_response("200 OK", [])
        return it
    _, dispatch = serve(app)
    assert call(dispatch)[0] == 500
    assert it.closed == 1
    assert "iteration failed" in capsys.readouterr().err


def test_errors__app_raising_is_500_with_traceback(serve, capsys):
    def app(environ, start_response):
        raise KeyError("nope")
    _, dispatch = serve(app)
    status, headers, body = call(dispatch, path="/p")
    assert status == 500 and body == b"Internal Server Error"
    err = capsys.readouterr().err
    assert "GET /p: the WSGI app raised" in err and "KeyError" in err
    assert call(dispatch)[0] == 500   # still serving


def test_errors__no_start_response_is_500(serve, capsys):
    _, dispatch = serve(lambda environ, start_response: [b"x"])
    assert call(dispatch)[0] == 500
    assert "start_response" in capsys.readouterr().err


def test_errors__non_bytes_body_is_500(serve, capsys):
    def app(environ, start_response):
        start_response("200 OK", [])
        return ["text"]
    _, dispatch = serve(app)
    assert call(dispatch)[0] == 500
    assert "not bytes" in capsys.readouterr().err


def test_start_response__twice_without_exc_info_is_an_error(serve, capsys):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("500 Oops", [])
        return [b""]
    _, dispatch = serve(app)
    assert call(dispatch)[0] == 500


def test_start_response__exc_info_before_output_replaces_status(serve):
    def app(environ, start_response):
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [("X-Second", "1")], sys.exc_info())
        return [b"error page"]
    _, dispatch = serve(app)
    assert call(dispatch) == (500, [("X-Second", "1")], b"error page")


def test_start_response__exc_info_after_output_reraises(serve, capsys):
    def app(environ, start_response):
        write = start_response("200 OK", [])
        write(b"already out")
        try:
            raise ValueError("the original error")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"unreachable"]
    _, dispatch = serve(app)
    assert call(dispatch)[0] == 500
    err = capsys.readouterr().err
    assert "ValueError: the original error" in err


def test_start_response__bad_status(serve):
    def app(environ, start_response):
        start_response("OK", [])
        return [b""]
    _, dispatch = serve(app)
    assert call(dispatch)[0] == 500


# ------------------------------------------------------------------ file_wrapper

def test_file_wrapper__a_real_file_is_sent_with_sendfile(serve, tmp_path):
    target = tmp_path / "data é.bin"
    target.write_bytes(b"0123456789")
    files = []

    def app(environ, start_response):
        f = open(target, "rb")
        files.append(f)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", "10")])
        return environ["wsgi.file_wrapper"](f, 4)
    _, dispatch = serve(app)
    status, headers, body = call(dispatch)
    assert status == 200 and body == b""
    assert ("x-fasterapi-sendfile", os.fsencode(str(target)).decode("latin-1")) in headers
    assert ("Content-Type", "application/octet-stream") in headers
    assert not any(n.lower() == "content-length" for n, _ in headers)
    assert files[0].closed


def test_file_wrapper__a_file_not_at_its_start_is_read(serve, tmp_path):
    target = tmp_path / "f.txt"
    target.write_bytes(b"0123456789")

    def app(environ, start_response):
        f = open(target, "rb")
        f.seek(4)
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](f, 4)
    _, dispatch = serve(app)
    status, headers, body = call(dispatch)
    assert body == b"456789" and not any(n == "x-fasterapi-sendfile" for n, _ in headers)


def test_file_wrapper__a_file_like_is_read_in_blocks(serve):
    closed = []

    class Reader(io.BytesIO):
        def close(self):
            closed.append(True)
            super().close()

    def app(environ, start_response):
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](Reader(b"abcdefghij"), 3)
    _, dispatch = serve(app)
    assert call(dispatch)[2] == b"abcdefghij"
    assert closed == [True]


# ------------------------------------------------------------------ mount

def test_mount__app_routes_first_then_the_wsgi_app(serve):
    app = App(openapi_url=None)
    app.static("/health", b"ok")
    app.get("/py")(lambda: {"native": True})
    wsgi.mount(app, echo_environ)
    table, dispatch = serve(app)
    assert table[0][1:4] == ("GET", "/health", "static")
    assert table[1][1:4] == ("GET", "/py", "python")
    assert table[2:] == wsgi.catchall_routes(2)
    assert call(dispatch, path="/py", route_id=1)[2] in ({"native": True}, b"{\"native\":true}")
    assert call(dispatch, path="/else", route_id=3)[2] == b"ok"
    assert captured["PATH_INFO"] == "/else"


def test_mount__forced_wsgi_on_an_app_without_fallback_is_an_error(serve):
    app = App(openapi_url=None)
    with pytest.raises(TypeError, match="--interface wsgi"):
        serve(app, "wsgi")


def test_flask_send_file_goes_through_sendfile(serve, tmp_path):
    try:
        import flask
    except ImportError:
        if os.environ.get("FASTERAPI_ALLOW_SKIP"):
            pytest.skip("flask missing (FASTERAPI_ALLOW_SKIP set)")
        pytest.fail("flask is not installed: apt-get install python3-flask")
    target = tmp_path / "report.csv"
    target.write_bytes(b"a,b\n1,2\n")
    app = flask.Flask("fa_test_flask")

    @app.get("/r")
    def report():
        return flask.send_file(str(target))
    _, dispatch = serve(app)
    status, headers, body = call(dispatch, path="/r", headers=[("host", "h")])
    assert status == 200 and body == b""
    assert ("x-fasterapi-sendfile", str(target)) in headers
    assert dict(headers)["Content-Type"].startswith("text/csv")
