"""Routes and routers: what the decorators register and how one route
serves a request.

Each (method, path) pair is one Route with a dense id from 0 in
registration order; that id is what the C router hands back to dispatch.
Everything a request needs that can be worked out in advance (the binding
plan, whether the handler is a coroutine and whether it can suspend, how
its result is rendered) is computed when the route is added, once.

APIRouter collects route definitions (and nested routers) without ids; an
App's include_router() adds them with the prefix, tags and dependencies
combined.

A route with batch=BatchPolicy(...) registers, in place of its handler, an
async endpoint that takes one request and awaits its share of a batched
handler call (batch.batched_endpoint; made by App._add_route, so that a
router's routes get one Batcher per app they are included in).

A route runs one of two ways (see _boot.dispatch):
- fast: no dependencies, middlewares, custom exception handlers,
  Response / BackgroundTasks parameters: bind, call, render, inline.
- general: Route.respond(request) builds a Response object through the
  dependency solver, the exception handlers and the middlewares.
"""

import dis
import inspect
import typing

from . import convert
from .batch import BatchPolicy, item_signature
from .binding import close_exits, handler_name, solve
from .encoders import jsonable_encoder
from .exceptions import ResponseValidationError
from .responses import (JSONResponse, Response, body_allowed, render_result, to_response)

__all__ = ["APIRouter", "Route", "RouteDef", "Default", "parse_pattern", "shape", "METHODS"]

# What the C router knows (http_parser method names).
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

# Router limit (worker/router.h FA_ROUTER_MAX_PARAMS).
_MAX_PARAMS = 16

# Opcodes through which a coroutine can give control back to its caller.
_SUSPENDING_OPS = frozenset(("GET_AWAITABLE", "BEFORE_ASYNC_WITH", "GET_AITER", "GET_ANEXT",
                             "SEND", "YIELD_VALUE", "YIELD_FROM"))


class _DefaultType:
    def __repr__(self):
        return "Default"


Default = _DefaultType()   # an option that was not given


