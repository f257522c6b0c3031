"""App (also importable as FastAPI): routes, routers, middlewares,
exception handlers, lifespan, the OpenAPI document and the docs page, and
the routes served in C (static, native, mount_static).

Everything is settled when the server loads the app (_freeze): the
built-in routes (/openapi.json, /docs, CORS preflights) are added, each
route learns whether it takes the fast or the general path, and the
middleware chain is built once per route.
"""

import inspect
import os
import sys

from . import exception_handlers as _default_handlers
from .batch import batched_endpoint, check_plan
from .binding import compile_plan
from .exceptions import HTTPException, RequestValidationError
from .middleware import BaseHTTPMiddleware, CORSMiddleware
from .request import State
from .responses import PlainTextResponse
from .routing import (METHODS, APIRouter, Route, _Decorators, _may_suspend, parse_pattern,
                      shape)

__all__ = ["App", "Route", "APIRouter", "parse_pattern"]


class App(_Decorators):
    """An application: its routes, registered with decorators.

        app = App()

        @app.get("/users/{user_id}")
        def get_user(user_id: int, verbose: bool = False):
            return {"id": user_id}

    Also importable as FastAPI, with FastAPI's keyword arguments (title,
    version, description, openapi_url, docs_url, dependencies, middleware,
    exception_handlers, lifespan, on_startup, on_shutdown, ...). The C
    router answers HEAD with the GET route (the handler sees method "HEAD"),
    404 and 405 itself.
    """

    def __init__(self, *, debug=False, title="FasterAPI", summary=None, description="",
                 version="0.1.0", openapi_url="/openapi.json", openapi_tags=None, servers=None,
                 dependencies=None, default_response_class=None, docs_url="/docs",
                 redoc_url=None, swagger_ui_parameters=None, middleware=None,
                 exception_handlers=None, on_startup=None, on_shutdown=None, lifespan=None,
                 terms_of_service=None, contact=None, license_info=None, responses=None,
                 deprecated=None, include_in_schema=True, **unsupported):
        for key in unsupported:
            if key not in ("routes", "redirect_slashes", "root_path", "root_path_in_servers",
                           "swagger_ui_oauth2_redirect_url", "swagger_ui_init_oauth",
                           "openapi_prefix", "callbacks", "webhooks",
                           "generate_unique_id_function", "separate_input_output_schemas"):
                raise TypeError(f"App() got an unexpected keyword argument {key!r}")
        if redoc_url is not None:
            raise ValueError("redoc_url: ReDoc is not bundled (its assets are not installed); "
                             "use docs_url (Swagger UI)")
        self.debug = debug
        self.title = title
        self.summary = summary
        self.description = description
        self.version = version
        self.openapi_url = openapi_url
        self.openapi_tags = openapi_tags
        self.servers = servers or []
        self.docs_url = docs_url
        self.redoc_url = None
        self.swagger_ui_parameters = swagger_ui_parameters
        self.terms_of_service = terms_of_service
        self.contact = contact
        self.license_info = license_info
        self.dependencies = list(dependencies or ())
        self.default_response_class = default_response_class
        self.responses = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.state = State()
        self.routes = []
        self.user_middleware = []     # instances, outermost first
        self.exception_handlers = {HTTPException: _default_handlers.http_exception_handler,
                                   RequestValidationError:
                                       _default_handlers.request_validation_exception_handler}
        self._custom_handlers = False
        self.router = self            # FastAPI code reaches app.router.routes
        self.lifespan = lifespan
        self.on_startup = list(on_startup or ())
        self.on_shutdown = list(on_shutdown or ())
        self._lifespan_state = None
        self.openapi_schema = None
        self._seen = {}
        self._frozen = False
        self._finalized = False
        for item in middleware or ():
            cls, args, kwargs = item
            self.add_middleware(cls, *args, **kwargs)
        for key, handler in (exception_handlers or {}).items():
            self.add_exception_handler(key, handler)

    # -------------------------------------------------------------- routes

    def _add_route(self, path, methods, endpoint, options):
        options = dict(options)
        options["dependencies"] = self.dependencies + list(options.get("dependencies") or ())
        if self.default_response_class is not None and "response_class" not in options:
            options["response_class"] = self.default_response_class
        if self.deprecated and options.get("deprecated") is None:
            options["deprecated"] = True
        if not self.include_in_schema:
            options["include_in_schema"] = False
        names = parse_pattern(path)
        self._check_new(path, methods, names)
        plan = None
        where = f"{'/'.join(methods) if len(methods) > 1 else methods[0]} {path}"
        if options.get("batch") is not None:
            # One Batcher for the methods of this registration (batch.py).
            endpoint = batched_endpoint(endpoint, options["batch"], where)
        for m in dict.fromkeys(methods):
            if plan is None:
                plan = compile_plan(endpoint, names, f"{m} {path}" if len(methods) == 1
                                    else where, options["dependencies"])
                if options.get("batch") is not None:
                    check_plan(plan, endpoint, where)
            self._append(Route(len(self.routes), m, path, endpoint, names, plan, options,
                               app=self), names)

    def _check_new(self, path, methods, names):
        if self._frozen:
            raise RuntimeError(f"route {path!r}: routes cannot be added once the server "
                               f"has loaded the app (register them at import time)")
        key_shape = shape(path, names)
        for m in dict.fromkeys(methods):
            other = self._seen.get((m, key_shape))
            if other is not None:
                same = "" if other.path == path else f" (as {other.path})"
                raise ValueError(f"duplicate route {m} {path}: already registered{same} "
                                 f"for {other.name}")

    def _append(self, route, names):
        self.routes.append(route)
        self._seen[(route.method, shape(route.path, names))] = route

    # -------------------------------------------------------------- routes served in C

    def static(self, path, body, content_type="text/plain; charset=utf-8", status_code=200,
               headers=None):
        """A precomputed response for GET `path`, answered by the HTTP worker
        without Python. body: bytes or str (UTF-8)."""
        names = parse_pattern(path)
        if names:
            raise ValueError(f"static route {path!r}: a static route cannot have parameters")
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"static route {path!r}: body must be bytes or str, got "
                            f"{type(body).__name__}")
        if type(status_code) is not int or not 200 <= status_code <= 599:
            raise ValueError(f"static route {path!r}: status_code must be an int from 200 to "
                             f"599, got {status_code!r}")
        pairs = headers.items() if hasattr(headers, "items") else (headers or ())
        header_list = []
        for name, value in pairs:
            name, value = str(name), str(value)
            if any(c in name + value for c in "\r\n\0") or not name or ":" in name:
                raise ValueError(f"static route {path!r}: bad header {name!r}: {value!r}")
            if name.lower() in ("content-length", "content-type", "date", "server",
                                "connection", "transfer-encoding"):
                raise ValueError(f"static route {path!r}: header {name!r} is set by the server "
                                 f"(use content_type= for Content-Type)")
            header_list.append([name.lower(), value])
        if any(c in content_type for c in "\r\n\0"):
            raise ValueError(f"static route {path!r}: bad content_type {content_type!r}")
        self._check_new(path, ["GET"], names)
        extra = {"status": status_code, "content_type": content_type, "headers": header_list,
                 "body": bytes(body)}
        self._append(Route(len(self.routes), "GET", path, kind="static", extra=extra), names)

    def native(self, method, path, library, symbol=None):
        """A route answered by a C function in a shared library, in the HTTP
        worker (include/fasterapi.h). library: a path; a relative one is
        taken from the app directory (--app-dir, the directory the app is
        imported from). Without symbol=, returns a decorator that takes the
        symbol from the decorated function's __name__ and returns the
        function unchanged:

            @app.native("GET", "/fast", library="./libfast.so")
            def fast_handler(): ...
        """
        if symbol is None:
            def decorator(fn):
                self.native(method, path, library, fn.__name__)
                return fn
            return decorator
        method = method.upper() if isinstance(method, str) else method
        if method not in METHODS:
            raise ValueError(f"native route {path!r}: unknown method {method!r}")
        names = parse_pattern(path)
        if not isinstance(symbol, str) or not symbol.isidentifier():
            raise ValueError(f"native route {path!r}: symbol {symbol!r} is not a C identifier")
        library = os.fspath(library)
        if not library:
            raise ValueError(f"native route {path!r}: library must not be empty")
        self._check_new(path, [method], names)
        extra = {"library": os.path.abspath(os.path.join(_app_dir(), library)), "symbol": symbol}
        self._append(Route(len(self.routes), method, path, kind="native", extra=extra), names)

    def mount_static(self, prefix, directory):
        """Files under `directory` served by the HTTP worker at
        prefix/<path> (sendfile, Content-Type by extension, ETag, Range). A
        relative directory is taken from the app directory."""
        prefix = prefix.rstrip("/")
        path = prefix + "/{path:path}"
        names = parse_pattern(path, allow_path_param=True)
        if len(names) != 1:
            raise ValueError(f"mount_static prefix {prefix!r} must not have parameters")
        directory = os.path.abspath(os.path.join(_app_dir(), os.fspath(directory)))
        self._check_new(path, ["GET"], names)
        self._append(Route(len(self.routes), "GET", path, kind="files",
                           extra={"directory": directory}), names)

    # -------------------------------------------------------------- middlewares and handlers

    def add_middleware(self, middleware_class, *args, **options):
        """Adds a middleware (a BaseHTTPMiddleware subclass) outside the
        ones added before, as Starlette does."""
        if self._frozen:
            raise RuntimeError("middlewares cannot be added once the server has loaded the app")
        if not (isinstance(middleware_class, type) and
                issubclass(middleware_class, BaseHTTPMiddleware)):
            raise TypeError(f"add_middleware({getattr(middleware_class, '__name__', middleware_class)}"
                            f"): only BaseHTTPMiddleware subclasses (CORSMiddleware, "
                            f"GZipMiddleware or your own) are supported; ASGI middlewares are "
                            f"not")
        self.user_middleware.insert(0, middleware_class(self, *args, **options))

    def middleware(self, middleware_type):
        """@app.middleware("http"): async def mw(request, call_next)."""
        if middleware_type != "http":
            raise ValueError(f"middleware({middleware_type!r}): only 'http' is supported")

        def decorator(func):
            self.add_middleware(BaseHTTPMiddleware, dispatch=func)
            return func
        return decorator

    def add_exception_handler(self, exc_class_or_status_code, handler):
        if not (isinstance(exc_class_or_status_code, int) or
                (isinstance(exc_class_or_status_code, type) and
                 issubclass(exc_class_or_status_code, BaseException))):
            raise TypeError(f"exception_handler({exc_class_or_status_code!r}): expected an "
                            f"exception class or a status code")
        self.exception_handlers[exc_class_or_status_code] = handler
        self._custom_handlers = True

    def exception_handler(self, exc_class_or_status_code):
        def decorator(func):
            self.add_exception_handler(exc_class_or_status_code, func)
            return func
        return decorator

    def on_event(self, event_type):
        """@app.on_event("startup") / ("shutdown"): FastAPI's older lifespan."""
        if event_type not in ("startup", "shutdown"):
            raise ValueError(f"on_event({event_type!r}): expected 'startup' or 'shutdown'")

        def decorator(func):
            (self.on_startup if event_type == "startup" else self.on_shutdown).append(func)
            return func
        return decorator

    def _lookup(self, exc, catch_all):
        handlers = self.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code in handlers:
            return handlers[exc.status_code]
        for cls in type(exc).__mro__:
            if cls in (Exception, BaseException):
                break
            handler = handlers.get(cls)
            if handler is not None:
                return handler
        if catch_all:
            return handlers.get(500) or handlers.get(Exception)
        return None

    async def _handle(self, request, exc, catch_all):
        """The response of the handler registered for exc, or exc raised
        again when there is none."""
        handler = self._lookup(exc, catch_all)
        if handler is None:
            raise exc
        response = handler(request, exc)
        if inspect.isawaitable(response):
            response = await response
        return response

    async def _serve(self, route, request):
        """The general path's outermost layer (Starlette's
        ServerErrorMiddleware): a handler for Exception or 500 answers what
        nothing else handled; else the exception reaches dispatch (a 500)."""
        try:
            return await route.respond(request)
        except Exception as exc:
            if self._lookup(exc, True) is None:
                raise
            from ._boot import report
            report(route, request.method, request.url.raw_path)
            return await self._handle(request, exc, True)

    # -------------------------------------------------------------- loading

    def _finalize(self):
        """Adds the built-in routes once (describe and load both see them)."""
        if self._finalized:
            return
        self._finalized = True
        from . import docs
        docs.add_routes(self)
        if any(isinstance(m, CORSMiddleware) for m in self.user_middleware):
            self._add_preflight_routes()

    def _add_preflight_routes(self):
        by_path = {}
        for r in self.routes:
            if r.kind == "python" or r.kind == "static":
                by_path.setdefault((r.path, shape(r.path, r.param_names)), []).append(r.method)
        for (path, _), methods in by_path.items():
            if "OPTIONS" in methods:
                continue
            allow = ", ".join(sorted(set(methods) | ({"HEAD"} if "GET" in methods else set())))

            def preflight(_allow=allow):
                # Reached only by an OPTIONS that is not a CORS preflight (the
                # middleware answers those).
                return PlainTextResponse("Method Not Allowed", status_code=405,
                                         headers={"Allow": _allow})
            self._add_route(path, ["OPTIONS"], preflight, {"include_in_schema": False})

    def describe(self):
        """The route table: see _boot.describe."""
        self._finalize()
        return [route.describe() for route in self.routes]

    def _freeze(self):
        """The routes, by id, ready to serve; no route can be added afterwards."""
        self._finalize()
        self._frozen = True
        general_all = bool(self.user_middleware) or self._custom_handlers
        others_wait = any(m.waits for m in self.user_middleware) or any(
            _may_suspend(h) for h in self.exception_handlers.values()
            if inspect.iscoroutinefunction(h))
        for route in self.routes:
            if route.kind != "python":
                continue
            if general_all:
                route.general = True
            if route.general:
                route.respond = self._chain(route)
                # Whether the general path's coroutine may really wait: else
                # it is finished with one send(), no Task (see aio).
                route.general_waits = others_wait or route.handler_waits or \
                    _plan_waits(route.plan)
        return tuple(self.routes)

    def _chain(self, route):
        call = route.endpoint_response
        for mw in reversed(self.user_middleware):
            call = _wrap(mw, call)
        return call

    def openapi(self):
        """The OpenAPI 3.1 document (a dict), built once."""
        if self.openapi_schema is None:
            from .openapi import build
            self.openapi_schema = build(self)
        return self.openapi_schema

    # FastAPI's include_router etc. come from _Decorators.


def _plan_waits(plan):
    """True if a dependency in the plan's tree may wait on the event loop."""
    for _, dep in plan.deps:
        if dep.kind == "agen" or (dep.kind == "async" and _may_suspend(dep.call)) or \
                _plan_waits(dep.plan):
            return True
    return False


def _wrap(mw, call_next):
    async def call(request):
        return await mw(request, call_next)
    return call


def _app_dir():
    """The directory the app is imported from: --app-dir, which the
    pyworker puts first on sys.path (the current directory otherwise)."""
    first = sys.path[0] if sys.path else ""
    return os.path.abspath(first or os.getcwd())
