"""Validators compiled from annotations, with pydantic v2's lax rules and
error shapes.

compile_validator(annotation, ...) runs once per parameter or model field,
at start-up, and returns a function v(value) -> converted value that raises
Invalid on bad input. Invalid carries one or more error entries in FastAPI's
shape ({"type", "loc", "msg", "input"[, "ctx"]}), their loc relative to the
value (the caller prefixes "body", "query", ...).

Two modes: from_str for values that arrive as text (path, query, header,
cookie and form fields) and the default, for values parsed from JSON (lax
"python" mode, as FastAPI validates a parsed body).

Supported: int, float, bool, str, bytes, None, Any, Enum, Literal, Optional
and Union, list/tuple/set/frozenset/dict (typing or builtin generics),
dataclasses, TypedDict, uuid.UUID, datetime/date/time, Decimal, pydantic
models (v1 or v2, when pydantic is installed; validated by pydantic itself)
and Annotated[X, ...] (metadata other than constraints is ignored).
"""

import collections.abc as _abc
import dataclasses
import datetime
import decimal
import enum
import re
import sys
import types
import typing
import uuid

__all__ = ["Invalid", "Constraints", "compile_validator", "error", "type_label",
           "is_pydantic_model", "is_typeddict", "strip_annotated", "without_none", "is_sequence"]

_MISSING = object()

_ABC_SEQUENCES = {_abc.Sequence: list, _abc.MutableSequence: list, _abc.Set: set,
                  _abc.MutableSet: set, _abc.Iterable: list, _abc.Collection: list}


