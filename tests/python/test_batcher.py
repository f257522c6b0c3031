"""Batched routes (batch=BatchPolicy(...)): decoration-time checks, one
request through dispatch, and many requests in flight together on the
worker's event loop (driven here as the deferred serve loop drives it:
each request bound, its coroutine started, the loop run)."""

import asyncio
import dataclasses
import json
import time
from typing import Annotated, Optional

import pytest

from fasterapi import (APIRouter, App, BatchPolicy, Body, Depends, Header, HTTPException,
                       JSONResponse, Request, _boot)
from fasterapi.exceptions import RequestValidationError
from fasterapi.responses import render_http_exception, render_validation_error


@dataclasses.dataclass
class Item:
    x: float
    name: str = "a"


@dataclasses.dataclass
class Out:
    y: float


# ------------------------------------------------------------------ helpers

def run_together(app, method, path, bodies=None, queries=None, params=(), headers=()):
    """Starts one request per body (or query) on the worker's loop, all
    before the loop runs, and runs the loop until every one is answered.
    Returns [(status, headers, body)] in order: what dispatch would have
    answered for each, deferred."""
    routes = app._freeze()
    route = next(r for r in routes if r.method == method and r.path == path)
    n = len(bodies) if bodies is not None else len(queries)
    bodies = bodies if bodies is not None else [b""] * n
    queries = queries if queries is not None else [""] * n
    loop = _boot._event_loop()

    async def one(body, query):
        req_headers = [("content-type", "application/json"), *headers]
        request = Request(method, path, query, tuple(params), req_headers, ("127.0.0.1", 1),
                          body, route)
        try:
            args = route.bind(tuple(params), query, request)
        except RequestValidationError as exc:
            return render_validation_error(exc)
        try:
            result = await route.call(*args)
        except HTTPException as exc:
            return render_http_exception(exc)
        return route.render(result)

    async def main():
        return await asyncio.gather(*(one(b, q) for b, q in zip(bodies, queries)))
    triples = loop.run_until_complete(main())
    return [(s, h, b if isinstance(b, bytes) else json.dumps(b).encode()) for s, h, b in triples]


def body(x, name="a"):
    return json.dumps({"x": x, "name": name}).encode()


def batcher_of(app, path):
    route = next(r for r in app.routes if r.path == path)
    return route.endpoint.__batcher__


# ------------------------------------------------------------------ decoration

@pytest.mark.parametrize("kwargs, needle", [
    ({"max_size": 0}, "max_size must be an int >= 1"),
    ({"max_size": -3}, "max_size must be an int >= 1"),
    ({"max_size": 2.0}, "max_size must be an int >= 1"),
    ({"max_size": True}, "max_size must be an int >= 1"),
    ({"max_wait_ms": -1}, "max_wait_ms must be a finite number >= 0"),
    ({"max_wait_ms": float("nan")}, "max_wait_ms must be a finite number >= 0"),
    ({"max_wait_ms": float("inf")}, "max_wait_ms must be a finite number >= 0"),
    ({"max_wait_ms": "2"}, "max_wait_ms must be a finite number >= 0"),
])
def test_policy__bad_arguments_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        BatchPolicy(**kwargs)


def test_policy__defaults_and_zero_wait():
    assert (BatchPolicy().max_size, BatchPolicy().max_wait_ms) == (32, 2.0)
    assert BatchPolicy(max_size=1, max_wait_ms=0).max_wait_ms == 0
    assert repr(BatchPolicy(4, 1.5)) == "BatchPolicy(max_size=4, max_wait_ms=1.5)"


def test_decorate__batch_must_be_a_policy():
    app = App()
    with pytest.raises(TypeError, match=r"batch= takes a BatchPolicy\(max_size=..., "
                                        r"max_wait_ms=...\), got dict"):
        app.post("/p", batch={"max_size": 2})


