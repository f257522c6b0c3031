"""Binding plans: how a handler's parameters are filled from a request.

A plan is compiled once per handler (and once per dependency), when its
route is registered; all the signature and annotation work happens then.
At request time each parameter is one small getter closure.

Sources, as FastAPI decides them: a marker (Query(), Path(), Header(),
Cookie(), Body(), Form(), File(), Depends()) as the default or in
Annotated wins; else Request, Response and BackgroundTasks by annotation
(and an unannotated parameter named request or req gets the Request); a
name that is a path parameter comes from the path (percent-decoded);
UploadFile is a file part; a scalar annotation (int, float, str, bool,
Enum, Literal, UUID, dates, Decimal, Optional of those) is a query
parameter (last value wins; list[X] needs Query() and takes every value);
anything else (dataclass, TypedDict, pydantic model, dict, list) is the
JSON body. No annotation means str.

Two ways to run a plan:
- fast: plan.bind(params, query, request) -> positional arguments, for a
  handler without dependencies and without Response / BackgroundTasks
  parameters: no per-request state but the query dict.
- general: await solve(plan, ctx) for everything else (dependencies with
  their caching and yield cleanups, ...), ctx being a RequestContext.

Both raise RequestValidationError listing every bad field in FastAPI's
order: dependencies first, then path, query, header, cookie, body.
"""

import copy
import dataclasses
import datetime
import functools
import decimal
import enum
import inspect
import types
import typing
import uuid

from . import convert
from .background import BackgroundTasks
from .convert import Constraints, compile_validator
from .exceptions import RequestValidationError
from .forms import UploadFile
from .sources import (_Invalid, _background_getter, _body_key_getter, _body_whole_getter,
                      _cookie, _form_getter, _header_all, _header_first, _path_getter,
                      _query_all, _query_getter, _request_getter, _response_getter,
                      _scalar_getter)
from .params import Body, Depends, File, Form, Param, Required, Security
from .request import Request, parse_query_last, parse_query_multi

__all__ = ["Plan", "Field", "compile_plan", "solve", "RequestContext", "handler_name",
           "is_scalar"]

_EMPTY = inspect.Parameter.empty
_RANKS = {"path": 1, "query": 2, "header": 3, "cookie": 4, "body": 5}


def handler_name(endpoint):
    name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
    module = getattr(endpoint, "__module__", None)
    return f"{module}.{name}" if module else name


# ------------------------------------------------------------------ fields

@dataclasses.dataclass
class Field:
    """One bound parameter, as compile_plan understood it (also what the
    OpenAPI document is built from). source: path, query, header, cookie,
    body, form, file, request, response, background, depends."""
    name: str
    source: str
    annotation: object = None
    alias: str = None
    required: bool = True
    default: object = None
    marker: object = None
    embed: bool = False


_SCALARS = (int, float, str, bool, bytes)


def is_scalar(ann):
    """True for what FastAPI reads from a query string: scalars, Enum,
    Literal, UUID, dates, Decimal, and Optional / Union of those."""
    ann = convert.strip_annotated(ann)[0]
    if ann is _EMPTY or ann is typing.Any or ann is None or ann is type(None):
        return True
    origin = typing.get_origin(ann)
    if origin is typing.Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(is_scalar(a) for a in typing.get_args(ann))
    if isinstance(ann, type):
        if issubclass(ann, enum.Enum):
            return True
        return issubclass(ann, _SCALARS + (uuid.UUID, datetime.date, datetime.time,
                                            datetime.timedelta, decimal.Decimal)) and \
            not convert.is_typeddict(ann)
    return False


def _is_upload(ann):
    ann = convert.without_none(convert.strip_annotated(ann)[0])[0]
    if isinstance(ann, type) and issubclass(ann, UploadFile):
        return True
    args = typing.get_args(ann)
    return typing.get_origin(ann) in (list, tuple, set) and bool(args) and _is_upload(args[0])


