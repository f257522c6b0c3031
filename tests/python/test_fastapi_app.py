"""Issue 5, application: middlewares (http functions, CORS, GZip),
exception handlers, lifespan, APIRouter, /openapi.json and /docs."""

import contextlib
import dataclasses
import gzip
import sys
import types
from typing import Optional

import pytest

from fasterapi import (APIRouter, App, CORSMiddleware, Depends, FastAPI, GZipMiddleware,
                       Header, HTTPException, JSONResponse, PlainTextResponse, Query, Request,
                       RequestValidationError, _boot)


# ------------------------------------------------------------------ middlewares

def test_middleware__http_functions_wrap_in_order(make_client):
    app = App()
    order = []

    @app.middleware("http")
    async def inner(request, call_next):
        order.append("inner in")
        response = await call_next(request)
        order.append("inner out")
        response.headers["x-inner"] = "1"
        return response

    @app.middleware("http")
    async def outer(request, call_next):
        order.append("outer in")
        request.state.user = "ann"
        response = await call_next(request)
        response.headers["x-outer"] = str(response.status_code)
        return response

    @app.get("/a")
    def a(request=None):
        order.append("handler")
        return {"a": 1}

    @app.get("/state")
    def state(request: Request):
        return {"user": request.state.user}

    @app.get("/missing")
    def missing():
        raise HTTPException(404, "nope")

    client = make_client(app)
    reply = client.get("/a")
    assert reply.json() == {"a": 1}
    assert reply.header("x-inner") == "1" and reply.header("x-outer") == "200"
    assert order == ["outer in", "inner in", "handler", "inner out"]
    assert client.get("/state").json() == {"user": "ann"}
    reply = client.get("/missing")           # HTTPException is a response by then
    assert (reply.status, reply.header("x-outer")) == (404, "404")


def test_middleware__can_answer_without_calling_next(make_client):
    app = App()

    @app.middleware("http")
    async def gate(request, call_next):
        if request.headers.get("x-block"):
            return PlainTextResponse("blocked", status_code=403)
        return await call_next(request)

    app.get("/a")(lambda: "through")
    client = make_client(app)
    assert client.get("/a").text == "through"
    assert client.get("/a", headers=[("x-block", "1")]) == (
        403, [("content-type", "text/plain; charset=utf-8")], b"blocked")


def test_middleware__only_base_http_middleware_subclasses():
    class Asgi:
        def __init__(self, app):
            pass

    with pytest.raises(TypeError, match="ASGI middlewares are not"):
        App().add_middleware(Asgi)


def test_cors__simple_and_preflight(make_client):
    app = App()
    app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"],
                       allow_methods=["GET", "POST"], allow_headers=["X-Token"],
                       allow_credentials=True, expose_headers=["X-Count"])
    app.get("/items")(lambda: [1])
    client = make_client(app)
    # Preflight OPTIONS routes were added (the C router would answer 405 otherwise).
    assert ("OPTIONS", "/items") in client.ids
    reply = client.request("OPTIONS", "/items", headers=[
        ("Origin", "https://a.example"), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "x-token")])
    assert reply.status == 200 and reply.body == b"OK"
    assert reply.header("access-control-allow-origin") == "https://a.example"
    assert reply.header("access-control-allow-methods") == "GET, POST"
    assert reply.header("access-control-allow-credentials") == "true"
    assert reply.header("access-control-max-age") == "600"
    assert reply.header("vary") == "Origin"
    bad = client.request("OPTIONS", "/items", headers=[
        ("Origin", "https://evil.example"), ("Access-Control-Request-Method", "DELETE")])
    assert (bad.status, bad.body) == (400, b"Disallowed CORS origin, method")
    simple = client.get("/items", headers=[("Origin", "https://a.example")])
    assert simple.json() == [1]
    assert simple.header("access-control-allow-origin") == "https://a.example"
    assert simple.header("access-control-expose-headers") == "X-Count"
    other = client.get("/items", headers=[("Origin", "https://b.example")])
    assert other.header("access-control-allow-origin") is None
    plain_options = client.request("OPTIONS", "/items")
    assert (plain_options.status, plain_options.header("allow")) == (405, "GET, HEAD")


def test_cors__wildcard(make_client):
    app = App()
    app.add_middleware(CORSMiddleware, allow_origins=["*"])
    app.get("/x")(lambda: "x")
    reply = make_client(app).get("/x", headers=[("Origin", "https://any")])
    assert reply.header("access-control-allow-origin") == "*"


def test_gzip__large_bodies_for_clients_that_accept_it(make_client):
    app = App()
    app.add_middleware(GZipMiddleware, minimum_size=100)
    app.get("/big")(lambda: {"data": "x" * 1000})
    app.get("/small")(lambda: "tiny")
    client = make_client(app)
    reply = client.get("/big", headers=[("Accept-Encoding", "br, gzip")])
    assert reply.header("content-encoding") == "gzip"
    assert reply.header("vary") == "Accept-Encoding"
    assert gzip.decompress(reply.body) == b'{"data":"' + b"x" * 1000 + b'"}'
    assert client.get("/big").header("content-encoding") is None
    assert client.get("/small", headers=[("Accept-Encoding", "gzip")]).body == b"tiny"


