"""Speed of the C JSON encoder (_fasterapi.dumps) against json.dumps.

    ./fasterapi-pyworker --run $(srcdir)/tests/pyworker/bench_json.py [--quick]
    ./fasterapi-pyworker --run .../bench_json.py loop c|json|c_encoder|none /json|1k|64k N

(the second form just calls one encoder N times, for valgrind --tool=callgrind or
perf stat: instruction counts do not depend on the machine's load).

Prints microseconds per call (best of 7 runs) for the /json body of
examples/hello.py, a ~1 KiB structure and a ~64 KiB one, for:
  c_dumps     _fasterapi.dumps(v): bytes, as the encoder writes into shm
  json.dumps  json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()
  c_encoder   the package's pre-0.2 path: json's C encoder built once,
              "".join(c_make_encoder(...)(v, 0)).encode()
"""
import json
import sys
import timeit
from json.encoder import c_make_encoder, encode_basestring

import _fasterapi

_dumps = _fasterapi.dumps
_enc = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_c = c_make_encoder(None, _enc.default, encode_basestring, None, ":", ",", False, False, False)


def ref(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def c_encoder(v):
    return "".join(_c(v, 0)).encode()


HELLO = {"message": "Hello, World!"}
KIB = {
    "id": 12345, "name": "Widget Pro 3000", "price": 149.99, "in_stock": True,
    "tags": ["tools", "hardware", "premium", "bestseller"],
    "dimensions": {"width": 12.5, "height": 4.25, "depth": 8.0, "unit": "cm"},
    "supplier": {"id": 77, "name": "Acme Corp", "country": "DE", "rating": 4.7},
    "reviews": [{"user": f"user{i}", "stars": i % 5 + 1, "text": "Works as expected, très bien",
                 "helpful": i * 3, "verified": i % 2 == 0} for i in range(6)],
    "description": None,
}
BIG = {"items": [dict(KIB, id=i) for i in range(64)]}


def best(fn, v, number):
    t = min(timeit.repeat(lambda: fn(v), number=number, repeat=7))
    return t / number * 1e6


def main():
    quick = "--quick" in sys.argv
    print(f"{'value':<12}{'bytes':>7}{'c_dumps':>10}{'json.dumps':>12}{'c_encoder':>11}"
          f"{'json/c':>8}   (us per call, best of 7)")
    for name, v, n in [("/json", HELLO, 200000), ("1 KiB", KIB, 20000), ("64 KiB", BIG, 300)]:
        if quick:
            n //= 20
        assert _dumps(v) == ref(v) == c_encoder(v)
        a, b, c = best(_dumps, v, n), best(ref, v, n), best(c_encoder, v, n)
        print(f"{name:<12}{len(_dumps(v)):>7}{a:>10.3f}{b:>12.3f}{c:>11.3f}{b / a:>7.1f}x")


if sys.argv[1:2] == ["loop"]:
    fn = {"c": _dumps, "json": ref, "c_encoder": c_encoder, "none": lambda v: None}[sys.argv[2]]
    v = {"/json": HELLO, "1k": KIB, "64k": BIG}[sys.argv[3]]
    for _ in range(int(sys.argv[4])):
        fn(v)
else:
    main()
