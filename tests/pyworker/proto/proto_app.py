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
ROUTES += [(i, "GET", f"/r{i}", "python") for i in range(23, 34)]   # deferred, streams

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
    if route_id >= 23:
        return _deferred(route_id, body, flags)
    return 404, TEXT, b"no such route"


# ---------------------------------------------------------------- deferred
# PROTOCOL.md, "Deferred and streamed responses": each route uses
# _fasterapi's functions one way; the loop is fasterapi/_boot.py's here.

def _mark(name, text=""):
    with open(os.path.join(os.environ["FA_TEST_DIR"], name), "a") as f:
        f.write(text)


def _deferred(route_id, body, flags):
    import _fasterapi as fa
    from fasterapi._boot import LOOP as loop

    if route_id == 23:        # answered 50 ms later from the loop, with the request body
        rid = fa.defer()
        loop.call_later(0.05, lambda: fa.respond(rid, (200, TEXT, b"later:" + bytes(body))))
        return None
    if route_id == 24:        # a stream written inside dispatch: parts, an empty one, the last
        rid = fa.defer()
        fa.start(rid, 201, TEXT + [("x-stream", "yes")])
        assert fa.send(rid, b"one,") and fa.send(rid, b"") and fa.send(rid, b"two,")
        assert fa.send(rid, b"three", more=False)
        return None
    if route_id == 25:        # backpressure: send(block=False) until refused, then poll
        rid = fa.defer()
        fa.start(rid, 200, TEXT)
        n = 0
        while fa.send(rid, b"x", block=False):
            n += 1

        def more():
            if not fa.writable(rid):
                loop.call_later(0.001, more)
                return
            fa.send(rid, b"y")
            fa.send(rid, str(n).encode(), more=False)
        loop.call_soon(more)
        return None
    if route_id == 26:        # on_disconnect answers (the client is gone: 500 is fine)
        rid = None

        def gone():
            _mark("gone", "1")
            fa.abort(rid)
        rid = fa.defer(on_disconnect=gone)
        return None
    if route_id == 27:        # a sync stream that runs until its client is gone
        rid = fa.defer()
        fa.start(rid, 200, TEXT)
        sent = 0
        while fa.send(rid, b"z" * 1000):
            sent += 1
        _mark("stream-gone", f"{sent} {fa.disconnected(rid)}")
        fa.abort(rid)
        return None
    if route_id == 28:        # never answered: the deadline (FASTERAPI_TIMEOUT) does it
        fa.defer(on_disconnect=lambda: _mark("deadline", "1"))
        return None
    if route_id == 29:        # concurrency: how many are open, answered 100 ms later
        rid = fa.defer()
        open_now = fa.pending()
        loop.call_later(0.1, lambda: fa.respond(rid, (200, TEXT, str(open_now).encode())))
        return None
    if route_id == 30:        # the request flags
        return 200, TEXT, str(flags).encode()
    if route_id == 31:        # defer() twice; respond() inside dispatch
        rid = fa.defer()
        try:
            fa.defer()
        except RuntimeError as e:
            fa.respond(rid, (200, TEXT, str(e).encode()))
        return None
    if route_id == 32:        # dispatch raises after defer(): 500
        fa.defer()
        raise RuntimeError("raised after defer(): this traceback is expected by the test")
    if route_id == 33:        # stream aborted after a part; a late call with the rid is ignored
        rid = fa.defer()
        fa.start(rid, 200, TEXT)
        fa.send(rid, b"partial")
        fa.abort(rid)
        fa.respond(rid, (200, TEXT, b"ignored"))
        assert fa.send(rid, b"ignored") is False
        return None
    return 404, TEXT, b"no such route"


def shutdown():
    with open(os.path.join(os.environ["FA_TEST_DIR"], "shutdown"), "w") as f:
        f.write("shutdown ran")
    print("proto_app: shutdown ran", file=sys.stderr)
