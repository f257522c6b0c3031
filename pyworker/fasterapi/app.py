"""App: where routes are registered (FastAPI's decorators).

Each (method, path) pair is one Route with a dense id from 0 in registration
order; that id is what the C router hands back to dispatch. Everything a
request needs that can be worked out in advance (path parameter names, the
binding plan, whether the handler is a coroutine and whether it can suspend)
is computed here, once.
"""

import dis
import inspect

from .params import compile_plan, handler_name

__all__ = ["App", "Route"]

# What the C router knows (http_parser method names).
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))

# Router limit (worker/router.h FA_ROUTER_MAX_PARAMS).
_MAX_PARAMS = 16

# Opcodes through which a coroutine can give control back to its caller.
_SUSPENDING_OPS = frozenset(("GET_AWAITABLE", "BEFORE_ASYNC_WITH", "GET_AITER", "GET_ANEXT",
                             "SEND", "YIELD_VALUE", "YIELD_FROM"))


def parse_pattern(path):
    """The parameter names of a route pattern, in order; ValueError if the
    pattern is one the C router would refuse or misread."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"route path {path!r} must be a str starting with '/'")
    for ch in path:
        if ch in "?#" or ch <= " " or ch == "\x7f":
            raise ValueError(f"route path {path!r} must not contain {ch!r}")
    names = []
    for segment in path.split("/")[1:]:
        if "{" not in segment and "}" not in segment:
            continue
        name = segment[1:-1]
        if not (segment.startswith("{") and segment.endswith("}")) or "{" in name or "}" in name:
            raise ValueError(f"route path {path!r}: a parameter must be a whole segment, "
                             f"like '/items/{{item_id}}'; got segment {segment!r}")
        if ":" in name:
            base = name.partition(":")[0]
            raise ValueError(f"route path {path!r}: typed parameters like {segment!r} are not "
                             f"supported; write '{{{base}}}' and annotate the handler's "
                             f"parameter instead ({base}: int)")
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


def _shape(path, names):
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


class Route:
    """One (method, path) pair. Read-only once registered.

    id, method, path (the pattern), endpoint, name ("module.qualname"),
    param_names (the pattern's), is_async (a coroutine function), suspends
    (its coroutine may suspend), and the plan's bind, call, needs_request,
    path_converters (see params.Plan).
    """

    __slots__ = ("id", "method", "path", "endpoint", "name", "param_names", "is_async",
                 "suspends", "bind", "call", "needs_request", "path_converters")

    def __init__(self, route_id, method, path, endpoint, param_names, plan):
        self.id = route_id
        self.method = method
        self.path = path
        self.endpoint = endpoint
        self.name = handler_name(endpoint)
        self.param_names = param_names
        self.is_async = inspect.iscoroutinefunction(endpoint)
        self.suspends = _may_suspend(endpoint)
        self.bind = plan.bind
        self.call = plan.call
        self.needs_request = plan.needs_request
        self.path_converters = plan.path_converters

    def describe(self):
        """This route's row of the route table (PROTOCOL.md)."""
        return (self.id, self.method, self.path, "python")

    def __repr__(self):
        return f"<Route {self.id} {self.method} {self.path} -> {self.name}>"


class App:
    """An application: its routes, registered with decorators.

        app = App()

        @app.get("/users/{user_id}")
        def get_user(user_id: int, verbose: bool = False):
            return {"id": user_id}

    Also importable as FastAPI. The C router answers HEAD with the GET route
    (the handler sees method "HEAD"), 404 and 405 itself.
    """

    def __init__(self):
        self.routes = []
        self._seen = {}
        self._frozen = False

    def route(self, path, methods=None):
        """Registers the decorated function for `path` and each of `methods`
        (default ["GET"]); returns the function unchanged."""
        if methods is None:
            methods = ["GET"]
        if isinstance(methods, str):
            raise TypeError(f"route {path!r}: methods must be a list of names, like "
                            f"[{methods!r}], not a str")
        methods = [m.upper() for m in methods]
        for m in methods:
            if m not in _METHODS:
                raise ValueError(f"route {path!r}: unknown method {m!r} (expected one of "
                                 f"{', '.join(sorted(_METHODS))})")
        names = parse_pattern(path)

        def decorator(endpoint):
            if not callable(endpoint):
                raise TypeError(f"route {path!r}: the handler must be callable, got "
                                f"{type(endpoint).__name__}")
            self._add(path, methods, names, endpoint)
            return endpoint
        return decorator

    api_route = route

    def get(self, path):
        return self.route(path, ["GET"])

    def post(self, path):
        return self.route(path, ["POST"])

    def put(self, path):
        return self.route(path, ["PUT"])

    def patch(self, path):
        return self.route(path, ["PATCH"])

    def delete(self, path):
        return self.route(path, ["DELETE"])

    def _add(self, path, methods, names, endpoint):
        if self._frozen:
            raise RuntimeError(f"route {path!r}: routes cannot be added once the server "
                               f"has loaded the app (register them at import time)")
        shape = _shape(path, names)
        for m in dict.fromkeys(methods):
            other = self._seen.get((m, shape))
            if other is not None:
                same = "" if other.path == path else f" (as {other.path})"
                raise ValueError(f"duplicate route {m} {path}: already registered{same} "
                                 f"for {other.name}")
        plan = None
        for m in dict.fromkeys(methods):
            if plan is None:
                plan = compile_plan(endpoint, names, f"{m} {path}")
            route = Route(len(self.routes), m, path, endpoint, names, plan)
            self.routes.append(route)
            self._seen[(m, shape)] = route

    def describe(self):
        """The route table: one (route_id, method, pattern, kind) per route."""
        return [route.describe() for route in self.routes]

    def _freeze(self):
        """The routes, by id; no route can be added afterwards."""
        self._frozen = True
        return tuple(self.routes)
