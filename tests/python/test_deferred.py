"""Deferred requests, the loop hooks, --py-threads and streamed responses,
against tests/python/fake_c.py in place of the C side's API."""

import asyncio
import json
import os
import threading
import time

import pytest

from fasterapi import App, StreamingResponse, aio, _boot
from fasterapi.responses import StreamingResponse as StreamingResponse2

from fake_c import FakeC


@pytest.fixture
def fake(monkeypatch):
    c = FakeC()
    monkeypatch.setattr(aio, "_c", c)
    yield c
    # Nothing may be left running into the next test.
    c.run(lambda: not asyncio.all_tasks(aio.event_loop()) or not aio.loop_step(), timeout=2)


def _args(client, method, pattern, path=None, params=(), body=b"", flags=0):
    return (client.ids[(method, pattern)], method, path or pattern, "", tuple(params),
            [("host", "x")], ("127.0.0.1", 1), body, flags)


def test_exported_like_fastapi():
    assert StreamingResponse is StreamingResponse2


# ------------------------------------------------------------------ async handlers

def test_async__eager_handler_answers_inline(fake, make_client):
    from fasterapi import Request
    app = App()

    @app.post("/b")
    async def b(request: Request):
        return {"got": await request.json()}      # an await that does not suspend
    client = make_client(app)
    result, rid = fake.dispatch(client.dispatch, *_args(client, "POST", "/b", body=b"[1]"))
    assert rid is None and result[0] == 200 and json.loads(result[2]) == {"got": [1]}
    assert fake.wakes == 0


def test_async__waiting_handlers_run_concurrently(fake, make_client):
    app = App()
    order = []

    @app.get("/sleep/{n}")
    async def sleep(n: int):
        order.append(("start", n))
        await asyncio.sleep(0.2)
        order.append(("end", n))
        return {"n": n}
    client = make_client(app)
    t0 = time.monotonic()
    rids = []
    for n in range(5):
        result, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/sleep/{n}",
                                                          f"/sleep/{n}", [str(n)]))
        assert rid is not None
        rids.append(rid)
    assert fake.pending() == 5
    fake.run(lambda: fake.pending() == 0)
    assert time.monotonic() - t0 < 0.6
    assert [json.loads(fake.reqs[r].result[2]) for r in rids] == [{"n": n} for n in range(5)]
    assert [o[0] for o in order[:5]] == ["start"] * 5


def test_async__errors_after_waiting_are_answered_as_inline(fake, make_client, capsys):
    from fasterapi import HTTPException
    app = App()

    @app.get("/missing")
    async def missing():
        await asyncio.sleep(0.01)
        raise HTTPException(404, "nope")

    @app.get("/boom")
    async def boom():
        await asyncio.sleep(0.01)
        raise ValueError("boom")
    client = make_client(app)
    _, r1 = fake.dispatch(client.dispatch, *_args(client, "GET", "/missing"))
    _, r2 = fake.dispatch(client.dispatch, *_args(client, "GET", "/boom"))
    fake.run(lambda: fake.pending() == 0)
    assert fake.reqs[r1].result[0] == 404
    assert fake.reqs[r2].result[0] == 500
    assert "ValueError: boom" in capsys.readouterr().err


def test_async__disconnect_cancels_the_handler(fake, make_client):
    app = App()
    seen = []

    @app.get("/wait")
    async def wait():
        try:
            await asyncio.sleep(30)
        finally:
            seen.append("finally")
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/wait"))
    aio.loop_step()
    fake.disconnect(rid)
    fake.run(lambda: fake.reqs[rid].finished)
    assert fake.reqs[rid].aborted and seen == ["finally"]


def test_async__request_body_read_after_waiting(fake, make_client):
    from fasterapi import Request
    app = App()

    @app.post("/echo")
    async def echo(request: Request):
        await asyncio.sleep(0.01)
        return {"body": (await request.body()).decode()}
    client = make_client(app)
    backing = bytearray(b"hello")
    _, rid = fake.dispatch(client.dispatch, *_args(client, "POST", "/echo",
                                                   body=memoryview(backing)))
    fake.run(lambda: fake.pending() == 0)
    assert json.loads(fake.reqs[rid].result[2]) == {"body": "hello"}


