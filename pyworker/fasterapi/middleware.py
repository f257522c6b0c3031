"""HTTP middlewares: @app.middleware("http") functions, BaseHTTPMiddleware
subclasses, and CORSMiddleware and GZipMiddleware (Starlette's behaviour).

A middleware sees every request to a Python route (the C side answers 404,
405 and native / static routes itself) and the Response object that
call_next(request) returns:

    @app.middleware("http")
    async def timing(request, call_next):
        response = await call_next(request)
        response.headers["x-time"] = "..."
        return response

They are not ASGI middlewares: add_middleware() takes a BaseHTTPMiddleware
subclass (these two, or your own with `async def dispatch(self, request,
call_next)`). Also importable as fasterapi.middleware.cors.CORSMiddleware,
fasterapi.middleware.gzip.GZipMiddleware and
fasterapi.middleware.base.BaseHTTPMiddleware, the paths FastAPI uses.
"""

import gzip as _gzip
import inspect
import re
import sys
import types

from .responses import PlainTextResponse

__all__ = ["BaseHTTPMiddleware", "Middleware", "CORSMiddleware", "GZipMiddleware"]

__path__ = []   # so that the fasterapi.middleware.* aliases below can be imported


class BaseHTTPMiddleware:
    """Subclass it and define `async def dispatch(self, request, call_next)`,
    or pass dispatch= (what @app.middleware("http") does).

    waits: whether dispatch may wait on anything but call_next (then the
    request runs as a Task on the worker's loop). True for user code; the
    middlewares below only await call_next.
    """

    waits = True

    def __init__(self, app=None, dispatch=None):
        self.app = app
        if dispatch is not None:
            self.dispatch_func = dispatch
        elif type(self).dispatch is BaseHTTPMiddleware.dispatch:
            raise TypeError(f"{type(self).__name__}: define dispatch(self, request, call_next)")
        else:
            self.dispatch_func = self.dispatch

    async def dispatch(self, request, call_next):
        raise NotImplementedError

    async def __call__(self, request, call_next):
        response = self.dispatch_func(request, call_next)
        if inspect.isawaitable(response):
            response = await response
        return response


class Middleware:
    """A middleware class and its options (Starlette's Middleware, for
    App(middleware=[Middleware(CORSMiddleware, allow_origins=[...])]))."""

    def __init__(self, cls, *args, **kwargs):
        self.cls = cls
        self.args = args
        self.kwargs = kwargs

    def __iter__(self):
        return iter((self.cls, self.args, self.kwargs))


ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
SAFELISTED_HEADERS = {"Accept", "Accept-Language", "Content-Language", "Content-Type"}


def _add_vary(headers, value):
    existing = headers.get("vary")
    if existing is None:
        headers["vary"] = value
    elif value.lower() not in [v.strip().lower() for v in existing.split(",")]:
        headers["vary"] = f"{existing}, {value}"