def parse_pattern(path, allow_path_param=False):
    """The parameter names of a route pattern, in order; ValueError if the
    pattern is one the C router would refuse or misread. allow_path_param:
    accept a last segment {name:path} (mount_static's catch-all)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"route path {path!r} must be a str starting with '/'")
    for ch in path:
        if ch in "?#" or ch <= " " or ch == "\x7f":
            raise ValueError(f"route path {path!r} must not contain {ch!r}")
    names = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        if "{" not in segment and "}" not in segment:
            continue
        name = segment[1:-1]
        if not (segment.startswith("{") and segment.endswith("}")) or "{" in name or "}" in name:
            raise ValueError(f"route path {path!r}: a parameter must be a whole segment, "
                             f"like '/items/{{item_id}}'; got segment {segment!r}")
        if ":" in name:
            base, _, kind = name.partition(":")
            if not (allow_path_param and kind == "path" and i == len(segments) - 1):
                raise ValueError(f"route path {path!r}: typed parameters like {segment!r} are "
                                 f"not supported; write '{{{base}}}' and annotate the handler's "
                                 f"parameter instead ({base}: int)")
            name = base
        if not name.isidentifier():
            raise ValueError(f"route path {path!r}: parameter name {name!r} is not a Python "
                             f"identifier")
        if name in names:
            raise ValueError(f"route path {path!r}: parameter {name!r} appears twice")
        names.append(name)
    if len(names) > _MAX_PARAMS:
        raise ValueError(f"route path {path!r} has {len(names)} parameters; at most "
                         f"{_MAX_PARAMS} are supported")
    return tuple(names)


def shape(path, names):
    # Two patterns that differ only in parameter names match the same paths.
    for name in names:
        path = path.replace("{" + name + "}", "{}")
    return path


def _may_suspend(endpoint):
    """False only for a coroutine function whose body has no await, async
    with or async for: its coroutine always finishes on the first send."""
    # The function actually called, not what it wraps: a wrapper may await.
    code = getattr(endpoint, "__code__", None)
    if code is None or not inspect.iscoroutinefunction(endpoint):
        return True
    return any(ins.opname in _SUSPENDING_OPS for ins in dis.get_instructions(code))


def _is_coroutine_callable(endpoint):
    if inspect.iscoroutinefunction(endpoint):
        return True
    call = getattr(endpoint, "__call__", None)
    return not inspect.isfunction(endpoint) and inspect.iscoroutinefunction(call)


# ------------------------------------------------------------------ options

_OPTION_NAMES = ("response_model", "status_code", "tags", "dependencies", "summary",
                 "description", "response_description", "responses", "deprecated",
                 "operation_id", "response_model_include", "response_model_exclude",
                 "response_model_by_alias", "response_model_exclude_unset",
                 "response_model_exclude_defaults", "response_model_exclude_none",
                 "include_in_schema", "response_class", "name", "openapi_extra",
                 "callbacks", "generate_unique_id_function", "batch")


def _check_options(path, options):
    for key in options:
        if key not in _OPTION_NAMES:
            raise TypeError(f"route {path!r}: unexpected option {key}=")
    batch = options.get("batch")
    if batch is not None and not isinstance(batch, BatchPolicy):
        raise TypeError(f"route {path!r}: batch= takes a BatchPolicy(max_size=..., "
                        f"max_wait_ms=...), got {type(batch).__name__}")


class RouteDef:
    """A route as a router records it: not compiled, no id yet."""

    __slots__ = ("path", "methods", "endpoint", "options")

    def __init__(self, path, methods, endpoint, options):
        self.path = path
        self.methods = methods
        self.endpoint = endpoint
        self.options = options


def _methods(path, methods):
    if methods is None:
        methods = ["GET"]
    if isinstance(methods, str):
        raise TypeError(f"route {path!r}: methods must be a list of names, like "
                        f"[{methods!r}], not a str")
    out = [m.upper() for m in methods]
    for m in out:
        if m not in METHODS:
            raise ValueError(f"route {path!r}: unknown method {m!r} (expected one of "
                             f"{', '.join(sorted(METHODS))})")
    return out


class _Decorators:
    """get/post/... for App and APIRouter (FastAPI's signatures)."""

    def route(self, path, methods=None, **options):
        """Registers the decorated function for `path` and each of `methods`
        (default ["GET"]); returns the function unchanged."""
        methods = _methods(path, methods)
        _check_options(path, options)
        parse_pattern(self._full_path(path))

        def decorator(endpoint):
            if not callable(endpoint):
                raise TypeError(f"route {path!r}: the handler must be callable, got "
                                f"{type(endpoint).__name__}")
            if options.get("batch") is not None:
                # At decoration, also for a router's routes (made at include).
                item_signature(endpoint, f"{'/'.join(methods)} {self._full_path(path)}")
            self._add_route(path, methods, endpoint, options)
            return endpoint
        return decorator

    def api_route(self, path, methods=None, **options):
        return self.route(path, methods, **options)

    def add_api_route(self, path, endpoint, methods=None, **options):
        self.route(path, methods, **options)(endpoint)

    def get(self, path, **options):
        return self.route(path, ["GET"], **options)

    def post(self, path, **options):
        return self.route(path, ["POST"], **options)

    def put(self, path, **options):
        return self.route(path, ["PUT"], **options)

    def patch(self, path, **options):
        return self.route(path, ["PATCH"], **options)

    def delete(self, path, **options):
        return self.route(path, ["DELETE"], **options)

    def options(self, path, **options):
        return self.route(path, ["OPTIONS"], **options)

    def head(self, path, **options):
        return self.route(path, ["HEAD"], **options)

    def _full_path(self, path):
        return path

    def include_router(self, router, *, prefix="", tags=None, dependencies=None,
                       responses=None, deprecated=None, include_in_schema=True, **unused):
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"include_router prefix {prefix!r} must start with '/' and not "
                             f"end with '/'")
        """Adds every route of `router` (an APIRouter) under `prefix`, with
        tags and dependencies added to its own."""
        if not isinstance(router, APIRouter):
            raise TypeError(f"include_router() takes an APIRouter, got {type(router).__name__}")
        for rd in router.routes:
            options = dict(rd.options)
            options["tags"] = list(tags or ()) + list(options.get("tags") or ())
            options["dependencies"] = list(dependencies or ()) + \
                list(options.get("dependencies") or ())
            if responses:
                options["responses"] = {**responses, **(options.get("responses") or {})}
            if deprecated:
                options["deprecated"] = True
            if not include_in_schema:
                options["include_in_schema"] = False
            self._add_route(prefix + rd.path, rd.methods, rd.endpoint, options)


