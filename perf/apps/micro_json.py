"""JSON encoding micro-benchmark, run inside the real fasterapi-pyworker.

perf/micro.py runs `fasterapi-pyworker --describe --app micro_json:app
--app-dir perf/apps` (under callgrind, or natively for the time), so the
encoders measured are the ones the Python worker has: the C encoder
`_fasterapi.dumps` (pyworker/json.c) when the binary has it, and the stdlib
json.dumps with the same options as the baseline. The loop runs at import:

    FA_MICRO_ENCODER  stdlib | stdlib-once | c | noop (loop and call overhead alone)
    FA_MICRO_OBJ      hello | users | list100
    FA_MICRO_N        iterations (0: nothing, for callgrind's difference)

It prints "<ns per op> ns/op" on stderr and defines an empty app so that
--describe succeeds. "c" when the binary has no _fasterapi.dumps prints
"unavailable" and runs nothing.
"""

import json
import os
import sys
import time

from fasterapi import App

try:
    import _fasterapi
except ImportError:
    _fasterapi = None

app = App()

OBJS = {
    "hello": {"message": "Hello, World!"},
    "users": {"id": 7, "verbose": True},
    "list100": [{"id": i, "name": f"item-{i}", "price": i * 1.25, "tags": ["a", "b"],
                 "in_stock": i % 2 == 0, "note": None} for i in range(100)],
}


def _stdlib(obj, _dumps=json.dumps):
    return _dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# What fasterapi.responses did before the C encoder: json's own C encoder,
# built once instead of on every json.dumps call.
_once = json.encoder.c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",",
                                    False, False, False)


def _stdlib_once(obj, _enc=_once):
    return "".join(_enc(obj, 0)).encode()


def _noop(obj):
    return obj


def _encoder(name):
    if name == "stdlib":
        return _stdlib
    if name == "stdlib-once":
        return _stdlib_once
    if name == "noop":
        return _noop
    if name == "c":
        return getattr(_fasterapi, "dumps", None) if _fasterapi is not None else None
    raise SystemExit(f"micro_json: unknown FA_MICRO_ENCODER {name!r}")


def _run():
    n = int(os.environ.get("FA_MICRO_N", "0"))
    enc = _encoder(os.environ.get("FA_MICRO_ENCODER", "stdlib"))
    obj = OBJS[os.environ.get("FA_MICRO_OBJ", "hello")]
    if enc is None:
        print("unavailable", file=sys.stderr)
        return
    if enc is not _noop and enc(obj) != _stdlib(obj):
        raise SystemExit("micro_json: the encoder's output differs from json.dumps")
    best = float("inf")
    reps = int(os.environ.get("FA_MICRO_REPS", "1"))
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            enc(obj)
        best = min(best, (time.perf_counter_ns() - t0) / max(n, 1))
    print(f"{best:.1f} ns/op", file=sys.stderr)


if "FA_MICRO_ENCODER" in os.environ:
    _run()