# ------------------------------------------------------------------ exception handlers

class Teapot(Exception):
    pass


def test_exception_handlers__custom_classes_http_and_validation(make_client):
    app = App()

    @app.exception_handler(Teapot)
    async def teapot(request, exc):
        return JSONResponse({"brew": str(exc)}, status_code=418)

    @app.exception_handler(RequestValidationError)
    def validation(request, exc):
        return PlainTextResponse(f"{len(exc.errors())} bad", status_code=400)

    @app.exception_handler(404)
    def not_found(request, exc):
        return PlainTextResponse(f"custom {exc.detail}", status_code=404)

    @app.get("/tea")
    def tea():
        raise Teapot("earl grey")

    @app.get("/n")
    def n(x: int, y: int):
        return x

    @app.get("/nf")
    def nf():
        raise HTTPException(404, "gone")

    client = make_client(app)
    assert (client.get("/tea").status, client.get("/tea").json()) == (418, {"brew": "earl grey"})
    assert client.get("/n", query="x=a").text == "2 bad"
    assert client.get("/nf").text == "custom gone"


def test_exception_handlers__catch_all_and_reuse_of_defaults(make_client, capsys):
    from fasterapi.exception_handlers import http_exception_handler
    app = App()
    seen = []

    @app.exception_handler(Exception)
    def everything(request, exc):
        return JSONResponse({"error": type(exc).__name__}, status_code=500)

    @app.exception_handler(HTTPException)
    async def logged(request, exc):
        seen.append(exc.status_code)
        return await http_exception_handler(request, exc)

    app.get("/boom")(lambda: 1 / 0)
    app.get("/h")(lambda: (_ for _ in ()).throw(HTTPException(409, "c")))
    client = make_client(app)
    assert client.get("/boom").json() == {"error": "ZeroDivisionError"}
    assert "ZeroDivisionError" in capsys.readouterr().err
    assert client.get("/h").json() == {"detail": "c"} and seen == [409]


# ------------------------------------------------------------------ lifespan

@pytest.fixture
def load(monkeypatch):
    def do(app):
        name = f"_fa_lifespan_{id(app)}"
        module = types.ModuleType(name)
        module.app = app
        monkeypatch.setitem(sys.modules, name, module)
        return _boot.load(f"{name}:app")
    return do


