"""Binding plans: how a handler's parameters are filled from a request.

A plan is compiled once per handler, when its route is registered; all the
signature and annotation work happens then. At request time the plan's
bind(params, query, request) runs one small closure per parameter and returns
the positional arguments, or raises RequestValidationError listing every bad
field with FastAPI's shape and order (path parameters, then query).

Sources, by name: a parameter annotated Request (or unannotated and named
request/req) gets the Request; one named like a path parameter gets that
(percent-decoded); any other comes from the query string (last value wins).
Types come from annotations: int, float, str, bool, Optional[...] of those,
typing.Any; no annotation means str. A default makes a query parameter
optional. Conversions follow pydantic v2's lax rules for strings.
"""

import inspect
import types
import typing
from urllib.parse import unquote

from .exceptions import RequestValidationError
from .request import Request, parse_query_last

__all__ = ["Plan", "compile_plan"]


# ------------------------------------------------------------------ converters
# Each takes the decoded string and returns the value or raises ValueError.

def _to_int(raw):
    # pydantic accepts what Python's int() does for ASCII input (surrounding
    # whitespace, sign, leading zeros, single underscores) plus a fraction of
    # zeros ("3.00"); it refuses other digits (int() takes "٣").
    if raw.isascii():
        try:
            return int(raw)
        except ValueError:
            whole, dot, zeros = raw.strip().partition(".")
            if dot and zeros and not zeros.strip("0") and whole and not whole[-1].isspace():
                return int(whole)
    raise ValueError(raw)


def _to_float(raw):
    if raw.isascii():
        return float(raw)
    raise ValueError(raw)


_BOOL_WORDS = {
    "0": False, "f": False, "n": False, "no": False, "off": False, "false": False,
    "1": True, "t": True, "y": True, "on": True, "yes": True, "true": True,
}


def _to_bool(raw):
    # pydantic v2's str_as_bool: these words, ASCII case-insensitive, no trimming.
    value = _BOOL_WORDS.get(raw.lower())
    if value is None:
        raise ValueError(raw)
    return value


# annotation -> (converter or None for str, error type, message)
_CONVERTERS = {
    int: (_to_int, "int_parsing",
          "Input should be a valid integer, unable to parse string as an integer"),
    float: (_to_float, "float_parsing",
            "Input should be a valid number, unable to parse string as a number"),
    bool: (_to_bool, "bool_parsing", "Input should be a valid boolean, unable to interpret input"),
    str: (None, None, None),
    typing.Any: (None, None, None),
}


# ------------------------------------------------------------------ getters
# A getter is get(params, q, request) -> value, raising _Invalid(error).
# params: the raw path values; q: the query as {name: value} (decoded);
# request: the Request or None.

class _Invalid(Exception):
    pass


def _error(kind, source, name, msg, raw):
    return {"type": kind, "loc": [source, name], "msg": msg, "input": raw}


def _path_getter(index, name, convert, kind, msg):
    def get(params, q, request):
        raw = params[index]
        if "%" in raw:
            raw = unquote(raw)
        if convert is None:
            return raw
        try:
            return convert(raw)
        except ValueError:
            raise _Invalid(_error(kind, "path", name, msg, raw)) from None
    return get


def _query_getter(name, convert, kind, msg, required, default):
    def get(params, q, request):
        raw = q.get(name)
        if raw is None:
            if required:
                raise _Invalid(_error("missing", "query", name, "Field required", None))
            return default
        if convert is None:
            return raw
        try:
            return convert(raw)
        except ValueError:
            raise _Invalid(_error(kind, "query", name, msg, raw)) from None
    return get


def _request_getter(params, q, request):
    return request


# ------------------------------------------------------------------ plans

class Plan:
    """What dispatch needs to call one handler.

    bind(params, query, request) -> list of positional arguments, or raises
    RequestValidationError. call(*args) calls the handler (keyword-only
    parameters are passed by name). needs_request: build a Request for it.
    path_converters: (name, converter or None) per path parameter, in pattern
    order, for Request.path_params.
    """

    __slots__ = ("bind", "call", "needs_request", "path_converters")

    def __init__(self, bind, call, needs_request, path_converters):
        self.bind = bind
        self.call = call
        self.needs_request = needs_request
        self.path_converters = path_converters