def _special(ann):
    ann = convert.without_none(convert.strip_annotated(ann)[0])[0]
    if isinstance(ann, type):
        if issubclass(ann, Request):
            return "request"
        from .responses import Response
        if issubclass(ann, Response):
            return "response"
        if issubclass(ann, BackgroundTasks):
            return "background"
        from .security import SecurityScopes
        if issubclass(ann, SecurityScopes):
            return "scopes"
    return None


# ------------------------------------------------------------------ plans

class Plan:
    """What dispatch needs to call one handler (or dependency).

    bind(params, query, request) -> positional arguments (fast plans only).
    call(*args) calls the handler (keyword-only parameters are passed by
    name). needs_request: build a Request for it. path_converters: (name,
    converter or None) per path parameter, in pattern order, for
    Request.path_params. general: the plan needs solve() (dependencies,
    Response or BackgroundTasks parameters). fields: the Field list, for
    OpenAPI (dependencies' fields flattened in). deps: [(index, Dependency)].
    is_async: some dependency of the tree is a coroutine or async generator.
    """

    __slots__ = ("bind", "call", "needs_request", "path_converters", "general", "fields",
                 "getters", "ranks", "deps", "n_args", "is_async", "needs_multi", "body_fields",
                 "endpoint")


class Dependency:
    __slots__ = ("call", "plan", "use_cache", "key", "kind", "scopes")

    def __init__(self, call, plan, use_cache, scopes):
        self.call = call
        self.plan = plan
        self.use_cache = use_cache
        self.scopes = tuple(scopes)
        self.key = (call, self.scopes)
        target = call if inspect.isfunction(call) or inspect.ismethod(call) else \
            getattr(call, "__call__", call)
        if inspect.isasyncgenfunction(call) or inspect.isasyncgenfunction(target):
            self.kind = "agen"
        elif inspect.isgeneratorfunction(call) or inspect.isgeneratorfunction(target):
            self.kind = "gen"
        elif inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(target):
            self.kind = "async"
        else:
            self.kind = "sync"


def _bind_nothing(params, query, request):
    return ()


def _make_bind(getters, ranks, reads_query, needs_multi):
    if not getters:
        return _bind_nothing
    parse = parse_query_multi if needs_multi else parse_query_last

    def bind(params, query, request):
        q = parse(query) if reads_query and query else _NO_QUERY
        args = []
        try:
            for get in getters:
                args.append(get(params, q, request))
        except _Invalid:
            raise RequestValidationError(_collect(getters, ranks, params, q, request)) from None
        return args

    return bind


class _NoQuery(dict):
    lists = {}


_NO_QUERY = _NoQuery()   # never written: getters only read it


def _collect(getters, ranks, params, q, request):
    # The slow path, after a getter failed: run them all again (they have no
    # side effects) and keep every error, in FastAPI's order.
    errors = []
    for get, rank in zip(getters, ranks):
        if get is None:
            continue
        try:
            get(params, q, request)
        except _Invalid as exc:
            errors.append((rank, exc.args[0]))
    errors.sort(key=lambda e: e[0])
    return [entry for _, entries in errors for entry in entries]


def _marker_of(p, ann):
    """(annotation without Annotated markers, marker or None, default)."""
    inner, metadata = convert.strip_annotated(ann)
    marker = None
    for item in metadata:
        if isinstance(item, (Param, Depends)):
            marker = item
    default = p.default
    if isinstance(default, (Param, Depends)):
        if marker is not None:
            raise TypeError("a marker both in Annotated and as the default")
        marker, default = default, _EMPTY
    if marker is None:
        return ann, None, default
    if isinstance(marker, Param) and default is _EMPTY and marker.default is not Required:
        default = marker.default
    keep = [m for m in metadata if m is not marker]
    if keep:
        ann = typing.Annotated[(inner, *keep)]
    else:
        ann = inner
    return ann, marker, default


def _resolve_signature(endpoint, label):
    try:
        return inspect.signature(endpoint, eval_str=True)
    except (NameError, SyntaxError) as exc:
        raise TypeError(f"{label}: cannot resolve the handler's annotations: {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{label}: cannot read the handler's signature: {exc}") from exc


