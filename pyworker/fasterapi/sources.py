"""Getters: one small closure per bound parameter, made by binding.compile_plan
at start-up, that reads the parameter's raw value from the request and
converts it with its compiled validator.

A getter is get(params, q, request) -> value, raising _Invalid with complete
FastAPI error entries. params: the raw path values; q: the
query as {name: last value} (with .lists, every value, when the plan has a
list parameter); request: the Request, or None for a plan that needs none.

Bodies are read once per request and cached on the Request: JSON
(read_json_body, with FastAPI's content-type rules and json_invalid error)
or a form (read_form_body; 400 on a malformed one, as Starlette).
"""

import json
from urllib.parse import unquote

from .convert import Invalid
from .exceptions import HTTPException
from .forms import FormError, UploadFile, parse_form

__all__ = ["read_json_body", "read_form_body"]


class _Invalid(Exception):
    """A getter's failure: args[0] is a list of complete error entries."""


# get(params, q, request) -> value, raising _Invalid([entries]).
# params: raw path values; q: the query dict (name -> last value; with
# .lists when a plan needs every value); request: the Request or None.

def _entries(exc, source, name):
    head = [source] if name is None else [source, name]
    out = []
    for e in exc.errors:
        entry = {"type": e["type"], "loc": head + list(e["loc"]), "msg": e["msg"],
                 "input": e["input"]}
        if "ctx" in e:
            entry["ctx"] = e["ctx"]
        out.append(entry)
    return out


def _missing(source, name, value=None):
    loc = [source, name] if name is not None else [source]
    return {"type": "missing", "loc": loc, "msg": "Field required", "input": value}


def _path_getter(index, name, validate):
    def get(params, q, request):
        raw = params[index]
        if "%" in raw:
            raw = unquote(raw)
        if validate is None:
            return raw
        try:
            return validate(raw)
        except Invalid as exc:
            raise _Invalid(_entries(exc, "path", name)) from None
    return get


def _scalar_getter(source, lookup, name, validate, required, default, factory):
    """A query / header / cookie getter; lookup(params, q, request) gives
    the raw value or None."""
    def get(params, q, request):
        raw = lookup(params, q, request)
        if raw is None:
            if required:
                raise _Invalid([_missing(source, name)])
            return factory() if factory is not None else default
        if validate is None:
            return raw
        try:
            return validate(raw)
        except Invalid as exc:
            raise _Invalid(_entries(exc, source, name)) from None
    return get


def _query_getter(name, validate, required, default, factory):
    """_scalar_getter for the common case, the last value of a query
    parameter, with the lookup inline (the fast path's hottest getter)."""
    def get(params, q, request):
        raw = q.get(name)
        if raw is None:
            if required:
                raise _Invalid([_missing("query", name)])
            return factory() if factory is not None else default
        if validate is None:
            return raw
        try:
            return validate(raw)
        except Invalid as exc:
            raise _Invalid(_entries(exc, "query", name)) from None
    return get


def _query_all(name):
    def lookup(params, q, request):
        values = q.lists.get(name)
        return values if values else None
    return lookup


def _header_first(name):
    def lookup(params, q, request):
        for n, v in request._header_list:
            if n == name:
                return v
        return None
    return lookup


def _header_all(name):
    def lookup(params, q, request):
        values = [v for n, v in request._header_list if n == name]
        return values if values else None
    return lookup


def _cookie(name):
    def lookup(params, q, request):
        return request.cookies.get(name)
    return lookup


def _request_getter(params, q, request):
    return request


def _response_getter(params, q, request):
    return request._ctx.sub_response()


def _background_getter(params, q, request):
    return request._ctx.background_tasks()


# -- bodies

def _json_type(content_type):
    if not content_type:
        return True
    main = content_type.partition(";")[0].strip().lower()
    kind, _, sub = main.partition("/")
    return kind == "application" and (sub == "json" or sub.endswith("+json"))


_NO_BODY = object()


def read_json_body(request):
    """The body as FastAPI sees it: _NO_BODY when empty, the parsed JSON
    for a JSON (or missing) content type, else the bytes. Cached on the
    request; invalid JSON raises _Invalid with FastAPI's json_invalid."""
    cached = request._parsed
    if cached is not None:
        if type(cached) is _Invalid:
            raise cached
        return cached[0]
    data = request.get_data()
    if not data:
        value = _NO_BODY
    elif _json_type(request.headers.get("content-type")):
        try:
            value = json.loads(data)
        except json.JSONDecodeError as exc:
            err = _Invalid([{"type": "json_invalid", "loc": ["body", exc.pos],
                             "msg": "JSON decode error", "input": {}, "ctx": {"error": exc.msg}}])
            request._parsed = err
            raise err from None
        except UnicodeDecodeError:
            raise HTTPException(400, "There was an error parsing the body") from None
    else:
        value = data
    request._parsed = (value,)
    return value


def read_form_body(request):
    cached = request._parsed
    if cached is not None:
        return cached[0]
    try:
        form = parse_form(request.headers.get("content-type"), request.get_data())
    except FormError:
        raise HTTPException(400, "There was an error parsing the body") from None
    request._parsed = (form,)
    return form


def _body_whole_getter(name, validate, required, default, factory, first):
    """The single, not embedded body parameter: the whole JSON body."""
    def get(params, q, request):
        try:
            body = read_json_body(request)
        except _Invalid:
            if first:
                raise
            return None
        if body is _NO_BODY:
            if required:
                raise _Invalid([_missing("body", None)])
            return factory() if factory is not None else default
        try:
            return validate(body)
        except Invalid as exc:
            raise _Invalid(_entries(exc, "body", None)) from None
    return get


def _body_key_getter(name, alias, validate, required, default, factory, first):
    """An embedded body parameter: the body's key `alias`."""
    def get(params, q, request):
        try:
            body = read_json_body(request)
        except _Invalid:
            if first:
                raise
            return None
        value = body.get(alias, _NO_BODY) if isinstance(body, dict) else _NO_BODY
        if value is _NO_BODY or value is None and required:
            if required:
                raise _Invalid([_missing("body", alias)])
            return factory() if factory is not None else default
        try:
            return validate(value)
        except Invalid as exc:
            raise _Invalid(_entries(exc, "body", alias)) from None
    return get


def _as_bytes(value):
    if isinstance(value, UploadFile):
        return value.file.getvalue()
    return value.encode() if isinstance(value, str) else value


def _form_getter(alias, validate, required, default, factory, many, is_file, wants_bytes):
    def get(params, q, request):
        form = read_form_body(request)
        if many:
            value = form.getlist(alias)
            if not value:
                value = None
        else:
            value = form.get(alias)
            if value == "" and not is_file:
                value = None
        if value is None:
            if required:
                raise _Invalid([_missing("body", alias)])
            return factory() if factory is not None else default
        if wants_bytes:
            value = [_as_bytes(v) for v in value] if many else _as_bytes(value)
        if validate is None:
            return value
        try:
            return validate(value)
        except Invalid as exc:
            raise _Invalid(_entries(exc, "body", alias)) from None
    return get
