"""Pydantic models as body parameters and response models, with pydantic 1
or 2, whichever is installed (neither is required).

model_validator(cls, from_attributes) validates with pydantic itself and
raises convert.Invalid with FastAPI's error entries: pydantic 2's errors as
they are (without "url"; ctx values made JSON-friendly), pydantic 1's
(Debian 12 ships 1.10) translated to pydantic 2's types and messages for
the common cases, with "input" found by walking loc into the data, so a 422
looks the same whichever pydantic validated it.
"""

import sys

from .convert import BOOL_PARSING, FLOAT_PARSING, INT_PARSING, Invalid, _expected, _num, error

__all__ = ["model_validator"]


# pydantic v1 error types -> (v2 type, message or None to keep v1's)
_V1_TYPES = {
    "value_error.missing": ("missing", "Field required"),
    "type_error.integer": ("int_parsing", INT_PARSING),
    "type_error.float": ("float_parsing", FLOAT_PARSING),
    "type_error.bool": ("bool_parsing", BOOL_PARSING),
    "type_error.str": ("string_type", "Input should be a valid string"),
    "type_error.list": ("list_type", "Input should be a valid list"),
    "type_error.dict": ("dict_type", "Input should be a valid dictionary"),
    "type_error.none.not_allowed": ("none_forbidden", "Input should not be None"),
    "value_error.uuid": ("uuid_parsing", "Input should be a valid UUID"),
    "value_error.extra": ("extra_forbidden", "Extra inputs are not permitted"),
}
_V1_LIMITS = {
    "value_error.number.not_gt": ("greater_than", "gt", "Input should be greater than {}"),
    "value_error.number.not_ge": ("greater_than_equal", "ge",
                                  "Input should be greater than or equal to {}"),
    "value_error.number.not_lt": ("less_than", "lt", "Input should be less than {}"),
    "value_error.number.not_le": ("less_than_equal", "le",
                                  "Input should be less than or equal to {}"),
}


def _walk(value, loc):
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _v1_error(e, data):
    loc = tuple(x for x in e["loc"] if x != "__root__")
    kind, msg, ctx = e["type"], e["msg"], e.get("ctx")
    value = _walk(data, loc) if kind != "value_error.missing" else \
        (_walk(data, loc[:-1]) if loc else data)
    if kind in _V1_TYPES:
        kind, msg = _V1_TYPES[kind]
        if kind == "int_parsing" and not isinstance(value, str):
            kind, msg = "int_type", "Input should be a valid integer"
        elif kind == "float_parsing" and not isinstance(value, str):
            kind, msg = "float_type", "Input should be a valid number"
        ctx = None
    elif kind in _V1_LIMITS:
        kind, key, text = _V1_LIMITS[kind]
        limit = (ctx or {}).get("limit_value")
        kind, msg, ctx = kind, text.format(_num(limit)), {key: limit}
    elif kind == "value_error.any_str.min_length":
        n = (ctx or {}).get("limit_value")
        kind, msg, ctx = "string_too_short", \
            f"String should have at least {n} character{'' if n == 1 else 's'}", {"min_length": n}
    elif kind == "value_error.any_str.max_length":
        n = (ctx or {}).get("limit_value")
        kind, msg, ctx = "string_too_long", \
            f"String should have at most {n} character{'' if n == 1 else 's'}", {"max_length": n}
    elif kind == "value_error.str.regex":
        p = (ctx or {}).get("pattern")
        kind, msg, ctx = "string_pattern_mismatch", f"String should match pattern '{p}'", \
            {"pattern": p}
    elif kind == "type_error.enum":
        expected = _expected((ctx or {}).get("enum_values", []) and
                             [m.value for m in ctx["enum_values"]])
        kind, msg, ctx = "enum", f"Input should be {expected}", {"expected": expected}
    elif kind == "value_error.const":
        expected = _expected((ctx or {}).get("permitted", ()))
        kind, msg, ctx = "literal_error", f"Input should be {expected}", {"expected": expected}
    elif kind in ("value_error", "assertion_error"):
        msg = ("Value error, " if kind == "value_error" else "Assertion failed, ") + msg
        ctx = {"error": {}}
    elif ctx is not None:
        ctx = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
               for k, v in ctx.items()}
    return error(kind, loc, msg, value, ctx)


def model_validator(cls, from_attributes):
    pd = sys.modules["pydantic"]
    if hasattr(cls, "model_validate"):   # v2
        def v(value):
            if isinstance(value, cls):
                return value
            try:
                return cls.model_validate(value, from_attributes=from_attributes or None)
            except pd.ValidationError as exc:
                errors = []
                for e in exc.errors(include_url=False):
                    e = dict(e)
                    if "ctx" in e:
                        e["ctx"] = {k: (x if isinstance(x, (str, int, float, bool, type(None)))
                                        else {} if isinstance(x, BaseException) else str(x))
                                    for k, x in e["ctx"].items()}
                    e["loc"] = tuple(e["loc"])
                    errors.append(e)
                raise Invalid(errors) from None
        return v

    def v1(value):
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            if from_attributes and not isinstance(value, (str, bytes, int, float, list, tuple)) \
                    and value is not None:
                value = {name: getattr(value, name) for name in cls.__fields__
                         if hasattr(value, name)}
            else:
                raise Invalid.one("model_attributes_type", "Input should be a valid dictionary "
                                  "or object to extract fields from", value)
        try:
            return cls.parse_obj(value)
        except pd.ValidationError as exc:
            raise Invalid([_v1_error(e, value) for e in exc.errors()]) from None
    return v1
