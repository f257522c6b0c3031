"""Issue 3, Python side: routes served in C (static, native, files) and the
five-element rows describe() hands the master."""

import os
import sys
import types

import pytest

from fasterapi import App, _boot


@pytest.fixture
def spec(monkeypatch):
    """spec(app) -> "module:attr" for describe/load."""
    def make(app):
        name = f"_fa_c_routes_{id(app)}"
        module = types.ModuleType(name)
        module.app = app
        monkeypatch.setitem(sys.modules, name, module)
        return f"{name}:app"
    return make


@pytest.fixture
def app_dir(tmp_path, monkeypatch):
    """sys.path[0] as the pyworker sets it (--app-dir)."""
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + sys.path)
    return tmp_path


def test_static__row_and_defaults(spec):
    app = App(openapi_url=None)
    app.get("/py")(lambda: "py")
    app.static("/health", b"ok")
    app.static("/robots.txt", "User-agent: *\né", content_type="text/plain", status_code=203,
               headers={"Cache-Control": "max-age=60", "X-A": 1})
    assert _boot.describe(spec(app)) == [
        (0, "GET", "/py", "python", {}),
        (1, "GET", "/health", "static",
         {"status": 200, "content_type": "text/plain; charset=utf-8", "headers": [],
          "body": b"ok"}),
        (2, "GET", "/robots.txt", "static",
         {"status": 203, "content_type": "text/plain",
          "headers": [["cache-control", "max-age=60"], ["x-a", "1"]],
          "body": "User-agent: *\né".encode()}),
    ]


@pytest.mark.parametrize("call, fragment", [
    (lambda a: a.static("/s/{x}", b""), "cannot have parameters"),
    (lambda a: a.static("/s", 5), "body must be bytes or str"),
    (lambda a: a.static("/s", b"", status_code=99), "status_code must be an int"),
    (lambda a: a.static("/s", b"", headers={"Content-Length": "1"}), "set by the server"),
    (lambda a: a.static("/s", b"", headers={"X": "a\r\nb"}), "bad header"),
    (lambda a: a.static("s", b""), "must be a str starting with '/'"),
])
def test_static__refused_with_a_message(call, fragment):
    with pytest.raises((ValueError, TypeError)) as info:
        call(App())
    assert fragment in str(info.value)


def test_native__row_with_library_resolved_against_the_app_dir(spec, app_dir):
    app = App(openapi_url=None)
    app.native("GET", "/fast", library="./libfast.so", symbol="fast_handler")
    app.native("post", "/abs/{id}", library="/opt/lib/libx.so", symbol="x_handler")

    @app.native("GET", "/deco", library="lib/libd.so")
    def deco_handler():
        """Documentation only: the C function deco_handler answers."""

    assert deco_handler.__name__ == "deco_handler"      # returned unchanged
    assert _boot.describe(spec(app)) == [
        (0, "GET", "/fast", "native",
         {"library": os.path.join(str(app_dir), "libfast.so"), "symbol": "fast_handler"}),
        (1, "POST", "/abs/{id}", "native", {"library": "/opt/lib/libx.so", "symbol": "x_handler"}),
        (2, "GET", "/deco", "native",
         {"library": os.path.join(str(app_dir), "lib", "libd.so"), "symbol": "deco_handler"}),
    ]


def test_native__bad_arguments():
    app = App()
    with pytest.raises(ValueError, match="unknown method 'FETCH'"):
        app.native("FETCH", "/a", library="l.so", symbol="s")
    with pytest.raises(ValueError, match="not a C identifier"):
        app.native("GET", "/a", library="l.so", symbol="my-handler")


def test_mount_static__catch_all_row(spec, app_dir):
    app = App(openapi_url=None)
    app.mount_static("/static/", "public")
    app.mount_static("/abs", "/srv/files")
    assert _boot.describe(spec(app)) == [
        (0, "GET", "/static/{path:path}", "files", {"directory": str(app_dir / "public")}),
        (1, "GET", "/abs/{path:path}", "files", {"directory": "/srv/files"}),
    ]


def test_c_routes__mix_with_python_routes_and_conflict_with_them(spec):
    app = App(openapi_url=None)
    app.get("/a")(lambda: "a")
    app.static("/b", b"b")
    with pytest.raises(ValueError, match="duplicate route GET /a"):
        app.static("/a", b"x")
    with pytest.raises(ValueError, match="duplicate route GET /b"):
        app.get("/b")(lambda: "b")
    app.post("/b")(lambda: "post b")
    rows = _boot.describe(spec(app))
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (0, "GET", "/a", "python"), (1, "GET", "/b", "static"), (2, "POST", "/b", "python")]


def test_c_routes__python_workers_never_get_them_and_dispatch_says_so(spec, capsys):
    app = App(openapi_url=None)
    app.static("/s", b"s")
    app.get("/p")(lambda: "p")
    dispatch = _boot.load(spec(app))
    assert dispatch(1, "GET", "/p", "", (), [], ("h", 1), b"")[2] == b"p"
    assert dispatch(0, "GET", "/s", "", (), [], ("h", 1), b"")[0] == 500
    assert "is served by the HTTP worker" in capsys.readouterr().err


def test_c_routes__not_in_the_openapi_document(spec):
    app = App()
    app.static("/health", b"ok")
    app.get("/p")(lambda: "p")
    assert list(app.openapi()["paths"]) == ["/p"]


def test_describe__rows_are_what_the_c_side_packs(spec):
    app = App(openapi_url=None)
    app.get("/p")(lambda: 1)
    app.static("/s", b"x", headers=[("X", "y")])
    for row in _boot.describe(spec(app)):
        assert type(row) is tuple and len(row) == 5
        assert [type(v) for v in row] == [int, str, str, str, dict]