class Invalid(Exception):
    """Bad input. errors: [{"type", "loc" (tuple, relative), "msg", "input",
    optional "ctx"}, ...]."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors

    @classmethod
    def one(cls, kind, msg, value, ctx=None, loc=()):
        return cls([error(kind, loc, msg, value, ctx)])


def error(kind, loc, msg, value, ctx=None):
    entry = {"type": kind, "loc": tuple(loc), "msg": msg, "input": value}
    if ctx is not None:
        entry["ctx"] = ctx
    return entry


def _prefixed(errors, prefix):
    return [dict(e, loc=tuple(prefix) + tuple(e["loc"])) for e in errors]


# ------------------------------------------------------------------ annotations

_UNION_TYPES = (typing.Union, types.UnionType)


def strip_annotated(ann):
    """(inner type, metadata tuple) for Annotated[X, ...]; (ann, ()) else."""
    if typing.get_origin(ann) is typing.Annotated:
        args = typing.get_args(ann)
        return args[0], tuple(args[1:])
    return ann, ()


def without_none(ann):
    """(X, True) for Optional[X] / X | None; (ann, False) otherwise."""
    if typing.get_origin(ann) in _UNION_TYPES:
        args = typing.get_args(ann)
        members = tuple(a for a in args if a is not type(None))
        if len(members) < len(args):
            if len(members) == 1:
                return members[0], True
            return typing.Union[members], True
    return ann, False


def is_sequence(ann):
    """True for list[X], tuple[X, ...], set[X] and friends (and bare list)."""
    ann = strip_annotated(ann)[0]
    ann = without_none(ann)[0]
    origin = typing.get_origin(ann) or ann
    return origin in (list, tuple, set, frozenset) or origin in _ABC_SEQUENCES


def is_typeddict(ann):
    return isinstance(ann, type) and issubclass(ann, dict) and hasattr(ann, "__required_keys__")


def _pydantic():
    return sys.modules.get("pydantic")


def is_pydantic_model(ann):
    pd = _pydantic()
    if pd is None or not isinstance(ann, type):
        return False
    return issubclass(ann, pd.BaseModel)


def pydantic_v2():
    pd = _pydantic()
    return pd is not None and hasattr(pd.BaseModel, "model_validate")


def type_label(ann):
    if isinstance(ann, type):
        return ann.__qualname__ if ann.__module__ == "builtins" else \
            f"{ann.__module__}.{ann.__qualname__}"
    return repr(ann)


# ------------------------------------------------------------------ constraints

def _num(v):
    # pydantic prints 1.0 as 1.0 and 1 as 1
    return repr(v) if isinstance(v, float) else str(v)


class Constraints:
    """Field constraints (FastAPI's Query(ge=...), pydantic Field names)."""

    __slots__ = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length", "pattern",
                 "_regex")

    def __init__(self, gt=None, ge=None, lt=None, le=None, multiple_of=None, min_length=None,
                 max_length=None, pattern=None):
        self.gt, self.ge, self.lt, self.le = gt, ge, lt, le
        self.multiple_of = multiple_of
        self.min_length, self.max_length = min_length, max_length
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern is not None else None

    @classmethod
    def of(cls, obj):
        """Constraints read from a marker (Query(...), pydantic FieldInfo,
        annotated_types.Ge...), or None when there are none."""
        names = ("gt", "ge", "lt", "le", "multiple_of", "min_length", "max_length")
        values = {n: getattr(obj, n, None) for n in names}
        pattern = getattr(obj, "pattern", None) or getattr(obj, "regex", None)
        if not isinstance(pattern, (str, type(None))):
            pattern = getattr(pattern, "pattern", None)
        values["pattern"] = pattern
        for item in getattr(obj, "metadata", ()) or ():   # pydantic v2 FieldInfo
            for n in names:
                if getattr(item, n, None) is not None:
                    values[n] = getattr(item, n)
            if getattr(item, "pattern", None) is not None:
                values["pattern"] = item.pattern
        if all(v is None for v in values.values()):
            return None
        return cls(**values)

    def merged(self, other):
        if other is None:
            return self
        out = Constraints()
        for n in self.__slots__[:-1]:
            setattr(out, n, getattr(other, n) if getattr(other, n) is not None else getattr(self, n))
        out._regex = re.compile(out.pattern) if out.pattern is not None else None
        return out

    def check(self, value, raw):
        """value, or Invalid naming the first constraint it breaks; raw is
        the input reported."""
        if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
            if self.gt is not None and not value > self.gt:
                raise Invalid.one("greater_than", f"Input should be greater than {_num(self.gt)}",
                                  raw, {"gt": self.gt})
            if self.ge is not None and not value >= self.ge:
                raise Invalid.one("greater_than_equal",
                                  f"Input should be greater than or equal to {_num(self.ge)}",
                                  raw, {"ge": self.ge})
            if self.lt is not None and not value < self.lt:
                raise Invalid.one("less_than", f"Input should be less than {_num(self.lt)}",
                                  raw, {"lt": self.lt})
            if self.le is not None and not value <= self.le:
                raise Invalid.one("less_than_equal",
                                  f"Input should be less than or equal to {_num(self.le)}",
                                  raw, {"le": self.le})
            if self.multiple_of is not None and value % self.multiple_of != 0:
                raise Invalid.one("multiple_of",
                                  f"Input should be a multiple of {_num(self.multiple_of)}",
                                  raw, {"multiple_of": self.multiple_of})
        elif isinstance(value, (str, bytes)):
            n = len(value)
            what, unit = ("String", "character") if isinstance(value, str) else ("Data", "byte")
            prefix = "string" if isinstance(value, str) else "bytes"
            if self.min_length is not None and n < self.min_length:
                s = "" if self.min_length == 1 else "s"
                raise Invalid.one(f"{prefix}_too_short",
                                  f"{what} should have at least {self.min_length} {unit}{s}",
                                  raw, {"min_length": self.min_length})
            if self.max_length is not None and n > self.max_length:
                s = "" if self.max_length == 1 else "s"
                raise Invalid.one(f"{prefix}_too_long",
                                  f"{what} should have at most {self.max_length} {unit}{s}",
                                  raw, {"max_length": self.max_length})
            if self._regex is not None and isinstance(value, str) and \
                    self._regex.search(value) is None:
                raise Invalid.one("string_pattern_mismatch",
                                  f"String should match pattern '{self.pattern}'",
                                  raw, {"pattern": self.pattern})
        elif isinstance(value, (list, tuple, set, frozenset)):
            n = len(value)
            kind = "List" if isinstance(value, list) else type(value).__name__.capitalize()
            if self.min_length is not None and n < self.min_length:
                s = "" if self.min_length == 1 else "s"
                raise Invalid.one("too_short", f"{kind} should have at least {self.min_length} "
                                  f"item{s} after validation, not {n}", raw,
                                  {"field_type": kind, "min_length": self.min_length,
                                   "actual_length": n})
            if self.max_length is not None and n > self.max_length:
                s = "" if self.max_length == 1 else "s"
                raise Invalid.one("too_long", f"{kind} should have at most {self.max_length} "
                                  f"item{s} after validation, not {n}", raw,
                                  {"field_type": kind, "max_length": self.max_length,
                                   "actual_length": n})
        return value


