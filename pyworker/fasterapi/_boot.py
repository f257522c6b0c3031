"""Where fasterapi-pyworker (C) meets the package: describe(), load() and
shutdown().

See pyworker/PROTOCOL.md. describe(spec) returns the route table; load(spec)
runs the app's startup (lifespan) and returns dispatch(), which the C side
calls once per request and which never raises for a handler's error (it
answers 500 and prints the traceback); shutdown() runs the app's shutdown
when the worker exits. loop_step() and loop_wait() (from aio) let the C
serve loop drive the worker's asyncio loop, on which deferred requests
(async handlers that wait, --py-threads, streamed responses) finish.

MODULE:ATTR may also name a WSGI or ASGI application (FASTERAPI_INTERFACE,
from `fasterapi run --interface`, default auto: see _import_any and
docs/wsgi-asgi.md): describe() then gives catch-all routes (wsgi.
catchall_routes) and load() the dispatch of fasterapi.wsgi / fasterapi.asgi
(ASGI lifespan startup in load(), shutdown in shutdown()). A fasterapi App
with a WSGI/ASGI app mounted (wsgi.mount / asgi.mount) gives its own rows,
then the catch-all rows, which go to the mounted app.
"""

import importlib
import os
import sys
import traceback
import types
from asyncio import CancelledError
from contextvars import copy_context as _copy_context

from .aio import (defer_task, defer_to_thread, drain, event_loop, in_thread, kick, loop_step,
                  loop_wait, outcome, run_coroutine, run_soon, step, threads)
from .app import App
from .background import make_after, tasks_of
from .binding import RequestContext, close_exits
from .exceptions import HTTPException, RequestValidationError
from .request import Request
from .responses import (INTERNAL_ERROR, render_http_exception, render_validation_error)

__all__ = ["describe", "load", "shutdown", "loop_step", "loop_wait"]

# Kept under their old names (tests and tools use them).
_event_loop = event_loop
_run_coroutine = run_coroutine


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


def _import_any(spec):
    """(interface, obj) for spec: interface is "native", "wsgi" or "asgi",
    from FASTERAPI_INTERFACE (auto|native|wsgi|asgi, default auto; set by
    `fasterapi run --interface`). auto: an App is native, an ASGI 3 callable
    (asgi.is_asgi) is asgi, any other callable wsgi."""
    interface = os.environ.get("FASTERAPI_INTERFACE", "auto") or "auto"
    if interface not in ("auto", "native", "wsgi", "asgi"):
        raise ValueError(f"FASTERAPI_INTERFACE: expected auto, native, wsgi or asgi, "
                         f"got {interface!r}")
    if interface == "native":
        return "native", _import_app(spec)
    try:
        return "native" if interface == "auto" else None, _import_app(spec)
    except TypeError as exc:
        if "not a fasterapi.App" not in str(exc):
            raise
        not_app = exc
    obj = _import_attr(spec)
    if not callable(obj):
        raise TypeError(str(not_app).replace("not a fasterapi.App",
                                             "not a fasterapi.App, nor a WSGI or ASGI "
                                             "callable")) from None
    if interface == "auto":
        from .asgi import is_asgi
        interface = "asgi" if is_asgi(obj) else "wsgi"
    return interface, obj


def _import_attr(spec):
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve(spec):
    """(interface, app, fallback): app the fasterapi App (or None), fallback
    (kind, callable) of a WSGI/ASGI app (or None)."""
    interface, obj = _import_any(spec)
    if interface is None:
        # --interface wsgi|asgi with a fasterapi App: its fallback, if mounted.
        fb = getattr(obj, "_fasterapi_fallback", None)
        wanted = os.environ.get("FASTERAPI_INTERFACE")
        if fb is None or fb[0] != wanted:
            raise TypeError(f"cannot load {spec!r} with --interface {wanted}: it is a "
                            f"fasterapi.App (use --interface native or auto, or mount a "
                            f"{wanted.upper()} app on it with fasterapi.{wanted}.mount)")
        return "native", obj, fb
    if interface == "native":
        return "native", obj, getattr(obj, "_fasterapi_fallback", None)
    return interface, None, (interface, obj)


