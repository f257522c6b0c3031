"""A real FastAPI app (Debian's python3-fastapi) for
tests/blackbox/test_asgi_streaming.py: Starlette's StreamingResponse over
async and sync generators, one that runs until the client goes away (its
finally notes it in FA_TEST_STREAM_DIR), and the scope's http_version."""

import asyncio
import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


def _note(name, text):
    with open(os.path.join(os.environ["FA_TEST_STREAM_DIR"], name), "a") as f:
        f.write(text + "\n")


@app.get("/stream")
async def stream(n: int = 4):
    async def parts():
        for i in range(n):
            await asyncio.sleep(0.01)
            yield f"part {i}\n"
    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/stream-sync")
def stream_sync(n: int = 4):
    def parts():     # Starlette iterates it in anyio's thread pool
        for i in range(n):
            time.sleep(0.01)
            yield f"sync {i}\n"
    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/forever")
async def forever(tag: str):
    async def parts():
        try:
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.02)
        finally:
            _note(tag, "closed")
    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/wait-disconnect")
async def wait_disconnect(request: Request, tag: str):
    """Answers only once the client is gone (which then sees nothing)."""
    while not await request.is_disconnected():
        await asyncio.sleep(0.02)
    _note(tag, "disconnected")
    return {"too": "late"}


@app.get("/version")
async def version(request: Request):
    return {"http_version": request.scope["http_version"]}


@app.get("/sleep")
async def sleep(t: float = 0.5):
    await asyncio.sleep(t)
    return {"pid": os.getpid()}