# ------------------------------------------------------------------ scalars

INT_PARSING = "Input should be a valid integer, unable to parse string as an integer"
FLOAT_PARSING = "Input should be a valid number, unable to parse string as a number"
BOOL_PARSING = "Input should be a valid boolean, unable to interpret input"

_BOOL_WORDS = {
    "0": False, "f": False, "n": False, "no": False, "off": False, "false": False,
    "1": True, "t": True, "y": True, "on": True, "yes": True, "true": True,
}


def str_to_int(raw):
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
    raise Invalid.one("int_parsing", INT_PARSING, raw)


def str_to_float(raw):
    if raw.isascii():
        try:
            return float(raw)
        except ValueError:
            pass
    raise Invalid.one("float_parsing", FLOAT_PARSING, raw)


def str_to_bool(raw):
    # pydantic v2's str_as_bool: these words, ASCII case-insensitive, no trimming.
    value = _BOOL_WORDS.get(raw.lower())
    if value is None:
        raise Invalid.one("bool_parsing", BOOL_PARSING, raw)
    return value


def _v_int(value):
    t = type(value)
    if t is int:
        return value
    if t is str:
        return str_to_int(value)
    if t is bool:
        return int(value)
    if t is float:
        if value.is_integer():
            return int(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise Invalid.one("finite_number", "Input should be a finite number", value)
        raise Invalid.one("int_from_float",
                          "Input should be a valid integer, got a number with a fractional part",
                          value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    raise Invalid.one("int_type", "Input should be a valid integer", value)


def _v_float(value):
    t = type(value)
    if t is float:
        return value
    if t is int or t is bool:
        return float(value)
    if t is str:
        return str_to_float(value)
    if isinstance(value, (int, float, decimal.Decimal)):
        return float(value)
    raise Invalid.one("float_type", "Input should be a valid number", value)


def _v_bool(value):
    t = type(value)
    if t is bool:
        return value
    if t is str:
        return str_to_bool(value)
    if t is int or t is float:
        if value == 0:
            return False
        if value == 1:
            return True
        raise Invalid.one("bool_parsing", BOOL_PARSING, value)
    raise Invalid.one("bool_type", "Input should be a valid boolean", value)


def _v_str(value):
    if type(value) is str:
        return value
    if isinstance(value, str):
        return value.value if isinstance(value, enum.Enum) else str(value)
    raise Invalid.one("string_type", "Input should be a valid string", value)


def _v_bytes(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise Invalid.one("bytes_type", "Input should be a valid bytes", value)


def _v_none(value):
    if value is None:
        return None
    raise Invalid.one("none_required", "Input should be None", value)


def _v_any(value):
    return value


def _v_uuid(value):
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise Invalid.one("uuid_parsing", f"Input should be a valid UUID, {exc}", value,
                              {"error": str(exc)}) from None
    raise Invalid.one("uuid_type", "UUID input should be a string, bytes or UUID object", value)


def _v_datetime(value):
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            return datetime.datetime.fromisoformat(text)
        except ValueError:
            raise Invalid.one("datetime_from_date_parsing",
                              "Input should be a valid datetime or date, invalid character in "
                              "year", value, {"error": "invalid character in year"}) from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    raise Invalid.one("datetime_type", "Input should be a valid datetime", value)


def _v_date(value):
    if isinstance(value, datetime.datetime):
        raise Invalid.one("date_from_datetime_inexact",
                          "Datetimes provided to dates should have zero time - e.g. be exact "
                          "dates", value)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            raise Invalid.one("date_from_datetime_parsing",
                              "Input should be a valid date or datetime, invalid character in "
                              "year", value, {"error": "invalid character in year"}) from None
    raise Invalid.one("date_type", "Input should be a valid date", value)


def _v_time(value):
    if isinstance(value, datetime.time):
        return value
    if isinstance(value, str):
        try:
            return datetime.time.fromisoformat(value)
        except ValueError:
            raise Invalid.one("time_parsing", "Input should be in a valid time format", value,
                              {"error": "invalid time format"}) from None
    raise Invalid.one("time_type", "Input should be a valid time", value)


def _v_decimal(value):
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return decimal.Decimal(str(value).strip())
        except decimal.InvalidOperation:
            raise Invalid.one("decimal_parsing", "Input should be a valid decimal",
                              value) from None
    raise Invalid.one("decimal_type",
                      "Decimal input should be an integer, float, string or Decimal object",
                      value)


_SCALARS = {
    int: _v_int, float: _v_float, bool: _v_bool, str: _v_str, bytes: _v_bytes,
    type(None): _v_none, None: _v_none, typing.Any: _v_any, object: _v_any,
    uuid.UUID: _v_uuid, datetime.datetime: _v_datetime, datetime.date: _v_date,
    datetime.time: _v_time, decimal.Decimal: _v_decimal,
}

# From text (query, path, header, cookie, form): str is never converted.
_FROM_STR = {**_SCALARS, int: str_to_int, float: str_to_float, bool: str_to_bool,
             str: _v_any, bytes: lambda raw: raw.encode()}


def _expected(values):
    shown = [repr(v) for v in values]
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _enum_validator(cls, from_str):
    members = list(cls)
    by_value = {m.value: m for m in members}
    by_text = {str(m.value): m for m in members}
    expected = _expected([m.value for m in members])
    msg = f"Input should be {expected}"

    def v(value):
        if isinstance(value, cls):
            return value
        try:
            member = by_value.get(value)
        except TypeError:
            member = None
        if member is None and isinstance(value, str) and (from_str or issubclass(cls, int)
                                                           and not issubclass(cls, str)):
            member = by_text.get(value)
        if member is None:
            raise Invalid.one("enum", msg, value, {"expected": expected})
        return member
    return v


def _literal_validator(values, from_str):
    expected = _expected(values)
    msg = f"Input should be {expected}"
    allowed = {}
    for lit in values:
        allowed.setdefault((type(lit), lit), lit)
    texts = {str(lit.value if isinstance(lit, enum.Enum) else lit).lower()
             if isinstance(lit, bool) else str(lit.value if isinstance(lit, enum.Enum) else lit):
             lit for lit in values}

    def v(value):
        try:
            key = (type(value), value)
            if key in allowed:
                return allowed[key]
        except TypeError:
            pass
        for lit in values:   # bool and int literals compare by type too
            if type(lit) is type(value) and lit == value:
                return lit
        if from_str and isinstance(value, str) and value in texts:
            return texts[value]
        raise Invalid.one("literal_error", msg, value, {"expected": expected})
    return v


def _sequence_validator(origin, item, constraints_item, from_str):
    kind = {list: ("list_type", "Input should be a valid list"),
            tuple: ("tuple_type", "Input should be a valid tuple"),
            set: ("set_type", "Input should be a valid set"),
            frozenset: ("frozen_set_type", "Input should be a valid frozenset")}[origin]
    accepted = (list, tuple, set, frozenset) if origin is not tuple else (list, tuple)

    def v(value):
        if not isinstance(value, accepted) or (origin in (list, tuple) and
                                                isinstance(value, (set, frozenset))):
            raise Invalid.one(kind[0], kind[1], value)
        out, errors = [], []
        for i, x in enumerate(value):
            try:
                out.append(item(x))
            except Invalid as exc:
                errors.extend(_prefixed(exc.errors, (i,)))
        if errors:
            raise Invalid(errors)
        return out if origin is list else origin(out)
    return v


def _fixed_tuple_validator(items):
    n = len(items)

    def v(value):
        if not isinstance(value, (list, tuple)):
            raise Invalid.one("tuple_type", "Input should be a valid tuple", value)
        errors, out = [], []
        for i, x in enumerate(value):
            if i >= n:
                raise Invalid.one("too_long", f"Tuple should have at most {n} item"
                                  f"{'' if n == 1 else 's'} after validation, not {len(value)}",
                                  value, {"field_type": "Tuple", "max_length": n,
                                          "actual_length": len(value)})
            try:
                out.append(items[i](x))
            except Invalid as exc:
                errors.extend(_prefixed(exc.errors, (i,)))
        for i in range(len(value), n):
            errors.append(error("missing", (i,), "Field required", value))
        if errors:
            raise Invalid(errors)
        return tuple(out)
    return v


def _dict_validator(key, val):
    def v(value):
        if not isinstance(value, dict):
            raise Invalid.one("dict_type", "Input should be a valid dictionary", value)
        out, errors = {}, []
        for k, x in value.items():
            try:
                k2 = key(k)
            except Invalid as exc:
                errors.extend(_prefixed(exc.errors, (k, "[key]")))
                continue
            try:
                out[k2] = val(x)
            except Invalid as exc:
                errors.extend(_prefixed(exc.errors, (k,)))
        if errors:
            raise Invalid(errors)
        return out
    return v


def _union_validator(members, nullable, names):
    def v(value):
        if value is None and nullable:
            return None
        errors = []
        for m, name in zip(members, names):
            try:
                return m(value)
            except Invalid as exc:
                errors.extend(_prefixed(exc.errors, (name,)) if len(members) > 1 else exc.errors)
        if nullable and len(members) == 1:
            raise Invalid(errors)
        raise Invalid(errors)
    return v


def _class_fields(cls):
    """[(name, annotation, default, default_factory)] of a dataclass."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        out.append((f.name, hints.get(f.name, f.type), f.default, f.default_factory))
    return out


def _object_validator(cls, fields, make, kind, msg, ctx, from_attributes, accept):
    """fields: [(name, validator, required, default, factory)]."""
    def v(value):
        if accept is not None and isinstance(value, accept):
            return value
        if isinstance(value, dict):
            get = value.get
        elif from_attributes and not isinstance(value, (str, bytes, int, float, list, tuple)) \
                and value is not None:
            def get(name, default=None, _obj=value):
                return getattr(_obj, name, default)
        else:
            raise Invalid.one(kind, msg, value, ctx)
        out, errors = {}, []
        for name, validate, required, default, factory in fields:
            x = get(name, _MISSING)
            if x is _MISSING:
                if required:
                    errors.append(error("missing", (name,), "Field required",
                                        value if isinstance(value, dict) else value))
                elif factory is not None:
                    out[name] = factory()
                elif default is not _MISSING:
                    out[name] = default
                continue
            try:
                out[name] = validate(x)
            except Invalid as exc:
                errors.extend(_prefixed(exc.errors, (name,)))
        if errors:
            raise Invalid(errors)
        return make(out)
    return v


def _dataclass_validator(cls, from_attributes, seen):
    fields = []
    holder = {}
    seen[cls] = lambda value: holder["v"](value)   # recursive dataclasses
    for name, ann, default, factory in _class_fields(cls):
        has_default = default is not dataclasses.MISSING
        has_factory = factory is not dataclasses.MISSING
        fields.append((name, compile_validator(ann, from_attributes=from_attributes, _seen=seen),
                       not (has_default or has_factory),
                       default if has_default else _MISSING, factory if has_factory else None))
    v = _object_validator(cls, fields, lambda kw: cls(**kw), "dataclass_type",
                          f"Input should be a dictionary or an instance of {cls.__name__}",
                          {"class_name": cls.__name__}, from_attributes, None)
    holder["v"] = v
    return v


def _typeddict_validator(cls, from_attributes, seen):
    hints = typing.get_type_hints(cls, include_extras=True)
    required = cls.__required_keys__
    fields = [(name, compile_validator(ann, from_attributes=from_attributes, _seen=seen),
               name in required, _MISSING, None) for name, ann in hints.items()]
    return _object_validator(cls, fields, dict, "dict_type", "Input should be a valid dictionary",
                             None, from_attributes, None)


def _with_constraints(v, constraints):
    if constraints is None:
        return v

    def checked(value):
        out = v(value)
        constraints.check(out, value)
        return out
    return checked


def compile_validator(ann, *, from_str=False, constraints=None, from_attributes=False, _seen=None):
    """A validator for annotation `ann` (see the module docstring); TypeError
    for an annotation that cannot be validated."""
    if _seen is None:
        _seen = {}
    inner, metadata = strip_annotated(ann)
    for item in metadata:
        found = Constraints.of(item)
        if found is not None:
            constraints = found.merged(constraints)
    v = _compile(inner, from_str, from_attributes, _seen)
    return _with_constraints(v, constraints)


def _compile(ann, from_str, from_attributes, seen):
    if ann is None or ann is type(None):
        return _v_none
    if isinstance(ann, typing.TypeVar) or ann is typing.Any:
        return _v_any
    if isinstance(ann, str):
        raise TypeError(f"unresolved annotation {ann!r}")
    if isinstance(ann, typing.NewType):
        return _compile(ann.__supertype__, from_str, from_attributes, seen)
    table = _FROM_STR if from_str else _SCALARS
    try:
        if ann in table:
            return table[ann]
    except TypeError:
        pass
    if ann in seen:
        return seen[ann]
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is typing.Annotated:
        return compile_validator(ann, from_str=from_str, from_attributes=from_attributes,
                                 _seen=seen)
    if origin in _UNION_TYPES:
        members = [a for a in args if a is not type(None)]
        nullable = len(members) < len(args)
        validators = [compile_validator(a, from_str=from_str, from_attributes=from_attributes,
                                        _seen=seen) for a in members]
        names = [_member_name(a) for a in members]
        return _union_validator(validators, nullable, names)
    if origin is typing.Literal:
        return _literal_validator(args, from_str)
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return _enum_validator(ann, from_str)
    if origin in (list, set, frozenset, tuple) or ann in (list, set, frozenset, tuple) or \
            origin in _ABC_SEQUENCES:
        base = origin or ann
        base = _ABC_SEQUENCES.get(base, base)
        if base is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if args == ((),):
                return _fixed_tuple_validator(())
            return _fixed_tuple_validator([compile_validator(a, from_str=from_str,
                                                             from_attributes=from_attributes,
                                                             _seen=seen) for a in args])
        item = compile_validator(args[0], from_str=from_str, from_attributes=from_attributes,
                                 _seen=seen) if args else _v_any
        return _sequence_validator(base, item, None, from_str)
    if origin in (dict, _abc.Mapping, _abc.MutableMapping) or ann is dict:
        key = compile_validator(args[0], from_attributes=from_attributes, _seen=seen) \
            if args else _v_any
        val = compile_validator(args[1], from_attributes=from_attributes, _seen=seen) \
            if args else _v_any
        return _dict_validator(key, val)
    if is_pydantic_model(ann):
        from .pydantic_compat import model_validator
        return model_validator(ann, from_attributes)
    if dataclasses.is_dataclass(ann) and isinstance(ann, type):
        return _dataclass_validator(ann, from_attributes, seen)
    if is_typeddict(ann):
        return _typeddict_validator(ann, from_attributes, seen)
    if isinstance(ann, type):
        upload = sys.modules.get("fasterapi.forms")
        if upload is not None and issubclass(ann, upload.UploadFile):
            return _upload_validator(ann)
    raise TypeError(f"annotation {type_label(ann)} is not supported")


def _upload_validator(cls):
    def v(value):
        if isinstance(value, cls):
            return value
        raise Invalid.one("value_error", f"Value error, Expected UploadFile, received: "
                          f"{type(value)}", value, {"error": {}})
    return v


def _member_name(ann):
    if isinstance(ann, type):
        return ann.__name__
    origin = typing.get_origin(ann)
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{','.join(_member_name(a) for a in typing.get_args(ann))}]"
    return repr(ann)