def compile_plan(endpoint, path_names, where, extra_dependencies=(), _stack=()):
    """Compiles the plan for `endpoint` serving a pattern whose parameters
    are `path_names` (in pattern order). `where` ("GET /users/{id}") prefixes
    the TypeError raised for a parameter that cannot be bound.
    extra_dependencies: Depends markers solved first, values unused (the
    route's, router's and app's dependencies=[...])."""
    label = f"{where} ({handler_name(endpoint)})"
    if endpoint in _stack:
        raise TypeError(f"{label}: dependency cycle through {handler_name(endpoint)}")
    signature = _resolve_signature(endpoint, label)

    path_index = {name: i for i, name in enumerate(path_names)}
    path_converters = dict.fromkeys(path_names)
    getters, ranks, fields, deps, keyword_only = [], [], [], [], []
    body_specs = []
    reads_query = needs_request = general = needs_multi = is_async = False

    for dep in extra_dependencies:
        d = _compile_dependency(dep, None, path_names, where, _stack + (endpoint,))
        deps.append((None, d))
        fields.extend(d.plan.fields)
        general = True
        is_async = is_async or d.kind in ("async", "agen") or d.plan.is_async

    for p in signature.parameters.values():
        at = f"{label}: parameter {p.name!r}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{at}: *args and **kwargs cannot be bound from a request")
        if p.kind is p.KEYWORD_ONLY:
            keyword_only.append(p.name)
        index = len(getters)
        try:
            ann, marker, default = _marker_of(p, p.annotation)
        except TypeError as exc:
            raise TypeError(f"{at}: {exc}") from None
        required = default is _EMPTY or default is Required or default is Ellipsis
        if required:
            default = None
        factory = marker.default_factory if isinstance(marker, Param) else None
        if factory is not None:
            required = False
        elif isinstance(default, (list, dict, set)):
            # A mutable default is copied per request (FastAPI deep-copies it),
            # so that a handler changing it does not change the next request's.
            factory = functools.partial(copy.copy, default)

        if isinstance(marker, Depends):
            target = marker.dependency
            if target is None:
                target = convert.strip_annotated(ann)[0]
                if ann is _EMPTY or not callable(target):
                    raise TypeError(f"{at}: Depends() without a dependency needs a class "
                                    f"annotation")
            d = _compile_dependency(marker, target, path_names, where, _stack + (endpoint,))
            getters.append(None)
            ranks.append(0)
            deps.append((index, d))
            fields.extend(d.plan.fields)
            general = True
            is_async = is_async or d.kind in ("async", "agen") or d.plan.is_async
            continue

        special = _special(ann) if marker is None else None
        if special is None and marker is None and ann is _EMPTY and p.name in ("request", "req") \
                and p.name not in path_index:
            special = "request"
        if special is not None:
            getter = {"request": _request_getter, "response": _response_getter,
                      "background": _background_getter, "scopes": _scopes_getter}[special]
            getters.append(getter)
            ranks.append(0)
            fields.append(Field(p.name, special))
            needs_request = True
            if special != "request":
                general = True
            continue

        source = marker.in_ if isinstance(marker, Param) else None
        if isinstance(marker, File) or (marker is None and _is_upload(ann)):
            source = "file"
        elif isinstance(marker, Form):
            source = "form"
        if source is None:
            if p.name in path_index:
                source = "path"
            elif ann is _EMPTY or is_scalar(ann):
                source = "query"
            else:
                source = "body"
        if source == "path" and p.name not in path_index:
            raise TypeError(f"{at}: Path() but the route pattern has no {{{p.name}}}")
        alias = marker.alias if isinstance(marker, Param) and marker.alias else None
        if source == "header" and alias is None:
            alias = p.name.replace("_", "-") if marker.convert_underscores else p.name
        alias = alias or p.name
        if source == "header":
            alias = alias.lower()
        constraints = Constraints.of(marker) if isinstance(marker, Param) else None
        bare = convert.strip_annotated(ann)[0]
        many = source in ("query", "header", "form", "file") and convert.is_sequence(ann)
        try:
            if ann is _EMPTY or bare is str and constraints is None:
                validate = None
            elif source in ("body",):
                validate = compile_validator(ann, constraints=constraints)
            elif source == "file":
                validate = None if _is_upload(ann) or bare is bytes or \
                    convert.without_none(bare)[0] is bytes else \
                    compile_validator(ann, from_str=True, constraints=constraints)
            else:
                if not (ann is _EMPTY or is_scalar(ann) or many):
                    raise TypeError(f"annotation {convert.type_label(bare)} cannot be read from "
                                    f"a {source} (use int, float, str, bool, an Enum, a Literal, "
                                    f"an Optional of those, or list[...] with Query())")
                validate = compile_validator(ann, from_str=True, constraints=constraints)
                if validate is convert._v_any:
                    validate = None
        except TypeError as exc:
            raise TypeError(f"{at}: {exc} (supported: int, float, str, bool, Enum, Literal, "
                            f"Optional, list, dict, dataclasses, TypedDict, pydantic models, "
                            f"Request)") from None
        field = Field(p.name, source, ann, alias, required, default, marker)
        fields.append(field)
        if source == "path":
            getter = _path_getter(path_index[p.name], p.name, validate)
            path_converters[p.name] = validate
        elif source == "query":
            reads_query = True
            if many:
                needs_multi = True
            getter = _scalar_getter("query", _query_all(alias), alias, validate, required,
                                    default, factory) if many else \
                _query_getter(alias, validate, required, default, factory)
        elif source == "header":
            getter = _scalar_getter("header", _header_all(alias) if many else
                                    _header_first(alias), alias, validate, required, default,
                                    factory)
            needs_request = True
        elif source == "cookie":
            getter = _scalar_getter("cookie", _cookie(alias), alias, validate, required, default,
                                    factory)
            needs_request = True
        elif source in ("form", "file"):
            wants_bytes = source == "file" and not _is_upload(ann)
            getter = _form_getter(alias, validate, required, default, factory, many,
                                  source == "file", wants_bytes)
            needs_request = True
        else:
            body_specs.append((index, field, validate, factory))
            getter = None
            needs_request = True
        getters.append(getter)
        ranks.append(_RANKS["body" if source in ("form", "file") else source])

    if body_specs and any(f.source in ("form", "file") for f in fields):
        raise TypeError(f"{label}: body parameters "
                        f"{', '.join(repr(f.name) for _, f, _, _ in body_specs)} cannot be mixed "
                        f"with Form() or File() parameters (the body is either JSON or a form)")
    if body_specs:
        embed = len(body_specs) > 1 or any(
            isinstance(f.marker, Body) and f.marker.embed for _, f, _, _ in body_specs)
        for n, (index, field, validate, factory) in enumerate(body_specs):
            field.embed = embed
            if embed:
                getters[index] = _body_key_getter(field.name, field.alias, validate,
                                                  field.required, field.default, factory, n == 0)
            else:
                getters[index] = _body_whole_getter(field.name, validate, field.required,
                                                    field.default, factory, n == 0)

    call = endpoint
    if keyword_only:
        n_positional = len(getters) - len(keyword_only)

        def call(*args):
            return endpoint(*args[:n_positional], **dict(zip(keyword_only, args[n_positional:])))

    plan = Plan()
    plan.endpoint = endpoint
    plan.getters = tuple(getters)
    plan.ranks = tuple(ranks)
    plan.deps = tuple(deps)
    plan.n_args = len(getters)
    plan.call = call
    plan.needs_request = needs_request or general
    plan.path_converters = tuple(path_converters.items())
    plan.general = general
    plan.fields = fields
    plan.is_async = is_async
    plan.needs_multi = needs_multi
    plan.body_fields = [f for _, f, _, _ in body_specs]
    plan.bind = None if general else _make_bind(plan.getters, plan.ranks, reads_query,
                                                needs_multi)
    return plan


