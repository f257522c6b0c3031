"""The OpenAPI 3.1 document, built from the routes, their binding plans
and models, the way FastAPI lays it out (operation ids, titles, the 422
HTTPValidationError response, Body_* components for embedded and form
bodies). Pydantic models describe themselves (model_json_schema() or, on
pydantic 1, schema()); dataclasses, TypedDicts and Enums get a component
each, built here.
"""

import dataclasses
import datetime
import decimal
import enum
import inspect
import re
import types
import typing
import uuid

from . import convert
from .encoders import jsonable_encoder
from .params import Body, File, Param
from .responses import body_allowed

__all__ = ["build", "json_schema"]

_REF = "#/components/schemas/"

VALIDATION_ERROR = {
    "properties": {
        "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array",
                "title": "Location"},
        "msg": {"type": "string", "title": "Message"},
        "type": {"type": "string", "title": "Error Type"},
    },
    "type": "object", "required": ["loc", "msg", "type"], "title": "ValidationError",
}
HTTP_VALIDATION_ERROR = {
    "properties": {"detail": {"items": {"$ref": _REF + "ValidationError"}, "type": "array",
                              "title": "Detail"}},
    "type": "object", "title": "HTTPValidationError",
}

_SIMPLE = {
    int: {"type": "integer"}, float: {"type": "number"}, str: {"type": "string"},
    bool: {"type": "boolean"}, bytes: {"type": "string", "format": "binary"},
    type(None): {"type": "null"}, uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.time: {"type": "string", "format": "time"},
    datetime.timedelta: {"type": "string", "format": "duration"},
    decimal.Decimal: {"anyOf": [{"type": "number"}, {"type": "string"}]},
}


def _title(name):
    return name.replace("_", " ").title()


def _constraints(schema, c, sequence):
    if c is None:
        return schema
    schema = dict(schema)
    for attr, key in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"),
                      ("lt", "exclusiveMaximum"), ("multiple_of", "multipleOf")):
        if getattr(c, attr) is not None:
            schema[key] = getattr(c, attr)
    if c.min_length is not None:
        schema["minItems" if sequence else "minLength"] = c.min_length
    if c.max_length is not None:
        schema["maxItems" if sequence else "maxLength"] = c.max_length
    if c.pattern is not None:
        schema["pattern"] = c.pattern
    return schema


def json_schema(ann, components, upload_as_binary=True):
    """A JSON schema for annotation `ann`; named types go into `components`
    (name -> schema) and are referenced."""
    inner, metadata = convert.strip_annotated(ann)
    schema = _schema(inner, components)
    for item in metadata:
        c = convert.Constraints.of(item)
        if c is not None:
            schema = _constraints(schema, c, convert.is_sequence(inner))
    return schema


def _schema(ann, components):
    if ann is inspect.Parameter.empty or ann is typing.Any or ann is object:
        return {}
    if ann is None:
        return {"type": "null"}
    try:
        if ann in _SIMPLE:
            return dict(_SIMPLE[ann])
    except TypeError:
        pass
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return json_schema(ann, components)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_schema(a, components) for a in args]}
    if origin is typing.Literal:
        values = [a.value if isinstance(a, enum.Enum) else a for a in args]
        kinds = {type(v) for v in values}
        out = {"const": values[0]} if len(values) == 1 else {"enum": values}
        if len(kinds) == 1:
            t = _SIMPLE.get(kinds.pop(), {}).get("type")
            if t:
                out["type"] = t
        return out
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        name = ann.__name__
        if name not in components:
            values = [m.value for m in ann]
            entry = {"type": "string"} if all(isinstance(v, str) for v in values) else \
                {"type": "integer"} if all(isinstance(v, int) for v in values) else {}
            entry.update({"enum": values, "title": name})
            components[name] = entry
        return {"$ref": _REF + name}
    if origin in (list, set, frozenset, tuple) or ann in (list, set, frozenset, tuple) or \
            origin in convert._ABC_SEQUENCES:
        base = origin or ann
        out = {"type": "array"}
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            out["prefixItems"] = [_schema(a, components) for a in args]
            out["minItems"] = out["maxItems"] = len(args)
            return out
        if args:
            out["items"] = _schema(args[0], components)
        if base in (set, frozenset):
            out["uniqueItems"] = True
        return out
    if origin in (dict,) or ann is dict or origin in (convert._abc.Mapping,):
        out = {"type": "object"}
        if len(args) == 2:
            out["additionalProperties"] = _schema(args[1], components)
        return out
    if convert.is_pydantic_model(ann):
        return _pydantic_schema(ann, components)
    if dataclasses.is_dataclass(ann) and isinstance(ann, type):
        return _class_schema(ann, components, convert._class_fields(ann),
                             lambda name, d, f: d is dataclasses.MISSING and
                             f is dataclasses.MISSING)
    if convert.is_typeddict(ann):
        hints = typing.get_type_hints(ann, include_extras=True)
        fields = [(n, a, dataclasses.MISSING, dataclasses.MISSING) for n, a in hints.items()]
        return _class_schema(ann, components, fields,
                             lambda name, d, f: name in ann.__required_keys__)
    from .forms import UploadFile
    if isinstance(ann, type) and issubclass(ann, UploadFile):
        return {"type": "string", "format": "binary"}
    return {}