class CORSMiddleware(BaseHTTPMiddleware):
    """Cross-origin resource sharing, as Starlette's CORSMiddleware.

    Adding it also makes the app answer OPTIONS on every path (the
    preflight), where it would otherwise be the C router's 405.
    """

    waits = False

    def __init__(self, app=None, allow_origins=(), allow_methods=("GET",), allow_headers=(),
                 allow_credentials=False, allow_origin_regex=None, expose_headers=(),
                 max_age=600):
        super().__init__(app)
        if "*" in allow_methods:
            allow_methods = ALL_METHODS
        compiled_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        allow_all_origins = "*" in allow_origins
        allow_all_headers = "*" in allow_headers
        preflight_explicit_allow_origin = not allow_all_origins or allow_credentials

        simple_headers = {}
        if allow_all_origins:
            simple_headers["access-control-allow-origin"] = "*"
        if allow_credentials:
            simple_headers["access-control-allow-credentials"] = "true"
        if expose_headers:
            simple_headers["access-control-expose-headers"] = ", ".join(expose_headers)

        preflight_headers = {}
        if preflight_explicit_allow_origin:
            preflight_headers["vary"] = "Origin"
        else:
            preflight_headers["access-control-allow-origin"] = "*"
        preflight_headers["access-control-allow-methods"] = ", ".join(allow_methods)
        preflight_headers["access-control-max-age"] = str(max_age)
        allow_headers = sorted(SAFELISTED_HEADERS | set(allow_headers))
        if allow_headers and not allow_all_headers:
            preflight_headers["access-control-allow-headers"] = ", ".join(allow_headers)
        if allow_credentials:
            preflight_headers["access-control-allow-credentials"] = "true"

        self.allow_origins = allow_origins
        self.allow_methods = allow_methods
        self.allow_headers = [h.lower() for h in allow_headers]
        self.allow_all_origins = allow_all_origins
        self.allow_all_headers = allow_all_headers
        self.preflight_explicit_allow_origin = preflight_explicit_allow_origin
        self.allow_origin_regex = compiled_regex
        self.simple_headers = simple_headers
        self.preflight_headers = preflight_headers

    def is_allowed_origin(self, origin):
        if self.allow_all_origins:
            return True
        if self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin):
            return True
        return origin in self.allow_origins

    async def dispatch(self, request, call_next):
        headers = request.headers
        origin = headers.get("origin")
        if origin is None:
            return await call_next(request)
        if request.method == "OPTIONS" and "access-control-request-method" in headers:
            return self.preflight_response(headers)
        response = await call_next(request)
        out = response.headers
        for name, value in self.simple_headers.items():
            out[name] = value
        if self.allow_all_origins and "cookie" in headers:
            out["access-control-allow-origin"] = origin
            _add_vary(out, "Origin")
        elif not self.allow_all_origins and self.is_allowed_origin(origin):
            out["access-control-allow-origin"] = origin
            _add_vary(out, "Origin")
        return response

    def preflight_response(self, request_headers):
        origin = request_headers["origin"]
        method = request_headers["access-control-request-method"]
        requested = request_headers.get("access-control-request-headers")
        headers = dict(self.preflight_headers)
        failures = []
        if self.is_allowed_origin(origin):
            if self.preflight_explicit_allow_origin:
                headers["access-control-allow-origin"] = origin
        else:
            failures.append("origin")
        if method not in self.allow_methods:
            failures.append("method")
        if self.allow_all_headers and requested is not None:
            headers["access-control-allow-headers"] = requested
        elif requested is not None:
            for header in [h.lower() for h in requested.split(",")]:
                if header.strip() not in self.allow_headers:
                    failures.append("headers")
                    break
        if failures:
            return PlainTextResponse("Disallowed CORS " + ", ".join(failures), status_code=400,
                                     headers=headers)
        return PlainTextResponse("OK", status_code=200, headers=headers)


class GZipMiddleware(BaseHTTPMiddleware):
    """Compresses response bodies of at least minimum_size bytes for clients
    that accept gzip (Starlette's GZipMiddleware). Files sent by the HTTP
    worker (FileResponse) are not compressed."""

    waits = False

    def __init__(self, app=None, minimum_size=500, compresslevel=9):
        super().__init__(app)
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    async def dispatch(self, request, call_next):
        accept = request.headers.get("accept-encoding", "")
        response = await call_next(request)
        if "gzip" not in accept.lower():
            return response
        out = response.headers
        if "content-encoding" in out or \
                out.get("content-type", "").startswith("text/event-stream"):
            return response
        body = response.body
        if len(body) < self.minimum_size:
            return response
        response.body = _gzip.compress(body, self.compresslevel, mtime=0)
        out["content-encoding"] = "gzip"
        _add_vary(out, "Accept-Encoding")
        return response


def _alias(name, **attrs):
    module = types.ModuleType(f"{__name__}.{name}")
    module.__dict__.update(attrs)
    module.__all__ = list(attrs)
    sys.modules[module.__name__] = module
    return module


cors = _alias("cors", CORSMiddleware=CORSMiddleware)
gzip = _alias("gzip", GZipMiddleware=GZipMiddleware)
base = _alias("base", BaseHTTPMiddleware=BaseHTTPMiddleware)
