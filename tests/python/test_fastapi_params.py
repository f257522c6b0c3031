"""Issue 5, handlers and parameters: markers, lists, Enum and Literal,
headers and cookies, constraints, JSON bodies (dataclass, TypedDict,
pydantic), forms and files, Depends. Each 422 is checked against the exact
body FastAPI (pydantic 2) answers."""

import dataclasses
import enum
from typing import Annotated, Literal, Optional, TypedDict

import pytest

from fasterapi import (App, Body, Cookie, Depends, File, Form, Header, Path, Query, Request,
                       UploadFile)

INT_MSG = "Input should be a valid integer, unable to parse string as an integer"


# ------------------------------------------------------------------ query

def test_query__list_takes_every_value_in_order(make_client):
    app = App()

    @app.get("/items")
    def items(tag: list[str] = Query([]), n: Annotated[list[int], Query()] = None,
              one: str = "x"):
        return {"tag": tag, "n": n, "one": one}

    client = make_client(app)
    assert client.get("/items", query="tag=a&tag=b&one=1&one=2&n=3&n=4").json() == {
        "tag": ["a", "b"], "n": [3, 4], "one": "2"}
    assert client.get("/items").json() == {"tag": [], "n": None, "one": "x"}
    reply = client.get("/items", query="n=1&n=x&n=y")
    assert reply.status == 422
    assert reply.json()["detail"] == [
        {"type": "int_parsing", "loc": ["query", "n", 1], "msg": INT_MSG, "input": "x"},
        {"type": "int_parsing", "loc": ["query", "n", 2], "msg": INT_MSG, "input": "y"}]


def test_query__required_list_missing(make_client):
    app = App()
    app.get("/l")(lambda q: None)

    @app.get("/r")
    def required(q: list[str] = Query()):
        return q

    assert make_client(app).get("/r").json() == {"detail": [
        {"type": "missing", "loc": ["query", "q"], "msg": "Field required", "input": None}]}


class Color(str, enum.Enum):
    red = "red"
    green = "green"


class Level(enum.IntEnum):
    low = 1
    high = 2


def test_query__enum_and_literal(make_client):
    app = App()

    @app.get("/c/{color}")
    def pick(color: Color, level: Level = Level.low, mode: Literal["fast", "slow"] = "fast",
             n: Optional[Literal[1, 2]] = None):
        return {"color": color, "is_enum": isinstance(color, Color), "level": level,
                "mode": mode, "n": n}

    client = make_client(app)
    assert client.get("/c/{color}", ["green"], query="level=2&mode=slow&n=2").json() == {
        "color": "green", "is_enum": True, "level": 2, "mode": "slow", "n": 2}
    reply = client.get("/c/{color}", ["blue"], query="level=3&mode=medium")
    assert reply.json() == {"detail": [
        {"type": "enum", "loc": ["path", "color"], "msg": "Input should be 'red' or 'green'",
         "input": "blue", "ctx": {"expected": "'red' or 'green'"}},
        {"type": "enum", "loc": ["query", "level"], "msg": "Input should be 1 or 2",
         "input": "3", "ctx": {"expected": "1 or 2"}},
        {"type": "literal_error", "loc": ["query", "mode"],
         "msg": "Input should be 'fast' or 'slow'", "input": "medium",
         "ctx": {"expected": "'fast' or 'slow'"}}]}