def _class_schema(cls, components, fields, is_required):
    name = cls.__name__
    ref = {"$ref": _REF + name}
    if name in components:
        return ref
    components[name] = {}   # placeholder: recursive types
    props, required = {}, []
    for fname, ann, default, factory in fields:
        s = dict(json_schema(ann, components))
        if "$ref" in s:
            s = {"$ref": s["$ref"]}
        s["title"] = _title(fname)
        if is_required(fname, default, factory):
            required.append(fname)
        elif default is not dataclasses.MISSING:
            try:
                s["default"] = jsonable_encoder(default)
            except TypeError:
                pass
        props[fname] = s
    entry = {"properties": props, "type": "object"}
    if required:
        entry["required"] = required
    entry["title"] = name
    components[name] = entry
    return ref


def _pydantic_schema(model, components):
    name = model.__name__
    if name in components:
        return {"$ref": _REF + name}
    if hasattr(model, "model_json_schema"):
        s = model.model_json_schema(ref_template=_REF + "{model}")
        defs = s.pop("$defs", {})
    else:
        s = model.schema(ref_template=_REF + "{model}")
        defs = s.pop("definitions", {})
    for key, value in defs.items():
        components.setdefault(key, value)
    components[name] = s
    return {"$ref": _REF + name}


# ------------------------------------------------------------------ operations

def _operation_id(route):
    name = getattr(route.endpoint, "__name__", "endpoint")
    return re.sub(r"\W", "_", f"{name}{route.path}") + f"_{route.method.lower()}"


def _security(plan, schemes, out, seen, scopes=()):
    """The security requirements of the security dependencies in the plan's
    tree, each with the scopes Security() markers above it asked for."""
    from .security import _Scheme
    for _, dep in plan.deps:
        here = scopes + tuple(s for s in dep.scopes if s not in scopes)
        if isinstance(dep.call, _Scheme) and dep.call.scheme_name not in seen:
            seen.add(dep.call.scheme_name)
            schemes[dep.call.scheme_name] = dep.call.model
            out.append({dep.call.scheme_name: list(here)})
        _security(dep.plan, schemes, out, seen, here)


def _default_json(value):
    try:
        return jsonable_encoder(value)
    except TypeError:
        return None


