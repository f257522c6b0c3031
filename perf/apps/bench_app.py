"""The benchmark app: one source for FasterAPI and for FastAPI.

    fasterapi run bench_app:app --app-dir perf/apps             (FasterAPI)
    BENCH_FRAMEWORK=fastapi uvicorn bench_app:app --app-dir perf/apps

Only the import differs (`from fasterapi import FastAPI` vs `from fastapi
import FastAPI`); the handlers are the same code. perf/apps/bench_wsgi.py is
the same logic as a plain WSGI app (uWSGI, gunicorn), and perf/bench.py's
nginx config returns the same bodies.

    GET  /plaintext                 "Hello, World!" (text/plain), Python
    GET  /json                      {"message":"Hello, World!"}
    GET  /users/{user_id}?verbose=  typed path + query: {"id":7,"verbose":true}
    GET  /ausers/{user_id}?verbose= the same handler as async def
    POST /echo                      the request body back, same content-type
    GET  /bytes64k                  65536 bytes (application/octet-stream)
    GET  /async                     async def, awaits asyncio.sleep(0), JSON
    GET  /native/plaintext          FasterAPI only, when app.static exists:
                                    "Hello, World!" answered in C, no Python
"""

import asyncio
import os

if os.environ.get("BENCH_FRAMEWORK") == "fastapi":
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, Response
else:
    from fasterapi import FastAPI, PlainTextResponse, Request, Response

app = FastAPI()

BODY_64K = b"x" * 65536


@app.get("/plaintext")
def plaintext():
    return PlainTextResponse("Hello, World!")


@app.get("/json")
def json_hello():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
def get_user(user_id: int, verbose: bool = False):
    user = {"id": user_id}
    if verbose:
        user["verbose"] = True
    return user


@app.get("/ausers/{user_id}")
async def get_user_async(user_id: int, verbose: bool = False):
    # The same handler as async def: FastAPI runs a plain def in a thread
    # pool, an async def on the event loop, so uvicorn is shown both ways.
    user = {"id": user_id}
    if verbose:
        user["verbose"] = True
    return user


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))


@app.get("/bytes64k")
def bytes64k():
    return Response(BODY_64K, media_type="application/octet-stream")


@app.get("/async")
async def async_hello():
    await asyncio.sleep(0)
    return {"message": "Hello, World!"}


# The same body as /plaintext, precomputed and answered by the HTTP worker in
# C (issue 3's app.static). Registered only where the server has it; the
# harness falls back to the Python /plaintext (and says so) when it is absent.
if hasattr(app, "static") and os.environ.get("BENCH_FRAMEWORK") != "fastapi":
    app.static("/native/plaintext", b"Hello, World!", content_type="text/plain")
