#!/usr/bin/python3
"""perf/wsgi_asgi.py - existing WSGI and ASGI apps, unchanged, under FasterAPI
and under the server they were written for, in one run (issues 8 and 5).

    /usr/bin/python3 perf/wsgi_asgi.py [--quick] [--compare wsgi,asgi]
                                       [--procs 1,2] [--duration S] [--runs N]

Two comparisons, each at equal Python process counts (--procs: for each N,
FasterAPI runs --http-workers HTTP workers (default 1, in C) + N Python
workers, the peer N workers):

  wsgi   perf/apps/flask_app.py, a real Flask app (python3-flask):
           fasterapi run flask_app:app --interface wsgi
           gunicorn --worker-class sync --workers N flask_app:app
         (gunicorn's sync workers close the connection after each response:
         no keep-alive, as deployed; --only can add gunicorn-gthread, the
         gthread worker with keep-alive, 1 thread per worker, as a check that
         the difference is not only the reconnects)
  asgi   perf/apps/bench_app.py with BENCH_FRAMEWORK=fastapi: a real FastAPI
         app (python3-fastapi), the one perf/bench.py gives uvicorn:
           fasterapi run bench_app:app --interface asgi
           uvicorn --workers N --loop uvloop --http httptools bench_app:app
         plus the same source with FasterAPI's own imports (native), the
         issue-5 view: a typed GET /users/{user_id}?verbose=true (def and
         async def) and an async def that awaits asyncio.sleep(0), written
         once, served natively and by uvicorn + FastAPI.

Every route is first checked to answer exactly the same body under every
server; then each row is loaded with wrk (1 s warm-up, then --duration
seconds), with perf/bench.py's measurement: requests/s from wrk, server CPU
µs per request = CPU time of the server's whole process tree (every thread,
/proc/PID/task/TID/schedstat) / requests completed. Each run restarts every
server; a row is the median of --runs runs (min-max). Ratios are taken
between servers measured in the same invocation.

Missing peers are not installed here: the script exits with status 2 and
names the Debian packages to install.
Output: markdown on stdout and perf/out/wsgi_asgi.md, raw runs in
perf/out/wsgi_asgi.json. Environment: FASTERAPI_BUILDDIR, as for bench.py.
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (servers' plumbing, wrk, /proc accounting)

APPS, BUILD, PY = bench.APPS, bench.BUILD, bench.PY
PLAIN, ECHO, BODY_64K = bench.PLAIN, bench.ECHO, bench.BODY_64K

# name -> (method, path, expected body, description). Flask's jsonify ends
# its body with a newline; FastAPI's JSONResponse does not.
WSGI_CASES = {
    "plaintext": ("GET", "/plaintext", PLAIN, "GET /plaintext"),
    "json": ("GET", "/json", b'{"message":"Hello, World!"}\n', "GET /json (jsonify)"),
    "users": ("GET", "/users/7?verbose=true", b'{"id":7,"verbose":true}\n',
              "GET /users/<int:user_id>?verbose=true"),
    "echo": ("POST", "/echo", ECHO, "POST /echo, 1 KiB JSON body"),
    "64k": ("GET", "/bytes64k", BODY_64K, "GET 64 KiB response"),
}
ASGI_CASES = {k: bench.CASES[k] for k in
              ("plaintext", "json", "users", "users-async", "echo", "64k", "async")}

log = bench.log

# The ratios reported: (FasterAPI server, peer) per comparison.
PAIRS = {"wsgi": (("fasterapi-wsgi", "gunicorn"), ("fasterapi-wsgi", "gunicorn-gthread")),
         "asgi": (("fasterapi-asgi", "uvicorn"), ("fasterapi-native", "uvicorn"))}
APP = {"wsgi": "Flask", "asgi": "FastAPI"}
SHORT = {"fasterapi-wsgi": "FasterAPI --interface wsgi", "gunicorn": "gunicorn sync",
         "gunicorn-gthread": "gunicorn gthread (keep-alive)",
         "fasterapi-asgi": "FasterAPI --interface asgi",
         "fasterapi-native": "FasterAPI native (same source, fasterapi imports)",
         "uvicorn": "uvicorn + FastAPI"}


def importable(mod):
    """Whether Debian's python can import mod (checked in a child: the
    harness itself never imports the frameworks)."""
    return subprocess.run([PY, "-c", f"import {mod}"], capture_output=True).returncode == 0


# ---------------------------------------------------------------- servers

class Srv(bench.Server):
    """A server of one comparison: name, label, argv, env, cases."""

    def __init__(self, name, label, argv, cases, env=None, stop_signal=signal.SIGTERM):
        self.name, self.label, self.argv, self.cases = name, label, argv, cases
        self.env, self.stop_signal = env or {}, stop_signal

    def command(self, port="PORT"):
        argv = [a.replace("{port}", str(port)) for a in self.argv]
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return (env + " " if env else "") + " ".join(shlex.quote(a) for a in argv)

    def launch(self):
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        return self.popen(argv, env=dict(os.environ, **self.env))

    def rss_pss_kb(self):
        rss = pss = 0
        for p in bench.tree(self.proc.pid):
            m = bench.mem_kb(p)
            rss += m.get("rss", 0)
            pss += m.get("pss", 0)
        return rss, pss


def fasterapi(spec, interface, http, py, env=None):
    return [os.path.join(BUILD, "fasterapi"), "run", spec, "--app-dir", APPS,
            "--bind", "127.0.0.1:{port}", "--workers", str(http), "--py-workers", str(py),
            "--name", f"wa{os.getpid()}"] + (["--interface", interface] if interface else [])


def gunicorn(spec, procs, klass="sync"):
    extra = ["--threads", "1"] if klass == "gthread" else []
    return [PY, "-m", "gunicorn", "--workers", str(procs), "--worker-class", klass] + extra + [
        "--bind", "127.0.0.1:{port}", "--chdir", APPS, "--log-level", "warning",
        "--backlog", "2048", spec]


def uvicorn(spec, procs, loop, http):
    return [PY, "-m", "uvicorn", spec, "--app-dir", APPS, "--host", "127.0.0.1",
            "--port", "{port}", "--workers", str(procs), "--loop", loop, "--http", http,
            "--no-access-log", "--log-level", "warning", "--backlog", "2048"]


def comparisons(args, loop, http):
    """[(comparison, procs, [servers], peer name, cases)]; the first server
    is FasterAPI serving the unchanged app, the peer the ratio's reference."""
    out = []
    h = args.http_workers
    for n in args.procs:
        fa_lbl = f"{h} HTTP + {n} Python worker{'s' if n > 1 else ''}"
        pl = f"{n} worker{'s' if n > 1 else ''}"
        if "wsgi" in args.compare:
            c = tuple(WSGI_CASES)
            servers = [
                Srv("fasterapi-wsgi", f"FasterAPI --interface wsgi, Flask ({fa_lbl})",
                    fasterapi("flask_app:app", "wsgi", h, n), c),
                Srv("gunicorn", f"gunicorn sync, Flask ({pl})", gunicorn("flask_app:app", n), c),
                Srv("gunicorn-gthread", f"gunicorn gthread keep-alive, Flask ({pl}, 1 thread)",
                    gunicorn("flask_app:app", n, "gthread"), c),
            ]
            out.append(("wsgi", n, servers, "gunicorn", WSGI_CASES))
        if "asgi" in args.compare:
            c = tuple(ASGI_CASES)
            fastapi_env = {"BENCH_FRAMEWORK": "fastapi"}
            servers = [
                Srv("fasterapi-asgi", f"FasterAPI --interface asgi, FastAPI ({fa_lbl})",
                    fasterapi("bench_app:app", "asgi", h, n), c, fastapi_env),
                Srv("uvicorn", f"uvicorn + FastAPI ({pl}, {loop}, {http})",
                    uvicorn("bench_app:app", n, loop, http), c, fastapi_env),
                Srv("fasterapi-native", f"FasterAPI native, same source ({fa_lbl})",
                    fasterapi("bench_app:app", None, h, n), c),
            ]
            out.append(("asgi", n, servers, "uvicorn", ASGI_CASES))
    return out


