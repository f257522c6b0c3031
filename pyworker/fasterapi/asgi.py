"""Serving an ASGI 3 application (HTTP and lifespan) from a Python worker.

`fasterapi run module:app --interface asgi` (or auto: a coroutine function,
or an object whose __call__ is one, taking three positional parameters)
describes catch-all routes (wsgi.catchall_routes) and dispatches every
request to make_dispatch()'s function: it builds the `http` scope and runs
the app on the worker's event loop, many requests at a time (aio).

A response whose body comes in one message is sent whole (returned by
dispatch when the app got that far without waiting); body messages with
more_body true are streamed as they come, with backpressure (send() waits
while the client is slow). receive() gives the whole request body as one
http.request message (more_body false), then http.disconnect once the
client is gone or the response is complete.

The lifespan protocol runs once per Python worker: Lifespan.startup() from
load() (a startup failure raises with the app's message: the worker does not
start), Lifespan.shutdown() from _boot.shutdown(). An app that raises on the
lifespan scope before receiving its first message does not support it
(uvicorn's "auto"): served without lifespan (noted on stderr when it had
received lifespan.startup). Only lifespan.startup.failed stops the worker.

In front of a fasterapi App: `fasterapi.asgi.mount(app, asgi_app)` (see
docs/wsgi-asgi.md).
"""

import asyncio
import inspect
import sys
import traceback
from contextvars import copy_context
from urllib.parse import unquote

from . import aio
from .aio import event_loop
from .wsgi import _DROPPED, _INTERNAL_ERROR, _server_of, catchall_routes, root_path_from_env

__all__ = ["is_asgi", "make_dispatch", "mount", "Lifespan", "build_scope", "catchall_routes"]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}


def mount(app, asgi_app):
    """Makes asgi_app the fallback of the fasterapi App `app`: the App's own
    routes are served as usual, every other path goes to asgi_app (whose
    lifespan runs too). Returns app."""
    app._fasterapi_fallback = ("asgi", asgi_app)
    return app


def is_asgi(obj):
    """True for an ASGI 3 app: a coroutine function, or an object whose
    __call__ is one, that takes three positional parameters."""
    if inspect.isclass(obj):
        return False
    func = obj
    if not (inspect.iscoroutinefunction(func) or inspect.isfunction(func)
            or inspect.ismethod(func)):
        call = getattr(type(obj), "__call__", None)
        if call is None:
            return False
        func = getattr(obj, "__call__")
    if not inspect.iscoroutinefunction(func) and not \
            inspect.iscoroutinefunction(getattr(func, "__func__", None)):
        return False
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    positional = 0
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional == 3


# ------------------------------------------------------------------ scope

def build_scope(method, path, query, headers, client, root_path, state, http_version="1.1"):
    """The ASGI 3 `http` scope of one request (path and query raw)."""
    decoded = unquote(path)
    if root_path and not (decoded == root_path or decoded.startswith(root_path + "/")):
        # A proxy that strips the prefix: path still includes root_path
        # (ASGI spec; uvicorn does the same).
        decoded = root_path + decoded
    raw_headers = []
    host = None
    for name, value in headers:
        if name == "host" and host is None:
            host = value
        raw_headers.append((name.encode("latin-1"), value.encode("latin-1")))
    server = None
    if host:
        sname, sport = _server_of(host)
        server = (sname, int(sport))
    return {
        "type": "http",
        "asgi": dict(ASGI_VERSION),
        "http_version": http_version,
        "method": method,
        "scheme": "http",
        "path": decoded,
        "raw_path": path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": root_path,
        "headers": raw_headers,
        "client": (client[0], int(client[1])) if client else None,
        "server": server,
        "state": dict(state) if state else {},
    }


# ------------------------------------------------------------------ http