def test_async__task_created_by_an_eager_handler_runs_on_wake(fake, make_client):
    app = App()
    ran = []

    async def later():
        ran.append(1)

    @app.get("/spawn")
    async def spawn():
        asyncio.get_running_loop().create_task(later())
        return {}
    client = make_client(app)
    result, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/spawn"))
    assert rid is None and fake.wakes == 1 and ran == []
    aio.loop_step()
    assert ran == [1]


def test_async__background_task_runs_on_the_loop(fake, make_client):
    from fasterapi import BackgroundTasks
    app = App()
    done = []

    async def slow(x):
        await asyncio.sleep(0.05)
        done.append(x)

    @app.get("/bg")
    def bg(tasks: BackgroundTasks):
        tasks.add_task(done.append, "sync")
        tasks.add_task(slow, "async")
        return {}
    client = make_client(app)
    result, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/bg"))
    assert rid is None and len(result) == 4
    result[3]()            # the C side calls after() once the response is out
    assert done == ["sync"] and fake.wakes >= 1
    fake.run(lambda: done == ["sync", "async"])


def test_async__shutdown_finishes_background_tasks_first(fake, make_client):
    from fasterapi import BackgroundTasks
    app = App()
    done = []

    async def slow():
        await asyncio.sleep(0.05)
        done.append("task")

    @app.on_event("shutdown")
    def bye():
        done.append("shutdown")

    @app.get("/bg")
    def bg(tasks: BackgroundTasks):
        tasks.add_task(slow)
        return {}
    client = make_client(app)
    result, _ = fake.dispatch(client.dispatch, *_args(client, "GET", "/bg"))
    result[3]()
    _boot.shutdown()
    assert done == ["task", "shutdown"]


# ------------------------------------------------------------------ loop hooks

def test_loop_step__says_whether_work_remains(fake):
    loop = aio.event_loop()
    assert aio.loop_step() is False
    handle = loop.call_later(0.05, lambda: None)
    assert aio.loop_step() is True
    handle.cancel()
    assert aio.loop_step() is False


def test_loop_wait__returns_when_the_doorbell_rings_or_on_timeout(fake):
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        t0 = time.monotonic()
        aio.loop_wait(fd, 0.05)
        assert 0.04 < time.monotonic() - t0 < 1
        threading.Timer(0.05, os.eventfd_write, (fd, 1)).start()
        t0 = time.monotonic()
        aio.loop_wait(fd, 5)
        assert time.monotonic() - t0 < 1
        with pytest.raises(BlockingIOError):
            os.eventfd_read(fd)          # loop_wait read it
        aio.loop_step()                  # readable again later: read while stepping
    finally:
        aio.event_loop().remove_reader(fd)
        aio._doorbell = None
        os.close(fd)


# ------------------------------------------------------------------ threads

def test_threads__plain_handlers_run_on_the_pool(fake, make_client, monkeypatch):
    monkeypatch.setattr(aio, "_threads", 3)
    app = App()
    names = []

    @app.get("/block")
    def block():
        names.append(threading.current_thread().name)
        time.sleep(0.2)
        return {"ok": True}
    client = make_client(app)
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        t0 = time.monotonic()
        rids = [fake.dispatch(client.dispatch, *_args(client, "GET", "/block"))[1]
                for _ in range(3)]
        while fake.pending():
            aio.loop_wait(fd, 0.02)    # the results come back through call_soon_threadsafe
        assert time.monotonic() - t0 < 0.5
    finally:
        aio.event_loop().remove_reader(fd)
        aio._doorbell = None
        os.close(fd)
    assert all(json.loads(fake.reqs[r].result[2]) == {"ok": True} for r in rids)
    assert all(n.startswith("fasterapi-handler") for n in names)


def test_threads__general_path_handlers_too(fake, make_client, monkeypatch):
    from fasterapi import Depends
    monkeypatch.setattr(aio, "_threads", 3)
    app = App()
    names = []

    def dep():
        return "d"

    @app.get("/block")
    def block(v=Depends(dep)):
        names.append(threading.current_thread().name)
        time.sleep(0.2)
        return {"v": v}
    client = make_client(app)
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        t0 = time.monotonic()
        rids = [fake.dispatch(client.dispatch, *_args(client, "GET", "/block"))[1]
                for _ in range(3)]
        while fake.pending():
            aio.loop_wait(fd, 0.02)
        assert time.monotonic() - t0 < 0.5
    finally:
        aio.event_loop().remove_reader(fd)
        aio._doorbell = None
        os.close(fd)
    assert all(json.loads(fake.reqs[r].result[2]) == {"v": "d"} for r in rids)
    assert all(n.startswith("fasterapi-handler") for n in names)