def test_query__alias_and_constraints(make_client):
    app = App()

    @app.get("/s")
    def search(q: Annotated[str, Query(alias="item-query", min_length=3, max_length=5,
                                       pattern="^[a-z]+$")],
               page: int = Query(1, ge=1, le=10), size: float = Query(1.0, gt=0, lt=100)):
        return {"q": q, "page": page, "size": size}

    client = make_client(app)
    assert client.get("/s", query="item-query=abc&page=10").json() == {
        "q": "abc", "page": 10, "size": 1.0}
    assert client.get("/s", query="q=abc").json()["detail"] == [
        {"type": "missing", "loc": ["query", "item-query"], "msg": "Field required",
         "input": None}]
    detail = client.get("/s", query="item-query=ab&page=0&size=0").json()["detail"]
    assert detail == [
        {"type": "string_too_short", "loc": ["query", "item-query"],
         "msg": "String should have at least 3 characters", "input": "ab",
         "ctx": {"min_length": 3}},
        {"type": "greater_than_equal", "loc": ["query", "page"],
         "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}},
        {"type": "greater_than", "loc": ["query", "size"], "msg": "Input should be greater than 0",
         "input": "0", "ctx": {"gt": 0}}]
    detail = client.get("/s", query="item-query=abcdef&page=11&size=100").json()["detail"]
    assert [e["type"] for e in detail] == ["string_too_long", "less_than_equal", "less_than"]
    assert detail[1]["msg"] == "Input should be less than or equal to 10"
    detail = client.get("/s", query="item-query=AB1").json()["detail"]
    assert detail == [{"type": "string_pattern_mismatch", "loc": ["query", "item-query"],
                       "msg": "String should match pattern '^[a-z]+$'", "input": "AB1",
                       "ctx": {"pattern": "^[a-z]+$"}}]


def test_path__marker_with_constraints(make_client):
    app = App()

    @app.get("/items/{item_id}")
    def item(item_id: Annotated[int, Path(title="The ID", gt=0)]):
        return {"id": item_id}

    client = make_client(app)
    assert client.get("/items/{item_id}", ["3"]).json() == {"id": 3}
    assert client.get("/items/{item_id}", ["0"]).json()["detail"][0]["type"] == "greater_than"


def test_path__marker_for_a_name_not_in_the_pattern_is_refused():
    def handler(x: int = Path()):
        return x

    with pytest.raises(TypeError, match=r"Path\(\) but the route pattern has no \{x\}"):
        App().get("/a")(handler)


# ------------------------------------------------------------------ headers and cookies

def test_header__underscores_become_hyphens_and_lists(make_client):
    app = App()

    @app.get("/h")
    def h(user_agent: str = Header(), x_token: Annotated[list[str], Header()] = None,
          x_n: int = Header(0), strange_header: Optional[str] = Header(None,
                                                                        convert_underscores=False)):
        return {"ua": user_agent, "tokens": x_token, "n": x_n, "strange": strange_header}

    client = make_client(app)
    reply = client.get("/h", headers=[("User-Agent", "t/1"), ("X-Token", "a"), ("X-Token", "b"),
                                      ("X-N", "5"), ("strange_header", "s")])
    assert reply.json() == {"ua": "t/1", "tokens": ["a", "b"], "n": 5, "strange": "s"}
    reply = client.get("/h", headers=[("X-N", "five")])
    assert reply.json()["detail"] == [
        {"type": "missing", "loc": ["header", "user-agent"], "msg": "Field required",
         "input": None},
        {"type": "int_parsing", "loc": ["header", "x-n"], "msg": INT_MSG, "input": "five"}]


def test_cookie__by_name(make_client):
    app = App()

    @app.get("/c")
    def c(session: str = Cookie(), n: int = Cookie(0), request: Request = None):
        return {"session": session, "n": n, "all": request.cookies}

    client = make_client(app)
    reply = client.get("/c", headers=[("Cookie", 'session=abc; n=4; other="q v"')])
    assert reply.json() == {"session": "abc", "n": 4,
                            "all": {"session": "abc", "n": "4", "other": "q v"}}
    assert client.get("/c").json()["detail"] == [
        {"type": "missing", "loc": ["cookie", "session"], "msg": "Field required",
         "input": None}]


# ------------------------------------------------------------------ JSON bodies

@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)
    description: Optional[str] = None


class Point(TypedDict):
    x: int
    y: int


def _body_app():
    app = App()

    @app.post("/items")
    def create(item: Item):
        return {"type": type(item).__name__, "item": dataclasses.asdict(item)}

    @app.post("/points")
    def point(p: Point):
        return {"p": p, "type": type(p).__name__}

    @app.put("/items/{item_id}")
    def update(item_id: int, item: Item, importance: int = Body(), q: Optional[str] = None):
        return {"item_id": item_id, "name": item.name, "importance": importance, "q": q}

    @app.post("/embed")
    def embed(item: Item = Body(embed=True)):
        return {"name": item.name}

    @app.post("/raw")
    def raw(data: dict, extra: Optional[list[int]] = Body(None)):
        return {"data": data, "extra": extra}

    return app


