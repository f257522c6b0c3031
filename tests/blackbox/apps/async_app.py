"""A FasterAPI app for tests/blackbox/test_async_concurrency.py and
test_streaming.py: async handlers that wait (a timer, a socket), a blocking
plain def handler (--py-threads), and streamed responses whose generators
report what they did in files under FA_TEST_STREAM_DIR (the test reads them
while the worker may be busy)."""

import asyncio
import os
import time

from fasterapi import App, Depends, StreamingResponse

app = App()


def _note(name, text):
    """Appends a line to FA_TEST_STREAM_DIR/name, at once (flushed)."""
    with open(os.path.join(os.environ["FA_TEST_STREAM_DIR"], name), "a") as f:
        f.write(text + "\n")


@app.get("/sleep")
async def sleep(t: float = 0.5):
    await asyncio.sleep(t)
    return {"slept": t, "pid": os.getpid()}


@app.get("/now")
async def now():
    return {"pid": os.getpid()}


@app.get("/socket")
async def socket_wait(port: int):
    """Connects to 127.0.0.1:port and answers the first line it reads."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        line = await reader.readline()
    finally:
        writer.close()
    return {"line": line.decode().strip()}


@app.get("/block")
def block(t: float = 0.5):
    time.sleep(t)
    return {"slept": t}


def _dependency():
    return "dep"


@app.get("/block-dep")
def block_dep(t: float = 0.5, d: str = Depends(_dependency)):
    """A plain def handler on the general path (it has a dependency)."""
    time.sleep(t)
    return {"slept": t, "d": d}


# ------------------------------------------------------------------ streams

@app.get("/stream/sync")
def stream_sync(n: int = 5):
    def parts():
        for i in range(n):
            yield f"part {i}\n"
    return StreamingResponse(parts(), media_type="text/plain",
                             headers={"x-stream": "sync"})


@app.get("/stream/async")
async def stream_async(n: int = 5):
    async def parts():
        for i in range(n):
            await asyncio.sleep(0.01)
            yield f"part {i}\n".encode()
    return StreamingResponse(parts(), media_type="text/plain",
                             headers={"x-stream": "async"})


_BLOCK = b"x" * 65536


@app.get("/stream/big-sync")
def big_sync(tag: str, n: int = 1000):
    """n 64 KiB parts; notes each one it made in the file `tag`."""
    def parts():
        try:
            for i in range(n):
                _note(tag, str(i))
                yield _BLOCK
        finally:
            _note(tag, "closed")
    return StreamingResponse(parts(), media_type="application/octet-stream")


@app.get("/stream/big-async")
async def big_async(tag: str, n: int = 1000):
    async def parts():
        try:
            for i in range(n):
                _note(tag, str(i))
                yield _BLOCK
        finally:
            _note(tag, "closed")
    return StreamingResponse(parts(), media_type="application/octet-stream")


@app.get("/stream/forever")
def forever(tag: str, kind: str = "async"):
    """A part every 20 ms until the client goes away; notes "closed" then."""
    async def agen():
        try:
            while True:
                yield b"tick\n"
                await asyncio.sleep(0.02)
        finally:
            _note(tag, "closed")

    def gen():
        try:
            while True:
                yield b"tick\n"
                time.sleep(0.02)
        finally:
            _note(tag, "closed")
    return StreamingResponse(agen() if kind == "async" else gen(), media_type="text/plain")


@app.get("/stream/raises")
async def raises(kind: str = "async"):
    async def agen():
        yield b"first part\n"
        await asyncio.sleep(0.01)
        raise RuntimeError("the stream broke")

    def gen():
        yield b"first part\n"
        raise RuntimeError("the stream broke")
    return StreamingResponse(agen() if kind == "async" else gen())
