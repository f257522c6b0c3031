"""fasterapi.asgi and the ASGI side of fasterapi._boot: the http scope,
receive/send (buffered), errors, the lifespan protocol, mount; driven as
fasterapi-pyworker drives them: describe, load, dispatch, shutdown."""

import asyncio
import sys
import types

import pytest

from fasterapi import App, _boot, asgi, wsgi


@pytest.fixture
def serve(monkeypatch):
    def make(app, interface="auto", root_path=""):
        monkeypatch.setenv("FASTERAPI_INTERFACE", interface)
        monkeypatch.setenv("FASTERAPI_ROOT_PATH", root_path)
        name = f"_fa_asgi_test_{id(app)}"
        module = types.ModuleType(name)
        module.app = app
        monkeypatch.setitem(sys.modules, name, module)
        return _boot.describe(f"{name}:app"), _boot.load(f"{name}:app")
    yield make
    _boot.shutdown()


def call(dispatch, method="GET", path="/", query="", headers=(), body=b"",
         client=("10.0.0.7", 41234), route_id=0):
    return dispatch(route_id, method, path, query, (), list(headers), client, body)


seen = {}


async def echo(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("no lifespan")
    seen["scope"] = scope
    seen["messages"] = [await receive()]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_describe__catch_all_routes(serve):
    table, _ = serve(echo)
    assert table == wsgi.catchall_routes(0)


def test_scope__every_required_key(serve):
    _, dispatch = serve(echo)
    status, headers, body = call(dispatch, "POST", "/caf%C3%A9/a%2Fb", "x=1&y=%20",
                                 [("host", "example.com:8080"), ("x-dup", "1"), ("x-dup", "2"),
                                  ("content-type", "text/plain")], b"hello")
    assert (status, headers, body) == (200, [("content-type", "text/plain")], b"ok")
    s = seen["scope"]
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "POST"
    assert s["scheme"] == "http"
    assert s["path"] == "/café/a/b"
    assert s["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert s["query_string"] == b"x=1&y=%20"
    assert s["root_path"] == ""
    assert s["headers"] == [(b"host", b"example.com:8080"), (b"x-dup", b"1"), (b"x-dup", b"2"),
                            (b"content-type", b"text/plain")]
    assert s["client"] == ("10.0.0.7", 41234)
    assert s["server"] == ("example.com", 8080)
    assert s["state"] == {}
    assert seen["messages"] == [{"type": "http.request", "body": b"hello", "more_body": False}]
    assert type(seen["messages"][0]["body"]) is bytes


@pytest.mark.parametrize("path, expected", [("/api/items", "/api/items"),
                                             ("/items", "/api/items")])
def test_scope__root_path(serve, path, expected):
    _, dispatch = serve(echo, root_path="/api")
    call(dispatch, path=path)
    assert seen["scope"]["root_path"] == "/api"
    assert seen["scope"]["path"] == expected


def test_send__more_body_is_concatenated(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 201, "headers": []})
        for part in (b"a", b"b", b""):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"c", "more_body": False})
    _, dispatch = serve(app, "asgi")
    assert call(dispatch) == (201, [], b"abc")


