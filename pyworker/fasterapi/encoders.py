"""jsonable_encoder (FastAPI's name): any value a handler may return, as
plain JSON values (dict, list, str, int, float, bool, None).

Handles pydantic models (v1 and v2), dataclasses, Enum, datetime / date /
time (ISO 8601), timedelta (seconds), UUID, Decimal, bytes, pathlib paths,
sets, tuples, generators and mappings. Anything else raises TypeError, as
json.dumps would.
"""

import dataclasses
import datetime
import decimal
import enum
import pathlib
import re
import sys
import types
import uuid
from collections.abc import Mapping

__all__ = ["jsonable_encoder", "encode_default"]


def _decimal(d):
    # As FastAPI: an integral Decimal is an int, any other a float.
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(d)
    return float(d)


def _pattern(p):
    return p.pattern


_ENCODERS = {
    datetime.datetime: datetime.datetime.isoformat,
    datetime.date: datetime.date.isoformat,
    datetime.time: datetime.time.isoformat,
    datetime.timedelta: datetime.timedelta.total_seconds,
    uuid.UUID: str,
    decimal.Decimal: _decimal,
    bytes: lambda b: b.decode(),
    frozenset: list,
    set: list,
    re.Pattern: _pattern,
}


def _model_dump(obj, exclude_none, by_alias, exclude_unset, exclude_defaults, include, exclude):
    if hasattr(obj, "model_dump"):   # pydantic v2
        return obj.model_dump(mode="json", by_alias=by_alias, exclude_none=exclude_none,
                              exclude_unset=exclude_unset, exclude_defaults=exclude_defaults,
                              include=include, exclude=exclude)
    return obj.dict(by_alias=by_alias, exclude_none=exclude_none, exclude_unset=exclude_unset,
                    exclude_defaults=exclude_defaults, include=include, exclude=exclude)


def _is_model(obj):
    pd = sys.modules.get("pydantic")
    return pd is not None and isinstance(obj, pd.BaseModel)


def encode_default(obj):
    """json's default= hook: one step of jsonable_encoder for a value json
    cannot encode itself; TypeError for an unknown type."""
    if _is_model(obj):
        return _model_dump(obj, False, True, False, False, None, None)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    for cls in type(obj).__mro__:
        enc = _ENCODERS.get(cls)
        if enc is not None:
            return enc(obj)
    if isinstance(obj, (types.GeneratorType, tuple)):
        return list(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def jsonable_encoder(obj, include=None, exclude=None, by_alias=True, exclude_unset=False,
                     exclude_defaults=False, exclude_none=False, custom_encoder=None,
                     sqlalchemy_safe=True):
    if custom_encoder:
        for cls in type(obj).__mro__:
            if cls in custom_encoder:
                return custom_encoder[cls](obj)
    if obj is None or type(obj) in (str, int, float, bool):
        return obj
    if _is_model(obj):
        data = _model_dump(obj, exclude_none, by_alias, exclude_unset, exclude_defaults, include,
                           exclude)
        return jsonable_encoder(data, exclude_none=exclude_none, custom_encoder=custom_encoder)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return jsonable_encoder(obj.value, custom_encoder=custom_encoder)
    if isinstance(obj, (str, int, float)):
        return obj
    if isinstance(obj, Mapping):
        include = set(include) if include is not None else None
        exclude = set(exclude) if exclude is not None else set()
        out = {}
        for k, v in obj.items():
            if (include is not None and k not in include) or k in exclude:
                continue
            if v is None and exclude_none:
                continue
            if sqlalchemy_safe and isinstance(k, str) and k.startswith("_sa"):
                continue
            out[jsonable_encoder(k, custom_encoder=custom_encoder)] = jsonable_encoder(
                v, by_alias=by_alias, exclude_unset=exclude_unset,
                exclude_defaults=exclude_defaults, exclude_none=exclude_none,
                custom_encoder=custom_encoder, sqlalchemy_safe=sqlalchemy_safe)
        return out
    if isinstance(obj, (list, tuple, set, frozenset, types.GeneratorType)):
        return [jsonable_encoder(v, by_alias=by_alias, exclude_unset=exclude_unset,
                                 exclude_defaults=exclude_defaults, exclude_none=exclude_none,
                                 custom_encoder=custom_encoder, sqlalchemy_safe=sqlalchemy_safe)
                for v in obj]
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    for cls in type(obj).__mro__:
        enc = _ENCODERS.get(cls)
        if enc is not None:
            return jsonable_encoder(enc(obj), custom_encoder=custom_encoder)
    try:
        data = dict(obj)
    except Exception:
        try:
            data = vars(obj)
        except TypeError:
            raise TypeError(f"Object of type {type(obj).__name__} is not JSON "
                            f"serializable") from None
    return jsonable_encoder(data, by_alias=by_alias, exclude_unset=exclude_unset,
                            exclude_defaults=exclude_defaults, exclude_none=exclude_none,
                            custom_encoder=custom_encoder, sqlalchemy_safe=sqlalchemy_safe)
