#!/usr/bin/python3
"""perf/micro.py - in-process micro-benchmarks: instructions per operation.

    /usr/bin/python3 perf/micro.py [--quick] [--only CASE,...] [--no-time] [--json FILE]

Instruction counts come from callgrind (valgrind): stable under noise and
comparable between runs and machines of the same architecture, unlike time.
`perf stat -e instructions` would do the same on bare metal; in this VM the
counter is "not supported", so callgrind it is. Beside each count: the wall
time of a native run (best of 5, noisy on a shared 2-core VM) and the seed
note's estimate, where it made one.

Cases (perf/micro.c runs the project's own C code, never a copy):
  parse, parse-browser        worker/http.c: http-parser + our checks, one request
  route, route-static         worker/router.c: one match among 20 routes
  ring, ring-batch32          shm/ring.c in one process, per descriptor
  handoff                     two processes: envelope in a shm chunk, descriptor
                              through the ring, doorbell check; pop, validate,
                              free (both processes' instructions, per message)
  pingpong-spin/-sleep        two processes, one-way latency (time only):
                              both spinning / both asleep on eventfd doorbells
  envelope-encode             worker/dispatch.c fa_dispatch_begin (msgpack into shm)
  envelope-decode             fa_env_parse of that envelope (pyworker/envelope.c, the Python worker's reader)
  response-decode             msgpack_unpack of a response into a reused zone (dispatch.c's way)
  json-*                      inside fasterapi-pyworker: _fasterapi.dumps (the C
                              encoder, pyworker/json.c) and stdlib json.dumps
  pyworker-plain / -echo1k    tests/pyworker/check_pyworker's bench case with the
                              Python worker under callgrind: the worker's whole
                              per-request path (pop, decode, PyObjects, dispatch,
                              handler, response, push), instructions per request
                              by difference of two runs (N=2000 and N=12000)

Writes the tables to perf/out/micro.md too.
Needs a built tree (FASTERAPI_BUILDDIR, default the source tree) and
valgrind (perf/install-peers). perf/fa-micro and the check_pyworker binary
are built here with make if missing or stale.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(os.environ.get("FASTERAPI_BUILDDIR", ROOT))
APPS = os.path.join(ROOT, "perf", "apps")

# (case, ops per run unit, native N, callgrind N, seed estimate, what)
C_CASES = [
    ("parse", 1, 1_000_000, 20_000, "12 ns", "parse + validate wrk's GET /json (1 header)"),
    ("parse-browser", 1, 200_000, 5_000, "12 ns", "parse + validate a GET with 10 browser headers"),
    ("route", 1, 2_000_000, 20_000, "29 ns", "route GET /users/7 (20 routes)"),
    ("route-static", 1, 2_000_000, 20_000, "29 ns", "route GET /json (20 routes)"),
    ("ring", 1, 5_000_000, 20_000, "", "ring push + pop, 1 descriptor, one process"),
    ("ring-batch32", 32, 500_000, 2_000, "", "ring push + pop, batches of 32, per descriptor"),
    ("handoff", 1, 500_000, 20_000, "~1 µs queue", "two processes: envelope chunk + ring + doorbell check, per message"),
    ("pingpong-spin", 2, 50_000, 0, "~1 µs queue", "two processes, one-way latency, both spinning"),
    ("pingpong-sleep", 2, 20_000, 0, "~1 µs queue", "two processes, one-way latency, eventfd wake-up"),
    ("envelope-encode", 1, 1_000_000, 20_000, "", "request envelope: fa_dispatch_begin into shm"),
    ("envelope-decode", 1, 1_000_000, 20_000, "", "request envelope: fa_env_parse (the Python worker's reader)"),
    ("response-decode", 1, 1_000_000, 20_000, "", "response envelope: msgpack_unpack into a reused zone (the HTTP worker's)"),
]
JSON_OBJS = [("hello", '{"message":"Hello, World!"}'), ("users", '{"id":7,"verbose":true}'),
             ("list100", "a list of 100 objects with 6 fields (6.4 KB)")]
SEED_PY_REQUEST = "6.5 µs"
SEED_PYOBJ = "~500 ns"


def log(msg):
    print(f"micro: {msg}", file=sys.stderr, flush=True)


def make(*targets):
    r = subprocess.run(["make", "-C", BUILD, "-s", *targets], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"micro: make {' '.join(targets)} failed in {BUILD}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")


def collected(text):
    """Sum of callgrind's 'Collected : N' lines (one per process)."""
    return sum(int(x) for x in re.findall(r"Collected : (\d+)", text))


def callgrind(cmd, toggles=(), env=None, outdir=None):
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outdir}/cg.%p.out"]
    args += [f"--toggle-collect={t}" for t in toggles]
    r = subprocess.run(args + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                       env=env)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} under callgrind failed:\n{r.stderr[-2000:]}")
    return collected(r.stderr)


