"""Protocol test app for check_pyworker.c (--app proto_app:dispatch,
--app-dir tests/pyworker/proto). dispatch is called by the C side directly
(see fasterapi/_boot.py here) and returns what PROTOCOL.md allows, so that
each way of answering can be checked from the HTTP worker's side.

Route ids: keep in step with the PROTO_* enum in check_pyworker.c.
"""
import dataclasses
import json
import os
import sys
import time

ROUTES = [(i, "GET", f"/r{i}", "python") for i in range(21)]
ROUTES.append((21, "GET", "/static", "static", {"status": 200, "body": b"\x00bin",
                                                "headers": [["x-a", "b"]], "content_type": None,
                                                "n": [1.5, -5, 2**64 - 1, True, (1, "t")]}))
ROUTES.append((22, "GET", "/hello", "python"))

# $FA_TEST_LAZY=1: dispatch gets the headers as a _fasterapi.RequestHeaders.
LAZY_HEADERS = os.environ.get("FA_TEST_LAZY") == "1"

JSON = [("content-type", "application/json")]
TEXT = [("content-type", "text/plain")]

VALUE = {"message": "Hello, World!", "é": ["日本", "😀", -0.0, 1e308, 5e-324, 2**70, None,
                                          True, False, "\x00\x1f\"\\\n"], "n": {"1": [[], {}]}}
BIG = [{"id": i, "name": f"item {i} é", "tags": ["a", "b\n"], "price": i * 0.1}
       for i in range(3000)]
HUGE = ["x" * 1000] * 2000      # 2 MB of JSON: more than the 1 MiB arena


@dataclasses.dataclass
class Point:
    x: int
    y: float


class Money:
    def __json__(self):
        return {"cents": 5}


_after_log = []
_kept_headers = []


def _ref(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def _after():
    # Waits for the test to say it has the response: if C ran this hook
    # before publishing the response, the test could not say so.
    go = os.path.join(os.environ["FA_TEST_DIR"], "after-go")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if os.path.exists(go):
            _after_log.append("go")
            return
        time.sleep(0.002)
    _after_log.append("timeout")


def _after_raises():
    _after_log.append("raised")
    raise RuntimeError("after-hook failure: this traceback is expected by the test")


HELLO = {"hello": "world"}


def dispatch(route_id, method, path, query, params, headers, client, body, flags=0):
    if route_id == 22:                           # the throughput test's: as little Python as can be
        return 200, JSON, HELLO
    if route_id == 0:
        return 200, JSON, VALUE
    if route_id == 1:
        return 200, JSON, _ref(VALUE)
    if route_id == 2:
        return 200, JSON, BIG
    if route_id == 3:
        return 200, JSON, _ref(BIG)
    if route_id == 4:
        return 200, JSON, {"a": [1, {"tags": {1, 2}}]}
    if route_id == 5:
        return 200, JSON, HUGE
    if route_id == 6:
        return 200, TEXT, bytearray(b"bytearray body")
    if route_id == 7:
        return 200, TEXT, body                       # the request's own memoryview
    if route_id == 8:
        return 200, TEXT, memoryview(body)[1:-1]
    if route_id == 9:
        return 200, TEXT, memoryview(b"abcdef")[::2]  # not contiguous
    if route_id == 10:
        return 200, JSON, {"ok": True}, _after
    if route_id == 11:
        return 200, JSON, {"ok": True}, _after_raises
    if route_id == 12:
        out = list(_after_log)
        _after_log.clear()
        return 200, JSON, out
    if route_id == 13:
        name = os.fsencode("/srv/files/café 日本.txt").decode("latin-1")
        return 200, [("x-fasterapi-sendfile", name), ("content-type", "text/plain")], b""
    if route_id == 14:
        return 200, JSON, "a str body"
    if route_id == 15:
        return 200, JSON, [Point(1, 2.5), Money()], None
    if route_id == 16:
        return 200, JSON, _ref([Point(1, 2.5).__dict__, {"cents": 5}])
    if route_id == 17:
        return 200, JSON, [list(pair) for pair in headers]
    if route_id == 18:
        _kept_headers.append(headers)        # kept, never read during the call
        return 200, TEXT, b"kept"
    if route_id == 19:
        out = [[list(pair) for pair in h] for h in _kept_headers]
        _kept_headers.clear()
        return 200, JSON, out
    if route_id == 20:
        first = headers[0] if len(headers) else None
        return 200, JSON, {"type": type(headers).__name__, "len": len(headers), "first": first,
                           "last": headers[-1] if len(headers) else None,
                           "slice": [list(p) for p in headers[0:1]],
                           "contains": ("host", "localhost") in headers,
                           "eq": headers == list(headers), "copy": headers[:] == list(headers)}
    return 404, TEXT, b"no such route"


def shutdown():
    with open(os.path.join(os.environ["FA_TEST_DIR"], "shutdown"), "w") as f:
        f.write("shutdown ran")
    print("proto_app: shutdown ran", file=sys.stderr)