class APIRouter(_Decorators):
    """Routes to include in an app (or another router) later, with a prefix,
    tags and dependencies (FastAPI's APIRouter)."""

    def __init__(self, *, prefix="", tags=None, dependencies=None, responses=None,
                 deprecated=None, include_in_schema=True, default_response_class=None,
                 **unused):
        if prefix:
            if not prefix.startswith("/") or prefix.endswith("/"):
                raise ValueError(f"APIRouter prefix {prefix!r} must start with '/' and not end "
                                 f"with '/'")
        self.prefix = prefix
        self.tags = list(tags or ())
        self.dependencies = list(dependencies or ())
        self.responses = dict(responses or {})
        self.deprecated = deprecated
        self.include_in_schema = include_in_schema
        self.default_response_class = default_response_class
        self.routes = []   # RouteDef, with the router's prefix and settings applied

    def _full_path(self, path):
        return self.prefix + path

    def _add_route(self, path, methods, endpoint, options):
        self.routes.append(RouteDef(self._full_path(path), methods, endpoint,
                                    self._merge(options)))

    def _merge(self, options):
        out = dict(options)
        out["tags"] = self.tags + list(options.get("tags") or ())
        out["dependencies"] = self.dependencies + list(options.get("dependencies") or ())
        if self.responses:
            out["responses"] = {**self.responses, **(options.get("responses") or {})}
        if self.deprecated and options.get("deprecated") is None:
            out["deprecated"] = True
        if not self.include_in_schema:
            out["include_in_schema"] = False
        if self.default_response_class is not None and "response_class" not in options:
            out["response_class"] = self.default_response_class
        return out

# ------------------------------------------------------------------ serializing

def _annotation_model(endpoint):
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except Exception:
        return None
    ann = hints.get("return")
    if ann is None or ann is type(None):
        return None
    bare = convert.without_none(convert.strip_annotated(ann)[0])[0]
    if ann in (typing.Any, dict, list, str, bytes, object) or bare in (str, bytes, dict, list):
        return None
    if isinstance(bare, type) and issubclass(bare, Response):
        return None
    if typing.get_origin(bare) in (typing.Union,) and any(
            isinstance(a, type) and issubclass(a, Response) for a in typing.get_args(bare)):
        return None
    return ann


def make_serializer(model, options, label):
    """validate-and-filter for response_model: result -> plain JSON data."""
    try:
        validate = convert.compile_validator(model, from_attributes=True)
    except TypeError as exc:
        raise TypeError(f"{label}: response_model {convert.type_label(model)}: {exc}") from None
    include = options.get("response_model_include")
    exclude = options.get("response_model_exclude")
    by_alias = options.get("response_model_by_alias", True)
    exclude_unset = options.get("response_model_exclude_unset", False)
    exclude_defaults = options.get("response_model_exclude_defaults", False)
    exclude_none = options.get("response_model_exclude_none", False)

    def serialize(result):
        try:
            value = validate(result)
        except convert.Invalid as exc:
            raise ResponseValidationError([
                dict(e, loc=["response", *e["loc"]]) for e in exc.errors], body=result) from None
        return jsonable_encoder(value, include=include, exclude=exclude, by_alias=by_alias,
                                exclude_unset=exclude_unset, exclude_defaults=exclude_defaults,
                                exclude_none=exclude_none)
    return serialize


# ------------------------------------------------------------------ routes

