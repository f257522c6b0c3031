"""An ASGI 3 app that answers its http scope as JSON (bytes as latin-1
strings), for tests/blackbox/test_asgi_scope.py, plus a few paths that check
receive/send and lifespan."""

import asyncio
import json
import os


def _plain(value):
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, (list, tuple)):
        return {"seq": type(value).__name__, "items": [_plain(v) for v in value]}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("FA_TEST_ASGI_STARTUP_FAIL"):
                    await send({"type": "lifespan.startup.failed",
                                "message": "the database is not there"})
                    return
                scope["state"]["started_pid"] = os.getpid()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                path = os.environ.get("FA_TEST_ASGI_SHUTDOWN_FILE")
                if path:
                    with open(path, "a") as f:
                        f.write(f"shutdown {os.getpid()}\n")
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert scope["type"] == "http"
    path = scope["path"]
    if path.endswith("/chunks"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"x-multi", b"1"),
                                (b"x-multi", b"2")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"chunk%d " % i,
                        "more_body": True})
            await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b"end"})
        return
    if path.endswith("/error"):
        raise RuntimeError("boom from the ASGI app")
    if path.endswith("/disconnect"):
        msg = await receive()
        waiter = asyncio.ensure_future(receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": msg["body"]})
        after = await waiter
        with open(os.environ["FA_TEST_ASGI_DISCONNECT_FILE"], "w") as f:
            f.write(after["type"])
        return
    messages = []
    while True:
        message = await receive()
        messages.append(_plain(message))
        if not message.get("more_body"):
            break
    out = _plain({k: v for k, v in scope.items()})
    out["_messages"] = messages
    out["_types"] = {k: type(v).__name__ for k, v in scope.items()}
    data = json.dumps(out).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


class AppClass:
    """The same app as an instance whose __call__ is a coroutine."""

    async def __call__(self, scope, receive, send):
        await app(scope, receive, send)


instance = AppClass()
