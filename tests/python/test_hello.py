"""examples/hello.py, loaded by its spec as the server does."""

import pytest

from conftest import Reply
from fasterapi import _boot

SPEC = "examples.hello:app"


@pytest.fixture(scope="module")
def hello():
    table = _boot.describe(SPEC)
    dispatch = _boot.load(SPEC)
    ids = {(m, p): rid for rid, m, p, *_ in table}

    def call(method, pattern, params=(), query="", headers=(), body=b""):
        route = ids[("GET" if method == "HEAD" else method, pattern)]
        path = pattern
        for value in params:
            path = path[:path.index("{")] + value + path[path.index("}") + 1:]
        return Reply(*dispatch(route, method, path, query, tuple(params), list(headers),
                               ("127.0.0.1", 1234), body))
    call.table = table
    return call


def test_hello__route_table(hello):
    assert hello.table == [
        (0, "GET", "/plaintext", "python", {}),
        (1, "GET", "/json", "python", {}),
        (2, "GET", "/users/{user_id}", "python", {}),
        (3, "POST", "/echo", "python", {}),
        (4, "GET", "/items/{item_id}", "python", {}),
        (5, "POST", "/items", "python", {}),
        (6, "GET", "/sleep", "python", {}),
        (7, "GET", "/openapi.json", "python", {}),
        (8, "GET", "/docs", "python", {}),
        (9, "GET", "/docs/swagger-ui-bundle.js", "python", {}),
        (10, "GET", "/docs/swagger-ui.css", "python", {}),
        (11, "GET", "/docs/favicon.png", "python", {}),
    ]


def test_hello__plaintext_and_json(hello):
    assert hello("GET", "/plaintext") == (
        200, [("content-type", "text/plain; charset=utf-8")], b"Hello, World!")
    assert hello("GET", "/json") == (
        200, [("content-type", "application/json")], b'{"message":"Hello, World!"}')
    assert hello("HEAD", "/json").body == b'{"message":"Hello, World!"}'


def test_hello__users(hello):
    assert hello("GET", "/users/{user_id}", ["7"]).body == b'{"id":7}'
    assert hello("GET", "/users/{user_id}", ["7"], query="verbose=false").body == b'{"id":7}'
    assert hello("GET", "/users/{user_id}", ["7"], query="verbose=true").body == \
        b'{"id":7,"verbose":true}'
    reply = hello("GET", "/users/{user_id}", ["abc"])
    assert reply.status == 422
    assert reply.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_hello__echo(hello):
    reply = hello("POST", "/echo", headers=[("content-type", "text/x-note")],
                  body=memoryview(b"note body"))
    assert reply == (200, [("content-type", "text/x-note")], b"note body")
    reply = hello("POST", "/echo", body=b"\x00\x01")
    assert reply == (200, [("content-type", "application/octet-stream")], b"\x00\x01")


def test_hello__items(hello):
    assert hello("GET", "/items/{item_id}", ["1"]).json() == {"id": 1, "name": "book"}
    assert hello("GET", "/items/{item_id}", ["999"]) == (
        404, [("content-type", "application/json")], b'{"detail":"no item 999"}')
    created = hello("POST", "/items", body=b'{"name": "pen"}')
    assert created.status == 201
    item = created.json()
    assert item["name"] == "pen" and item["id"] > 1
    assert hello("GET", "/items/{item_id}", [str(item["id"])]).json() == item
    assert hello("POST", "/items", body=b"[1]").status == 400
    assert hello("POST", "/items", body=b"{oops").json() == {"detail": "the body is not valid JSON"}


def test_hello__sleep_really_waits(hello):
    assert hello("GET", "/sleep", query="ms=1").json() == {"slept_ms": 1.0}