class _Exchange:
    """receive/send of one request.

    The response is sent whole when the app sends its body in one message
    (more_body false), the fast path: dispatch returns it, or responds with
    it if the request was deferred meanwhile. A message with more_body true
    starts a stream (aio: start, then a part per message, each send waiting
    for room). receive() gives the body, then waits: http.disconnect once
    the client is gone or the response is complete."""

    def __init__(self, body):
        self.body = body
        self.request_sent = False
        self.status = None
        self.headers = None
        self.d = None            # the aio.Deferred once the request is deferred
        self.in_dispatch = True  # the app's first step runs inside dispatch
        self.whole = None        # the triple dispatch returns
        self.streaming = False
        self.complete = False    # the response is complete (or cut)
        self.gone = False        # the client went away
        self.done = None         # a future receive() waits on
        self.chunks = None       # the parts, when they cannot be streamed

    def _wake_receive(self):
        if self.done is not None and not self.done.done():
            self.done.set_result(None)

    def disconnected(self):
        """on_disconnect of the deferred request: receive() returns
        http.disconnect, what the app still sends is dropped, and a stream
        is cut (soon, from the loop, not from within the C side's call)."""
        self.gone = True
        self._wake_receive()
        if self.d is not None:
            event_loop().call_soon(self.d.abort)

    async def receive(self):
        if not self.request_sent:
            self.request_sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        if not (self.complete or self.gone):
            if self.done is None:
                self.done = asyncio.get_running_loop().create_future()
            # Shielded: a receive() that is cancelled (Starlette's
            # is_disconnected() polls with a cancelled scope) must not
            # cancel the future the other and later receive() calls wait on.
            await asyncio.shield(self.done)
        return {"type": "http.disconnect"}

    async def send(self, message):
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("http.response.start sent twice")
            status = int(message["status"])
            if not 100 <= status <= 599:
                raise ValueError(f"http.response.start: bad status {status}")
            headers = []
            for name, value in message.get("headers", ()):
                name = bytes(name).decode("latin-1")
                # A stream keeps the app's Content-Length (PROTOCOL.md).
                if name.lower() in _DROPPED and name.lower() != "content-length":
                    continue
                headers.append((name, bytes(value).decode("latin-1")))
            self.status, self.headers = status, headers
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            if self.gone:
                return
            if self.complete:
                raise RuntimeError("http.response.body sent after the response was complete")
            data = bytes(message.get("body", b""))
            more = bool(message.get("more_body", False))
            if self.chunks is not None:       # outside a serve loop: buffered
                self.chunks.append(data)
                if not more:
                    self._send_whole(b"".join(self.chunks))
                return
            if not self.streaming:
                if not more:
                    self._send_whole(data)
                    return
                if not aio.can_defer():
                    self.chunks = [data]
                    return
                self._start_stream()
            if (data or not more) and not await aio.send(self.d, data, more):
                self.gone = True
                self.d.abort()
                self._wake_receive()
                return
            if not more:
                self.complete = True
                self._wake_receive()
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} on an http scope")

    def _send_whole(self, data):
        headers = [h for h in self.headers if h[0].lower() != "content-length"]
        triple = (self.status, headers, data)
        self.complete = True
        self._wake_receive()
        if self.in_dispatch:
            self.whole = triple
        else:
            self.d.respond(triple)

    def _start_stream(self):
        if self.d is None:
            self.d = aio.defer()      # still inside dispatch: deferred now
            self.d.cancel = self.disconnected
        aio.start(self.d, self.status, self.headers)
        self.streaming = True

    def app_done(self, task, where):
        """The app's coroutine ended (on the loop): finishes what it left
        open, logging why."""
        try:
            aio.outcome(task)
        except asyncio.CancelledError:
            return
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            what = "after its response was complete" if self.complete else \
                "(cutting the response)" if self.streaming else "(answering 500)"
            print(f"fasterapi: {where}: the ASGI app raised {what}:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            if not self.complete:
                self.complete = True
                if self.streaming:
                    self.d.abort()
                else:
                    self.d.respond(_INTERNAL_ERROR)
            return
        if self.complete:
            return
        self.complete = True
        self._wake_receive()
        if self.gone:           # the client left: nothing was wanted any more
            self.d.abort()
            return
        if self.streaming:
            print(f"fasterapi: {where}: the ASGI app returned before its streamed response "
                  f"was complete (more_body true): cutting it", file=sys.stderr)
            self.d.abort()
        elif self.status is None:
            print(f"fasterapi: {where}: the ASGI app returned without sending "
                  f"http.response.start, answering 500", file=sys.stderr)
            self.d.respond(_INTERNAL_ERROR)
        else:
            print(f"fasterapi: {where}: the ASGI app returned before its response was "
                  f"complete (no http.response.body): sending it empty", file=sys.stderr)
            self.d.respond((self.status, self.headers, b""))


def make_dispatch(asgi_app, root_path=None, first_id=0, native=None, lifespan=None):
    """dispatch() for asgi_app (see PROTOCOL.md). Route ids below first_id
    go to native. lifespan: the Lifespan whose state the scopes copy.

    The app runs on the worker's loop, many requests at a time; one whose
    first step finishes with the whole response answers inline."""
    if root_path is None:
        root_path = root_path_from_env()

    def dispatch(route_id, method, path, query, params, headers, client, body, flags=0):
        if route_id < first_id:
            return native(route_id, method, path, query, params, headers, client, body, flags)
        ex = None
        try:
            scope = build_scope(method, path, query, headers, client, root_path,
                                lifespan.state if lifespan is not None else None,
                                "1.0" if flags & 4 else "1.1")
            ex = _Exchange(bytes(body))
            try:
                task, _ = aio.step(asgi_app(scope, ex.receive, ex.send), True, copy_context())
            finally:
                ex.in_dispatch = False
            where = f"{method} {path}"
            if task is None:
                # The app returned within dispatch (or outside a serve loop,
                # where step() runs it to the end).
                ex.complete = True
                ex._wake_receive()
                if ex.streaming:
                    if ex.d.open:
                        print(f"fasterapi: {where}: the ASGI app returned before its streamed "
                              f"response was complete (more_body true): cutting it",
                              file=sys.stderr)
                        ex.d.abort()
                    return None
                if ex.whole is not None:
                    return ex.whole
                if ex.status is None:
                    raise RuntimeError("the ASGI app returned without sending "
                                       "http.response.start")
                print(f"fasterapi: {where}: the ASGI app returned before its response was "
                      f"complete (no http.response.body): sending it empty", file=sys.stderr)
                return ex.status, ex.headers, b""
            task.add_done_callback(lambda t: ex.app_done(t, where))
            if ex.whole is not None:
                aio.wake()
                return ex.whole   # the app goes on (background work) on the loop
            if ex.d is None:
                ex.d = aio.defer()
                ex.d.cancel = ex.disconnected
            return None
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            print(f"fasterapi: {method} {path}: the ASGI app raised, answering 500:",
                  file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            if ex is not None:
                # A task of the app still waiting in receive() gets its
                # http.disconnect (the request is over), not a hang.
                ex.complete = True
                ex._wake_receive()
                if ex.streaming:
                    ex.d.abort()
                    return None
            return _INTERNAL_ERROR

    return dispatch


# ------------------------------------------------------------------ lifespan

class LifespanFailed(RuntimeError):
    pass


class Lifespan:
    """The lifespan protocol of one ASGI app in this worker."""

    def __init__(self, app):
        self.app = app
        self.state = {}
        self.supported = True
        self.task = None
        self._inbox = []          # messages for the app's receive()
        self._waiter = None       # the future receive() waits on
        self._event = None        # set by send() (startup/shutdown complete or failed)
        self._reply = None
        self._received = 0
        self.started = False

    async def _receive(self):
        while not self._inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        self._received += 1
        return self._inbox.pop(0)

    async def _send(self, message):
        if not str(message.get("type", "")).startswith("lifespan."):
            raise RuntimeError(f"unexpected ASGI message type {message.get('type')!r} on a "
                               f"lifespan scope")
        self._reply = message
        if self._event is not None and not self._event.done():
            self._event.set_result(message)

    def _put(self, message):
        self._inbox.append(message)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _main(self):
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        finally:
            if self._event is not None and not self._event.done():
                self._event.set_result(None)

    def _wait(self):
        loop = event_loop()
        self._event = loop.create_future()
        if self.task is None:
            self.task = loop.create_task(self._main(), context=copy_context())
            aio.park(self.task)
        if not self.task.done():
            # Wait for the app's answer (or for its coroutine to end).
            waiter = loop.create_future()

            def wake(_):
                if not waiter.done():
                    waiter.set_result(None)
            self._event.add_done_callback(wake)
            self.task.add_done_callback(wake)
            loop.run_until_complete(waiter)
        reply = self._event.result() if self._event.done() else None
        return reply

    def startup(self):
        """Runs lifespan.startup. Raises LifespanFailed (with the app's
        message) if the app answers lifespan.startup.failed; an app that
        raises instead, or returns, does not support lifespan (then this
        returns; served without lifespan)."""
        self._put({"type": "lifespan.startup"})
        reply = self._wait()
        if reply is not None and reply.get("type") == "lifespan.startup.complete":
            self.started = True
            return
        if reply is not None and reply.get("type") == "lifespan.startup.failed":
            raise LifespanFailed(f"ASGI lifespan startup failed: {reply.get('message', '')}")
        task = self.task
        exc = task.exception() if task.done() and not task.cancelled() else None
        if exc is not None:
            # Raised without answering lifespan.startup.failed: the app does
            # not support lifespan (uvicorn's "auto" does the same).
            self.supported = False
            if self._received:
                print(f"fasterapi: the ASGI app raised {exc!r} on the lifespan scope: "
                      f"lifespan unsupported, serving without it", file=sys.stderr)
                sys.stderr.flush()
            return
        if task.done():
            self.supported = False         # returned without answering
            return
        raise LifespanFailed(f"ASGI lifespan startup: unexpected message {reply!r}")

    def shutdown(self):
        """Runs lifespan.shutdown (if startup completed). Raises
        LifespanFailed with the app's message on failure."""
        if not self.started or self.task is None or self.task.done():
            return
        self.started = False
        self._put({"type": "lifespan.shutdown"})
        reply = self._wait()
        if reply is not None and reply.get("type") == "lifespan.shutdown.failed":
            raise LifespanFailed(f"ASGI lifespan shutdown failed: {reply.get('message', '')}")
        task = self.task
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise LifespanFailed(f"ASGI lifespan shutdown failed: {task.exception()!r}")
