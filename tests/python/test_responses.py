"""Return values, Response classes, HTTPException, 500s and HEAD."""

import pytest

from fasterapi import (App, HTTPException, HTMLResponse, JSONResponse, PlainTextResponse, Request,
                       Response)

JSON = [("content-type", "application/json")]
TEXT = [("content-type", "text/plain; charset=utf-8")]


@pytest.fixture
def returning(make_client):
    """returning(value) -> the Reply of a GET handler that returns value."""
    def call(value):
        app = App()
        app.get("/r")(lambda: value)
        return make_client(app).get("/r")
    return call


# ------------------------------------------------------------------ plain values

def test_return__dict_is_compact_utf8_json(returning):
    reply = returning({"message": "Hello, World!", "n": [1, 2.5, None, True], "é": "ü"})
    assert reply == (200, JSON, '{"message":"Hello, World!","n":[1,2.5,null,true],"é":"ü"}'
                     .encode())


def test_return__list_and_other_json_values(returning):
    assert returning([1, "a"]) == (200, JSON, b'[1,"a"]')
    assert returning((1, 2)) == (200, JSON, b"[1,2]")
    assert returning(3) == (200, JSON, b"3")
    assert returning(True) == (200, JSON, b"true")


def test_return__none_is_json_null(returning):
    assert returning(None) == (200, JSON, b"null")


def test_return__str_is_utf8_text(returning):
    assert returning("Hello, Wörld!") == (200, TEXT, "Hello, Wörld!".encode())


def test_return__bytes_are_octet_stream(returning):
    octets = [("content-type", "application/octet-stream")]
    assert returning(b"\x00\xff") == (200, octets, b"\x00\xff")
    assert returning(bytearray(b"ab")) == (200, octets, b"ab")


def test_return__not_json_encodable_is_a_500(returning, capsys):
    assert returning({"x": object()}).status == 500
    assert returning({"x": float("nan")}).status == 500
    err = capsys.readouterr().err
    assert "not JSON serializable" in err and "Out of range float" in err


def test_return__a_failed_encoding_does_not_poison_the_next(make_client, capsys):
    # The encoder is built once: a failure must not leave state (such as
    # cycle markers) that makes the same objects fail the next time.
    inner = [object()]
    outer = {"inner": inner}
    app = App()
    app.get("/r")(lambda: outer)
    client = make_client(app)
    assert client.get("/r").status == 500
    capsys.readouterr()
    inner[0] = 1
    assert client.get("/r") == (200, JSON, b'{"inner":[1]}')


# ------------------------------------------------------------------ Response classes

def test_response__content_status_headers_media_type(returning):
    reply = returning(Response("<p>é</p>", status_code=203, headers={"X-Custom": "1"},
                               media_type="text/html"))
    assert reply == (203, [("x-custom", "1"), ("content-type", "text/html; charset=utf-8")],
                     "<p>é</p>".encode())


def test_response__attributes_have_fastapi_names():
    r = Response(b"abc", status_code=202, headers={"A": "1"}, media_type="application/x-thing")
    assert (r.body, r.status_code, r.media_type) == (b"abc", 202, "application/x-thing")
    assert r.headers["a"] == "1" and r.headers["content-type"] == "application/x-thing"
    j = JSONResponse({"a": 1}, status_code=201, headers={"X": "y"})
    assert (j.body, j.status_code, j.media_type) == (b'{"a":1}', 201, "application/json")
    assert j.headers["X"] == "y"
    assert Response().body == b"" and Response().media_type is None


def test_response__explicit_content_type_header_wins(returning):
    reply = returning(Response(b"x", headers={"Content-Type": "text/csv"}, media_type="text/plain"))
    assert reply.headers == [("content-type", "text/csv")]


def test_response__no_content_type_without_media_type(returning):
    assert returning(Response(b"raw")) == (200, [], b"raw")


def test_json_response__encodes_like_fastapi(returning):
    reply = returning(JSONResponse({"a": "é", "b": [1]}, status_code=201))
    assert reply == (201, JSON, '{"a":"é","b":[1]}'.encode())


def test_text_and_html_responses(returning):
    assert returning(PlainTextResponse("hi")).headers == TEXT
    assert returning(HTMLResponse("<b>")).headers == [("content-type", "text/html; charset=utf-8")]


def test_response__content_must_be_bytes_or_str():
    with pytest.raises(TypeError, match="use JSONResponse"):
        Response({"a": 1})


def test_response__headers_the_c_side_owns_are_dropped(returning):
    r = Response(b"x", headers={"Content-Length": "999", "Date": "yesterday", "Server": "me",
                                "Connection": "close", "Transfer-Encoding": "chunked",
                                "X-Kept": "yes"})
    r.headers["content-length"] = "5"
    assert returning(r).headers == [("x-kept", "yes")]


def test_response__mutable_headers(returning):
    r = JSONResponse({})
    r.headers["X-A"] = "1"
    r.headers.append("Set-Cookie", "a=1")
    r.headers.append("set-cookie", "b=2")
    r.headers["x-a"] = "2"
    r.headers.setdefault("X-B", "3")
    r.headers.setdefault("x-b", "4")
    del r.headers["content-type"]
    assert returning(r).headers == [("x-a", "2"), ("set-cookie", "a=1"), ("set-cookie", "b=2"),
                                    ("x-b", "3")]
    with pytest.raises(KeyError):
        del r.headers["nope"]


