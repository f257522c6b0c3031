"""async def handlers: finished in place when they do not wait, run on the
worker's event loop when they do, with asyncio's usual guarantees."""

import asyncio
import contextvars

import pytest

from fasterapi import App, HTTPException, JSONResponse, Request, _boot

request_id = contextvars.ContextVar("request_id", default=None)


def test_async__no_await_is_finished_without_running_the_loop(make_client, monkeypatch):
    app = App()

    @app.get("/a/{n}")
    async def handler(n: int):
        return {"n": n, "loop": asyncio.get_running_loop() is not None}

    client = make_client(app)
    loop = _boot._event_loop()
    monkeypatch.setattr(loop, "run_until_complete", None)   # would raise if called
    assert client.get("/a/{n}", ["5"]).json() == {"n": 5, "loop": True}


def test_async__awaiting_something_that_completes_does_not_run_the_loop(make_client,
                                                                         monkeypatch):
    app = App()

    @app.post("/j")
    async def handler(request: Request):
        return {"got": await request.json(), "task": asyncio.current_task() is not None}

    client = make_client(app)
    monkeypatch.setattr(_boot._event_loop(), "run_until_complete", None)
    assert client.post("/j", body=b'{"a":1}').json() == {"got": {"a": 1}, "task": True}


def test_async__really_waiting_runs_the_loop(make_client):
    app = App()

    @app.get("/sleep")
    async def handler(ms: float = 1.0):
        await asyncio.sleep(ms / 1000)
        await asyncio.sleep(0)
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.001, future.set_result, "late")
        return {"v": await future}

    client = make_client(app)
    for _ in range(3):
        assert client.get("/sleep", query="ms=2").json() == {"v": "late"}


def test_async__timeout_and_task_group_work_from_the_first_line(make_client):
    app = App()

    async def child(x):
        await asyncio.sleep(0.001)
        return x * 2

    @app.get("/t")
    async def handler():
        async with asyncio.timeout(1):
            async with asyncio.TaskGroup() as group:
                a = group.create_task(child(1))
                b = group.create_task(child(2))
        return [a.result(), b.result()]

    @app.get("/expire")
    async def expire():
        try:
            async with asyncio.timeout(0.001):
                await asyncio.sleep(1)
        except TimeoutError:
            return "timed out"

    client = make_client(app)
    assert client.get("/t").json() == [2, 4]
    assert client.get("/expire").text == "timed out"


def test_async__http_exception_before_and_after_waiting(make_client):
    app = App()

    @app.get("/now")
    async def now():
        raise HTTPException(404, "gone")

    @app.get("/later")
    async def later():
        await asyncio.sleep(0.001)
        raise HTTPException(409, "conflict")

    client = make_client(app)
    assert client.get("/now") == (404, [("content-type", "application/json")],
                                  b'{"detail":"gone"}')
    assert client.get("/later").json() == {"detail": "conflict"}


def test_async__error_after_waiting_is_a_500_and_the_next_request_works(make_client, capsys):
    app = App()

    @app.get("/bad")
    async def bad():
        await asyncio.sleep(0)
        raise ValueError("after the wait")

    @app.get("/ok")
    async def ok():
        await asyncio.sleep(0.001)
        return JSONResponse({"ok": True}, status_code=201)

    client = make_client(app)
    assert client.get("/bad").status == 500
    assert "ValueError: after the wait" in capsys.readouterr().err
    assert client.get("/ok") == (201, [("content-type", "application/json")], b'{"ok":true}')


def test_async__contextvars_do_not_leak_between_requests(make_client):
    app = App()

    @app.get("/sync/{v}")
    def sync_handler(v: str):
        before = request_id.get()
        request_id.set(v)
        return {"before": before}

    @app.get("/async/{v}")
    async def async_handler(v: str):
        before = request_id.get()
        request_id.set(v)
        await asyncio.sleep(0)
        return {"before": before, "now": request_id.get()}

    @app.get("/quick/{v}")
    async def quick_handler(v: str):
        before = request_id.get()
        request_id.set(v)
        return {"before": before}

    client = make_client(app)
    for path in ("/sync/{v}", "/async/{v}", "/quick/{v}"):
        client.get(path, ["first"])
        assert client.get(path, ["second"]).json()["before"] is None
    assert client.get("/async/{v}", ["x"]).json()["now"] == "x"
    assert request_id.get() is None


def test_async__sync_handler_returning_a_coroutine_is_awaited(make_client):
    import functools

    async def inner(n: int):
        await asyncio.sleep(0)
        return {"n": n}

    def decorated(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper

    app = App()
    app.get("/w/{n}")(decorated(inner))
    assert make_client(app).get("/w/{n}", ["3"]).json() == {"n": 3}


def test_async__no_running_loop_is_left_behind(make_client):
    app = App()

    @app.get("/a")
    async def a():
        await asyncio.sleep(0)
        return "a"

    @app.get("/b")
    async def b():
        return "b"

    client = make_client(app)
    assert client.get("/a").text == "a" and client.get("/b").text == "b"
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


@pytest.mark.parametrize("source, suspends", [
    ("async def h():\n    return 1\n", False),
    ("async def h(x):\n    return [y for y in x]\n", False),
    ("async def h(r):\n    return await r.json()\n", True),
    ("async def h(r):\n    async with r:\n        pass\n", True),
    ("async def h(r):\n    async for x in r:\n        pass\n", True),
    ("async def h(r):\n    return [x async for x in r]\n", True),
    ("def h():\n    return 1\n", True),
])
def test_async__suspension_is_read_from_the_bytecode(source, suspends):
    from fasterapi.routing import _may_suspend
    namespace = {}
    exec(source, namespace)
    assert _may_suspend(namespace["h"]) is suspends