def test_lifespan__startup_in_load_shutdown_at_exit(load):
    events = []

    @contextlib.asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield {"db": "connected"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/db")
    def db(request: Request):
        return {"db": request.state.db}

    dispatch = load(app)
    assert events == ["startup"]
    status, _, body = dispatch(0, "GET", "/db", "", (), [], ("h", 1), b"")
    assert (status, body) == (200, b'{"db":"connected"}')
    _boot.shutdown()
    assert events == ["startup", "shutdown"]
    _boot.shutdown()                         # once only
    assert events == ["startup", "shutdown"]


def test_lifespan__on_event_handlers_and_describe_does_not_start(monkeypatch, load):
    events = []
    app = App()
    app.on_event("startup")(lambda: events.append("up"))

    @app.on_event("shutdown")
    async def down():
        events.append("down")

    name = "_fa_describe_only"
    module = types.ModuleType(name)
    module.app = app
    monkeypatch.setitem(sys.modules, name, module)
    _boot.describe(f"{name}:app")
    assert events == []
    load(app)
    assert events == ["up"]
    _boot.shutdown()
    assert events == ["up", "down"]


def test_lifespan__startup_failure_propagates(load):
    @contextlib.asynccontextmanager
    async def lifespan(app):
        raise RuntimeError("no database")
        yield

    with pytest.raises(RuntimeError, match="no database"):
        load(App(lifespan=lifespan))


# ------------------------------------------------------------------ routers

def test_router__prefix_tags_and_dependencies(make_client):
    calls = []

    def auth(x_user: str = Header()):
        calls.append(x_user)

    users = APIRouter(prefix="/users", tags=["users"])

    @users.get("/{user_id}")
    def get_user(user_id: int):
        return {"id": user_id}

    @users.post("/", status_code=201)
    def create():
        return {"created": True}

    inner = APIRouter()
    inner.get("/ping")(lambda: "pong")
    users.include_router(inner, prefix="/admin")

    app = App()
    app.include_router(users, prefix="/v1", tags=["v1"], dependencies=[Depends(auth)])
    client = make_client(app)
    assert client.get("/v1/users/{user_id}", ["3"], headers=[("x-user", "a")]).json() == {"id": 3}
    assert client.post("/v1/users/", headers=[("x-user", "b")]).status == 201
    assert client.get("/v1/users/admin/ping", headers=[("x-user", "c")]).text == "pong"
    assert calls == ["a", "b", "c"]
    assert client.get("/v1/users/admin/ping").status == 422
    route = next(r for r in app.routes if r.path == "/v1/users/{user_id}")
    assert route.options["tags"] == ["v1", "users"]


def test_router__bad_prefix_is_refused():
    with pytest.raises(ValueError, match="must start with '/'"):
        APIRouter(prefix="users")
    with pytest.raises(ValueError, match="not end with '/'"):
        App().include_router(APIRouter(), prefix="/v1/")


# ------------------------------------------------------------------ OpenAPI and docs

@dataclasses.dataclass
class Item:
    name: str
    price: float = 0.0


def _documented_app():
    app = FastAPI(title="Shop", version="2.0")

    @app.get("/items/{item_id}", tags=["items"], response_model=Item)
    def read_item(item_id: int, q: Optional[str] = Query(None, max_length=5,
                                                         description="search")):
        """Reads one item."""
        return Item("x")

    @app.post("/items", status_code=201, summary="Create it")
    def create_item(item: Item, x_token: str = Header()):
        return item

    app.get("/hidden", include_in_schema=False)(lambda: 1)
    return app


def test_openapi__document_from_routes(make_client):
    client = make_client(_documented_app())
    doc = client.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Shop", "version": "2.0"}
    assert set(doc["paths"]) == {"/items/{item_id}", "/items"}
    get = doc["paths"]["/items/{item_id}"]["get"]
    assert get["tags"] == ["items"] and get["summary"] == "Read Item"
    assert get["description"] == "Reads one item."
    assert get["operationId"] == "read_item_items__item_id__get"
    assert get["parameters"] == [
        {"name": "item_id", "in": "path", "required": True,
         "schema": {"type": "integer", "title": "Item Id"}},
        {"name": "q", "in": "query", "required": False, "description": "search",
         "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "maxLength": 5,
                    "title": "Q"}}]
    assert get["responses"]["200"] == {"description": "Successful Response", "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}}
    assert get["responses"]["422"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/HTTPValidationError"}
    post = doc["paths"]["/items"]["post"]
    assert post["summary"] == "Create it" and "201" in post["responses"]
    assert post["requestBody"] == {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Item"}}}, "required": True}
    assert post["parameters"][0]["name"] == "x-token" and post["parameters"][0]["in"] == "header"
    schemas = doc["components"]["schemas"]
    assert schemas["Item"] == {"properties": {
        "name": {"type": "string", "title": "Name"},
        "price": {"type": "number", "title": "Price", "default": 0.0}},
        "type": "object", "required": ["name"], "title": "Item"}
    assert {"HTTPValidationError", "ValidationError"} <= set(schemas)


def test_openapi__pydantic_models_describe_themselves(make_client):
    pd = pytest.importorskip("pydantic")

    class Tag(pd.BaseModel):
        label: str

    class Post(pd.BaseModel):
        title: str
        tags: list[Tag] = []

    app = App()
    app.post("/posts")(lambda post: None)
    app.post("/p2", response_model=Post)(lambda: None)

    @app.post("/posts2")
    def create(post: Post):
        return post

    schemas = make_client(app).get("/openapi.json").json()["components"]["schemas"]
    assert schemas["Post"]["properties"]["title"]["type"] == "string"
    assert "Tag" in schemas


def test_docs__swagger_ui_page_and_local_assets(make_client):
    client = make_client(_documented_app())
    page = client.get("/docs")
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert b'url: "/openapi.json"' in page.body
    assert b'src="/docs/swagger-ui-bundle.js"' in page.body
    assert b"cdn" not in page.body.lower()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        reply = client.get(f"/docs/{name}")
        path = reply.header("x-fasterapi-sendfile")
        assert reply.status == 200 and path and open(path, "rb").read(10)
    assert client.get("/docs/swagger-ui.css").header("content-type") == "text/css; charset=utf-8"


def test_docs__can_be_turned_off():
    app = App(openapi_url=None)
    app.get("/a")(lambda: 1)
    assert [r[2] for r in app.describe()] == ["/a"]
    app = App(docs_url=None)
    app.get("/a")(lambda: 1)
    assert [r[2] for r in app.describe()] == ["/a", "/openapi.json"]


def test_app__unknown_keyword_is_refused():
    with pytest.raises(TypeError, match="unexpected keyword argument 'titel'"):
        App(titel="x")


def test_middleware__that_waits_and_an_async_exception_handler_that_waits(make_client):
    import asyncio
    app = App()

    @app.middleware("http")
    async def slow(request, call_next):
        await asyncio.sleep(0.001)
        response = await call_next(request)
        response.headers["x-waited"] = "yes"
        return response

    @app.exception_handler(Teapot)
    async def teapot(request, exc):
        await asyncio.sleep(0)
        return PlainTextResponse("tea", status_code=418)

    app.get("/t")(lambda: (_ for _ in ()).throw(Teapot()))
    reply = make_client(app).get("/t")
    assert (reply.status, reply.body, reply.header("x-waited")) == (418, b"tea", "yes")