# ------------------------------------------------------------------ streams

def test_stream__sync_generator_in_a_sync_handler_is_sent_inline(fake, make_client):
    app = App()
    closed = []

    @app.get("/s")
    def s():
        def gen():
            try:
                yield b"a"
                yield "b"
                yield b""
                yield b"c"
            finally:
                closed.append(True)
        return StreamingResponse(gen(), media_type="text/plain",
                                 headers={"x-k": "v", "content-length": "3"})
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/s"))
    req = fake.reqs[rid]
    assert req.finished and req.ended and not req.aborted and closed == [True]
    assert req.status == 200 and req.body == b"abc"
    assert ("content-type", "text/plain; charset=utf-8") in req.headers
    assert ("x-k", "v") in req.headers and ("content-length", "3") in req.headers


def test_stream__sync_generator_stops_when_the_client_goes(fake, make_client):
    app = App()
    made = []

    @app.get("/s")
    def s():
        def gen():
            try:
                for i in range(100):
                    made.append(i)
                    if i == 3:
                        fake.reqs[fake.deferred_now].gone = True
                    yield b"x"
            finally:
                made.append("finally")
        return StreamingResponse(gen())
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/s"))
    assert fake.reqs[rid].aborted and made == [0, 1, 2, 3, "finally"]


def test_stream__async_generator_waits_for_room(fake, make_client):
    fake.room = 2
    app = App()
    made = []

    @app.get("/s")
    async def s():
        async def gen():
            for i in range(6):
                made.append(i)
                yield f"{i};"
        return StreamingResponse(gen())
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/s"))
    req = fake.reqs[rid]
    for _ in range(20):
        aio.loop_step()
    assert len(req.parts) == 2 and len(made) == 3     # paused: the third part waits for room
    fake.read(rid)
    fake.run(lambda: len(req.parts) == 4)
    fake.read(rid)
    fake.read(rid)
    while not req.finished:
        fake.read(rid)
        aio.loop_step()
    assert req.ended and req.body == b"0;1;2;3;4;5;"


def test_stream__async_generator_cancelled_when_the_client_goes(fake, make_client):
    app = App()
    seen = []

    @app.get("/s")
    def s():
        async def gen():
            try:
                while True:
                    yield b"tick"
                    await asyncio.sleep(0.01)
            finally:
                seen.append("finally")
        return StreamingResponse(gen())
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/s"))
    fake.run(lambda: len(fake.reqs[rid].parts) >= 3)
    fake.disconnect(rid)
    fake.run(lambda: fake.reqs[rid].finished)
    assert fake.reqs[rid].aborted and seen == ["finally"]


def test_stream__generator_that_raises_cuts_the_response(fake, make_client, capsys):
    app = App()

    @app.get("/s")
    async def s():
        await asyncio.sleep(0)

        async def gen():
            yield b"part"
            raise RuntimeError("broken stream")
        return StreamingResponse(gen())
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/s"))
    fake.run(lambda: rid is not None and fake.reqs[rid].finished)
    assert fake.reqs[rid].aborted and fake.reqs[rid].body == b"part"
    assert "RuntimeError: broken stream" in capsys.readouterr().err


def test_stream__outside_a_serve_loop_is_collected(make_client):
    app = App()

    @app.get("/s")
    def s():
        return StreamingResponse(iter([b"a", "b"]))
    assert make_client(app).get("/s").body == b"ab"


# ------------------------------------------------------------------ ASGI and WSGI

def _serve(make_client, kind, target):
    from fasterapi import asgi, wsgi
    app = App()
    (asgi if kind == "asgi" else wsgi).mount(app, target)
    return make_client(app)