def _operation(app, route, components, schemes):
    opts = route.options
    endpoint = route.endpoint
    op = {}
    if opts.get("tags"):
        op["tags"] = list(dict.fromkeys(opts["tags"]))
    op["summary"] = opts.get("summary") or _title(getattr(endpoint, "__name__", "endpoint"))
    description = opts.get("description") or inspect.cleandoc(endpoint.__doc__ or "")
    if description:
        op["description"] = description
    op["operationId"] = opts.get("operation_id") or _operation_id(route)

    parameters, seen = [], set()
    body_fields, form_fields = [], []
    for f in route.plan.fields:
        if f.source in ("path", "query", "header", "cookie"):
            key = (f.source, f.alias)
            if key in seen:
                continue
            seen.add(key)
            marker = f.marker if isinstance(f.marker, Param) else None
            if marker is not None and not marker.include_in_schema:
                continue
            schema = json_schema(f.annotation, components)
            schema = _constraints(schema, convert.Constraints.of(marker) if marker else None,
                                  convert.is_sequence(f.annotation))
            schema["title"] = (marker.title if marker and marker.title else _title(f.alias))
            if not f.required and f.default is not None:
                d = _default_json(f.default)
                if d is not None:
                    schema["default"] = d
            param = {"name": f.alias, "in": f.source,
                     "required": True if f.source == "path" else f.required, "schema": schema}
            if marker is not None and marker.description:
                param["description"] = marker.description
            if marker is not None and marker.deprecated:
                param["deprecated"] = True
            parameters.append(param)
        elif f.source == "body":
            body_fields.append(f)
        elif f.source in ("form", "file"):
            form_fields.append(f)
    if parameters:
        op["parameters"] = parameters

    if body_fields:
        if len(body_fields) == 1 and not body_fields[0].embed:
            f = body_fields[0]
            schema = json_schema(f.annotation, components)
            if "$ref" not in schema:
                schema["title"] = _title(f.alias)
            media = f.marker.media_type if isinstance(f.marker, Body) else "application/json"
            op["requestBody"] = {"content": {media: {"schema": schema}}, "required": f.required}
        else:
            name = f"Body_{op['operationId']}"
            components[name] = _fields_component(name, body_fields, components)
            op["requestBody"] = {"content": {"application/json": {"schema": {"$ref": _REF + name}}},
                                 "required": any(f.required for f in body_fields)}
    elif form_fields:
        name = f"Body_{op['operationId']}"
        components[name] = _fields_component(name, form_fields, components)
        media = "multipart/form-data" if any(f.source == "file" or isinstance(f.marker, File)
                                             for f in form_fields) else \
            "application/x-www-form-urlencoded"
        op["requestBody"] = {"content": {media: {"schema": {"$ref": _REF + name}}},
                             "required": any(f.required for f in form_fields)}

    status = route.status_code or 200
    ok = {"description": opts.get("response_description", "Successful Response")}
    if body_allowed(status):
        model = opts.get("response_model")
        from .routing import Default, _annotation_model
        if model is Default or "response_model" not in opts:
            model = _annotation_model(endpoint)
        media = "application/json"
        rc = route.response_class
        if rc is not None and rc.media_type:
            media = rc.media_type
        ok["content"] = {media: {"schema": json_schema(model, components) if model else {}}}
    responses = {str(status): ok}
    if parameters or body_fields or form_fields:
        responses["422"] = {"description": "Validation Error", "content": {
            "application/json": {"schema": {"$ref": _REF + "HTTPValidationError"}}}}
        components.setdefault("ValidationError", VALIDATION_ERROR)
        components.setdefault("HTTPValidationError", HTTP_VALIDATION_ERROR)
    for code, extra in (opts.get("responses") or {}).items():
        extra = dict(extra)
        model = extra.pop("model", None)
        entry = responses.setdefault(str(code), {"description": extra.get("description",
                                                                          "Additional Response")})
        entry.update(extra)
        if model is not None:
            entry.setdefault("content", {})["application/json"] = {
                "schema": json_schema(model, components)}
    op["responses"] = responses
    if opts.get("deprecated"):
        op["deprecated"] = True
    security = []
    _security(route.plan, schemes, security, set())
    if security:
        op["security"] = security
    if opts.get("openapi_extra"):
        op.update(opts["openapi_extra"])
    return op


def _fields_component(name, fields, components):
    props, required = {}, []
    for f in fields:
        if f.source == "file" and not convert.is_sequence(f.annotation):
            s = {"type": "string", "format": "binary"}
        elif f.source == "file":
            s = {"type": "array", "items": {"type": "string", "format": "binary"}}
        else:
            s = json_schema(f.annotation, components)
        s = dict(s)
        if "$ref" not in s:
            s["title"] = _title(f.alias)
        props[f.alias] = s
        if f.required:
            required.append(f.alias)
    out = {"properties": props, "type": "object"}
    if required:
        out["required"] = required
    out["title"] = name
    return out


def build(app):
    components, schemes, paths = {}, {}, {}
    for route in app.routes:
        if route.kind != "python" or not route.include_in_schema:
            continue
        paths.setdefault(route.path, {})[route.method.lower()] = \
            _operation(app, route, components, schemes)
    info = {"title": app.title, "version": app.version}
    if app.summary:
        info["summary"] = app.summary
    if app.description:
        info["description"] = app.description
    if app.terms_of_service:
        info["termsOfService"] = app.terms_of_service
    if app.contact:
        info["contact"] = app.contact
    if app.license_info:
        info["license"] = app.license_info
    doc = {"openapi": "3.1.0", "info": info}
    if app.servers:
        doc["servers"] = app.servers
    doc["paths"] = paths
    if components or schemes:
        doc["components"] = {}
        if components:
            doc["components"]["schemas"] = dict(sorted(components.items()))
        if schemes:
            doc["components"]["securitySchemes"] = schemes
    if app.openapi_tags:
        doc["tags"] = app.openapi_tags
    return doc