def check_peers(args):
    """Exit 2 with a clear message when a tool or peer is missing."""
    missing = []
    exe = os.path.join(BUILD, "fasterapi")
    if not os.access(exe, os.X_OK) or not os.access(os.path.join(BUILD, "fasterapi-pyworker"), os.X_OK):
        sys.exit(f"wsgi_asgi: {exe} (or fasterapi-pyworker) is missing: build first and set "
                 f"FASTERAPI_BUILDDIR (now {BUILD})")
    if not os.access(PY, os.X_OK):
        sys.exit(f"wsgi_asgi: {PY} (Debian's python3) is missing")
    if not shutil.which("wrk"):
        missing.append(("wrk", "wrk"))
    need = []
    if "wsgi" in args.compare:
        need += [("flask", "python3-flask"), ("gunicorn", "gunicorn")]
    if "asgi" in args.compare:
        need += [("fastapi", "python3-fastapi"), ("uvicorn", "python3-uvicorn")]
    for mod, pkg in need:
        if not importable(mod):
            missing.append((mod, pkg))
    if missing:
        pkgs = " ".join(sorted({p for _, p in missing}))
        print(f"wsgi_asgi: missing peer(s): {', '.join(m for m, _ in missing)}\n"
              f"  install them: sudo apt-get install -y {pkgs}",
              file=sys.stderr)
        sys.exit(2)