class Route:
    """One (method, path) pair. Read-only once registered.

    id, method, path (the pattern), endpoint, name ("module.qualname"),
    param_names (the pattern's), is_async (a coroutine function), suspends
    (its coroutine may suspend), kind ("python", "static", "native",
    "files"), extra (describe()'s fifth element), options (the decorator's
    keywords), the plan's bind, call, needs_request, path_converters,
    render(result) -> triple (fast path), general (see the module doc).
    """

    __slots__ = ("id", "method", "path", "endpoint", "name", "param_names", "is_async",
                 "suspends", "bind", "call", "needs_request", "path_converters", "plan",
                 "options", "kind", "extra", "general", "render", "status_code",
                 "response_class", "serializer", "respond", "app", "include_in_schema",
                 "handler_waits", "general_waits")

    def __init__(self, route_id, method, path, endpoint=None, param_names=(), plan=None,
                 options=None, kind="python", extra=None, app=None):
        self.id = route_id
        self.method = method
        self.path = path
        self.endpoint = endpoint
        self.name = handler_name(endpoint) if endpoint is not None else f"{kind} route"
        self.param_names = param_names
        self.kind = kind
        self.extra = extra if extra is not None else {}
        self.options = options or {}
        self.app = app
        self.plan = plan
        self.include_in_schema = kind == "python" and self.options.get("include_in_schema", True)
        if plan is None:   # served in C
            self.is_async = self.suspends = self.needs_request = self.general = False
            self.handler_waits = self.general_waits = False
            self.call = self.render = self.respond = None

            def bind(params, query, request, _route=self):
                raise RuntimeError(f"{_route.kind} route {_route.method} {_route.path} is served "
                                   f"by the HTTP worker; a Python worker never receives it")
            self.bind = bind
            self.path_converters = ()
            self.status_code = None
            self.response_class = None
            self.serializer = None
            return
        self.is_async = _is_coroutine_callable(endpoint)
        self.suspends = _may_suspend(endpoint)
        # May the handler wait on the loop? A plain def does not, unless it
        # wraps a coroutine function (a decorator returning its coroutine).
        self.handler_waits = self.suspends if self.is_async else \
            _is_coroutine_callable(inspect.unwrap(endpoint)) or not (
                inspect.isfunction(endpoint) or inspect.ismethod(endpoint))
        self.general_waits = True
        self.bind = plan.bind
        self.call = plan.call
        self.needs_request = plan.needs_request
        self.path_converters = plan.path_converters
        self.general = plan.general
        self.status_code = self.options.get("status_code")
        self.response_class = self.options.get("response_class")
        if self.response_class is not None and not (isinstance(self.response_class, type) and
                                                    issubclass(self.response_class, Response)):
            raise TypeError(f"{method} {path}: response_class must be a Response subclass")
        model = self.options.get("response_model", Default)
        if model is Default:
            model = _annotation_model(endpoint)
        self.serializer = make_serializer(model, self.options, f"{method} {path}") \
            if model is not None else None
        self.render = self._make_render()
        self.respond = None

    def _make_render(self):
        status = self.status_code
        serializer = self.serializer
        response_class = self.response_class
        if status is None and serializer is None and response_class in (None, JSONResponse):
            return render_result
        status = 200 if status is None else status
        bodyless = not body_allowed(status)

        def render(result):
            if isinstance(result, Response):
                return render_result(result)
            if serializer is not None:
                result = serializer(result)
            if bodyless:
                return status, [], b""
            if response_class is not None and response_class is not JSONResponse:
                return response_class(result, status_code=status)._triple()
            return render_result(result, status)
        return render

    def to_response(self, result):
        """The handler's result as a Response object (general path)."""
        if isinstance(result, Response):
            return result
        if self.serializer is not None:
            result = self.serializer(result)
        response = to_response(result, self.status_code, self.response_class)
        if not body_allowed(response.status_code):
            response.body = b""
        return response

    async def endpoint_response(self, request):
        """The innermost layer of the general path: solve, call, render, with
        the app's exception handlers (not the catch-all ones) applied."""
        ctx = request._ctx
        app = self.app
        merge = True
        try:
            args = await solve(self.plan, ctx)
            result = self.call(*args)
            if self.is_async or inspect.isawaitable(result):
                result = await result
            # As FastAPI: a Response the handler made is sent as it is.
            merge = not isinstance(result, Response)
            response = self.to_response(result)
        except Exception as exc:
            if ctx.exits:
                exc = await close_exits(ctx.exits, exc)
                if exc is None:
                    raise RuntimeError("a yield dependency swallowed the handler's exception "
                                       "and no response was produced") from None
            response = await app._handle(request, exc, catch_all=False)
        sub = ctx.response
        if sub is not None and merge:
            if sub.status_code is not None:
                response.status_code = sub.status_code
            response.raw_headers.extend(p for p in sub.raw_headers if p[0] != "content-length")
        return response

    def describe(self):
        """This route's row of the route table (see _boot.describe)."""
        return (self.id, self.method, self.path, self.kind, self.extra)

    def __repr__(self):
        return f"<Route {self.id} {self.method} {self.path} -> {self.name}>"

