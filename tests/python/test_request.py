"""The Request object: Starlette's names, laziness, and the body's lifetime."""

import asyncio
import gc
import sys
from collections.abc import Mapping

import pytest

from fasterapi import App, HTTPException, Request, aio
from fasterapi.request import Headers, QueryParams

HEADERS = [("Host", "example.com:8080"), ("Content-Type", "application/json"),
           ("X-Multi", "one"), ("Accept", "*/*"), ("x-multi", "two")]


@pytest.fixture
def seen(make_client):
    """A client whose GET /p/{n} and POST /p/{n} handlers store their Request in seen['req']."""
    store = {}
    app = App()

    @app.route("/p/{n}", methods=["GET", "POST"])
    def handler(n: int, request: Request):
        store["req"] = request
        store["n"] = n
        return {}

    store["client"] = make_client(app)
    return store


def test_request__starlette_attributes(seen):
    seen["client"].get("/p/{n}", ["%34%32"], query="a=1&b=x+y&a=2&e=",
                       headers=HEADERS, client=("10.1.2.3", 61000))
    req = seen["req"]
    assert req.method == "GET"
    assert req.url.path == "/p/42"
    assert req.url.raw_path == "/p/%34%32"
    assert req.url.query == "a=1&b=x+y&a=2&e="
    assert str(req.url) == "http://example.com:8080/p/%34%32?a=1&b=x+y&a=2&e="
    assert (req.url.hostname, req.url.port) == ("example.com", 8080)
    assert req.path_params == {"n": 42}
    assert req.client == ("10.1.2.3", 61000)
    assert (req.client.host, req.client.port) == ("10.1.2.3", 61000)


def test_query_params__multi_dict(seen):
    seen["client"].get("/p/{n}", ["1"], query="a=1&b=x+y&a=2&e=")
    q = seen["req"].query_params
    assert isinstance(q, Mapping)
    assert q["a"] == "2" and q.get("a") == "2"
    assert q.getlist("a") == ["1", "2"]
    assert q["b"] == "x y" and q["e"] == ""
    assert "a" in q and "zz" not in q
    assert q.get("zz") is None and q.get("zz", "d") == "d"
    assert list(q.items()) == [("a", "2"), ("b", "x y"), ("e", "")]
    assert q.multi_items() == [("a", "1"), ("b", "x y"), ("a", "2"), ("e", "")]
    assert len(q) == 3 and list(q) == ["a", "b", "e"]
    with pytest.raises(KeyError):
        q["zz"]


def test_headers__case_insensitive_and_multi_valued(seen):
    seen["client"].get("/p/{n}", ["1"], headers=HEADERS)
    h = seen["req"].headers
    assert isinstance(h, Mapping)
    assert h["content-type"] == h["Content-Type"] == h["CONTENT-TYPE"] == "application/json"
    assert h.get("X-MULTI") == "one"
    assert h.getlist("X-Multi") == ["one", "two"]
    assert "ACCEPT" in h and "accept" in h and "missing" not in h and 3 not in h
    assert h.get("missing") is None and h.get("Missing", "d") == "d"
    assert h.items() == [("host", "example.com:8080"), ("content-type", "application/json"),
                         ("x-multi", "one"), ("accept", "*/*"), ("x-multi", "two")]
    assert h.keys()[0] == "host" and len(h) == 5
    with pytest.raises(KeyError):
        h["Missing"]


def test_headers__built_by_hand_lower_case_the_names():
    h = Headers({"X-A": "1"})
    assert h["x-a"] == "1" and h.raw == [("x-a", "1")]
    assert Headers([("A", "1"), ("a", "2")]).getlist("A") == ["1", "2"]
    assert QueryParams("x=1&x=2").getlist("x") == ["1", "2"]
    assert str(QueryParams([("a", "b c")])) == "a=b+c"


def test_client__absent_is_none(seen):
    seen["client"].get("/p/{n}", ["1"], client=None)
    assert seen["req"].client is None


def test_request__lazy_views_are_built_once():
    req = Request("GET", "/x", "a=1", (), [("host", "h")], ("1.2.3.4", 5), b"")
    for name in ("_headers", "_query_params", "_path_params", "_url"):
        assert getattr(req, name) is None
    assert req.headers is req.headers
    assert req.query_params is req.query_params
    assert req.url is req.url
    assert req._path_params is None
    assert req.path_params == {} and req.path_params is req.path_params


def test_request__is_not_built_for_a_handler_without_it(make_client, monkeypatch):
    import fasterapi._boot as boot

    def explode(*args, **kwargs):
        raise AssertionError("Request built")

    app = App()
    app.get("/a/{x}")(lambda x, q="": {"x": x})
    client = make_client(app)
    monkeypatch.setattr(boot, "Request", explode)
    assert client.get("/a/{x}", ["1"], query="q=2").json() == {"x": "1"}


