"""The C JSON encoder (_fasterapi.dumps, pyworker/json.c) against json.dumps.

Runs inside the worker's interpreter, where _fasterapi is built in:

    ./fasterapi-pyworker --run -m pytest -q -p no:cacheprovider tests/pyworker/test_json.py

(check_pyworker runs exactly that). Every value is compared byte for byte
with json.dumps(v, separators=(",", ":"), ensure_ascii=False,
allow_nan=False).encode(), the encoding FastAPI's JSONResponse uses.
"""
import dataclasses
import enum
import json
import math
import random
import sys
import typing

import pytest

_fasterapi = pytest.importorskip(
    "_fasterapi", reason="run me with fasterapi-pyworker --run -m pytest (see the docstring)")
dumps = _fasterapi.dumps


def ref(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def same(v):
    want = ref(v)
    got = dumps(v)
    assert got == want, (v, got, want)
    return got


# ------------------------------------------------------------------ scalars

def test_scalars():
    for v in [None, True, False, 0, 1, -1, 7, 2**31, -2**31, 2**63 - 1, -2**63, 2**63,
              -2**63 - 1, 2**64, 10**30, -10**300, 3**2000, "", "a", 0.0, -0.0]:
        same(v)


def test_floats_repr_edges():
    vals = [0.1, 0.2, 0.30000000000000004, 1.0, -1.0, 1e16, 1e15, 9007199254740992.0,
            9007199254740991.0, -9007199254740991.0, 9007199254740993.0, 1e22, 1e23,
            1e308, -1e308, 1.7976931348623157e308, 5e-324, -5e-324, 2.2250738585072014e-308,
            1e-4, 1e-5, 0.0001, 0.00001, 123456789.123456789, 1 / 3, 2 / 3, math.pi,
            math.e, 1e-7, 1.5e300, 4.35, 100.0, 1e2, 12345678901234567890.0]
    for v in vals:
        same(v)
        same(-v)
        same({repr(v): v})
    rnd = random.Random(1)
    for _ in range(20000):
        bits = rnd.getrandbits(64)
        v = __import__("struct").unpack("<d", bits.to_bytes(8, "little"))[0]
        if math.isfinite(v):
            same(v)
        same(rnd.uniform(-1e6, 1e6))
        same(float(rnd.randint(-2**60, 2**60)))
        # Short decimals (the encoder's fast path) and the edges of its range.
        same(round(rnd.uniform(-1e6, 1e6), rnd.randint(0, 12)))
        same(rnd.randint(-10**15, 10**15) / 10 ** rnd.randint(1, 19))
        same(rnd.choice([1e-4, 1e15, 2**50, 2**53]) * rnd.choice([1, -1]) *
             (1 + rnd.randint(-3, 3) * 2**-52))
        same(2.0 ** rnd.randint(-20, 60) * rnd.choice([1, -1, 3, 0.75]))


def test_float_subclass_and_int_subclass_use_value():
    class F(float):
        def __repr__(self):
            return "nope"

    class I(int):
        def __repr__(self):
            return "nope"

    class E(enum.IntEnum):
        A = 3

    same([F(1.5), I(7), E.A, {E.A: F(2.0)}, {I(5): 1}, {F(0.5): 2}])


def test_nan_and_infinity_refused():
    for v in [math.nan, math.inf, -math.inf]:
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            dumps(v)
    with pytest.raises(ValueError, match=r"not JSON compliant: nan \(at \$\.a\[1\]\)"):
        dumps({"a": [1, math.nan]})
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps({math.inf: 1})


def test_huge_int_limit_as_json():
    big = 10 ** (sys.get_int_max_str_digits() + 1)
    with pytest.raises(ValueError) as ei:
        json.dumps(big)
    with pytest.raises(ValueError) as mine:
        dumps({"n": [big]})
    assert str(ei.value) in str(mine.value)
    assert "while encoding $.n[0] as JSON" in getattr(mine.value, "__notes__", [])


# ------------------------------------------------------------------ strings

def test_string_escapes():
    s = "".join(chr(c) for c in range(0x80))
    same(s)
    same({s: s})
    for c in range(0x20):
        same(chr(c))
        same("x" + chr(c) + "y")
    same('"\\/\b\f\n\r\t\x7f\x85\u2028\u2029\ufeff')


def test_string_kinds():
    same("café")                        # latin-1 (1-byte, not ASCII)
    same("\xff" * 100 + "\n")
    same("日本語のテキスト\t")            # 2-byte
    same("😀🎉👍 mixed é and 日本 \x01")  # 4-byte
    same("\U0010ffff\U00010000\uffff\ue000\ud7ff")
    same({"ключ": "значение", "😀": ["😀"]})


def test_long_strings_cross_buffer_growth():
    for n in [255, 256, 257, 1000, 16383, 16384, 16385, 70000]:
        same("a" * n)
        same("\n" * n)
        same("é" * n)
        same("日" * n)
        same("😀" * n)
        same("a\x01" * n)


def test_lone_surrogates_refused_like_utf8_encode():
    for s in ["\ud800", "a\udfffb", "😀\ud83d", "日\udc00"]:
        with pytest.raises(UnicodeEncodeError):
            ref(s)
        with pytest.raises(UnicodeEncodeError) as ei:
            dumps({"k": [s]})
        assert "surrogates not allowed" in str(ei.value)
        assert "$.k[0]" in str(ei.value)
    with pytest.raises(UnicodeEncodeError):
        dumps({"\ud800": 1})


def test_str_subclass_uses_characters():
    class S(str):
        def __str__(self):
            return "nope"

    class Color(str, enum.Enum):
        RED = "red"

    same([S("ab\n"), {S("k"): S("v")}, Color.RED, {Color.RED: 1}])


# ------------------------------------------------------------------ containers

def test_containers_and_keys():
    same([])
    same({})
    same(())
    same([[], {}, (), [[]], {"a": {}}])
    same((1, (2, (3,))))
    same({1: "int", 2.5: "float", True: "t", False: "f", None: "n", -0.0: "z", 10**20: "big"})
    same({"a b": 1, "": 2, "é": 3})


def test_bad_key():
    with pytest.raises(TypeError, match=r"keys must be str, int, float, bool or None, not tuple "
                                        r"\(at \$\.outer\)"):
        dumps({"outer": {(1, 2): 3}})


def test_subclasses_as_json_does():
    class L(list):
        def __iter__(self):
            return iter([9, 8])

    class T(tuple):
        pass

    class D(dict):
        def items(self):
            return [("x", 1), ("y", [2])]

    class Plain(dict):
        pass

    class OD(dict):
        pass

    same([L([1, 2, 3]), L(), T((1, 2)), T(), D(a=1), D(), Plain(a=1, b=[1]), OD()])
    import collections
    same(collections.OrderedDict([("b", 1), ("a", 2)]))
    same(collections.defaultdict(list, {"a": [1]}))
    same(collections.Counter("hello"))
    P = collections.namedtuple("P", "x y")
    same([P(1, 2), {"p": P("a", None)}])

    class Bad(dict):
        def items(self):
            return [("x", 1, 2)]

    with pytest.raises(ValueError, match="items must return 2-tuples"):
        dumps(Bad(a=1))


def test_deep_nesting_limit():
    v = 1
    for _ in range(256):
        v = [v]
    same(v)                             # 256 containers deep: the limit
    with pytest.raises(ValueError, match="nesting deeper than 256 levels"):
        dumps([v])
    d = {}
    for _ in range(300):
        d = {"a": d}
    with pytest.raises(ValueError) as ei:
        dumps(d)
    assert "more)" in str(ei.value)      # the long path is shortened


def test_cycles_end_at_the_depth_limit():
    a = []
    a.append(a)
    with pytest.raises(ValueError, match="reference cycle"):
        dumps(a)
    d = {}
    d["self"] = d
    with pytest.raises(ValueError, match=r"\(at \$\.self\.self"):
        dumps(d)


# ------------------------------------------------------------------ hooks

@dataclasses.dataclass
class Point:
    x: int
    y: float
    label: str = "p"
    tags: list = dataclasses.field(default_factory=list)
    unit: typing.ClassVar[str] = "m"
    scale: dataclasses.InitVar[int] = 1

    def __post_init__(self, scale):
        self.x *= scale


@dataclasses.dataclass(frozen=True)
class Line:
    a: Point
    b: Point


@dataclasses.dataclass
class Empty:
    pass


@dataclasses.dataclass
class Slotted:
    __slots__ = ("v",)
    v: int


class Money:
    def __init__(self, cents):
        self.cents = cents

    def __json__(self):
        return {"amount": self.cents / 100, "currency": "EUR"}


@dataclasses.dataclass
class WithHook:
    secret: str

    def __json__(self):
        return "hidden"


def test_dataclasses_like_asdict():
    p = Point(1, 2.5, tags=["a", Point(3, 4.0)])
    line = Line(Point(0, 0.0), Point(1, 1.0, label="é"))
    for v in [p, line, Empty(), [Empty(), Empty()], {"l": line}, Slotted(5)]:
        want = ref(json.loads(json.dumps(_asdict_deep(v))))
        assert dumps(v) == want
    # A second time: the field list comes from the cache.
    assert dumps(p) == ref(_asdict_deep(p))


def _asdict_deep(v):
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _asdict_deep(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, (list, tuple)):
        return [_asdict_deep(x) for x in v]
    if isinstance(v, dict):
        return {k: _asdict_deep(x) for k, x in v.items()}
    return v


def test_json_hook():
    assert dumps([Money(1234), {"m": Money(5)}]) == \
        ref([{"amount": 12.34, "currency": "EUR"}, {"m": {"amount": 0.05, "currency": "EUR"}}])
    assert dumps(WithHook("x")) == b'"hidden"'      # __json__ wins over the fields


def test_hook_errors_name_the_path():
    class Boom:
        def __json__(self):
            raise KeyError("inside")

    with pytest.raises(KeyError) as ei:
        dumps({"a": [1, Boom()]})
    assert "while encoding $.a[1] as JSON" in ei.value.__notes__

    class Loop:
        def __json__(self):
            return Loop()

    with pytest.raises(ValueError, match="nesting deeper"):
        dumps(Loop())


def test_unsupported_type_names_path():
    with pytest.raises(TypeError, match=r"^Object of type set is not JSON serializable "
                                        r"\(at \$\.items\[3\]\.tags\)$"):
        dumps({"items": [0, 1, 2, {"tags": {1}}]})
    with pytest.raises(TypeError, match=r"Object of type bytes is not JSON serializable \(at \$\)"):
        dumps(b"x")
    with pytest.raises(TypeError, match=r"\(at \$\['a b'\]\[0\]\.tags\)"):
        dumps({"a b": [Point(1, 1.0, tags=object())]})
    with pytest.raises(TypeError, match=r"\(at \$\[1\]\)"):
        dumps({1: object()})
    with pytest.raises(TypeError):
        dumps(Point)                    # a dataclass class, not an instance


def test_default_function():
    import datetime
    import uuid
    u = uuid.UUID(int=1)
    v = {"when": datetime.date(2024, 1, 2), "id": u, "s": {3}}

    def default(o):
        if isinstance(o, (datetime.date, uuid.UUID)):
            return str(o)
        if isinstance(o, set):
            return sorted(o)
        raise TypeError(f"no {type(o).__name__}")

    assert dumps(v, default=default) == ref({"when": "2024-01-02", "id": str(u), "s": [3]})
    assert dumps(v, default) == dumps(v, default=default)
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps(v)
    _fasterapi.set_json_default(default)
    try:
        assert dumps(v) == dumps(v, default=default)
        with pytest.raises(TypeError, match="no object") as ei:
            dumps([object()])
        assert "while encoding $[0] as JSON" in ei.value.__notes__
    finally:
        _fasterapi.set_json_default(None)
    with pytest.raises(TypeError):
        _fasterapi.set_json_default(3)
    with pytest.raises(TypeError):
        dumps(1, default=3)
    with pytest.raises(TypeError):
        dumps(1, nope=3)
    with pytest.raises(TypeError):
        dumps()


def test_mutation_during_encoding_does_not_crash():
    data = {"a": 1}
    items = [1, 2, 3]

    class Evil:
        def __json__(self):
            data.clear()
            items.clear()
            return "x"

    data["b"] = Evil()
    data["c"] = list(range(5))
    items[1] = Evil()
    dumps(data)      # any output, no crash
    dumps(items)


# ------------------------------------------------------------------ random

def _rand_str(rnd):
    pools = ["abcxyz", "\"\\/\n\r\t\b\f\x00\x1f\x7f", "éüßñ\xa0\xff", "日本語中文한국어",
             "😀🎉👍\U0010ffff", "\u2028\u2029\ufeff"]
    n = rnd.choice([0, 1, 2, 5, 10, 40, 300])
    return "".join(rnd.choice(rnd.choice(pools)) for _ in range(n))


def _rand_value(rnd, depth):
    kinds = ["int", "bigint", "float", "str", "bool", "none"]
    if depth < 6:
        kinds += ["list", "dict", "tuple"] * 2
    k = rnd.choice(kinds)
    if k == "int":
        return rnd.randint(-2**63, 2**63)
    if k == "bigint":
        return rnd.randint(-10**rnd.randint(19, 400), 10**rnd.randint(19, 400))
    if k == "float":
        return rnd.choice([rnd.random(), rnd.uniform(-1e300, 1e300), rnd.expovariate(1e-10),
                           -0.0, 0.0, 5e-324, 1e308, float(rnd.randint(-1000, 1000)),
                           rnd.random() * 10 ** rnd.randint(-320, 300)])
    if k == "str":
        return _rand_str(rnd)
    if k == "bool":
        return rnd.random() < 0.5
    if k == "none":
        return None
    n = rnd.choice([0, 1, 2, 3, 8, 20] if depth < 2 else [0, 1, 2, 3])
    if k == "list":
        return [_rand_value(rnd, depth + 1) for _ in range(n)]
    if k == "tuple":
        return tuple(_rand_value(rnd, depth + 1) for _ in range(n))
    d = {}
    for _ in range(n):
        key = rnd.choice([_rand_str(rnd), _rand_str(rnd), rnd.randint(-10**20, 10**20),
                          rnd.uniform(-1e10, 1e10), True, False, None])
        d[key] = _rand_value(rnd, depth + 1)
    return d


def test_random_values_match_json_dumps():
    rnd = random.Random(20261126)
    total = 0
    for _ in range(3000):
        v = _rand_value(rnd, 0)
        total += len(same(v))
    assert total > 3_000_000


def test_deep_random_nesting():
    rnd = random.Random(7)
    for _ in range(50):
        v = _rand_value(rnd, 5)
        for _ in range(rnd.randint(1, 120)):     # at most 2 levels each: <= 242
            v = rnd.choice([[v], {"k": v}, [1, v], (v,), {"é": [v]}])
        same(v)