def describe(spec):
    """The app's route table, one tuple per (method, path) pair, in
    registration order, ids dense from 0:

        (route_id: int, method: str, pattern: str, kind: str, extra: dict)

    method is upper case; pattern is FastAPI-style ("/users/{user_id}"; a
    "files" route ends in "/{path:path}", a catch-all of the rest of the
    path). kind and extra:

    - "python": {} -- served by dispatch() in a Python worker.
    - "static": {"status": int, "content_type": str,
                 "headers": [[name, value], ...], "body": bytes}
      -- app.static(path, body, content_type=..., status_code=...,
      headers=...): a precomputed GET response the HTTP worker sends as is
      (it adds Content-Length, Date, Server, Connection; header names are
      lower case and never one of those nor Content-Type).
    - "native": {"library": str, "symbol": str} -- app.native(method, path,
      library=..., symbol=...): the HTTP worker dlopen()s library (an
      absolute path; a relative one was resolved against the app directory,
      --app-dir, which is sys.path[0] in the pyworker) and calls symbol.
    - "files": {"directory": str} -- app.mount_static(prefix, directory):
      GET prefix/{path:path} serves files under directory (absolute).

    Python workers never receive requests for the routes of the last three
    kinds; dispatch answers 500 if it gets one. The app's built-in routes
    come after its own, as "python" routes: /openapi.json, /docs and its
    three assets (unless turned off), and with CORSMiddleware an OPTIONS
    route for each path that has none.
    """
    _, app, fallback = _resolve(spec)
    rows = app.describe() if app is not None else []
    if fallback is not None:
        from .wsgi import catchall_routes
        rows = list(rows) + catchall_routes(len(rows))
    return rows


# ------------------------------------------------------------------ lifespan

_started = []    # the apps whose startup ran in this process (load order)


async def _startup(app):
    for fn in app.on_startup:
        result = fn()
        if hasattr(result, "__await__"):
            await result
    if app.lifespan is not None:
        cm = app.lifespan(app)
        state = await cm.__aenter__()
        app._lifespan_cm = cm
        if state is not None:
            app._lifespan_state = dict(state)


async def _shutdown(app):
    cm = getattr(app, "_lifespan_cm", None)
    if cm is not None:
        app._lifespan_cm = None
        await cm.__aexit__(None, None, None)
    for fn in app.on_shutdown:
        result = fn()
        if hasattr(result, "__await__"):
            await result


def load(spec):
    """Imports the app, runs its startup (lifespan= and on_startup
    handlers; an exception propagates: the worker does not start) and
    returns its dispatch function (see _make_dispatch)."""
    _, app, fallback = _resolve(spec)
    dispatch = None
    first_id = 0
    if app is not None:
        dispatch = _make_dispatch(app)
        first_id = len(app.routes)
        if app.lifespan is not None or app.on_startup or app.on_shutdown:
            run_coroutine(_startup(app), True, _copy_context())
            _started.append(app)
    if fallback is not None:
        kind, target = fallback
        if kind == "wsgi":
            from . import wsgi
            dispatch = wsgi.make_dispatch(target, None, first_id, dispatch)
        else:
            from . import asgi
            lifespan = asgi.Lifespan(target)
            lifespan.startup()     # raises LifespanFailed with the app's message
            if lifespan.started:
                _started.append(lifespan)
            dispatch = asgi.make_dispatch(target, None, first_id, dispatch, lifespan)
    # Tasks the startup left running (a lifespan's periodic job) need the
    # loop driven from the start, not only once some request waits.
    kick()
    return dispatch


