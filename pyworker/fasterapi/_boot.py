"""Where fasterapi-pyworker (C) meets the package: describe() and load().

See pyworker/PROTOCOL.md. describe(spec) returns the route table; load(spec)
returns dispatch(), which the C side calls once per request and which never
raises for a handler's error (it answers 500 and prints the traceback).
"""

import asyncio
import importlib
import sys
import traceback
import types
from asyncio import events as _events
from contextvars import copy_context as _copy_context

from .app import App
from .exceptions import HTTPException, RequestValidationError
from .request import Request
from .responses import (INTERNAL_ERROR, render_http_exception, render_result,
                        render_validation_error)

__all__ = ["describe", "load"]


# ------------------------------------------------------------------ specs

def _import_app(spec):
    """The App named by "module:attr" (attr may be dotted). An import error
    of the module itself propagates unchanged, so its traceback shows the
    cause; a bad spec, a missing attribute or a non-App raise ValueError,
    ImportError or TypeError naming the spec."""
    if not isinstance(spec, str):
        raise TypeError(f"expected MODULE:ATTR as a str, got {type(spec).__name__}")
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr or \
            not all(part.isidentifier() for part in attr.split(".")):
        raise ValueError(f"expected MODULE:ATTR, got {spec!r}")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"cannot load {spec!r}: module {module_name!r} has no attribute "
                              f"{attr!r}", name=module_name) from None
    if not isinstance(obj, App):
        kind = type(obj)
        raise TypeError(f"cannot load {spec!r}: {attr!r} is a {kind.__module__}."
                        f"{kind.__qualname__}, not a fasterapi.App (create it with "
                        f"`app = fasterapi.App()`)")
    return obj


def describe(spec):
    """The app's route table: [(route_id, method, pattern, "python"), ...]."""
    return _import_app(spec).describe()


def load(spec):
    """Imports the app and returns its dispatch function (see _make_dispatch)."""
    return _make_dispatch(_import_app(spec))


# ------------------------------------------------------------------ coroutines
#
# For now a worker runs one request at a time and no event loop runs between
# requests. A coroutine handler that cannot suspend (its body has no await,
# async with or async for: see app._may_suspend) is finished with one
# send(None). One that can is run as a Task whose first step runs at once in
# the caller (what Python 3.12 calls an eager task): usually it completes in
# that step (awaiting request.json() does not suspend), and only when it
# really waits does the loop run until it is done. Being a real Task, it has
# asyncio.current_task() (asyncio.timeout, TaskGroup need it), and a future it
# awaits belongs to the loop that will resume it. Either way the coroutine
# runs in the request's own context (see dispatch). While a step runs the loop is marked as running, so that
# get_running_loop() and create_task() work in the handler.
#
# Known limit until the worker runs its loop continuously: a task the handler
# starts and does not await runs only while some later handler waits.

_loop = None


def _event_loop():
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop


if sys.version_info[:2] == (3, 11) and hasattr(getattr(asyncio.tasks, "_PyTask", None),
                                               "_Task__step"):
    class _EagerTask(asyncio.tasks._PyTask):
        """A Task whose first step runs in the constructor (3.11's pure-Python
        Task with call_soon(__step) replaced by a direct call). Construct it
        with the loop marked as running."""

        def __init__(self, coro, loop, context):
            asyncio.futures._PyFuture.__init__(self, loop=loop)
            self._name = "fasterapi-handler"
            self._num_cancels_requested = 0
            self._must_cancel = False
            self._fut_waiter = None
            self._coro = coro
            self._context = context
            asyncio.tasks._register_task(self)
            context.run(self._Task__step)
            del self   # see _run_coroutine: this frame is on a failed step's traceback
else:   # another Python: a plain Task, run by the loop from the start
    _EagerTask = None


def _run_coroutine(coro, suspends, context):
    """Runs a handler's coroutine to completion in `context` and returns its
    result (or raises its exception). suspends: False if it cannot."""
    loop = _loop or _event_loop()
    if not suspends:
        _events._set_running_loop(loop)
        try:
            context.run(coro.send, None)
        except StopIteration as done:
            return done.value
        finally:
            _events._set_running_loop(None)
        coro.close()   # cannot happen: app._may_suspend saw no await in its code
        raise RuntimeError(f"{coro.__qualname__}: a coroutine without await suspended")
    if _EagerTask is None:
        task = loop.create_task(coro, context=context)
    else:
        _events._set_running_loop(loop)
        try:
            task = _EagerTask(coro, loop, context)
        finally:
            _events._set_running_loop(None)
    if not task.done():
        waiter = loop.create_future()   # run_until_complete(task) would raise with task in a frame
        task.add_done_callback(lambda _: waiter.set_result(None))
        loop.run_until_complete(waiter)
    # Not task.result(): the exception's traceback reaches (through f_back)
    # every frame that was on the stack, this one included; if one of them
    # still refers to the task when the exception escapes, the cycle task ->
    # exception -> traceback -> frames -> task keeps the request's frames,
    # and dispatch's body view, alive until the next garbage collection.
    exc = task.exception()
    if exc is None:
        return task.result()
    del task
    try:
        raise exc
    finally:
        del exc


# ------------------------------------------------------------------ dispatch

_CoroutineType = types.CoroutineType


def _report(routes, route_id, method, path):
    route = routes[route_id] if 0 <= route_id < len(routes) else None
    where = f"route {route_id} ({route.method} {route.path} -> {route.name})" \
        if route is not None else f"route {route_id} (no such route)"
    print(f"fasterapi: {method} {path}: {where} raised, answering 500:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


def _make_dispatch(app):
    routes = app._freeze()

    def dispatch(route_id, method, path, query, params, headers, client, body):
        """Serves one request: see PROTOCOL.md for the arguments. Returns
        (status, [(name, value), ...], body bytes)."""
        request = None
        try:
            try:
                route = routes[route_id]
                if route.needs_request:
                    request = Request(method, path, query, params, headers, client, body, route)
                # Each request runs in its own copy of the context, as in
                # Starlette: a ContextVar set by one handler does not leak.
                context = _copy_context()
                result = context.run(route.call, *route.bind(params, query, request))
                if route.is_async or type(result) is _CoroutineType:
                    result = _run_coroutine(result, route.suspends, context)
                return render_result(result)
            except HTTPException as exc:
                return render_http_exception(exc)
            except RequestValidationError as exc:
                return render_validation_error(exc)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            _report(routes, route_id, method, path)
            return INTERNAL_ERROR
        finally:
            if request is not None:
                request._release()

    return dispatch
