#!/usr/bin/python3
"""Each optimisation against its own off switch, measured in one run.

    FASTERAPI_BUILDDIR=/tmp/build /usr/bin/python3 perf/switches.py [--duration S] [--runs N]

Issue 3 asks for the gain of each strategy as a ratio from one run:

- native vs Python: the same GET /plaintext answered by `app.static` in the
  HTTP worker, and by a Python handler;
- batched vs unbatched ring transfer: FASTERAPI_NO_BATCH=1 makes the HTTP
  worker commit its request ring and ring the doorbell after every request,
  and the Python worker pop one request per round and publish every response
  at once (default: up to 32 per pop, one publish and doorbell per batch);
- pooling on vs off: FASTERAPI_NO_POOL=1 turns off the Python worker's
  caches (interned method strings, header-name and value strings, the client
  tuple, response header tuples known good, the reused body exporter and
  headers object), so every request builds its objects afresh.

Each configuration is a fresh server (1 HTTP + 1 Python worker), loaded with
wrk like perf/bench.py (same harness: server CPU µs per request from
/proc, requests/s); configurations alternate within each run, and each cell
is the median of --runs. The in-process figure comes from check_pyworker's
throughput test (the Python worker alone, driven through its rings by a C
harness): the worker's busy µs per request with and without pooling.

The JSON JSON-encoder comparison (C vs json.dumps) is perf/micro.py's.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (perf/bench.py: the harness)

CONFIGS = [
    ("default", {}),
    ("no ring batching", {"FASTERAPI_NO_BATCH": "1"}),
    ("no pooling", {"FASTERAPI_NO_POOL": "1"}),
]
CASES = ("native", "plaintext", "json", "users")


class Switched(bench.FasterAPI):
    def __init__(self, env):
        super().__init__(1, 1)
        self.env = env

    def popen(self, cmd, **kw):
        return super().popen(cmd, env={**os.environ, **self.env}, **kw)


def inprocess(n, env):
    """check_pyworker's throughput test: µs of worker busy time per request."""
    exe = os.path.join(bench.BUILD, "tests", "pyworker", "check_pyworker")
    if not os.access(exe, os.X_OK):
        return None
    out = subprocess.run([exe], env={**os.environ, **env, "CK_RUN_CASE": "bench",
                                     "FA_PYW_BENCH_N": str(n), "FA_PYW_BENCH_JSON": "1"},
                         capture_output=True, text=True, timeout=600)
    m = re.search(r"([\d.]+) us/request busy in the worker", out.stdout + out.stderr)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--inprocess-n", type=int, default=100000)
    args = ap.parse_args()
    args.threads, args.depth = 1, 16
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        sys.exit("switches.py: wrk is missing: apt-get install wrk (or scripts/install-deps --perf)")
    lua = bench.Lua(tempfile.mkdtemp(prefix="fa-switch-"))
    results = {(c, case): [] for c, _ in CONFIGS for case in CASES}
    for run in range(args.runs):
        for name, env in CONFIGS:
            server = Switched(env)
            with tempfile.TemporaryDirectory() as tmp:
                server.start(tmp)
                try:
                    for case in CASES:
                        if name != "default" and case == "native":
                            continue   # the switches do not touch the C-only path
                        r = bench.load(server.port, case, server.path(case), args,
                                       server.proc.pid, lua)
                        results[(name, case)].append(r)
                        bench.log(f"run {run + 1} {name:18} {case:9} {r['rps']:9.0f} req/s "
                                  f"{r['cpu_us']:6.2f} µs/req (other load {r['other_cores']:.2f} cores)")
                finally:
                    server.stop()

    def med(name, case, key):
        vals = sorted(r[key] for r in results[(name, case)])
        return vals[len(vals) // 2] if vals else None

    print("| configuration | case | requests/s | server CPU µs/req | CPU vs default |")
    print("|---|---|---:|---:|---:|")
    for name, _ in CONFIGS:
        for case in CASES:
            cpu = med(name, case, "cpu_us")
            if cpu is None:
                continue
            base = med("default", case, "cpu_us")
            print(f"| {name} | {case} | {med(name, case, 'rps'):,.0f} | {cpu:.2f} | "
                  f"{cpu / base:.2f} x |")
    native, python = med("default", "native", "cpu_us"), med("default", "plaintext", "cpu_us")
    print(f"\nnative vs Python GET /plaintext: {python / native:.2f} x less server CPU per request "
          f"in C ({native:.2f} vs {python:.2f} µs)")
    on, off = inprocess(args.inprocess_n, {}), inprocess(args.inprocess_n, {"FASTERAPI_NO_POOL": "1"})
    if on and off:
        print(f"in-process (check_pyworker, GET /hello x {args.inprocess_n}): worker busy "
              f"{on:.2f} µs/req with pooling, {off:.2f} without ({off / on:.2f} x)")
    b_on = inprocess(args.inprocess_n, {"FASTERAPI_NO_BATCH": "1"})
    if on and b_on:
        print(f"in-process: worker busy {b_on:.2f} µs/req without ring batching "
              f"({b_on / on:.2f} x)")


if __name__ == "__main__":
    main()