_NO_QUERY = {}   # never written: getters only read it


def _bind_nothing(params, query, request):
    return ()


def _make_bind(getters, ranks, reads_query):
    if not getters:
        return _bind_nothing

    def collect(params, q, request):
        # The slow path, after a getter failed: run them all again (they have
        # no side effects) and keep every error, path errors first.
        errors = []
        for get, rank in zip(getters, ranks):
            try:
                get(params, q, request)
            except _Invalid as exc:
                errors.append((rank, exc.args[0]))
        errors.sort(key=lambda e: e[0])
        return [e for _, e in errors]

    def bind(params, query, request):
        q = parse_query_last(query) if reads_query and query else _NO_QUERY
        args = []
        try:
            for get in getters:
                args.append(get(params, q, request))
        except _Invalid:
            raise RequestValidationError(collect(params, q, request)) from None
        return args

    return bind


def _without_none(ann):
    """X for Optional[X], X | None and Union[X, None]; else ann itself."""
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return ann


def _resolve_annotation(ann, where):
    """(converter, error type, message) for an annotation, or TypeError."""
    if ann is inspect.Parameter.empty:
        return _CONVERTERS[str]
    try:
        return _CONVERTERS[ann]
    except (KeyError, TypeError):
        pass
    raise TypeError(f"{where}: annotation {_type_name(ann)} is not supported (use int, float, "
                    f"str, bool, an Optional of those, or Request)")


def _type_name(ann):
    if isinstance(ann, type):
        return ann.__qualname__ if ann.__module__ == "builtins" else \
            f"{ann.__module__}.{ann.__qualname__}"
    return repr(ann)


def _is_request_annotation(ann):
    return isinstance(ann, type) and issubclass(ann, Request)


def handler_name(endpoint):
    name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
    module = getattr(endpoint, "__module__", None)
    return f"{module}.{name}" if module else name


def compile_plan(endpoint, path_names, where):
    """Compiles the plan for `endpoint` serving a pattern whose parameters
    are `path_names` (in pattern order). `where` ("GET /users/{id}") prefixes
    the TypeError raised for a parameter that cannot be bound."""
    label = f"{where} ({handler_name(endpoint)})"
    try:
        signature = inspect.signature(endpoint, eval_str=True)
    except (NameError, SyntaxError) as exc:
        raise TypeError(f"{label}: cannot resolve the handler's annotations: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{label}: cannot read the handler's signature: {exc}") from exc

    path_index = {name: i for i, name in enumerate(path_names)}
    path_converters = dict.fromkeys(path_names)
    getters, ranks, keyword_only = [], [], []
    reads_query = needs_request = False
    for p in signature.parameters.values():
        at = f"{label}: parameter {p.name!r}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{at}: *args and **kwargs cannot be bound from a request")
        if p.kind is p.KEYWORD_ONLY:
            keyword_only.append(p.name)
        ann = _without_none(p.annotation)
        if _is_request_annotation(ann) or (
                ann is p.empty and p.name in ("request", "req") and p.name not in path_index):
            getters.append(_request_getter)
            ranks.append(2)
            needs_request = True
            continue
        convert, kind, msg = _resolve_annotation(ann, at)
        if p.name in path_index:
            getters.append(_path_getter(path_index[p.name], p.name, convert, kind, msg))
            ranks.append(0)
            path_converters[p.name] = convert
        else:
            required = p.default is p.empty
            getters.append(_query_getter(p.name, convert, kind, msg, required,
                                         None if required else p.default))
            ranks.append(1)
            reads_query = True

    call = endpoint
    if keyword_only:
        n_positional = len(getters) - len(keyword_only)

        def call(*args):
            return endpoint(*args[:n_positional], **dict(zip(keyword_only, args[n_positional:])))

    return Plan(_make_bind(tuple(getters), tuple(ranks), reads_query), call, needs_request,
                tuple(path_converters.items()))
