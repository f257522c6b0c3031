"""Test app for tests/pyworker/check_pyworker.c.

Route ids are dense in registration order; check_pyworker.c names them
(ROUTE_HELLO = 0, ...) and its describe test checks this table, so keep the
two in step.
"""
import time

import _fasterapi
from fasterapi import App, Request, Response

app = App()

_kept = []


@app.get("/hello")                      # 0
def hello():
    return {"hello": "world"}


@app.get("/users/{user_id}")            # 1
def get_user(user_id: int):
    return {"id": user_id}


@app.post("/echo")                      # 2
async def echo(req: Request):
    return Response(await req.body(), media_type="application/octet-stream")


@app.get("/boom")                       # 3
def boom():
    raise RuntimeError("boom: this traceback is expected by the test")


@app.get("/slow")                       # 4
def slow():
    time.sleep(0.005)
    return Response(b"slow", media_type="text/plain")


@app.get("/plain")                      # 5
def plain():
    return Response(b"ok", media_type="text/plain")


@app.get("/info")                       # 6
def info():
    return _fasterapi.worker_info()


# The next three reach for Request._body, the raw argument dispatch received
# (a memoryview over shared memory): only a test of the C side's guard
# against views that outlive the call should do that.

@app.post("/keep")                      # 7
def keep(req: Request):
    _kept.append(req._body[0:4])        # a slice: pins the request's chunk
    return Response(b"kept", media_type="text/plain")


@app.post("/keep_view")                 # 8
def keep_view(req: Request):
    _kept.append(req._body)             # the view itself: released after the call
    return Response(b"kept", media_type="text/plain")


@app.get("/drop")                       # 9
def drop():
    out = []
    for view in _kept:
        try:
            out.append(bytes(view))
        except ValueError:
            out.append(b"released")
    _kept.clear()
    return Response(b",".join(out), media_type="text/plain")


@app.get("/crlf")                       # 10
def crlf():
    return Response(b"x", headers=[("x-bad", "a\r\nset-cookie: evil=1")])


@app.get("/bighead")                    # 11
def bighead():
    return Response(b"x", headers=[("x-big", "a" * 20000)])


@app.get("/huge")                       # 12
def huge():
    return Response(b"x" * (2 << 20), media_type="application/octet-stream")


@app.get("/inspect")                    # 13
def inspect_request(req: Request):
    names = [name for name, _ in req.headers.items()]
    return {"names": names, "long": len(req.headers.get("x-long", "")),
            "latin1": req.headers.get("x-latin1"), "query": req.url.query,
            "method": req.method, "path": req.url.raw_path,
            "client": [req.client.host, req.client.port]}