def test_body__dataclass_parsed_and_converted(make_client):
    client = make_client(_body_app())
    reply = client.post("/items", json={"name": "pen", "price": "1.5", "tags": ["a"],
                                        "unknown": 1})
    assert reply.json() == {"type": "Item", "item": {"name": "pen", "price": 1.5, "tags": ["a"],
                                                     "description": None}}


def test_body__one_error_per_bad_field_with_fastapi_shape(make_client):
    client = make_client(_body_app())
    body = {"price": "cheap", "tags": ["a", 2]}
    reply = client.post("/items", json=body)
    assert reply.status == 422
    assert reply.json() == {"detail": [
        {"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": body},
        {"type": "float_parsing", "loc": ["body", "price"],
         "msg": "Input should be a valid number, unable to parse string as a number",
         "input": "cheap"},
        {"type": "string_type", "loc": ["body", "tags", 1], "msg": "Input should be a valid string",
         "input": 2}]}


def test_body__missing_invalid_json_and_wrong_type(make_client):
    client = make_client(_body_app())
    assert client.post("/items").json() == {"detail": [
        {"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]}
    reply = client.post("/items", headers=[("content-type", "application/json")],
                        body=b'{"name": ')
    assert reply.status == 422
    assert reply.json() == {"detail": [
        {"type": "json_invalid", "loc": ["body", 9], "msg": "JSON decode error", "input": {},
         "ctx": {"error": "Expecting value"}}]}
    assert client.post("/items", json=[1]).json() == {"detail": [
        {"type": "dataclass_type", "loc": ["body"],
         "msg": "Input should be a dictionary or an instance of Item", "input": [1],
         "ctx": {"class_name": "Item"}}]}


def test_body__typeddict(make_client):
    client = make_client(_body_app())
    assert client.post("/points", json={"x": 1, "y": "2", "z": 3}).json() == {
        "p": {"x": 1, "y": 2}, "type": "dict"}
    assert client.post("/points", json={"x": 1.5}).json()["detail"] == [
        {"type": "int_from_float", "loc": ["body", "x"],
         "msg": "Input should be a valid integer, got a number with a fractional part",
         "input": 1.5},
        {"type": "missing", "loc": ["body", "y"], "msg": "Field required", "input": {"x": 1.5}}]


def test_body__several_parameters_are_keys_of_one_object(make_client):
    client = make_client(_body_app())
    reply = client.put("/items/{item_id}", ["3"], query="q=z",
                       json={"item": {"name": "a", "price": 1}, "importance": "5"})
    assert reply.json() == {"item_id": 3, "name": "a", "importance": 5, "q": "z"}
    reply = client.put("/items/{item_id}", ["x"], json={"item": {"name": "a", "price": 1}})
    assert reply.json()["detail"] == [
        {"type": "int_parsing", "loc": ["path", "item_id"], "msg": INT_MSG, "input": "x"},
        {"type": "missing", "loc": ["body", "importance"], "msg": "Field required",
         "input": None}]


def test_body__embed_and_plain_dict(make_client):
    client = make_client(_body_app())
    assert client.post("/embed", json={"item": {"name": "n", "price": 2}}).json() == {"name": "n"}
    assert client.post("/embed", json={"name": "n", "price": 2}).json()["detail"][0]["loc"] == \
        ["body", "item"]
    assert client.post("/raw", json={"data": {"a": 1}}).json() == {"data": {"a": 1},
                                                                   "extra": None}


def test_body__content_type_other_than_json_is_not_parsed(make_client):
    client = make_client(_body_app())
    reply = client.post("/items", headers=[("content-type", "text/plain")],
                        body=b'{"name": "a", "price": 1}')
    assert reply.status == 422
    assert reply.json()["detail"][0]["type"] == "dataclass_type"
    reply = client.post("/items", headers=[("content-type", "application/vnd.x+json")],
                        body=b'{"name": "a", "price": 1}')
    assert reply.status == 200


def test_body__nested_dataclasses_and_constraints_in_annotated(make_client):
    @dataclasses.dataclass
    class Line:
        sku: str
        qty: Annotated[int, Query(ge=1)]

    @dataclasses.dataclass
    class Order:
        lines: list[Line]
        note: str = ""

    app = App()

    @app.post("/orders")
    def order(order: Order):
        return {"n": sum(line.qty for line in order.lines)}

    client = make_client(app)
    assert client.post("/orders", json={"lines": [{"sku": "a", "qty": 2}]}).json() == {"n": 2}
    detail = client.post("/orders", json={"lines": [{"sku": "a", "qty": 0}, {"qty": 1}]}).json()
    assert detail["detail"] == [
        {"type": "greater_than_equal", "loc": ["body", "lines", 0, "qty"],
         "msg": "Input should be greater than or equal to 1", "input": 0, "ctx": {"ge": 1}},
        {"type": "missing", "loc": ["body", "lines", 1, "sku"], "msg": "Field required",
         "input": {"qty": 1}}]


def test_body__pydantic_model(make_client):
    pd = pytest.importorskip("pydantic")

    class User(pd.BaseModel):
        name: str
        age: int
        email: Optional[str] = None

    app = App()

    @app.post("/users")
    def create(user: User):
        return {"type": type(user).__name__, "name": user.name, "age": user.age}

    client = make_client(app)
    assert client.post("/users", json={"name": "ann", "age": "31"}).json() == {
        "type": "User", "name": "ann", "age": 31}
    body = {"age": "old"}
    assert client.post("/users", json=body).json() == {"detail": [
        {"type": "missing", "loc": ["body", "name"], "msg": "Field required", "input": body},
        {"type": "int_parsing", "loc": ["body", "age"], "msg": INT_MSG, "input": "old"}]}


def test_body__pydantic_constraints_keep_fastapi_shape(make_client):
    pd = pytest.importorskip("pydantic")

    class Product(pd.BaseModel):
        name: str = pd.Field(min_length=2)
        price: float = pd.Field(gt=0)

    app = App()
    app.post("/p")(lambda product: None)

    @app.post("/products")
    def create(product: Product):
        return product

    detail = make_client(app).post("/products", json={"name": "x", "price": 0}).json()["detail"]
    assert detail == [
        {"type": "string_too_short", "loc": ["body", "name"],
         "msg": "String should have at least 2 characters", "input": "x",
         "ctx": {"min_length": 2}},
        {"type": "greater_than", "loc": ["body", "price"], "msg": "Input should be greater than 0",
         "input": 0, "ctx": {"gt": 0}}]


# ------------------------------------------------------------------ forms and files

def _form_app():
    app = App()

    @app.post("/login")
    def login(username: str = Form(), password: str = Form(), remember: bool = Form(False)):
        return {"username": username, "password": password, "remember": remember}

    @app.post("/upload")
    async def upload(file: UploadFile, note: str = Form(""), raw: bytes = File(None)):
        return {"filename": file.filename, "type": file.content_type,
                "content": (await file.read()).decode(), "size": file.size, "note": note,
                "raw": raw.decode() if raw else None}

    @app.post("/many")
    def many(files: list[UploadFile] = File(), tags: list[str] = Form([])):
        return {"names": [f.filename for f in files], "tags": tags}

    return app


def _multipart(parts, boundary="XyZ"):
    out = b""
    for name, value, filename, ctype in parts:
        out += b"--" + boundary.encode() + b"\r\n"
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += disposition.encode() + b"\r\n"
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n", \
        [("content-type", f"multipart/form-data; boundary={boundary}")]


def test_form__urlencoded(make_client):
    client = make_client(_form_app())
    reply = client.post("/login", headers=[("content-type", "application/x-www-form-urlencoded")],
                        body=b"username=ann+b&password=p%26w&remember=on")
    assert reply.json() == {"username": "ann b", "password": "p&w", "remember": True}
    reply = client.post("/login", headers=[("content-type", "application/x-www-form-urlencoded")],
                        body=b"username=&remember=maybe")
    assert reply.json() == {"detail": [
        {"type": "missing", "loc": ["body", "username"], "msg": "Field required", "input": None},
        {"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": None},
        {"type": "bool_parsing", "loc": ["body", "remember"],
         "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"}]}


def test_form__multipart_with_files(make_client):
    client = make_client(_form_app())
    body, headers = _multipart([
        ("file", b"hello\r\nworld", "a.txt", "text/plain"),
        ("note", "é".encode(), None, None),
        ("raw", b"\x00bytes", "b.bin", "application/octet-stream")])
    reply = client.post("/upload", headers=headers, body=body)
    assert reply.json() == {"filename": "a.txt", "type": "text/plain",
                            "content": "hello\r\nworld", "size": 12, "note": "é",
                            "raw": "\x00bytes"}
    body, headers = _multipart([("f", b"x", "f.txt", None), ("tags", b"a", None, None),
                                ("files", b"1", "one", None), ("files", b"2", "two", None),
                                ("tags", b"b", None, None)])
    assert client.post("/many", headers=headers, body=body).json() == {
        "names": ["one", "two"], "tags": ["a", "b"]}


def test_form__missing_file_and_malformed_multipart(make_client):
    client = make_client(_form_app())
    body, headers = _multipart([("note", b"n", None, None)])
    assert client.post("/upload", headers=headers, body=body).json() == {"detail": [
        {"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}]}
    reply = client.post("/upload", headers=headers, body=b"--XyZ\r\nno end")
    assert reply.status == 400
    assert reply.json() == {"detail": "There was an error parsing the body"}


def test_form__mixing_json_body_and_form_is_refused():
    app = App()
    with pytest.raises(TypeError, match="cannot be mixed with Form"):
        @app.post("/x")
        def both(item: Item, name: str = Form()):
            return {}


# ------------------------------------------------------------------ Depends

def test_depends__sub_dependencies_and_per_request_cache(make_client):
    calls = []

    def db():
        calls.append("db")
        return {"db": len(calls)}

    def user(token: str = Header(), conn=Depends(db)):
        calls.append("user")
        return {"token": token, "conn": conn}

    class Pager:
        def __init__(self, skip: int = 0, limit: int = Query(10, le=100)):
            self.skip, self.limit = skip, limit

    app = App()

    @app.get("/items")
    def items(u=Depends(user), conn=Depends(db), pager: Pager = Depends(),
              fresh=Depends(db, use_cache=False)):
        return {"user": u, "same_conn": u["conn"] is conn, "skip": pager.skip,
                "limit": pager.limit, "fresh": fresh}

    client = make_client(app)
    reply = client.get("/items", query="skip=5", headers=[("token", "t")])
    assert reply.json() == {"user": {"token": "t", "conn": {"db": 1}}, "same_conn": True,
                            "skip": 5, "limit": 10, "fresh": {"db": 3}}
    assert calls == ["db", "user", "db"]
    calls.clear()
    reply = client.get("/items", query="limit=1000&skip=x")
    assert reply.status == 422
    assert reply.json()["detail"] == [
        {"type": "missing", "loc": ["header", "token"], "msg": "Field required", "input": None},
        {"type": "int_parsing", "loc": ["query", "skip"], "msg": INT_MSG, "input": "x"},
        {"type": "less_than_equal", "loc": ["query", "limit"],
         "msg": "Input should be less than or equal to 100", "input": "1000", "ctx": {"le": 100}}]


def test_depends__async_and_http_exception(make_client):
    from fasterapi import HTTPException

    async def current_user(x_user: Optional[str] = Header(None)):
        if x_user is None:
            raise HTTPException(401, "who are you", headers={"WWW-Authenticate": "Bearer"})
        return x_user

    app = App()

    @app.get("/me")
    def me(user: str = Depends(current_user)):
        return {"user": user}

    client = make_client(app)
    assert client.get("/me", headers=[("x-user", "bo")]).json() == {"user": "bo"}
    reply = client.get("/me")
    assert reply.status == 401 and reply.header("www-authenticate") == "Bearer"


def test_depends__yield_cleanup_runs_after_the_response(make_client):
    events = []

    def session():
        events.append("open")
        try:
            yield "S"
        finally:
            events.append("close")

    async def async_res():
        events.append("a-open")
        yield "A"
        events.append("a-close")

    app = App()

    @app.get("/s")
    def handler(s=Depends(session), a=Depends(async_res)):
        events.append(f"handler {s} {a}")
        return {"s": s}

    client = make_client(app)
    reply = client.get("/s", run_after=False)
    assert reply.json() == {"s": "S"}
    assert events == ["open", "a-open", "handler S A"]       # not closed yet
    reply.after()                                             # the C side, once published
    assert events == ["open", "a-open", "handler S A", "a-close", "close"]


def test_depends__yield_sees_the_handler_exception(make_client, capsys):
    from fasterapi import HTTPException
    seen = []

    def tx():
        try:
            yield "tx"
        except ValueError as exc:
            seen.append(f"rollback {exc}")
            raise HTTPException(409, "rolled back") from None
        else:
            seen.append("commit")

    app = App()

    @app.get("/ok")
    def ok(t=Depends(tx)):
        return "ok"

    @app.get("/bad")
    def bad(t=Depends(tx)):
        raise ValueError("conflict")

    client = make_client(app)
    assert client.get("/ok").text == "ok" and seen == ["commit"]
    reply = client.get("/bad")
    assert (reply.status, reply.json()) == (409, {"detail": "rolled back"})
    assert seen == ["commit", "rollback conflict"]


def test_depends__route_and_app_dependencies_run_first(make_client):
    from fasterapi import HTTPException
    order = []

    def app_level():
        order.append("app")

    def verify(x_key: str = Header()):
        order.append("route")
        if x_key != "k":
            raise HTTPException(403, "bad key")

    app = App(dependencies=[Depends(app_level)])

    @app.get("/guarded", dependencies=[Depends(verify)])
    def guarded():
        order.append("handler")
        return "in"

    client = make_client(app)
    assert client.get("/guarded", headers=[("x-key", "k")]).text == "in"
    assert order == ["app", "route", "handler"]
    assert client.get("/guarded", headers=[("x-key", "no")]).status == 403
    assert client.get("/guarded").json()["detail"][0]["loc"] == ["header", "x-key"]


def test_depends__request_and_path_parameters_reach_dependencies(make_client):
    def owner(user_id: int, request: Request):
        return {"id": user_id, "path": request.url.path}

    app = App()

    @app.get("/users/{user_id}/posts")
    def posts(o=Depends(owner)):
        return o

    assert make_client(app).get("/users/{user_id}/posts", ["7"]).json() == {
        "id": 7, "path": "/users/7/posts"}


def test_plans_are_compiled_once_at_registration():
    app = App()

    @app.get("/a/{x}")
    def fast(x: int, q: str = ""):
        return {}

    @app.get("/b")
    def general(d=Depends(lambda: 1)):
        return {}

    a, b = app.routes[:2]
    assert a.bind is not None and not a.general
    assert b.bind is None and b.general and len(b.plan.deps) == 1


def test_mutable_defaults_are_fresh_per_request(make_client):
    app = App()

    @app.get("/m")
    def m(tags: list[str] = Query([])):
        tags.append("x")
        return tags

    client = make_client(app)
    assert client.get("/m").json() == ["x"]
    assert client.get("/m").json() == ["x"]


def test_depends__waiting_on_the_loop_in_a_dependency_or_handler(make_client):
    import asyncio

    async def slow(ms: float = 1.0):
        await asyncio.sleep(ms / 1000)
        return "slept"

    async def resource():
        await asyncio.sleep(0)
        yield "r"
        await asyncio.sleep(0)

    app = App()

    @app.get("/a")
    def a(s=Depends(slow)):
        return {"s": s, "task": asyncio.current_task() is not None}

    @app.get("/b")
    async def b(r=Depends(resource)):
        async with asyncio.timeout(1):
            await asyncio.sleep(0.001)
        return {"r": r}

    @app.get("/c")
    def c(x: int = Depends(lambda: 1)):
        return {"x": x}

    client = make_client(app)
    assert client.get("/a", query="ms=2").json() == {"s": "slept", "task": True}
    assert client.get("/b").json() == {"r": "r"}
    assert client.get("/c").json() == {"x": 1}
    a_route, b_route, c_route = app.routes[:3]
    assert a_route.general_waits and b_route.general_waits and not c_route.general_waits