@pytest.mark.parametrize("handler_src, needle", [
    ("def h(item: Item): ...", r"parameter 'item' must be annotated list\[T\].*got "
                               r"test_batcher.Item: write it as `def h\(items: list\[Item\]\) -> "
                               r"list\[Result\]`"),
    ("def h(items): ...", r"must be annotated list\[T\].*got no annotation"),
    ("def h(a: list[Item], b: int): ...", r"takes exactly one parameter.*it has 2"),
    ("def h(): ...", r"takes exactly one parameter.*it has 0"),
    ("def h(*items: Item): ...", r"takes exactly one parameter"),
    ("def h(items: list[Item] = []): ...", r"cannot have a default"),
    ("def h(items: list[Item] = Depends(lambda: [])): ...", r"cannot be a Depends"),
])
def test_decorate__a_handler_without_the_list_parameter_is_refused(handler_src, needle):
    app = App()
    ns = {"Item": Item, "Depends": Depends}
    exec(handler_src, ns)
    with pytest.raises(TypeError, match=needle) as info:
        app.post("/p", batch=BatchPolicy())(ns["h"])
    assert "POST /p" in str(info.value)
    assert app.routes == []


def test_decorate__router_route_is_checked_at_decoration():
    router = APIRouter(prefix="/r")
    with pytest.raises(TypeError, match=r"POST /r/p .*must be annotated list\[T\]"):
        @router.post("/p", batch=BatchPolicy())
        def h(item: Item):
            return item


def test_decorate__request_items_are_refused():
    app = App()
    with pytest.raises(TypeError, match="not request"):
        @app.post("/p", batch=BatchPolicy())
        def h(requests: list[Request]):
            return []


def test_decorate__handler_is_returned_unchanged():
    app = App()

    def h(items: list[Item]) -> list[Out]:
        return [Out(i.x) for i in items]
    assert app.post("/p", batch=BatchPolicy())(h) is h
    assert app.routes[0].name.endswith("h")
    assert h([Item(1.0)]) == [Out(1.0)]


# ------------------------------------------------------------------ one request, dispatch

def test_dispatch__single_request_is_a_batch_of_one_after_max_wait(make_client):
    app = App()
    seen = []

    @app.post("/double", batch=BatchPolicy(max_size=8, max_wait_ms=30))
    def double(items: list[Item]) -> list[Out]:
        seen.append(items)
        return [Out(i.x * 2) for i in items]

    client = make_client(app)
    t0 = time.monotonic()
    reply = client.post("/double", body=body(1.5))
    elapsed = time.monotonic() - t0
    assert reply.status == 200 and reply.json() == {"y": 3.0}
    assert seen == [[Item(1.5)]]
    assert 0.025 <= elapsed < 1.0
    assert batcher_of(app, "/double").sizes == [1]


def test_dispatch__max_size_one_runs_without_waiting(make_client):
    app = App()

    @app.post("/now", batch=BatchPolicy(max_size=1, max_wait_ms=5000))
    def now(items: list[Item]):
        return [{"n": len(items)}]

    client = make_client(app)
    t0 = time.monotonic()
    assert client.post("/now", body=body(1)).json() == {"n": 1}
    assert time.monotonic() - t0 < 1.0


def test_dispatch__bad_body_is_422_for_that_request_and_never_batched(make_client):
    app = App()
    calls = []

    @app.post("/p", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    def p(items: list[Item]):
        calls.append(items)
        return [i.x for i in items]

    client = make_client(app)
    reply = client.post("/p", body=b'{"x": "not a number"}')
    assert reply.status == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "x"]
    assert calls == []


