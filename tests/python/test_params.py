"""Binding handler parameters: sources, conversions, FastAPI's 422 shapes."""

import random
from typing import Any, Optional
from urllib.parse import parse_qsl

import pytest

from fasterapi import App, Request
from fasterapi.request import parse_query_last

INT_MSG = "Input should be a valid integer, unable to parse string as an integer"
FLOAT_MSG = "Input should be a valid number, unable to parse string as a number"
BOOL_MSG = "Input should be a valid boolean, unable to interpret input"


@pytest.fixture
def typed(make_client):
    """A client for GET /t/{p} whose handler echoes p and q, both of the given type."""
    def make(annotation, default=...):
        app = App()
        if default is ...:
            def handler(p: annotation, q: annotation):
                return {"p": p, "q": q}
        else:
            def handler(p: annotation, q: annotation = default):
                return {"p": p, "q": q}
        app.get("/t/{p}")(handler)
        return make_client(app)
    return make


# ------------------------------------------------------------------ 422 shapes

def test_422__int_path_exact_body(make_client):
    app = App()

    @app.get("/users/{user_id}")
    def get_user(user_id: int):
        return {"id": user_id}

    reply = make_client(app).get("/users/{user_id}", ["abc"])
    assert reply.status == 422
    assert reply.header("content-type") == "application/json"
    assert reply.body == (
        b'{"detail":[{"type":"int_parsing","loc":["path","user_id"],"msg":"Input should be a '
        b'valid integer, unable to parse string as an integer","input":"abc"}]}')


def test_422__missing_query_exact_body(make_client):
    app = App()

    @app.get("/search")
    def search(q: str):
        return {"q": q}

    reply = make_client(app).get("/search")
    assert reply.status == 422
    assert reply.body == (b'{"detail":[{"type":"missing","loc":["query","q"],'
                          b'"msg":"Field required","input":null}]}')


def test_422__float_and_bool_entries(typed):
    client = typed(float)
    assert client.get("/t/{p}", ["x1"], query="q=1.5").json() == {"detail": [
        {"type": "float_parsing", "loc": ["path", "p"], "msg": FLOAT_MSG, "input": "x1"}]}
    client = typed(bool)
    assert client.get("/t/{p}", ["yes"], query="q=maybe").json() == {"detail": [
        {"type": "bool_parsing", "loc": ["query", "q"], "msg": BOOL_MSG, "input": "maybe"}]}


def test_422__every_bad_field_once_path_first(make_client):
    app = App()

    @app.get("/a/{x}/{y}")
    def handler(q: int, x: int, flag: bool, y: float, needed: str, ok: int = 1):
        return {}

    reply = make_client(app).get("/a/{x}/{y}", ["one", "two"], query="q=z&flag=perhaps")
    assert reply.status == 422
    assert reply.json()["detail"] == [
        {"type": "int_parsing", "loc": ["path", "x"], "msg": INT_MSG, "input": "one"},
        {"type": "float_parsing", "loc": ["path", "y"], "msg": FLOAT_MSG, "input": "two"},
        {"type": "int_parsing", "loc": ["query", "q"], "msg": INT_MSG, "input": "z"},
        {"type": "bool_parsing", "loc": ["query", "flag"], "msg": BOOL_MSG, "input": "perhaps"},
        {"type": "missing", "loc": ["query", "needed"], "msg": "Field required", "input": None},
    ]


def test_422__input_is_the_decoded_value(typed):
    reply = typed(int).get("/t/{p}", ["%C3%A9"], query="q=a+b%21")
    assert [e["input"] for e in reply.json()["detail"]] == ["é", "a b!"]


def test_422__handler_is_not_called(make_client):
    calls = []
    app = App()

    @app.get("/n/{n}")
    def handler(n: int):
        calls.append(n)
        return {}

    assert make_client(app).get("/n/{n}", ["x"]).status == 422
    assert calls == []


# ------------------------------------------------------------------ conversions

@pytest.mark.parametrize("raw, value", [
    ("0", 0), ("42", 42), ("-7", -7), ("+7", 7), ("007", 7), (" 5 ", 5), ("1_000", 1000),
    ("3.0", 3), ("-3.000", -3), ("12345678901234567890123", 12345678901234567890123),
])
def test_int__accepts_what_pydantic_does(typed, raw, value):
    assert typed(int).get("/t/{p}", ["1"], query="q=" + raw.replace("+", "%2B")).json()["q"] == value


@pytest.mark.parametrize("raw", ["", "abc", "1.5", "1.", ".0", "1e3", "0x10", "1__0", "_1", "١٢",
                                 "1 .0", "--1", "inf"])