def c_case(name, per, n_time, n_cg, do_time, tmp):
    exe = os.path.join(BUILD, "perf", "fa-micro")
    res = {"instr": None, "ns": None}
    if n_cg:
        toggles = ("ho_send", "ho_recv") if name == "handoff" else ("micro_run",)
        res["instr"] = callgrind([exe, name, str(n_cg)], toggles, outdir=tmp) / n_cg / per
    if do_time:
        out = subprocess.run([exe, "--time", name, str(n_time)], capture_output=True, text=True, check=True).stdout
        res["ns"] = float(out.split()[0]) / per
    return res


def pyworker_describe(env_extra, under_cg, tmp):
    env = dict(os.environ, **env_extra)
    cmd = [os.path.join(BUILD, "fasterapi-pyworker"), "--describe", "--app", "micro_json:app",
           "--app-dir", APPS]
    if under_cg:
        return callgrind(cmd, env=env, outdir=tmp), None
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"fasterapi-pyworker --describe micro_json failed:\n{r.stderr[-2000:]}")
    return None, r.stderr.strip().splitlines()[-1]


def json_case(encoder, obj, do_time, quick, tmp):
    """Instructions per encode: difference of two callgrind runs (N and 0)."""
    n = 2000 if quick else 10000
    if obj == "list100":
        n //= 20
    base = {"FA_MICRO_ENCODER": encoder, "FA_MICRO_OBJ": obj}
    _, line = pyworker_describe(dict(base, FA_MICRO_N="1"), False, tmp)
    if line == "unavailable":
        return None
    i0, _ = pyworker_describe(dict(base, FA_MICRO_N="0"), True, tmp)
    i1, _ = pyworker_describe(dict(base, FA_MICRO_N=str(n)), True, tmp)
    res = {"instr": (i1 - i0) / n, "ns": None}
    if do_time:
        _, line = pyworker_describe(dict(base, FA_MICRO_N=str(n * 20), FA_MICRO_REPS="5"), False, tmp)
        res["ns"] = float(line.split()[0])
    return res