def test_response__header_values_pass_through(returning):
    # The C side validates CR/LF; the package does not rewrite values.
    reply = returning(Response(b"", headers=[("X-Odd", " spaced\tvalue "), ("X-N", 5)]))
    assert reply.headers == [("x-odd", " spaced\tvalue "), ("x-n", "5")]


def test_response__no_body_for_204_and_304(returning):
    assert returning(Response(b"ignored", status_code=204)) == (204, [], b"")
    assert returning(JSONResponse(None, status_code=304)) == (
        304, [("content-type", "application/json")], b"")


@pytest.mark.parametrize("status", [99, 600, "200", 200.0])
def test_response__status_out_of_range_is_a_500(returning, capsys, status):
    assert returning(Response(b"", status_code=status)).status == 500
    assert "status_code must be an int from 100 to 599" in capsys.readouterr().err


# ------------------------------------------------------------------ HTTPException

def test_http_exception__detail_and_status(make_client):
    app = App()

    @app.get("/items/{item_id}")
    def handler(item_id: int):
        raise HTTPException(status_code=404, detail=f"no item {item_id}")

    assert make_client(app).get("/items/{item_id}", ["3"]) == (
        404, JSON, b'{"detail":"no item 3"}')


def test_http_exception__default_detail_is_the_reason_phrase(make_client):
    app = App()

    @app.get("/a")
    def a():
        raise HTTPException(403)

    @app.get("/b")
    def b():
        raise HTTPException(418)

    client = make_client(app)
    assert client.get("/a").body == b'{"detail":"Forbidden"}'
    assert client.get("/b").body == b'{"detail":"I\'m a Teapot"}'
    assert HTTPException(404).detail == "Not Found"


def test_http_exception__structured_detail_and_headers(make_client):
    app = App()

    @app.get("/a")
    def a():
        raise HTTPException(401, {"reason": "token", "codes": [1]},
                            headers={"WWW-Authenticate": "Bearer", "Content-Length": "1"})

    reply = make_client(app).get("/a")
    assert reply == (401, [("www-authenticate", "Bearer"), ("content-type", "application/json")],
                     b'{"detail":{"reason":"token","codes":[1]}}')


def test_http_exception__bodyless_status_has_no_body(make_client):
    app = App()

    @app.get("/a")
    def a():
        raise HTTPException(304, headers={"ETag": '"x"'})

    assert make_client(app).get("/a") == (304, [("etag", '"x"')], b"")


def test_http_exception__attributes_and_str():
    exc = HTTPException(400, "bad", {"a": "b"})
    assert (exc.status_code, exc.detail, exc.headers) == (400, "bad", {"a": "b"})
    assert str(exc) == "400: bad"
    assert repr(exc) == "HTTPException(status_code=400, detail='bad')"


# ------------------------------------------------------------------ 500

def test_500__plain_text_traceback_logged_worker_alive(make_client, capsys):
    calls = []
    app = App()

    @app.get("/boom/{n}")
    def boom(n: int):
        calls.append(n)
        if n == 1:
            raise ZeroDivisionError("division by zero here")
        return {"n": n}

    client = make_client(app)
    assert client.get("/boom/{n}", ["1"]) == (500, TEXT, b"Internal Server Error")
    err = capsys.readouterr().err
    assert "GET /boom/1" in err and "test_responses" in err and "boom" in err
    assert "Traceback (most recent call last)" in err
    assert "ZeroDivisionError: division by zero here" in err
    assert client.get("/boom/{n}", ["2"]) == (200, JSON, b'{"n":2}')
    assert calls == [1, 2]


def test_500__base_exceptions_other_than_exit_are_answered(make_client, capsys):
    import asyncio
    app = App()

    @app.get("/a")
    def a():
        raise asyncio.CancelledError()

    assert make_client(app).get("/a").status == 500
    assert "CancelledError" in capsys.readouterr().err


def test_500__system_exit_and_keyboard_interrupt_propagate(make_client):
    app = App()

    @app.get("/exit")
    def leave():
        raise SystemExit(3)

    @app.get("/int")
    def interrupted():
        raise KeyboardInterrupt

    client = make_client(app)
    with pytest.raises(SystemExit):
        client.get("/exit")
    with pytest.raises(KeyboardInterrupt):
        client.get("/int")


def test_500__unknown_route_id(make_client, capsys):
    app = App()
    app.get("/a")(lambda: "a")
    client = make_client(app)
    assert client.dispatch(7, "GET", "/zz", "", (), [], ("1.1.1.1", 1), b"")[0] == 500
    assert "route 7 (no such route)" in capsys.readouterr().err


def test_500__error_while_rendering_an_http_exception(make_client, capsys):
    app = App()

    @app.get("/a")
    def a():
        raise HTTPException(400, detail=object())

    assert make_client(app).get("/a").status == 500
    assert "not JSON serializable" in capsys.readouterr().err


# ------------------------------------------------------------------ HEAD

def test_head__runs_the_get_handler_and_returns_its_body(make_client):
    seen = []
    app = App()

    @app.get("/page/{n}")
    def page(n: int, request: Request):
        seen.append(request.method)
        return {"page": n}

    client = make_client(app)
    assert client.table[0] == (0, "GET", "/page/{n}", "python", {})
    assert not [row for row in client.table if row[1] == "HEAD"]
    reply = client.request("HEAD", "/page/{n}", ["4"])
    assert reply == (200, JSON, b'{"page":4}')
    assert seen == ["HEAD"]


def test_head__errors_are_the_same_as_for_get(make_client):
    app = App()

    @app.get("/t/{n}")
    def typed(n: int):
        return n

    assert make_client(app).request("HEAD", "/t/{n}", ["x"]).status == 422