def test_dispatch__async_handler(make_client):
    app = App()

    @app.post("/a", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    async def a(items: list[Item]):
        await asyncio.sleep(0.001)
        return [{"name": i.name} for i in items]

    client = make_client(app)
    assert client.post("/a", body=body(1, "zed")).json() == {"name": "zed"}


def test_dispatch__query_items_and_status_code(make_client):
    app = App()

    @app.get("/sq", batch=BatchPolicy(max_size=4, max_wait_ms=1), status_code=201)
    def sq(n: list[int]):
        return [k * k for k in n]

    client = make_client(app)
    reply = client.get("/sq", query="n=7")
    assert reply.status == 201 and reply.json() == 49
    assert client.get("/sq", query="n=x").status == 422
    assert client.get("/sq").json()["detail"][0]["loc"] == ["query", "n"]


def test_dispatch__path_and_header_items(make_client):
    app = App()

    @app.get("/u/{user_id}", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    def users(user_id: list[int]):
        return [{"id": u} for u in user_id]

    @app.get("/h", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    def tokens(x_token: Annotated[list[str], Header()]):
        return [t.upper() for t in x_token]

    client = make_client(app)
    assert client.get("/u/{user_id}", ["12"]).json() == {"id": 12}
    assert client.get("/h", headers=[("X-Token", "abc")]).text == "ABC"


def test_dispatch__embedded_body(make_client):
    app = App()

    @app.post("/e", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    def e(item: Annotated[list[Item], Body(embed=True)]):
        return [i.x for i in item]

    client = make_client(app)
    assert client.post("/e", body=b'{"item": {"x": 4}}').json() == 4.0


def test_dispatch__return_annotation_list_is_the_per_request_model(make_client):
    app = App()

    @app.post("/m", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    def m(items: list[Item]) -> list[Out]:
        return [{"y": i.x, "extra": "dropped"} for i in items]

    @app.post("/bad", batch=BatchPolicy(max_size=4, max_wait_ms=1), response_model=Out)
    def bad(items: list[Item]):
        return [{"nope": 1} for _ in items]

    client = make_client(app)
    assert client.post("/m", body=body(2)).json() == {"y": 2.0}
    assert client.post("/bad", body=body(2)).status == 500


def test_dispatch__dependencies_run_per_request(make_client):
    app = App()
    seen = []

    def auth(x_user: Optional[str] = Header(None)):
        if x_user is None:
            raise HTTPException(401, "who?")
        seen.append(x_user)

    @app.post("/d", batch=BatchPolicy(max_size=4, max_wait_ms=1), dependencies=[Depends(auth)])
    def d(items: list[Item]):
        return [i.x for i in items]

    client = make_client(app)
    assert client.post("/d", body=body(3)).status == 401
    assert client.post("/d", body=body(3), headers=[("X-User", "ann")]).json() == 3.0
    assert seen == ["ann"]


def test_dispatch__router_included_twice_has_one_batcher_each(make_client):
    router = APIRouter()

    @router.post("/p", batch=BatchPolicy(max_size=4, max_wait_ms=1))
    def p(items: list[Item]):
        return [len(items)] * len(items)

    app = App()
    app.include_router(router, prefix="/one")
    app.include_router(router, prefix="/two")
    client = make_client(app)
    assert client.post("/one/p", body=body(1)).json() == 1
    assert client.post("/two/p", body=body(1)).json() == 1
    assert batcher_of(app, "/one/p") is not batcher_of(app, "/two/p")


# ------------------------------------------------------------------ many requests in flight

def test_together__requests_share_handler_calls_of_at_most_max_size():
    app = App()
    sizes = []

    @app.post("/double", batch=BatchPolicy(max_size=32, max_wait_ms=5))
    def double(items: list[Item]) -> list[Out]:
        sizes.append(len(items))
        return [Out(i.x * 2) for i in items]

    replies = run_together(app, "POST", "/double", [body(k) for k in range(80)])
    assert [json.loads(b) for _, _, b in replies] == [{"y": 2.0 * k} for k in range(80)]
    assert all(s == 200 for s, _, _ in replies)
    assert sizes == [32, 32, 16]
    assert batcher_of(app, "/double").calls == 3


def test_together__a_full_batch_does_not_wait_for_max_wait():
    app = App()

    @app.post("/p", batch=BatchPolicy(max_size=4, max_wait_ms=10_000))
    def p(items: list[Item]):
        return [i.x for i in items]

    t0 = time.monotonic()
    replies = run_together(app, "POST", "/p", [body(k) for k in range(8)])
    assert time.monotonic() - t0 < 2.0
    assert [json.loads(b) for _, _, b in replies] == [float(k) for k in range(8)]


def test_together__zero_wait_takes_what_arrived_in_the_same_loop_turn():
    app = App()
    sizes = []

    @app.post("/p", batch=BatchPolicy(max_size=100, max_wait_ms=0))
    def p(items: list[Item]):
        sizes.append(len(items))
        return [i.x for i in items]

    run_together(app, "POST", "/p", [body(k) for k in range(5)])
    assert sizes == [5]


def test_together__bad_request_gets_422_the_others_are_batched():
    app = App()
    sizes = []

    @app.post("/p", batch=BatchPolicy(max_size=8, max_wait_ms=1))
    def p(items: list[Item]):
        sizes.append(len(items))
        return [i.x for i in items]

    replies = run_together(app, "POST", "/p", [body(1), b'{"x": []}', body(3)])
    assert [s for s, _, _ in replies] == [200, 422, 200]
    assert sizes == [2]


def test_together__wrong_length_fails_every_request_logged_once(capsys):
    app = App()

    @app.post("/short", batch=BatchPolicy(max_size=8, max_wait_ms=1))
    def short(items: list[Item]):
        return [i.x for i in items][:-1]

    replies = run_together(app, "POST", "/short", [body(k) for k in range(5)])
    assert [(s, b) for s, _, b in replies] == [(500, b"Internal Server Error")] * 5
    err = capsys.readouterr().err
    assert err.count("fasterapi: ") == 1
    assert "POST /short (test_batcher." in err
    assert "returned 4 results for a batch of 5 requests" in err
    assert "answering 500 to all 5" in err


def test_together__a_result_that_is_not_a_list_fails_the_batch(capsys):
    app = App()

    @app.post("/gen", batch=BatchPolicy(max_size=8, max_wait_ms=1))
    def gen(items: list[Item]):
        return (i.x for i in items)

    replies = run_together(app, "POST", "/gen", [body(k) for k in range(3)])
    assert [s for s, _, _ in replies] == [500] * 3
    assert "returned a generator for a batch of 3 requests" in capsys.readouterr().err


def test_together__handler_exception_fails_the_batch_logged_once(capsys):
    app = App()

    @app.post("/boom", batch=BatchPolicy(max_size=8, max_wait_ms=1))
    async def boom(items: list[Item]):
        raise ZeroDivisionError("model fell over")

    replies = run_together(app, "POST", "/boom", [body(k) for k in range(4)])
    assert [s for s, _, _ in replies] == [500] * 4
    err = capsys.readouterr().err
    assert err.count("fasterapi: ") == 1
    assert "the batch handler raised for a batch of 4 requests, answering 500 to all 4" in err
    assert err.count("ZeroDivisionError: model fell over") == 1


def test_together__http_exception_from_handler_answers_every_request():
    app = App()

    @app.post("/busy", batch=BatchPolicy(max_size=8, max_wait_ms=1))
    def busy(items: list[Item]):
        raise HTTPException(503, "model loading")

    replies = run_together(app, "POST", "/busy", [body(k) for k in range(3)])
    assert [(s, json.loads(b)) for s, _, b in replies] == [(503, {"detail": "model loading"})] * 3


def test_together__exception_item_answers_only_its_request():
    app = App()

    @app.post("/p", batch=BatchPolicy(max_size=8, max_wait_ms=1))
    def p(items: list[Item]):
        return [HTTPException(404, f"no {i.name}") if i.name == "missing" else
                JSONResponse({"ok": i.name}, status_code=202) for i in items]

    replies = run_together(app, "POST", "/p", [body(1, "a"), body(2, "missing"), body(3, "c")])
    assert [(s, json.loads(b)) for s, _, b in replies] == [
        (202, {"ok": "a"}), (404, {"detail": "no missing"}), (202, {"ok": "c"})]


def test_together__async_handler_batches_and_may_await():
    app = App()
    sizes = []

    @app.post("/a", batch=BatchPolicy(max_size=3, max_wait_ms=2))
    async def a(items: list[Item]):
        sizes.append(len(items))
        await asyncio.sleep(0.002)
        return [i.x + 1 for i in items]

    replies = run_together(app, "POST", "/a", [body(k) for k in range(7)])
    assert [json.loads(b) for _, _, b in replies] == [k + 1.0 for k in range(7)]
    assert sizes == [3, 3, 1]


def test_together__cancelled_request_is_left_out_of_its_batch():
    app = App()
    seen = []

    @app.post("/p", batch=BatchPolicy(max_size=8, max_wait_ms=5))
    def p(items: list[Item]):
        seen.append([i.x for i in items])
        return [i.x for i in items]

    routes = app._freeze()
    route = routes[0]
    loop = _boot._event_loop()

    async def one(x):
        request = Request("POST", "/p", "", (), [], ("127.0.0.1", 1), body(x), route)
        return await route.call(*route.bind((), "", request))

    async def main():
        tasks = [asyncio.ensure_future(one(x)) for x in (1, 2, 3)]
        await asyncio.sleep(0)          # all three submitted
        tasks[1].cancel()               # as on_disconnect would
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = loop.run_until_complete(main())
    assert results[0] == 1.0 and results[2] == 3.0
    assert isinstance(results[1], asyncio.CancelledError)
    assert seen == [[1.0, 3.0]]


def test_together__requests_after_a_batch_closed_start_the_next():
    app = App()
    sizes = []

    @app.post("/p", batch=BatchPolicy(max_size=4, max_wait_ms=20))
    def p(items: list[Item]):
        sizes.append(len(items))
        return [i.x for i in items]

    routes = app._freeze()
    route = routes[0]
    loop = _boot._event_loop()

    async def one(x):
        request = Request("POST", "/p", "", (), [], ("127.0.0.1", 1), body(x), route)
        return await route.call(*route.bind((), "", request))

    async def main():
        first = [asyncio.ensure_future(one(x)) for x in range(2)]
        await asyncio.sleep(0.05)       # the first batch expired alone
        second = [asyncio.ensure_future(one(x)) for x in range(3)]
        return await asyncio.gather(*first, *second)

    assert loop.run_until_complete(main()) == [0.0, 1.0, 0.0, 1.0, 2.0]
    assert sizes == [2, 3]


# ------------------------------------------------------------------ OpenAPI

def test_openapi__documents_one_request_and_one_result(make_client):
    app = App()

    @app.post("/predict", batch=BatchPolicy())
    def predict(items: list[Item]) -> list[Out]:
        """Predicts."""
        return [Out(i.x) for i in items]

    doc = make_client(app).get("/openapi.json").json()
    op = doc["paths"]["/predict"]["post"]
    assert op["summary"] == "Predict" and op["description"] == "Predicts."
    assert op["requestBody"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Item"}
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/Out"}
    assert "Item" in doc["components"]["schemas"] and "Out" in doc["components"]["schemas"]


# ------------------------------------------------------------------ through dispatch, deferred

@pytest.fixture
def fake(monkeypatch):
    """The C side's deferred-request API, faked (tests/python/fake_c.py)."""
    fake_c = pytest.importorskip("fake_c")
    from fasterapi import aio
    c = fake_c.FakeC()
    monkeypatch.setattr(aio, "_c", c)
    yield c
    c.run(lambda: not asyncio.all_tasks(aio.event_loop()) or not aio.loop_step(), timeout=2)


def _post(client, pattern, data):
    return (client.ids[("POST", pattern)], "POST", pattern, "", (),
            [("content-type", "application/json")], ("127.0.0.1", 1), data, 1)


def test_deferred__dispatched_requests_share_handler_calls(fake, make_client):
    app = App()
    sizes = []

    @app.post("/double", batch=BatchPolicy(max_size=8, max_wait_ms=50))
    def double(items: list[Item]) -> list[Out]:
        sizes.append(len(items))
        return [Out(i.x * 2) for i in items]

    client = make_client(app)
    rids = []
    for k in range(20):
        result, rid = fake.dispatch(client.dispatch, *_post(client, "/double", body(k)))
        assert result is None and rid is not None     # deferred: the worker takes the next
        rids.append(rid)
    assert sizes == []
    fake.run(lambda: all(fake.reqs[r].finished for r in rids))
    for k, rid in enumerate(rids):
        status, _, out = fake.reqs[rid].result[:3]
        assert status == 200 and json.loads(out if isinstance(out, bytes) else
                                            json.dumps(out)) == {"y": 2.0 * k}
    assert sizes == [8, 8, 4]


def test_deferred__bad_request_answers_at_once(fake, make_client):
    app = App()

    @app.post("/p", batch=BatchPolicy(max_size=8, max_wait_ms=50))
    def p(items: list[Item]):
        return [i.x for i in items]

    client = make_client(app)
    result, rid = fake.dispatch(client.dispatch, *_post(client, "/p", b'{"x": null}'))
    assert rid is None and result[0] == 422


def test_deferred__wrong_length_answers_500_to_all_logged_once(fake, make_client, capsys):
    app = App()

    @app.post("/p", batch=BatchPolicy(max_size=3, max_wait_ms=50))
    def p(items: list[Item]):
        return []

    client = make_client(app)
    rids = [fake.dispatch(client.dispatch, *_post(client, "/p", body(k)))[1] for k in range(3)]
    fake.run(lambda: all(fake.reqs[r].finished for r in rids))
    assert [fake.reqs[r].result[0] for r in rids] == [500, 500, 500]
    err = capsys.readouterr().err
    assert err.count("fasterapi: ") == 1
    assert "returned 0 results for a batch of 3 requests" in err


def test_deferred__client_gone_before_the_batch_ran_is_left_out(fake, make_client):
    app = App()
    seen = []

    @app.post("/p", batch=BatchPolicy(max_size=8, max_wait_ms=20))
    def p(items: list[Item]):
        seen.append([i.x for i in items])
        return [i.x for i in items]

    client = make_client(app)
    rids = [fake.dispatch(client.dispatch, *_post(client, "/p", body(k)))[1] for k in range(3)]
    fake.disconnect(rids[1])
    fake.run(lambda: all(fake.reqs[r].finished for r in rids))
    assert seen == [[0.0, 2.0]]
    assert fake.reqs[rids[0]].result[0] == 200 and fake.reqs[rids[2]].result[0] == 200
    assert fake.reqs[rids[1]].aborted


def test_deferred__sync_handler_runs_on_the_thread_pool(fake, make_client, monkeypatch):
    import threading
    from fasterapi import aio
    monkeypatch.setattr(aio, "_threads", 2)
    app = App()
    threads = {}

    @app.post("/p", batch=BatchPolicy(max_size=4, max_wait_ms=5))
    def p(items: list[Item]):
        threads["p"] = threading.current_thread().name
        return [i.x for i in items]

    @app.post("/a", batch=BatchPolicy(max_size=4, max_wait_ms=5))
    async def a(items: list[Item]):
        threads["a"] = threading.current_thread().name
        return [i.x for i in items]

    client = make_client(app)
    rids = [fake.dispatch(client.dispatch, *_post(client, path, body(k)))[1]
            for path in ("/p", "/a") for k in range(4)]
    fake.run(lambda: all(fake.reqs[r].finished for r in rids))
    assert [fake.reqs[r].result[0] for r in rids] == [200] * 8
    assert threads["p"].startswith("fasterapi-handler")      # the pool
    assert threads["a"] == threading.main_thread().name      # async: on the loop


def test_dispatch__keyword_only_parameter(make_client):
    app = App()

    @app.post("/k", batch=BatchPolicy(max_size=2, max_wait_ms=1))
    async def k(*, items: list[Item]):
        return [i.name for i in items]

    assert make_client(app).post("/k", body=body(1, "kw")).text == "kw"


def test_together__handler_runs_in_a_context_of_its_own():
    import contextvars
    var = contextvars.ContextVar("request_var", default="unset")
    app = App()
    seen = []

    @app.middleware("http")
    async def mark(request, call_next):
        var.set("request")
        return await call_next(request)

    @app.post("/p", batch=BatchPolicy(max_size=2, max_wait_ms=1))
    def p(items: list[Item]):
        seen.append(var.get())
        var.set("handler")
        return [i.x for i in items]

    routes = app._freeze()
    route = routes[0]
    loop = _boot._event_loop()

    async def one(x):
        request = Request("POST", "/p", "", (), [], ("127.0.0.1", 1), body(x), route)
        request.app = app
        from fasterapi.binding import RequestContext
        RequestContext(request, (), "")
        response = await app._serve(route, request)
        return response.status_code, var.get()

    async def main():
        return await asyncio.gather(*(loop.create_task(one(x), context=contextvars.Context())
                                      for x in range(2)))

    assert loop.run_until_complete(main()) == [(200, "request"), (200, "request")]
    assert seen == ["unset"]