def test_int__refuses_the_rest(typed, raw):
    reply = typed(int).get("/t/{p}", ["1"], query="q=" + raw.replace("+", "%2B"))
    assert reply.status == 422
    assert reply.json()["detail"][0]["type"] == "int_parsing"


@pytest.mark.parametrize("raw, value", [
    ("1.5", 1.5), ("-2", -2.0), ("1e3", 1000.0), (".5", 0.5), ("5.", 5.0), (" 2.5 ", 2.5),
    ("1_000.5", 1000.5),
])
def test_float__accepts(typed, raw, value):
    assert typed(float).get("/t/{p}", ["1"], query="q=" + raw).json()["q"] == value


@pytest.mark.parametrize("raw", ["", "abc", "1,5", "1.2.3", "٣"])
def test_float__refuses(typed, raw):
    reply = typed(float).get("/t/{p}", ["1"], query="q=" + raw)
    assert reply.json()["detail"][0]["type"] == "float_parsing"


@pytest.mark.parametrize("raw", ["true", "True", "TRUE", "1", "yes", "YES", "on", "On", "t", "T",
                                 "y", "Y"])
def test_bool__true_words(typed, raw):
    assert typed(bool).get("/t/{p}", [raw], query="q=" + raw).json() == {"p": True, "q": True}


@pytest.mark.parametrize("raw", ["false", "False", "0", "no", "NO", "off", "OFF", "f", "n", "N"])
def test_bool__false_words(typed, raw):
    assert typed(bool).get("/t/{p}", [raw], query="q=" + raw).json() == {"p": False, "q": False}


@pytest.mark.parametrize("raw", ["", "2", "-1", "maybe", "tru", "yess", " true", "true ", "00",
                                 "enabled"])
def test_bool__anything_else_is_422(typed, raw):
    reply = typed(bool).get("/t/{p}", ["1"], query="q=" + raw.replace(" ", "+"))
    assert reply.status == 422
    assert reply.json()["detail"] == [
        {"type": "bool_parsing", "loc": ["query", "q"], "msg": BOOL_MSG, "input": raw}]


def test_str__and_no_annotation_and_any_keep_the_text(make_client):
    app = App()

    @app.get("/s/{a}/{b}/{c}")
    def handler(a: str, b, c: Any, q: str, r, s: Any):
        return [a, b, c, q, r, s]

    reply = make_client(app).get("/s/{a}/{b}/{c}", ["1", "x%20y", "007"], query="q=1&r=&s=%2B")
    assert reply.json() == ["1", "x y", "007", "1", "", "+"]


def test_optional__unwraps_to_the_inner_type(make_client):
    app = App()

    @app.get("/o")
    def handler(a: Optional[int] = None, b: "int | None" = None, c: float | None = 2.5):
        return [a, b, c]

    client = make_client(app)
    assert client.get("/o", query="a=1&b=2&c=3").json() == [1, 2, 3.0]
    assert client.get("/o").json() == [None, None, 2.5]
    assert client.get("/o", query="b=x").json()["detail"][0]["type"] == "int_parsing"


def test_optional__without_default_is_still_required(make_client):
    app = App()

    @app.get("/r")
    def handler(a: Optional[int]):
        return {"a": a}

    assert make_client(app).get("/r").json()["detail"][0]["type"] == "missing"


# ------------------------------------------------------------------ sources

def test_path__values_are_percent_decoded(make_client):
    app = App()

    @app.get("/f/{name}/{n}")
    def handler(name: str, n: int):
        return {"name": name, "n": n}

    reply = make_client(app).get("/f/{name}/{n}", ["caf%C3%A9%20au%2Flait+x", "%31%32"])
    assert reply.json() == {"name": "café au/lait+x", "n": 12}


def test_path__wins_over_query_of_the_same_name(make_client):
    app = App()
    app.get("/u/{uid}")(lambda uid: {"uid": uid})
    assert make_client(app).get("/u/{uid}", ["path"], query="uid=query").json() == {"uid": "path"}


def test_path__parameter_not_in_the_handler_is_ignored(make_client):
    app = App()
    app.get("/u/{uid}/{extra}")(lambda uid: {"uid": uid})
    assert make_client(app).get("/u/{uid}/{extra}", ["1", "2"]).json() == {"uid": "1"}


def test_query__last_value_wins_and_blank_is_kept(make_client):
    app = App()

    @app.get("/q")
    def handler(a: int, b: str, c: str = "default"):
        return [a, b, c]

    assert make_client(app).get("/q", query="a=1&a=2&b&c=").json() == [2, "", ""]