def _compile_dependency(marker, target, path_names, where, stack):
    call = target if target is not None else marker.dependency
    if not callable(call):
        raise TypeError(f"{where}: Depends({call!r}) is not callable")
    plan = compile_plan(call, path_names, where, (), stack)
    scopes = marker.scopes if isinstance(marker, Security) else ()
    return Dependency(call, plan, marker.use_cache, scopes)


def _scopes_getter(params, q, request):
    from .security import SecurityScopes
    return SecurityScopes(request._ctx.scopes)


# ------------------------------------------------------------------ solving

class RequestContext:
    """Per-request state of the general path: the dependency cache, the
    yield dependencies to close, the BackgroundTasks and the Response that
    parameters asked for."""

    __slots__ = ("request", "params", "q", "cache", "exits", "background", "response", "scopes")

    def __init__(self, request, params, query):
        self.request = request
        self.params = params
        self.q = parse_query_multi(query) if query else _NO_QUERY
        self.cache = {}
        self.exits = []
        self.background = None
        self.response = None
        self.scopes = ()
        request._ctx = self

    def background_tasks(self):
        if self.background is None:
            self.background = BackgroundTasks()
        return self.background

    def sub_response(self):
        if self.response is None:
            from .responses import Response
            self.response = Response()
            self.response.status_code = None
        return self.response