# ---------------------------------------------------------------- run

def probe(server, cases, case):
    method, path, want, _ = cases[case]
    status, body = bench.fetch(server.port, method, path, ECHO if method == "POST" else None)
    if status != 200 or body != want:
        raise RuntimeError(f"{server.name} {method} {path}: got {status} {body[:80]!r}, "
                           f"expected 200 {want[:80]!r}")


def run_all(plan, args):
    results, memory = {}, {}
    with tempfile.TemporaryDirectory(prefix="fa-wa-") as tmp:
        os.chmod(tmp, 0o755)
        lua = bench.Lua(tmp)
        for run in range(args.runs):
            for comp, n, servers, _, cases in plan:
                for s in servers:
                    d = tempfile.mkdtemp(dir=tmp, prefix=s.name)
                    log(f"run {run + 1}/{args.runs}: {s.label}")
                    try:
                        s.start(d)
                    except RuntimeError as e:
                        log(f"{s.name} did not start: {e}")
                        continue
                    try:
                        for case in s.cases:
                            key = (comp, n, s.name, case)
                            try:
                                probe(s, cases, case)
                                r = bench.load(s.port, case, cases[case][1], args, s.proc.pid, lua)
                                results.setdefault(key, []).append(r)
                                log(f"  {case:11} {r['rps']:>10,.0f} req/s  p99 {r['p99']:.2f} ms  "
                                    f"{r['cpu_us']:.2f} CPU µs/req  (server {r['server_cores']:.2f}, "
                                    f"wrk {r['wrk_cores']:.2f}, others {r['other_cores']:.2f} cores)")
                            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                                log(f"  {case}: {e}")
                        memory.setdefault((comp, n, s.name), []).append(s.rss_pss_kb())
                    finally:
                        s.stop()
    return results, memory