def test_query__default_used_when_absent_not_converted(make_client):
    sentinel = object()
    app = App()

    @app.get("/q")
    def handler(a: int = sentinel):
        return {"same": a is sentinel}

    assert make_client(app).get("/q", query="b=1").json() == {"same": True}


def test_query__plus_and_percent_are_decoded_in_names_and_values(make_client):
    app = App()
    app.get("/q")(lambda x_y="": {"v": x_y})
    client = make_client(app)
    assert client.get("/q", query="x%5Fy=a+b%26c").json() == {"v": "a b&c"}


def test_request__by_annotation_or_by_name(make_client):
    class MyRequest(Request):
        pass

    app = App()

    @app.get("/a")
    def annotated(r: Request):
        return type(r).__name__

    @app.get("/b")
    def named(request, req):
        return [request is req, request.method]

    @app.get("/c")
    def subclass(anything: MyRequest):
        return anything.method

    client = make_client(app)
    assert client.get("/a").text == "Request"
    assert client.get("/b").json() == [True, "GET"]
    assert client.get("/c").text == "GET"


def test_request__name_that_is_a_path_parameter_is_the_path_value(make_client):
    app = App()
    app.get("/r/{request}")(lambda request: {"v": request})
    assert make_client(app).get("/r/{request}", ["x"]).json() == {"v": "x"}


def test_request__annotated_str_named_request_is_a_query_parameter(make_client):
    app = App()

    @app.get("/s")
    def handler(request: str = "none"):
        return {"v": request}

    assert make_client(app).get("/s", query="request=q").json() == {"v": "q"}


def test_keyword_only_and_positional_only_parameters(make_client):
    app = App()

    def handler(a: int, /, b: int, *, c: int, d: int = 4):
        return [a, b, c, d]
    app.get("/k/{a}")(handler)
    assert make_client(app).get("/k/{a}", ["1"], query="b=2&c=3").json() == [1, 2, 3, 4]


def test_methods_and_partials_work_as_handlers(make_client):
    import functools

    class Handlers:
        def __init__(self, prefix):
            self.prefix = prefix

        def greet(self, name: str):
            return self.prefix + name

    def scaled(factor: int, n: int):
        return {"v": factor * n}

    app = App()
    app.get("/g")(Handlers("hi ").greet)
    app.get("/s")(functools.partial(scaled, 10))
    client = make_client(app)
    assert client.get("/g", query="name=bo").text == "hi bo"
    assert client.get("/s", query="n=3").json() == {"v": 30}


# ------------------------------------------------------------------ query parser

QUERIES = ["", "a", "a=", "=b", "a=1", "a=1&b=2", "a=1&a=2", "&&a=1&&", "a=b=c", "a+b=c+d",
           "%61=%62", "a=%zz", "a=%", "a=%C3%A9", "a=%E9", "a=1;b=2", "é=1", "a=%2B+%20",
           "a&b&c=", "+=+", "a==", "%26=%3D"]


@pytest.mark.parametrize("query", QUERIES)
def test_parse_query_last__matches_parse_qsl(query):
    assert parse_query_last(query) == dict(parse_qsl(query, keep_blank_values=True))


def test_parse_query_last__matches_parse_qsl_on_random_input():
    rng = random.Random(1234)
    alphabet = "ab=&+%2F3é;~ "
    for _ in range(3000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
        assert parse_query_last(query) == dict(parse_qsl(query, keep_blank_values=True)), query


def test_string_annotations_are_resolved(make_client):
    namespace = {}
    exec("from __future__ import annotations\n"
         "from fasterapi import Request\n"
         "def handler(n: int, request: Request, flag: bool = False):\n"
         "    return [n, request.method, flag]\n", namespace)
    app = App()
    app.get("/s/{n}")(namespace["handler"])
    assert make_client(app).get("/s/{n}", ["4"], query="flag=on").json() == [4, "GET", True]


def test_optional_request_is_the_request(make_client):
    app = App()

    @app.get("/o")
    def handler(r: Optional[Request] = None):
        return r.method

    assert make_client(app).get("/o").text == "GET"


def test_async_bound_method_and_callable_object(make_client):
    import asyncio

    class Service:
        async def get(self, n: int):
            return {"n": n}

        async def __call__(self, n: int):
            await asyncio.sleep(0)
            return {"called": n}

    app = App()
    service = Service()
    app.get("/m")(service.get)
    app.get("/c")(service)
    client = make_client(app)
    assert client.get("/m", query="n=1").json() == {"n": 1}
    assert client.get("/c", query="n=2").json() == {"called": 2}
