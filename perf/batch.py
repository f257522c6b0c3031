#!/usr/bin/python3
"""perf/batch.py - a batched route (batch=BatchPolicy(...)) against the same
endpoint unbatched, in one run of one server.

    /usr/bin/python3 perf/batch.py [--duration S] [--runs N] [--connections C]
                                   [--cost-us US] [--cost spin|sleep]
                                   [--max-size N] [--max-wait-ms MS] [--py-workers M]

Starts `fasterapi run batch_app:app` (perf/apps/batch_app.py: POST /batched
and POST /unbatched, the same work; each handler call pays a fixed "model
call" cost of --cost-us, CPU burnt with --cost spin, slept with sleep),
then for each run loads each route in turn with wrk (1 s warm-up, then
--duration seconds, a 16-float JSON body per request) and prints a
markdown table (also written to perf/out/batch.md):

  requests/s     wrk's figure (wrk shares the cores with the server)
  p50 / p99      wrk's latency percentiles, ms
  CPU µs/req     the server's CPU time (every thread of its process tree,
                 /proc schedstat, perf/bench.py's cpu_ns) over the run,
                 divided by the requests wrk completed
  batch          requests per handler call (the app counts them)

Batching pays only when requests are in flight together in a Python worker:
that needs deferred async responses (pyworker/PROTOCOL.md). Without them a
batched request waits max_wait_ms alone: the table then shows batch = 1.0
and the cost of that wait.

Environment: FASTERAPI_BUILDDIR (default: the source tree) names the build.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (perf/bench.py: processes, CPU time, wrk output)

APPS = os.path.join(HERE, "apps")
BODY = json.dumps({"x": [round(0.1 * i, 1) for i in range(16)]}, separators=(",", ":"))
CASES = ("batched", "unbatched")


def log(msg):
    print(f"batch: {msg}", file=sys.stderr, flush=True)


def get_json(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return json.loads(r.read())
    finally:
        c.close()


def start(args, tmp):
    exe = os.path.join(bench.BUILD, "fasterapi")
    if not os.access(exe, os.X_OK):
        sys.exit(f"batch: {exe} is missing: build first (FASTERAPI_BUILDDIR={bench.BUILD})")
    port = bench.free_port()
    env = dict(os.environ, FA_BATCH_COST_US=str(args.cost_us), FA_BATCH_COST=args.cost,
               FA_BATCH_MAX_SIZE=str(args.max_size), FA_BATCH_MAX_WAIT_MS=str(args.max_wait_ms))
    logf = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen([exe, "run", "batch_app:app", "--app-dir", APPS,
                             "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
                             "--py-workers", str(args.py_workers),
                             "--name", f"batch{os.getpid()}"],
                            stdout=logf, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        bench.wait_http(port, "/plaintext", proc)
    except RuntimeError as e:
        proc.kill()
        proc.wait()
        with open(os.path.join(tmp, "server.log"), "rb") as f:
            sys.exit(f"batch: {e}\n{f.read()[-2000:].decode(errors='replace')}")
    return proc, port, logf


def stop(proc, logf):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    logf.close()


def probe(port, case):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("POST", "/" + case, body=BODY, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    want = sum((0.5 + 0.01 * i) * (0.1 * i) for i in range(16))
    if r.status != 200 or abs(float(body) - want) > 1e-9:
        raise RuntimeError(f"POST /{case} answered {r.status} {body[:200]!r}, expected {want}")


def load(args, port, case, root_pid, script):
    url = f"http://127.0.0.1:{port}/{case}"
    base = ["wrk", "-t1", f"-c{args.connections}", "--latency", "--timeout", "5s", "-s", script]
    subprocess.run(base + ["-d1s", url], capture_output=True, check=True)   # warm-up
    stats0 = get_json(port, "/stats")[case]
    pids = bench.tree(root_pid)
    cpu0, busy0, t0, ru0 = bench.cpu_ns(pids), bench.busy_ns(), time.monotonic(), os.times()
    out = subprocess.run(base + [f"-d{args.duration}s", url], capture_output=True, text=True,
                         check=True).stdout
    ru1 = os.times()
    cpu = bench.cpu_ns(set(pids) | set(bench.tree(root_pid))) - cpu0
    wall = time.monotonic() - t0
    stats1 = get_json(port, "/stats")[case]
    wrk_ns = (ru1.children_user + ru1.children_system - ru0.children_user -
              ru0.children_system) * 1e9
    other = max(0.0, (bench.busy_ns() - busy0 - cpu - wrk_ns) / 1e9 / wall)
    reqs, rps, p50, p99, non2xx, sock = bench.parse_wrk(out)
    calls, served = stats1[0] - stats0[0], stats1[1] - stats0[1]
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu / 1000 / max(reqs, 1),
            "requests": reqs, "non2xx": non2xx, "sock_errors": sock,
            "batch": served / calls if calls else 0.0, "calls": calls,
            "server_cores": cpu / 1e9 / wall, "other_cores": other}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=3, help="seconds per measured run (3)")
    ap.add_argument("--runs", type=int, default=1, help="runs per row, median reported (1)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    ap.add_argument("--cost-us", type=float, default=200.0,
                    help="fixed cost of one model call, µs (200)")
    ap.add_argument("--cost", choices=("spin", "sleep"), default="spin",
                    help="spin: the cost is CPU (inference); sleep: it is a wait (default spin)")
    ap.add_argument("--max-size", type=int, default=32, help="BatchPolicy max_size (32)")
    ap.add_argument("--max-wait-ms", type=float, default=2.0, help="BatchPolicy max_wait_ms (2)")
    ap.add_argument("--py-workers", type=int, default=1, help="Python workers (1)")
    ap.add_argument("--workers", type=int, default=1, help="HTTP workers (1)")
    ap.add_argument("--out", default=bench.OUT, help="output folder (perf/out)")
    args = ap.parse_args()
    if not any(os.access(os.path.join(d, "wrk"), os.X_OK)
               for d in os.environ.get("PATH", "").split(":")):
        sys.exit("batch: wrk is not installed (scripts/install-deps --perf, or apt-get install "
                 "wrk)")

    results = {}
    with tempfile.TemporaryDirectory(prefix="fa-batch-") as tmp:
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(BODY)}\n'
                    f'wrk.headers["Content-Type"] = "application/json"\n')
        proc, port, logf = start(args, tmp)
        try:
            for run in range(args.runs):
                for case in CASES:
                    probe(port, case)
                    r = load(args, port, case, proc.pid, script)
                    results.setdefault(case, []).append(r)
                    log(f"run {run + 1}/{args.runs} {case:9} {r['rps']:>9,.0f} req/s  "
                        f"p99 {r['p99']:.2f} ms  {r['cpu_us']:.1f} CPU µs/req  batch "
                        f"{r['batch']:.1f}  (server {r['server_cores']:.2f}, others "
                        f"{r['other_cores']:.2f} cores)")
        finally:
            stop(proc, logf)

    def med(case, key):
        return statistics.median(v[key] for v in results[case])

    head = (f"wrk -t1 -c{args.connections} -d{args.duration}s, POST 16-float JSON body, "
            f"model call {args.cost_us:g} µs ({args.cost}) per handler call, "
            f"BatchPolicy(max_size={args.max_size}, max_wait_ms={args.max_wait_ms:g}), "
            f"{args.workers} HTTP + {args.py_workers} Python worker(s), median of {args.runs} "
            f"run{'s' if args.runs > 1 else ''}, {os.cpu_count()} cores, loopback")
    others = statistics.median(v["other_cores"] for vals in results.values() for v in vals)
    head += (f"; other processes kept {others:.2f} cores busy (> 0.25: requests/s and latency "
             f"are not reliable, CPU per request much more so)")
    lines = [head, "", "| route | requests/s | p50 ms | p99 ms | server CPU µs/req | "
             "requests per handler call | errors |", "|---|---:|---:|---:|---:|---:|---:|"]
    for case in CASES:
        errors = sum(v["non2xx"] + v["sock_errors"] for v in results[case])
        lines.append(f"| {case} | {med(case, 'rps'):,.0f} | {med(case, 'p50'):.2f} | "
                     f"{med(case, 'p99'):.2f} | {med(case, 'cpu_us'):.1f} | "
                     f"{med(case, 'batch'):.1f} | {errors} |")
    ratio_rps = med("batched", "rps") / max(med("unbatched", "rps"), 1e-9)
    ratio_cpu = med("unbatched", "cpu_us") / max(med("batched", "cpu_us"), 1e-9)
    lines += ["", f"batched vs unbatched: {ratio_rps:.2f}x the requests/s, "
              f"{1 / ratio_cpu:.2f}x the server CPU per request"]
    if med("batched", "batch") <= 1.05:
        lines.append("(batches of one: this build serves one request at a time per Python "
                     "worker, so every batched request waited max_wait_ms alone)")
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "batch.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