def shutdown():
    """Runs the shutdown of every app load() started (the lifespan's code
    after its yield, on_shutdown handlers), last loaded first. Called by the
    C side once, when the worker is retired or the server stops. Errors are
    printed, never raised. Background work still running on the loop
    (async BackgroundTasks, yield-dependency cleanups) is finished first."""
    try:
        drain()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        print("fasterapi: finishing the background work at shutdown raised:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
    while _started:
        app = _started.pop()
        try:
            if isinstance(app, App):
                run_coroutine(_shutdown(app), True, _copy_context())
            else:
                app.shutdown()     # an ASGI app's lifespan (asgi.Lifespan)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:
            print("fasterapi: the app's shutdown (lifespan) raised:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()


# ------------------------------------------------------------------ dispatch

_CoroutineType = types.CoroutineType


def report(route, method, path, what="raised, answering 500"):
    """Logs the exception being handled, naming the route."""
    where = f"route {route.id} ({route.method} {route.path} -> {route.name})" \
        if route is not None else "no such route"
    print(f"fasterapi: {method} {path}: {where} {what}:", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


def _report(routes, route_id, method, path):
    route = routes[route_id] if 0 <= route_id < len(routes) else None
    if route is None:
        print(f"fasterapi: {method} {path}: route {route_id} (no such route) raised, "
              f"answering 500:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        return
    report(route, method, path)


def _where(route, method, path):
    return f"{method} {path}: route {route.id} ({route.method} {route.path} -> {route.name})"


def _answered(route, method, path, produce):
    """produce()'s result, or the answer to what it raised, as dispatch
    gives it: HTTPException and validation errors rendered; a cancelled
    request (its client went away, or --timeout) a 500 nobody reads, not
    logged; anything else a 500 with the traceback logged."""
    try:
        return produce()
    except HTTPException as exc:
        return render_http_exception(exc)
    except RequestValidationError as exc:
        return render_validation_error(exc)
    except CancelledError:
        return INTERNAL_ERROR
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        report(route, method, path)
        return INTERNAL_ERROR


def _serve_general(app, route, method, path, query, params, headers, client, body):
    """The general path (see routing): a Request and a RequestContext,
    the middleware chain and exception handlers, the Response object turned
    into the triple, plus after() when there is work left for after the
    response. Deferred (returns None) when the chain waits on the loop."""
    request = Request(method, path, query, params, headers, client, body, route)
    request.app = app
    ctx = RequestContext(request, params, query)
    context = _copy_context()

    def complete(task):
        def produce():
            try:
                response = outcome(task)
            except BaseException:
                _close_after_error(ctx, context)
                raise
            finally:
                request._release()
            return _general_result(route, method, path, ctx, context, response)
        return _answered(route, method, path, produce)

    try:
        task, response = step(app._serve(route, request), route.general_waits, context)
    except BaseException:
        request._release()
        _close_after_error(ctx, context)
        raise
    if task is None:
        request._release()
        return _general_result(route, method, path, ctx, context, response)
    request._deferred = defer_task(task, complete)
    return None


def _close_after_error(ctx, context):
    # Handled or not, the yield dependencies still get closed.
    if ctx.exits:
        exits = list(ctx.exits)
        ctx.exits.clear()
        try:
            run_soon(close_exits(exits, sys.exc_info()[1]), context,
                     "the cleanup of a yield dependency")
        except BaseException:
            pass


def _general_result(route, method, path, ctx, context, response):
    tasks = tasks_of(ctx.background)
    if response.background is not None and response.background is not ctx.background:
        tasks += tasks_of(response.background)
    after = make_after(tasks, list(ctx.exits), context, _where(route, method, path)) \
        if tasks or ctx.exits else None
    try:
        if response._streams:
            return response._stream(after, _where(route, method, path))
        triple = response._triple()
    except BaseException:
        _close_after_error(ctx, context)
        raise
    return triple if after is None else (*triple, after)


def _thread_call(context, route, params, query, request):
    """The handler call of a --py-threads request, for the pool. (A lambda
    in dispatch would make its variables cells, created on every request.)"""
    return lambda _: context.run(route.call, *route.bind(params, query, request))


def _on_pool(call):
    """call, made to run on the handler thread pool: returns a coroutine."""
    async def pooled(*args):
        return await in_thread(call, *args)
    return pooled


def _make_dispatch(app):
    routes = app._freeze()
    threaded = None
    if threads():
        # --py-threads: the routes whose plain def handler runs on the pool
        # (not one that returns a coroutine). On the fast path dispatch
        # defers them; on the general path the handler call awaits the pool
        # (routing's endpoint_response awaits what call() returns).
        threaded = tuple(r.kind == "python" and not r.is_async and not r.handler_waits
                         for r in routes)
        for route, pooled in zip(routes, threaded):
            if pooled and route.general:
                route.call = _on_pool(route.call)
                route.general_waits = True

    def completer(route, method, path, request):
        """complete(future) of a deferred request (aio._complete): the
        handler's outcome rendered as dispatch would, errors included."""
        def complete(future):
            try:
                return _answered(route, method, path, lambda: route.render(outcome(future)))
            finally:
                if request is not None:
                    request._release()
        return complete

    def dispatch(route_id, method, path, query, params, headers, client, body, flags=0):
        """Serves one request: see PROTOCOL.md for the arguments. Returns
        (status, [(name, value), ...], body) or, when work remains for
        after the response (background tasks, yield dependencies),
        (status, headers, body, after); or None once it deferred the
        request (a handler that waits, a thread, a stream)."""
        request = None
        try:
            try:
                route = routes[route_id]
                if route.general:
                    return _serve_general(app, route, method, path, query, params, headers,
                                          client, body)
                if route.needs_request:
                    request = Request(method, path, query, params, headers, client, body, route)
                    request.app = app
                # Each request runs in its own copy of the context, as in
                # Starlette: a ContextVar set by one handler does not leak.
                context = _copy_context()
                if threaded is not None and threaded[route_id]:    # general ones went above
                    req, request = request, None     # released by complete()
                    defer_to_thread(_thread_call(context, route, params, query, req),
                                    completer(route, method, path, req))
                    return None
                result = context.run(route.call, *route.bind(params, query, request))
                if route.is_async or type(result) is _CoroutineType:
                    task, result = step(result, route.suspends, context)
                    if task is not None:
                        req, request = request, None
                        d = defer_task(task, completer(route, method, path, req))
                        if req is not None:
                            req._deferred = d
                        return None
                return route.render(result)
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