def report(plan, results, memory, args):
    med, cell = bench.med, bench.cell
    lines = []
    others = [v["other_cores"] for vals in results.values() for v in vals]
    lines.append(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, median of {args.runs} "
                 f"run{'s' if args.runs > 1 else ''}{' (min–max)' if args.runs > 1 else ''}, "
                 f"{os.cpu_count()} cores, loopback"
                 + (f"; other processes kept {statistics.median(others):.2f} cores busy (median over "
                    f"rows; > 0.25 flags a row)" if others else ""))
    lines += ["", "| app | Python procs | case | FasterAPI | req/s | CPU µs/req | peer | req/s | CPU µs/req "
              "| peer CPU / FasterAPI CPU | FasterAPI req/s / peer req/s |",
              "|---|---|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for comp, n, servers, peer, cases in plan:
        names = {s.name: s for s in servers}
        for sub, ref in PAIRS[comp]:
            if sub not in names or ref not in names:
                continue
            for case in cases:
                f = results.get((comp, n, sub, case))
                v = results.get((comp, n, ref, case))
                if not f or not v:
                    continue
                fc, fr = med(f, "cpu_us")[0], med(f, "rps")[0]
                pc, pr = med(v, "cpu_us")[0], med(v, "rps")[0]
                lines.append(f"| {APP[comp]} | {n} | {cases[case][3]} | {SHORT[sub]} | {fr:,.0f} | "
                             f"{fc:.2f} | {SHORT[ref]} | {pr:,.0f} | {pc:.2f} | {pc / fc:.2f} x | "
                             f"{fr / pr:.2f} x |")
    lines += ["", f"Python procs: the peer's workers, and FasterAPI's Python workers (plus "
              f"{args.http_workers} HTTP worker{'s' if args.http_workers > 1 else ''} in C and the "
              f"idle master). CPU is the whole process tree's."]
    for comp, n, servers, peer, cases in plan:
        title = {"wsgi": "Flask (WSGI)", "asgi": "FastAPI (ASGI)"}[comp]
        lines += ["", f"### {title}, {n} Python process{'es' if n > 1 else ''} per server", ""]
        lines.append("| server | case | requests/s | p99 ms | CPU µs/req |")
        lines.append("|---|---|---:|---:|---:|")
        for s in servers:
            for case in s.cases:
                vals = results.get((comp, n, s.name, case))
                if not vals:
                    if s.name in args.servers:
                        lines.append(f"| {s.label} | {cases[case][3]} | failed | | |")
                    continue
                note = ""
                bad = sum(v["non2xx"] + v["sock_errors"] for v in vals)
                if bad:
                    note += f" [{bad} errors]"
                other = max(v["other_cores"] for v in vals)
                if other > 0.25:
                    note += f" [busy: {other:.1f} other cores]"
                lines.append(f"| {s.label} | {cases[case][3]}{note} | {cell(vals, 'rps', '{:,.0f}')} | "
                             f"{cell(vals, 'p99', '{:.2f}')} | {cell(vals, 'cpu_us', '{:.2f}')} |")
        mem = [(s, memory[(comp, n, s.name)]) for s in servers if (comp, n, s.name) in memory]
        if mem:
            lines += ["", "| server | RSS MiB (whole tree, after the load) | PSS MiB |", "|---|---:|---:|"]
            for s, xs in mem:
                lines.append(f"| {s.label} | {statistics.median(x[0] for x in xs) / 1024:.1f} | "
                             f"{statistics.median(x[1] for x in xs) / 1024:.1f} |")
        lines += ["", "Commands (PORT: a free loopback port):", ""]
        lines += [f"    {s.command()}" for s in servers if s.name in args.servers]
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s per row")
    ap.add_argument("--compare", default="wsgi,asgi", help="wsgi, asgi or both (default)")
    ap.add_argument("--procs", default="1,2",
                    help="Python process counts to compare at, comma-separated (default 1,2)")
    ap.add_argument("--http-workers", type=int, default=1, help="FasterAPI HTTP workers (default 1)")
    ap.add_argument("--only", help="servers, comma-separated: fasterapi-wsgi, gunicorn, "
                    "gunicorn-gthread, fasterapi-asgi, uvicorn, fasterapi-native (default: all but "
                    "gunicorn-gthread)")
    ap.add_argument("--cases", help="cases, comma-separated (default: all of each comparison)")
    ap.add_argument("--duration", type=int, help="seconds per measured run (default 5; --quick 3)")
    ap.add_argument("--runs", type=int, help="runs per row, median reported (default 3; --quick 1)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--out", default=bench.OUT, help="output folder (default perf/out)")
    args = ap.parse_args()
    args.duration = args.duration or (3 if args.quick else 5)
    args.runs = args.runs or (1 if args.quick else 3)
    args.depth = 16   # bench.load's pipelining argument (no pipelined case here)
    args.compare = [c for c in args.compare.split(",") if c]
    if not args.compare or set(args.compare) - {"wsgi", "asgi"}:
        sys.exit("wsgi_asgi: --compare takes wsgi, asgi or wsgi,asgi")
    try:
        args.procs = [int(x) for x in args.procs.split(",") if x]
    except ValueError:
        sys.exit("wsgi_asgi: --procs takes numbers, e.g. 1,2")
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin"
    check_peers(args)

    loop = "uvloop" if importable("uvloop") else "asyncio"
    http = "httptools" if importable("httptools") else "h11"
    if (loop, http) != ("uvloop", "httptools"):
        log(f"uvicorn without uvloop/httptools ({loop}, {http}): install python3-uvloop "
            f"python3-httptools for uvicorn's fast path")
    plan = comparisons(args, loop, http)
    every = {s.name for _, _, ss, _, _ in plan for s in ss}
    args.servers = set(args.only.split(",")) if args.only else every - {"gunicorn-gthread"}
    if args.servers - every:
        sys.exit(f"wsgi_asgi: --only: unknown server(s) {', '.join(sorted(args.servers - every))} "
                 f"(known: {', '.join(sorted(every))})")
    for i, (comp, n, servers, peer, cases) in enumerate(plan):
        servers = [s for s in servers if s.name in args.servers]
        if args.cases:
            want = set(args.cases.split(","))
            for s in servers:
                s.cases = tuple(c for c in s.cases if c in want)
        plan[i] = (comp, n, servers, peer, cases)
    plan = [p for p in plan if p[2]]
    if not plan:
        sys.exit("wsgi_asgi: nothing to run (check --compare and --only)")

    t0 = time.monotonic()
    results, memory = run_all(plan, args)
    lines = report(plan, results, memory, args)
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "wsgi_asgi.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "wsgi_asgi.json"), "w") as f:
        json.dump({"args": {k: v if not isinstance(v, set) else sorted(v) for k, v in vars(args).items()},
                   "results": {":".join(map(str, k)): v for k, v in results.items()},
                   "memory_kb": {":".join(map(str, k)): v for k, v in memory.items()},
                   "commands": {f"{c}:{n}:{s.name}": s.command() for c, n, ss, _, _ in plan for s in ss}},
                  f, indent=1)
    log(f"done in {time.monotonic() - t0:.0f} s; written: {args.out}/wsgi_asgi.md, wsgi_asgi.json")
    if any(not results.get((c, n, s.name, case)) for c, n, ss, _, _ in plan for s in ss for case in s.cases):
        log("some rows failed (see above)")
        sys.exit(1)


if __name__ == "__main__":
    main()
