"""examples/shop.py, driven through _boot as the server does."""

import pytest

from fasterapi import _boot


@pytest.fixture(scope="module")
def shop():
    table = _boot.describe("examples.shop:app")
    dispatch = _boot.load("examples.shop:app")
    ids = {(m, p): rid for rid, m, p, *_ in table}

    def call(method, pattern, params=(), query="", headers=(), body=b""):
        result = dispatch(ids[(method, pattern)], method, pattern, query, tuple(params),
                          list(headers), ("127.0.0.1", 1), body)
        if len(result) == 4:
            result[3]()
        return result
    call.table = table
    yield call
    _boot.shutdown()


def test_shop__static_health_is_a_c_route(shop):
    assert shop.table[0] == (0, "GET", "/health", "static", {
        "status": 200, "content_type": "text/plain; charset=utf-8", "headers": [],
        "body": b"ok"})


def test_shop__list_filters_and_validates(shop):
    import json
    status, headers, body = shop("GET", "/items", query="tag=paper&limit=5")[:3]
    assert status == 200 and json.loads(body) == [{"id": 1, "name": "book", "price": 12.0}]
    assert dict(headers)["x-process-time"].endswith("us")
    assert shop("GET", "/items", query="limit=0")[0] == 422


def test_shop__create_needs_the_token_and_audits_after(shop):
    import json
    body = json.dumps({"name": "pen", "price": 1.5}).encode()
    ctype = [("content-type", "application/json")]
    assert shop("POST", "/items", headers=ctype, body=body)[0] == 422      # no x-token
    assert shop("POST", "/items", headers=ctype + [("x-token", "no")], body=body)[0] == 403
    status, _, out = shop("POST", "/items", headers=ctype + [("x-token", "secret")],
                          body=body)[:3]
    assert status == 201 and json.loads(out)["name"] == "pen"
    assert json.loads(shop("GET", "/audit")[2]) == [f"created {json.loads(out)['id']}"]


def test_shop__exception_handler_and_docs(shop):
    status, _, body = shop("POST", "/items/{item_id}/buy", ["1"])[:3]
    assert (status, body) == (409, b'{"detail":"book is out of stock"}')
    assert b'"/items/{item_id}"' in shop("GET", "/openapi.json")[2]