async def solve(plan, ctx):
    """The plan's arguments (general path). Dependencies run here; yield
    dependencies are entered and recorded in ctx.exits."""
    errors = []
    args = [None] * plan.n_args
    for index, dep in plan.deps:
        try:
            value = await _resolve(dep, ctx)
        except RequestValidationError as exc:
            errors.extend(exc.errors())
            continue
        if index is not None:
            args[index] = value
    request = ctx.request
    params, q = ctx.params, ctx.q
    failed = []
    for i, (get, rank) in enumerate(zip(plan.getters, plan.ranks)):
        if get is None:
            continue
        try:
            args[i] = get(params, q, request)
        except _Invalid as exc:
            failed.append((rank, exc.args[0]))
    if failed:
        failed.sort(key=lambda e: e[0])
        errors.extend(entry for _, entries in failed for entry in entries)
    if errors:
        raise RequestValidationError(errors)
    return args


async def _resolve(dep, ctx):
    if dep.use_cache:
        try:
            return ctx.cache[dep.key]
        except KeyError:
            pass
    saved = ctx.scopes
    if dep.scopes:
        ctx.scopes = saved + dep.scopes
    try:
        args = await solve(dep.plan, ctx)
        kind = dep.kind
        value = dep.plan.call(*args)
        if kind == "sync":
            pass
        elif kind == "async":
            value = await value
        elif kind == "gen":
            gen = value
            value = next(gen)
            ctx.exits.append((gen, False))
        else:
            agen = value
            value = await agen.__anext__()
            ctx.exits.append((agen, True))
    finally:
        ctx.scopes = saved
    if dep.use_cache:
        ctx.cache[dep.key] = value
    return value


async def close_exits(exits, exc):
    """Closes yield dependencies, innermost first. exc: the exception the
    handler raised (thrown into each, as contextlib does) or None. Returns
    the exception to answer with at the end (the same, another one a
    dependency raised instead, or None)."""
    while exits:
        gen, is_async = exits.pop()
        if exc is None:
            try:
                if is_async:
                    await gen.__anext__()
                else:
                    next(gen)
            except (StopIteration, StopAsyncIteration):
                continue
            raise RuntimeError(f"dependency {gen.__qualname__} yielded more than once")
        try:
            if is_async:
                await gen.athrow(exc)
            else:
                gen.throw(exc)
        except (StopIteration, StopAsyncIteration):
            continue   # swallowed: answer with the original exception
        except BaseException as new:
            exc = new
            continue
        raise RuntimeError(f"dependency {gen.__qualname__} did not stop after throw()")
    return exc