def test_request__path_params_convert_by_annotation_else_decode(make_client):
    store = {}
    app = App()

    @app.get("/m/{a}/{b}/{c}")
    def handler(a: float, b: bool, request: Request):
        store["p"] = request.path_params
        return {}

    make_client(app).get("/m/{a}/{b}/{c}", ["2.5", "on", "x%2Fy"])
    assert store["p"] == {"a": 2.5, "b": True, "c": "x/y"}


# ------------------------------------------------------------------ body

def test_body__flask_names_for_def_handlers(make_client):
    app = App()

    @app.post("/b")
    def handler(request: Request):
        data = request.get_data()
        assert request.get_data() is data
        return {"len": len(data), "type": type(data).__name__, "json": request.get_json()}

    reply = make_client(app).post("/b", body=memoryview(b'{"k": [1, "\xc3\xa9"]}'))
    assert reply.json() == {"len": 16, "type": "bytes", "json": {"k": [1, "é"]}}


def test_body__starlette_names_for_async_handlers(make_client):
    app = App()

    @app.post("/b")
    async def handler(request: Request):
        raw = await request.body()
        return {"raw": raw.decode(), "json": await request.json()}

    assert make_client(app).post("/b", body=b"[1,2]").json() == {"raw": "[1,2]", "json": [1, 2]}


def test_body__empty(make_client):
    app = App()
    app.post("/b")(lambda request: {"n": len(request.get_data())})
    assert make_client(app).post("/b", body=b"").json() == {"n": 0}


def test_body__invalid_json_is_a_500_as_in_starlette(make_client, capsys):
    app = App()
    app.post("/b")(lambda request: request.get_json())
    reply = make_client(app).post("/b", body=b"{nope")
    assert reply.status == 500
    assert "JSONDecodeError" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def no_gc():
    """The body tests check references right after dispatch: with the
    collector off, a reference cycle that holds the view shows up."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _shared_body(data=b'{"a": 1}'):
    """A memoryview over a bytearray, as the C side passes shared memory."""
    backing = bytearray(data)
    return backing, memoryview(backing)


def _assert_view_free(backing, view):
    """Nothing but the caller refers to `view`, and no export of it is alive."""
    assert sys.getrefcount(view) == 3   # the caller's variable, the argument, getrefcount's
    view.release()                      # BufferError if exported further
    backing.extend(b"!")                # BufferError if a slice of it is alive


@pytest.mark.parametrize("reads", [False, True])
def test_body__memoryview_not_retained_even_when_the_request_is(make_client, reads):
    kept = []
    app = App()

    @app.post("/keep")
    def handler(request: Request):
        kept.append(request)
        if reads:
            request.get_data()
        return {}

    backing, view = _shared_body()
    assert make_client(app).post("/keep", body=view).status == 200
    _assert_view_free(backing, view)
    if reads:
        assert kept[0].get_data() == b'{"a": 1}'
        assert kept[0].get_json() == {"a": 1}
    else:
        with pytest.raises(RuntimeError, match="not read while the handler ran"):
            kept[0].get_data()


def test_body__memoryview_not_retained_after_an_error(make_client, capsys):
    app = App()

    @app.post("/boom")
    def handler(request: Request):
        view_in_a_local = request._body   # noqa: F841 (kept alive by the traceback)
        raise ValueError("boom")

    backing, view = _shared_body()
    assert make_client(app).post("/boom", body=view).status == 500
    capsys.readouterr()
    _assert_view_free(backing, view)


def test_body__memoryview_not_retained_by_an_async_handler_that_waits(make_client):
    kept = []
    app = App()

    @app.post("/wait")
    async def handler(request: Request):
        kept.append(request)
        await asyncio.sleep(0.001)
        return {"n": len(await request.body())}

    backing, view = _shared_body()
    assert make_client(app).post("/wait", body=view).json() == {"n": 8}
    _assert_view_free(backing, view)


async def _raise_after_waiting(request):
    await asyncio.sleep(0.001)
    raise ValueError("late")


async def _raise_after_reading(request):
    await request.body()
    raise ValueError("early")


async def _http_error_after_waiting(request):
    await asyncio.sleep(0)
    raise HTTPException(404)


async def _http_error_after_reading(request):
    await request.json()
    raise HTTPException(409)


async def _raise_without_await(request):
    raise ValueError("at once")


def _raise_in_def(request):
    raise ValueError("sync")


@pytest.mark.parametrize("handler, status", [
    (_raise_after_waiting, 500), (_raise_after_reading, 500), (_http_error_after_waiting, 404),
    (_http_error_after_reading, 409), (_raise_without_await, 500), (_raise_in_def, 500),
])
@pytest.mark.parametrize("eager", [True, False])
def test_body__no_reference_cycle_keeps_the_view_after_an_error(make_client, capsys, monkeypatch,
                                                                handler, status, eager):
    # A task's exception refers, through its traceback, to every frame that
    # was on the stack; a frame still holding the task would make a cycle.
    if not eager:
        monkeypatch.setattr(aio, "_EagerTask", None)
    app = App()
    app.post("/e")(handler)
    backing, view = _shared_body()
    assert make_client(app).post("/e", body=view).status == status
    capsys.readouterr()
    _assert_view_free(backing, view)