def pyworker_bench(body, n, under_cg, tmp):
    """Runs check_pyworker's bench case; returns (stderr, callgrind out file)."""
    env = dict(os.environ, CK_RUN_CASE="bench", FA_PYW_BENCH_N=str(n), CK_DEFAULT_TIMEOUT="600")
    if body:
        env["FA_PYW_BENCH_BODY"] = str(body)
    out = None
    if under_cg:
        out = os.path.join(tmp, f"pyw-{body}-{n}.out")
        wrapper = os.path.join(tmp, "pyw-under-callgrind")
        with open(wrapper, "w") as f:
            f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file={out} "
                    f"{os.path.join(BUILD, 'fasterapi-pyworker')} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        env["FA_PYWORKER"] = wrapper
    r = subprocess.run([os.path.join(BUILD, "tests", "pyworker", "check_pyworker")],
                       capture_output=True, text=True, env=env)
    if r.returncode != 0 or "throughput" not in r.stderr:
        raise RuntimeError(f"check_pyworker bench failed:\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
    return r.stderr, out


def cg_functions(path):
    """{(object, function): self Ir} from callgrind_annotate."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", path], capture_output=True,
                         text=True, check=True).stdout
    funcs, total = {}, 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*?)(?: \[(.*)\])?$", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        name = m.group(2)
        if name == "PROGRAM TOTALS":
            total = ir
            continue
        obj = os.path.basename(m.group(3) or "?")
        funcs[(obj, name)] = funcs.get((obj, name), 0) + ir
    return total, funcs


def group_of(obj, name=""):
    if obj in ("?", "???") and name.split(":")[0].startswith(("pyworker/", "shm/", "/")):
        obj = "fasterapi-pyworker"   # a function inlined from one of our files
    if obj.startswith("libpython"):
        return "CPython (interpreter, objects, handler)"
    if obj.startswith("libmsgpackc"):
        return "msgpack-c (envelope decode/encode)"
    if obj.startswith("libc.so") or obj.startswith("ld-linux"):
        return "libc"
    if obj == "fasterapi-pyworker":
        return "fasterapi-pyworker's C (serve.c, json.c, module.c, shm)"
    return obj


def pyworker_case(body, quick, do_time, tmp):
    n1, n2 = (500, 3000) if quick else (2000, 12000)
    _, f1 = pyworker_bench(body, n1, True, tmp)
    _, f2 = pyworker_bench(body, n2, True, tmp)
    t1, fn1 = cg_functions(f1)
    t2, fn2 = cg_functions(f2)
    per = (t2 - t1) / (n2 - n1)
    groups, top = {}, []
    for key in set(fn1) | set(fn2):
        d = (fn2.get(key, 0) - fn1.get(key, 0)) / (n2 - n1)
        g = group_of(key[0], key[1])
        groups[g] = groups.get(g, 0) + d
        top.append((d, key))
    top.sort(reverse=True)
    res = {"instr": per, "groups": groups, "top": [(d, f"{k[1]} [{k[0]}]") for d, k in top[:12]],
           "ns": None, "busy_ns": None}
    if do_time:
        err, _ = pyworker_bench(body, 20000 if quick else 200000, False, tmp)
        m = re.search(r"([\d.]+) us/request end to end, ([\d.]+) us/request busy", err)
        res["ns"], res["busy_ns"] = float(m.group(1)) * 1000, float(m.group(2)) * 1000
    return res


def fmt_i(x):
    return "-" if x is None else f"{x:,.0f}"


def fmt_ns(x):
    if x is None:
        return "-"
    return f"{x / 1000:.2f} µs" if x >= 1000 else f"{x:.1f} ns"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (about a minute)")
    ap.add_argument("--only", help="comma-separated case names or prefixes (parse,json,pyworker,...)")
    ap.add_argument("--no-time", action="store_true", help="instruction counts only")
    ap.add_argument("--no-install", action="store_true", help="do not run perf/install-peers")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args()
    if not args.no_install:
        subprocess.run([os.path.join(ROOT, "perf", "install-peers")], check=True)
    do_time = not args.no_time
    only = [s for s in (args.only or "").split(",") if s]

    def wanted(name):
        return not only or any(name == o or name.startswith(o) for o in only)

    with open(os.path.join(BUILD, "config.log"), errors="replace") as f:
        if "fsanitize" in f.read():
            log("warning: this build has sanitizers on: counts are not representative")
    make("perf/fa-micro", "fasterapi-pyworker", "tests/pyworker/check_pyworker")
    rows = []
    with tempfile.TemporaryDirectory(prefix="fa-micro-") as tmp:
        for name, per, n_time, n_cg, seed, what in C_CASES:
            if not wanted(name):
                continue
            log(name)
            if args.quick:
                n_time, n_cg = max(n_time // 10, 1000), max(n_cg // 4, 500 if n_cg else 0)
            r = c_case(name, per, n_time, n_cg, do_time, tmp)
            rows.append(dict(case=name, what=what, seed=seed, **r))
        for obj, desc in JSON_OBJS:
            for enc, label in (("c", "_fasterapi.dumps (C, pyworker/json.c)"),
                               ("stdlib-once", "stdlib C encoder built once (c_make_encoder)"),
                               ("stdlib", "json.dumps(obj, separators=..., ensure_ascii=False)")):
                name = f"json-{obj}-{enc}"
                if not wanted(name):
                    continue
                log(name)
                r = json_case(enc, obj, do_time, args.quick, tmp)
                if r is None:
                    rows.append(dict(case=name, what=f"{label}: not in this build", seed="",
                                     instr=None, ns=None))
                    continue
                rows.append(dict(case=name, what=f"{label}: {desc}", seed="", **r))
            name = f"json-{obj}-noop"
            if wanted(name) and obj == "hello":
                r = json_case("noop", obj, do_time, args.quick, tmp)
                rows.append(dict(case=name, what="the loop and one Python call, nothing encoded "
                                 "(subtract from json-* for the encoder alone)", seed="", **r))
        pyw = {}
        for body, name in ((0, "pyworker-plain"), (1024, "pyworker-echo1k")):
            if not wanted(name):
                continue
            log(f"{name} (the Python worker under callgrind, twice)")
            r = pyworker_case(body, args.quick, do_time, tmp)
            pyw[name] = r
            what = ("Python worker, whole path per request: GET /plain (returns 'ok')" if not body else
                    "Python worker, whole path per request: POST /echo, 1 KiB body")
            rows.append(dict(case=name, what=what, seed=SEED_PY_REQUEST, instr=r["instr"],
                             ns=r["busy_ns"]))

    lines = []

    def emit(text=""):
        lines.append(text)
        print(text)

    emit("\n| case | what | instructions/op | time/op (native) | seed estimate |")
    emit("|---|---|---:|---:|---|")
    for r in rows:
        emit(f"| {r['case']} | {r['what']} | {fmt_i(r['instr'])} | {fmt_ns(r['ns'])} | {r['seed']} |")
    emit("\nTime for pingpong-* is one-way latency (round trip / 2); for pyworker-* it is the time "
          "the worker was busy per request (check_pyworker's figure), the whole end-to-end "
          "round trip through the rings is given below.")
    for name, r in pyw.items():
        emit(f"\n{name}: {fmt_i(r['instr'])} instructions per request in the Python worker"
              + (f"; {fmt_ns(r['ns'])} per request end to end (one client process pushing "
                 f"through the rings), {fmt_ns(r['busy_ns'])} busy in the worker" if r["ns"] else ""))
        emit("\n| where (per request) | instructions |\n|---|---:|")
        for g, v in sorted(r["groups"].items(), key=lambda kv: -kv[1]):
            if abs(v) >= 1:
                emit(f"| {g} | {v:,.0f} |")
        emit("\n| top functions (self, per request) | instructions |\n|---|---:|")
        for d, f in r["top"]:
            emit(f"| {f} | {d:,.0f} |")
    out_dir = os.path.join(ROOT, "perf", "out")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "micro.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "pyworker": pyw}, f, indent=1)


if __name__ == "__main__":
    main()