def test_asgi__more_body_streams_and_disconnect_is_delivered(fake, make_client):
    got = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        got.append(scope["http_version"])
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": True})
        got.append(await receive())
    client = _serve(make_client, "asgi", app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/{path:path}", "/x",
                                                   ["x"], flags=4))
    req = fake.reqs[rid]
    fake.run(lambda: len(req.parts) == 2)
    assert req.status == 200 and req.body == b"onetwo" and not req.finished
    fake.disconnect(rid)
    fake.run(lambda: len(got) == 2)
    fake.run(lambda: req.finished)
    assert got == ["1.0", {"type": "http.disconnect"}] and req.aborted


def test_asgi__whole_body_is_the_fast_path(fake, make_client):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
    client = _serve(make_client, "asgi", app)
    result, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/", "/"))
    assert rid is None and result == (201, [], b"done")


def test_wsgi__an_iterable_of_several_items_streams(fake, make_client):
    closed = []

    class Body:
        def __iter__(self):
            yield b"a"
            yield b"b"
            yield b"c"

        def close(self):
            closed.append(True)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/list":
            return [b"x", b"y"]
        assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
        return Body()
    client = _serve(make_client, "wsgi", app)
    result, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/{path:path}",
                                                        "/list", ["list"]))
    assert rid is None and result[2] == b"xy"
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/{path:path}", "/gen",
                                                   ["gen"], flags=4))
    req = fake.reqs[rid]
    assert req.ended and req.body == b"abc" and closed == [True]


# ------------------------------------------------------------------ the general path

def test_general__middleware_and_yield_dependency_around_a_waiting_handler(fake, make_client):
    from fasterapi import Depends
    app = App()
    events = []

    @app.middleware("http")
    async def mw(request, call_next):
        response = await call_next(request)
        response.headers["x-mw"] = "1"
        return response

    async def dep():
        events.append("enter")
        yield "d"
        events.append("exit")

    @app.get("/g")
    async def g(v=Depends(dep)):
        await asyncio.sleep(0.01)
        return {"v": v}
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/g"))
    assert rid is not None and events == ["enter"]
    fake.run(lambda: events == ["enter", "exit"])
    status, headers, body = fake.reqs[rid].result[:3]
    assert (status, json.loads(body)) == (200, {"v": "d"}) and ("x-mw", "1") in headers


def test_request__is_disconnected_once_the_client_went_away(fake, make_client):
    from fasterapi import Request
    app = App()
    seen = []

    @app.get("/poll")
    async def poll(request: Request):
        seen.append(await request.is_disconnected())
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(await request.is_disconnected())
            raise
    client = make_client(app)
    _, rid = fake.dispatch(client.dispatch, *_args(client, "GET", "/poll"))
    fake.disconnect(rid)
    fake.run(lambda: fake.reqs[rid].finished)
    assert seen == [False, True] and fake.reqs[rid].aborted


def test_wsgi__py_threads_run_the_app_on_the_pool_and_stream_from_there(fake, make_client,
                                                                        monkeypatch):
    monkeypatch.setattr(aio, "_threads", 3)
    calls, closed = [], []

    def app(environ, start_response):
        calls.append((threading.current_thread().name, environ["wsgi.multithread"]))
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/slow":
            time.sleep(0.2)
            return [b"slow"]

        def parts():
            try:
                yield b"a"
                yield b"b"
                yield b"c"
            finally:
                closed.append(True)
        return parts()
    client = _serve(make_client, "wsgi", app)
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        t0 = time.monotonic()
        slow = [fake.dispatch(client.dispatch, *_args(client, "GET", "/{path:path}", "/slow",
                                                      ["slow"]))[1] for _ in range(3)]
        streamed = fake.dispatch(client.dispatch, *_args(client, "GET", "/{path:path}", "/s",
                                                         ["s"]))[1]
        while fake.pending():
            aio.loop_wait(fd, 0.02)
        assert time.monotonic() - t0 < 0.5
    finally:
        aio.event_loop().remove_reader(fd)
        aio._doorbell = None
        os.close(fd)
    assert all(fake.reqs[r].result[2] == b"slow" for r in slow)
    req = fake.reqs[streamed]
    assert req.ended and not req.aborted and req.body == b"abc" and closed == [True]
    assert len(calls) == 4 and all(name.startswith("fasterapi-handler") and multithread
                                   for name, multithread in calls)