def test_receive__disconnect_after_the_response(serve):
    events = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return           # returning at once: no lifespan support
        events.append(await receive())
        waiter = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        assert not waiter.done()       # no disconnect while the response is going
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x"})
        events.append(await waiter)
        events.append(await receive())
    _, dispatch = serve(app, "asgi")
    assert call(dispatch, "POST", body=memoryview(b"data")) == (200, [], b"x")
    assert events == [{"type": "http.request", "body": b"data", "more_body": False},
                      {"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_errors__raise_is_500_with_traceback_and_worker_goes_on(serve, capsys):
    async def app(scope, receive, send):
        if scope["path"] == "/bad":
            raise ValueError("asgi app failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})
    _, dispatch = serve(app, "asgi")
    assert call(dispatch, path="/bad")[0] == 500
    assert "ValueError: asgi app failed" in capsys.readouterr().err
    assert call(dispatch)[2] == b"fine"


def test_errors__no_response_start_is_500(serve, capsys):
    async def app(scope, receive, send):
        pass
    _, dispatch = serve(app, "asgi")
    assert call(dispatch)[0] == 500
    assert "without sending http.response.start" in capsys.readouterr().err


def test_errors__body_before_start_is_500(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.body", "body": b"x"})
    _, dispatch = serve(app, "asgi")
    assert call(dispatch)[0] == 500


def test_detect__callable_instance(serve):
    class App3:
        async def __call__(self, scope, receive, send):
            await echo(scope, receive, send)
    table, dispatch = serve(App3())
    assert call(dispatch)[2] == b"ok"


# ------------------------------------------------------------------ lifespan

class LifespanApp:
    def __init__(self, fail_startup=None, fail_shutdown=None):
        self.events = []
        self.fail_startup = fail_startup
        self.fail_shutdown = fail_shutdown

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if self.fail_startup:
                        await send({"type": "lifespan.startup.failed",
                                    "message": self.fail_startup})
                        return
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    if self.fail_shutdown:
                        await send({"type": "lifespan.shutdown.failed",
                                    "message": self.fail_shutdown})
                        return
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.events.append(("http", dict(scope["state"])))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_lifespan__startup_state_requests_shutdown(serve):
    app = LifespanApp()
    _, dispatch = serve(app)
    assert app.events == ["lifespan.startup"]
    call(dispatch)
    assert app.events[1] == ("http", {"db": "connected"})
    _boot.shutdown()
    assert app.events[2] == "lifespan.shutdown"


def test_lifespan__startup_failure_raises_with_its_message(serve):
    with pytest.raises(RuntimeError, match="ASGI lifespan startup failed: no database"):
        serve(LifespanApp(fail_startup="no database"))


def test_lifespan__shutdown_failure_is_printed(serve, capsys):
    serve(LifespanApp(fail_shutdown="could not flush"))
    _boot.shutdown()
    assert "could not flush" in capsys.readouterr().err


def test_lifespan__unsupported_app_is_served_without_it(serve):
    _, dispatch = serve(echo)        # raises on the lifespan scope
    assert call(dispatch)[2] == b"ok"
    _boot.shutdown()


def test_lifespan__raise_after_receiving_startup_is_unsupported_and_noted(serve, capsys):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            raise OSError("port taken")
        await echo(scope, receive, send)
    _, dispatch = serve(app)
    assert "OSError('port taken')" in capsys.readouterr().err
    assert call(dispatch)[2] == b"ok"


def test_lifespan__app_ignoring_the_scope_type_is_unsupported(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"any"})
    _, dispatch = serve(app)
    assert call(dispatch)[2] == b"any"


# ------------------------------------------------------------------ mount

def test_mount__app_routes_first_then_the_asgi_app(serve):
    app = App(openapi_url=None)
    app.static("/health", b"ok")
    app.get("/py")(lambda: {"native": True})
    lifespan_app = LifespanApp()
    asgi.mount(app, lifespan_app)
    table, dispatch = serve(app)
    assert [r[1:4] for r in table[:2]] == [("GET", "/health", "static"),
                                            ("GET", "/py", "python")]
    assert table[2:] == wsgi.catchall_routes(2)
    assert call(dispatch, path="/py", route_id=1)[2] in ({"native": True}, b'{"native":true}')
    assert call(dispatch, path="/x", route_id=3)[0] == 200
    assert lifespan_app.events == ["lifespan.startup", ("http", {"db": "connected"})]


def test_fastapi_app_in_process(serve):
    try:
        from fastapi import FastAPI
    except ImportError:
        import os
        if os.environ.get("FASTERAPI_ALLOW_SKIP"):
            pytest.skip("fastapi missing (FASTERAPI_ALLOW_SKIP set)")
        pytest.fail("fastapi is not installed: apt-get install python3-fastapi")
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int):     # a sync endpoint: run in anyio's thread pool
        return {"item_id": item_id}
    _, dispatch = serve(app)
    status, headers, body = call(dispatch, path="/items/5")
    assert (status, body) == (200, b'{"item_id":5}')
    assert call(dispatch, path="/items/x")[0] == 422


def test_errors__a_waiting_receive_gets_disconnect_when_the_app_fails(serve):
    got = []

    async def listener(receive):
        got.append(await receive())

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        asyncio.ensure_future(listener(receive))
        await asyncio.sleep(0)
        raise RuntimeError("fails before responding")
    _, dispatch = serve(app)
    assert call(dispatch)[0] == 500
    asyncio.get_event_loop().run_until_complete(asyncio.sleep(0.01))
    assert got == [{"type": "http.disconnect"}]


def test_fastapi_streaming_response_is_buffered(serve):
    try:
        from fastapi import FastAPI
        from fastapi.responses import StreamingResponse
    except ImportError:
        import os
        if os.environ.get("FASTERAPI_ALLOW_SKIP"):
            pytest.skip("fastapi missing (FASTERAPI_ALLOW_SKIP set)")
        pytest.fail("fastapi is not installed: apt-get install python3-fastapi")
    app = FastAPI()

    @app.get("/stream")
    async def stream():
        async def gen():
            for i in range(3):
                await asyncio.sleep(0)
                yield f"part{i};"
        return StreamingResponse(gen(), media_type="text/plain")
    _, dispatch = serve(app)
    status, headers, body = call(dispatch, path="/stream")
    assert (status, body) == (200, b"part0;part1;part2;")
