#!/usr/bin/python3
"""perf/bench.py - FasterAPI against nginx, uWSGI, gunicorn and uvicorn+FastAPI,
side by side, in one run on this machine.

    /usr/bin/python3 perf/bench.py [--quick] [--only NAME,...] [--duration S]
                                   [--runs N] [--connections C]

It installs the missing peers (perf/install-peers, Debian packages), then for
each run and each server in turn: starts the server on a free loopback port,
checks every route answers what it should, loads each route with wrk (1 s
warm-up, then --duration seconds), and stops the server. Printed: a markdown
table, the issue-7 targets as MET / MISSED with their ratio, and memory. Written:
perf/out/bench.md, perf/out/bench.json and the chart perf/out/bench.png.

Per row:
  requests/s     wrk's figure (wrk shares the 2 cores with the server)
  p50 / p99      wrk's latency percentiles, ms
  CPU µs/req     server CPU per request: the CPU time of the server's whole
                 process tree (every thread of every process, from
                 /proc/PID/task/TID/schedstat, ns) over the measured run,
                 divided by the requests wrk completed. The figure that stays
                 meaningful when the load generator shares the cores.
Each figure is the median of --runs runs, with the min-max range; each run
restarts every server.

Servers and their process counts (2 cores; wrk takes most of one):
  fasterapi   1 HTTP worker + 1 Python worker (+ the idle master)
  nginx       1 worker process (+ the idle master): the C reference
  uwsgi       2 processes (--http11-socket: keep-alive; + the idle master).
              --http-keepalive belongs to the http router plugin: with
              --http-socket it is refused, and with the plugin loaded the
              connection is still closed after each response (measured).
              Without threads a process serves one connection at a time:
              of 64 connections 2 are served, the rest wait to be accepted
  gunicorn    2 sync workers (+ the idle arbiter); sync workers close the
              connection after each response (no keep-alive), as deployed
  uvicorn     2 workers, uvloop + httptools, FastAPI (+ the idle parent);
              FastAPI runs a plain def handler in a thread pool, hence the
              users-async row (the same handler as async def)
The app is perf/apps/bench_app.py (the same source for FasterAPI and FastAPI),
perf/apps/bench_wsgi.py (the same logic as a plain WSGI app), and for nginx
`return 200` with the same bodies.

Exit status: 1 when a server did not start, a route answered anything but
its expected body (checked before each load), or wrk saw non-2xx answers or
socket errors; with --strict, 2 when an issue-7 target is MISSED; else 0.

Environment: FASTERAPI_BUILDDIR (default: the source tree) names the build.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(os.environ.get("FASTERAPI_BUILDDIR", ROOT))
APPS = os.path.join(ROOT, "perf", "apps")
OUT = os.path.join(ROOT, "perf", "out")
PY = "/usr/bin/python3"

PLAIN = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'
USERS_BODY = b'{"id":7,"verbose":true}'
BODY_64K = b"x" * 65536


def echo_payload():
    """A 1 KiB (1024-byte) JSON document: the POST /echo body."""
    items = [{"id": i, "name": f"item-{i}", "price": i * 1.25, "tags": ["a", "b"]} for i in range(12)]
    doc = {"items": items, "pad": ""}
    doc["pad"] = "p" * (1024 - len(json.dumps(doc, separators=(",", ":"))))
    s = json.dumps(doc, separators=(",", ":")).encode()
    assert len(s) == 1024
    return s


ECHO = echo_payload()

# Cases: name -> (method, path, expected body, description)
CASES = {
    "plaintext": ("GET", "/plaintext", PLAIN, "GET /plaintext"),
    "native": ("GET", "/native/plaintext", PLAIN, "GET /plaintext, native (app.static, in C)"),
    "json": ("GET", "/json", JSON_BODY, "GET /json"),
    "users": ("GET", "/users/7?verbose=true", USERS_BODY, "GET /users/{id}?verbose=true (typed)"),
    "users-async": ("GET", "/ausers/7?verbose=true", USERS_BODY,
                    "GET /users/{id}?verbose=true (typed), async def"),
    "echo": ("POST", "/echo", ECHO, "POST /echo, 1 KiB JSON body"),
    "64k": ("GET", "/bytes64k", BODY_64K, "GET 64 KiB response"),
    "async": ("GET", "/async", JSON_BODY, "GET async def, awaits asyncio.sleep(0)"),
    "pipeline": ("GET", "/plaintext", PLAIN, "GET /plaintext pipelined x16"),
    "pipeline-py": ("GET", "/plaintext", PLAIN, "GET /plaintext (Python) pipelined x16"),
}


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fetch(port, method, path, body=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_http(port, path, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} while starting")
        try:
            if fetch(port, "GET", path, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {path} within {timeout} s")


# ---------------------------------------------------------------- processes

def proc_table():
    """{pid: (ppid, comm, exe basename)}"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        try:
            exe = os.path.basename(os.readlink(f"/proc/{d}/exe"))
        except OSError:
            exe = ""
        out[int(d)] = (ppid, comm, exe)
    return out


def tree(pid):
    """pid and all its descendants."""
    table = proc_table()
    children = {}
    for p, (pp, _, _) in table.items():
        children.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in table or p == pid:
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ns(pids):
    """CPU time of every thread of these processes, ns."""
    total = 0
    for p in pids:
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    return total


def mem_kb(pid):
    """{'rss': VmRSS, 'pss': Pss, 'shmem': RssShmem} in KiB."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1])
                elif line.startswith("RssShmem:"):
                    out["shmem"] = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- wrk

def parse_wrk(out):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s)$", s)
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v if u == "ms" else v * 1000
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    # Anchored: "65.99%" in the Stdev column must not match.
    p50 = dur(re.search(r"^\s+50%\s+(\S+)\s*$", out, re.M).group(1))
    p99 = dur(re.search(r"^\s+99%\s+(\S+)\s*$", out, re.M).group(1))
    non2xx = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        non2xx = int(m.group(1))
    sock = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        sock = sum(int(x) for x in m.groups())
    return reqs, rps, p50, p99, non2xx, sock


class Lua:
    """The wrk scripts: POST with a 1 KiB body, and pipelining."""

    def __init__(self, tmp):
        self.post = os.path.join(tmp, "post.lua")
        with open(self.post, "w") as f:
            body = ECHO.decode().replace("\\", "\\\\").replace('"', '\\"')
            f.write(f'wrk.method = "POST"\nwrk.body = "{body}"\n'
                    f'wrk.headers["Content-Type"] = "application/json"\n')
        self.pipeline = os.path.join(tmp, "pipeline.lua")
        with open(self.pipeline, "w") as f:
            f.write("""-- pipeline.lua DEPTH PATH: each write carries DEPTH requests
init = function(args)
   local depth = tonumber(args[1]) or 16
   local path = args[2] or "/plaintext"
   local r = {}
   for i = 1, depth do
      r[i] = wrk.format("GET", path)
   end
   req = table.concat(r)
end

request = function()
   return req
end
""")


def busy_ns():
    """CPU time spent by the whole machine (all cores, not idle/iowait), ns."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    return (sum(v[:8]) - v[3] - v[4]) * tick


def load(port, case, path, args, root_pid, lua):
    url = f"http://127.0.0.1:{port}{path}"
    script = []
    if case == "echo":
        script = ["-s", lua.post]
    elif case.startswith("pipeline"):
        script = ["-s", lua.pipeline]
    extra = ["--", str(args.depth), path] if case.startswith("pipeline") else []
    base = ["wrk", f"-t{args.threads}", f"-c{args.connections}", "--latency", "--timeout", "5s"]
    subprocess.run(base + ["-d1s"] + script + [url] + extra, capture_output=True, check=True)  # warm-up
    pids = tree(root_pid)
    before, busy0, t0 = cpu_ns(pids), busy_ns(), time.monotonic()
    ru0 = os.times()
    out = subprocess.run(base + [f"-d{args.duration}s"] + script + [url] + extra,
                         capture_output=True, text=True, check=True).stdout
    ru1 = os.times()
    pids = set(pids) | set(tree(root_pid))
    cpu = cpu_ns(pids) - before
    wall = time.monotonic() - t0
    wrk_ns = (ru1.children_user + ru1.children_system - ru0.children_user - ru0.children_system) * 1e9
    # What else ran on the machine meanwhile (other users' builds and tests),
    # in cores: a busy machine makes requests/s and latency unreliable (the
    # CPU per request much less so).
    other = max(0.0, (busy_ns() - busy0 - cpu - wrk_ns) / 1e9 / wall)
    reqs, rps, p50, p99, non2xx, sock = parse_wrk(out)
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu / 1000 / max(reqs, 1),
            "requests": reqs, "non2xx": non2xx, "sock_errors": sock,
            "wrk_cores": wrk_ns / 1e9 / wall, "server_cores": cpu / 1e9 / wall, "other_cores": other}


# ---------------------------------------------------------------- servers

class Server:
    name = ""
    label = ""
    cases = ()
    stop_signal = signal.SIGTERM

    def popen(self, cmd, **kw):
        self.log = open(os.path.join(self.tmp, "server.log"), "wb")
        return subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                start_new_session=True, **kw)

    def start(self, tmp):
        self.tmp = tmp
        self.port = free_port()
        self.proc = self.launch()
        try:
            wait_http(self.port, "/plaintext", self.proc)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{self.name}: {e}\n{self.log_tail()}") from None
        time.sleep(0.3)

    def log_tail(self):
        try:
            with open(os.path.join(self.tmp, "server.log"), "rb") as f:
                return f.read()[-2000:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Leftovers of the process group (uvicorn's workers, uWSGI's): none may survive.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()

    def path(self, case):
        return CASES[case][1]


class FasterAPI(Server):
    name = "fasterapi"
    stop_signal = signal.SIGTERM

    def __init__(self, workers=1, py_workers=1):
        self.workers, self.py_workers = workers, py_workers
        self.label = f"FasterAPI ({workers} HTTP + {py_workers} Python worker{'s' if py_workers > 1 else ''})"
        self.cases = ("native", "plaintext", "json", "users", "users-async", "echo", "64k", "async",
                      "pipeline", "pipeline-py")
        self.native = None   # known after the first start

    def launch(self):
        exe = os.path.join(BUILD, "fasterapi")
        if not os.access(exe, os.X_OK):
            raise RuntimeError(f"{exe} is missing: build first (FASTERAPI_BUILDDIR={BUILD})")
        return self.popen([exe, "run", "bench_app:app", "--app-dir", APPS,
                           "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                           "--py-workers", str(self.py_workers), "--name", f"bench{os.getpid()}"])

    def start(self, tmp):
        super().start(tmp)
        if self.native is None:
            self.native = fetch(self.port, "GET", "/native/plaintext")[0] == 200
            if not self.native:
                log("fasterapi: no app.static in this build: the native /plaintext row and the "
                    "pipelined row use the Python /plaintext")

    def path(self, case):
        if case in ("native", "pipeline") and not self.native:
            return "/plaintext"
        if case == "pipeline":
            return "/native/plaintext"
        return CASES[case][1]

    def memory(self):
        """RSS of the master + one HTTP worker, and of one Python worker."""
        table = proc_table()
        master = self.proc.pid
        http = [p for p in tree(master) if p != master and table.get(p, ("", "", ""))[2] == "fasterapi"]
        py = [p for p in tree(master) if table.get(p, ("", "", ""))[2] == "fasterapi-pyworker"]
        out = {"master": mem_kb(master)}
        if http:
            out["http"] = mem_kb(http[0])
        if py:
            out["py"] = mem_kb(py[0])
        return out


class Nginx(Server):
    name = "nginx"
    stop_signal = signal.SIGQUIT

    def __init__(self, workers=1):
        self.workers = workers
        self.label = f"nginx ({workers} worker, return 200)"
        self.cases = ("plaintext", "json", "users", "echo", "64k", "pipeline")

    def launch(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        # A `return` string is limited to a few KiB: the 64 KiB body is a
        # file, sent with sendfile from the page cache (nginx's best case).
        with open(os.path.join(self.tmp, "bytes64k"), "wb") as f:
            f.write(BODY_64K)
        with open(conf, "w") as f:
            f.write(f"""
worker_processes {self.workers};
daemon off;
master_process on;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    open_file_cache max=16;
    keepalive_requests 100000000;
    client_body_temp_path {self.tmp};
    proxy_temp_path {self.tmp};
    fastcgi_temp_path {self.tmp};
    uwsgi_temp_path {self.tmp};
    scgi_temp_path {self.tmp};
    map $arg_verbose $verbose_json {{ true ',"verbose":true'; default ''; }}
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        location = /plaintext {{ default_type text/plain; return 200 '{PLAIN.decode()}'; }}
        location = /json {{ default_type application/json; return 200 '{JSON_BODY.decode()}'; }}
        location ~ ^/users/(\\d+)$ {{ default_type application/json; return 200 '{{"id":$1$verbose_json}}'; }}
        location = /echo {{ default_type application/json; return 200 '{ECHO.decode()}'; }}
        location = /bytes64k {{ default_type application/octet-stream; root {self.tmp}; }}
    }}
}}
""")
        return self.popen(["nginx", "-c", conf, "-p", self.tmp])


class UWSGI(Server):
    name = "uwsgi"
    stop_signal = signal.SIGINT

    def __init__(self, procs=2):
        self.procs = procs
        self.label = f"uWSGI ({procs} processes, --http11-socket, WSGI)"
        self.cases = ("plaintext", "json", "users", "echo", "64k")

    def launch(self):
        return self.popen(["uwsgi", "--plugin", "python3", "--http11-socket", f"127.0.0.1:{self.port}",
                           "--master", "--processes", str(self.procs), "--chdir", APPS,
                           "--wsgi-file", os.path.join(APPS, "bench_wsgi.py"), "--disable-logging",
                           "--listen", "1024", "--die-on-term", "--lazy-apps"])


class Gunicorn(Server):
    name = "gunicorn"

    def __init__(self, procs=2):
        self.procs = procs
        self.label = f"gunicorn ({procs} sync workers, WSGI)"
        self.cases = ("plaintext", "json", "users", "echo", "64k")

    def launch(self):
        return self.popen([PY, "-m", "gunicorn", "--workers", str(self.procs), "--worker-class", "sync",
                           "--bind", f"127.0.0.1:{self.port}", "--chdir", APPS, "--log-level", "warning",
                           "--backlog", "2048", "bench_wsgi:app"])


class Uvicorn(Server):
    name = "uvicorn"

    def __init__(self, procs=2):
        self.procs = procs
        self.label = f"uvicorn + FastAPI ({procs} workers, uvloop, httptools)"
        self.cases = ("plaintext", "json", "users", "users-async", "echo", "64k", "async")

    def launch(self):
        env = dict(os.environ, BENCH_FRAMEWORK="fastapi")
        return self.popen([PY, "-m", "uvicorn", "bench_app:app", "--app-dir", APPS,
                           "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.procs),
                           "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                           "--log-level", "warning", "--backlog", "2048"], env=env)


# ---------------------------------------------------------------- report

def probe(server, case):
    method, _, want, _ = CASES[case]
    path = server.path(case)
    status, body = fetch(server.port, method, path, ECHO if method == "POST" else None)
    if status != 200 or body != want:
        raise RuntimeError(f"{server.name} {method} {path}: got {status} {body[:80]!r}, "
                           f"expected 200 {want[:80]!r}")


def med(vals, key):
    xs = sorted(v[key] for v in vals)
    return statistics.median(xs), xs[0], xs[-1]


def cell(vals, key, f):
    m, lo, hi = med(vals, key)
    if len(vals) == 1:
        return f.format(m)
    return f"{f.format(m)} ({f.format(lo)}–{f.format(hi)})"


def table(servers, results, args):
    lines = ["| server | case | requests/s | p50 ms | p99 ms | CPU µs/req |",
             "|---|---|---:|---:|---:|---:|"]
    for s in servers:
        for case in s.cases:
            vals = results.get((s.name, case))
            desc = CASES[case][3]
            if s.name == "fasterapi" and case in ("native", "pipeline") and not s.native:
                desc += " [no app.static yet: Python route]"
            elif s.name == "fasterapi" and case == "pipeline":
                desc = "GET /plaintext, native (app.static), pipelined x16"
            if s.name == "nginx" and case == "plaintext":
                desc = "GET /plaintext (return 200)"
            if s.name == "nginx" and case == "pipeline":
                desc = "GET /plaintext pipelined x16 (return 200)"
            if not vals:
                lines.append(f"| {s.label} | {desc} | failed | | | |")
                continue
            note = ""
            errs = sum(v["non2xx"] for v in vals)
            sock = sum(v["sock_errors"] for v in vals)
            if errs:
                note += f" [{errs} non-2xx]"
            if sock:
                note += f" [{sock} socket errors]"
            other = max(v["other_cores"] for v in vals)
            if other > 0.25:
                note += f" [busy machine: {other:.1f} other cores]"
            lines.append(f"| {s.label} | {desc}{note} | {cell(vals, 'rps', '{:,.0f}')} | "
                         f"{cell(vals, 'p50', '{:.2f}')} | {cell(vals, 'p99', '{:.2f}')} | "
                         f"{cell(vals, 'cpu_us', '{:.2f}')} |")
    return lines


def targets(results, memory, bare_kb, fa, args, memory_json=None, memory_rest=None):
    """Issue 7's targets: (name, ratio text, MET/MISSED/n/a, detail)."""
    def m(server, case, key):
        vals = results.get((server, case))
        return med(vals, key)[0] if vals else None

    out = []

    def add(name, ok, ratio, detail):
        out.append((name, "n/a" if ok is None else ("MET" if ok else "MISSED"), ratio, detail))

    nat = m("fasterapi", "native", "cpu_us")
    ngp = m("nginx", "plaintext", "cpu_us")
    if nat and ngp:
        suffix = "" if fa.native else " (no native route in this build: Python /plaintext measured)"
        add("native /plaintext CPU/req <= nginx's", nat <= ngp, f"{nat / ngp:.2f} x nginx",
            f"{nat:.2f} vs {ngp:.2f} µs{suffix}")
    else:
        add("native /plaintext CPU/req <= nginx's", None, "-", "rows missing")
    js = m("fasterapi", "json", "cpu_us")
    if js and ngp:
        add("Python /json CPU/req <= 1.5 x nginx /plaintext", js <= 1.5 * ngp, f"{js / ngp:.2f} x nginx",
            f"{js:.2f} vs {ngp:.2f} µs (limit {1.5 * ngp:.2f})")
    else:
        add("Python /json CPU/req <= 1.5 x nginx /plaintext", None, "-", "rows missing")
    us = m("fasterapi", "users", "cpu_us")
    for peer, factor, label in (("uvicorn", 10, "uvicorn + FastAPI"), ("uwsgi", 2, "uWSGI")):
        pc = m(peer, "users", "cpu_us")
        if us and pc:
            add(f"typed /users {factor}x cheaper than {label}", pc / us >= factor,
                f"{pc / us:.1f} x cheaper", f"{us:.2f} vs {pc:.2f} µs")
        else:
            add(f"typed /users {factor}x cheaper than {label}", None, "-", "rows missing")
        if peer == "uvicorn":
            pa, ua = m(peer, "users-async", "cpu_us"), m("fasterapi", "users-async", "cpu_us")
            if pa and ua:
                add("(same, both handlers async def)", pa / ua >= factor, f"{pa / ua:.1f} x cheaper",
                    f"{ua:.2f} vs {pa:.2f} µs")
    fp, np_ = m("fasterapi", "pipeline", "rps"), m("nginx", "pipeline", "rps")
    if fp and np_:
        add("pipelined /plaintext rps >= nginx's", fp >= np_, f"{fp / np_:.2f} x nginx",
            f"{fp:,.0f} vs {np_:,.0f} req/s")
    else:
        add("pipelined /plaintext rps >= nginx's", None, "-", "rows missing")
    fj, nj = m("fasterapi", "json", "p99"), m("nginx", "json", "p99")
    name = "p99 of Python /json <= 2 x nginx's (64 connections)"
    if fj and nj:
        add(name, fj <= 2 * nj if args.connections == 64 else None, f"{fj / nj:.2f} x nginx",
            f"{fj:.2f} vs {nj:.2f} ms" + ("" if args.connections == 64 else
                                          f" (measured at {args.connections} connections)"))
    else:
        add(name, None, "-", "rows missing")
    def tot(x, keys, sub):
        return sum(x.get(k, {}).get(sub, 0) for k in keys)

    # Memory: right after the /json load (the target's everyday case), right
    # after every load of the run (64 KiB responses and 1,024 pipelined
    # requests in flight included: the shm pages they used are still
    # resident), and 3 s later (the workers gave those pages back).
    for label, mems in (("after the /json load", memory_json), ("right after all the loads", memory),
                        ("3 s after all the loads", memory_rest)):
        if not mems:
            continue
        mh = statistics.median(tot(x, ("master", "http"), "rss") for x in mems)
        mh_shm = statistics.median(tot(x, ("master", "http"), "shmem") for x in mems)
        add(f"master + 1 HTTP worker RSS < 10 MiB, {label}", mh < 10 * 1024, f"{mh / 1024:.1f} MiB",
            f"{mh / 1024 / 10:.2f} x the limit; {mh_shm / 1024:.1f} MiB of it shm segment pages")
        pw = statistics.median(tot(x, ("py",), "rss") for x in mems)
        pw_shm = statistics.median(tot(x, ("py",), "shmem") for x in mems)
        if bare_kb:
            d = pw - bare_kb
            add(f"Python worker RSS < bare interpreter + app + 5 MiB, {label}", d < 5 * 1024,
                f"+{d / 1024:.1f} MiB", f"{pw / 1024:.1f} MiB vs {bare_kb / 1024:.1f} MiB bare; "
                f"{pw_shm / 1024:.1f} MiB of it shm segment pages")
        else:
            add(f"Python worker RSS < bare interpreter + app + 5 MiB, {label}", None, "-", "no baseline")
    if not memory:
        add("memory", None, "-", "FasterAPI not run")
    return out


def bare_interpreter_kb():
    """Peak RSS of fasterapi-pyworker --describe on the bench app: the same
    binary and libpython, the app imported, nothing served."""
    exe = os.path.join(BUILD, "fasterapi-pyworker")
    p = subprocess.Popen([exe, "--describe", "--app", "bench_app:app", "--app-dir", APPS],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = status
    return ru.ru_maxrss if status == 0 else None


def chart(servers, results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no chart (perf/install-peers installs python3-matplotlib)")
        return
    labels, cpu, rps, colors = [], [], [], []
    palette = {"fasterapi": "#d62728", "nginx": "#2ca02c", "uwsgi": "#1f77b4",
               "gunicorn": "#9467bd", "uvicorn": "#ff7f0e"}
    for case in CASES:
        for s in servers:
            vals = results.get((s.name, case))
            if case not in s.cases or not vals:
                continue
            labels.append(f"{CASES[case][3][:44]} — {s.name}")
            cpu.append(med(vals, "cpu_us")[0])
            rps.append(med(vals, "rps")[0] / 1000)
            colors.append(palette.get(s.name, "grey"))
    if not labels:
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(15, 0.32 * len(labels) + 1.5), sharey=True)
    y = list(range(len(labels)))[::-1]
    a1.barh(y, cpu, color=colors)
    a1.set_xscale("log")
    a1.set_xlabel("server CPU µs per request (log; lower is better)")
    a1.set_yticks(y)
    a1.set_yticklabels(labels, fontsize=8)
    for yy, v in zip(y, cpu):
        a1.text(v, yy, f" {v:.1f}", va="center", fontsize=7)
    a2.barh(y, rps, color=colors)
    a2.set_xlabel("thousand requests/s (higher is better)")
    for yy, v in zip(y, rps):
        a2.text(v, yy, f" {v:.0f}", va="center", fontsize=7)
    fig.suptitle(f"FasterAPI vs peers, {os.cpu_count()} cores, wrk on loopback (median of runs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s per row")
    ap.add_argument("--only", help="comma-separated servers: fasterapi,nginx,uwsgi,gunicorn,uvicorn; "
                    "or server:case,... e.g. fasterapi:json,nginx:plaintext")
    ap.add_argument("--duration", type=int, help="seconds per measured run (default 5; --quick 3)")
    ap.add_argument("--runs", type=int, help="runs per row, median reported (default 3; --quick 1)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--depth", type=int, default=16, help="pipeline depth (default 16)")
    ap.add_argument("--py-workers", type=int, default=1, help="FasterAPI Python workers (default 1)")
    ap.add_argument("--workers", type=int, default=1, help="FasterAPI HTTP workers (default 1)")
    ap.add_argument("--peer-procs", type=int, default=2,
                    help="processes for uWSGI, gunicorn, uvicorn (default 2)")
    ap.add_argument("--nginx-workers", type=int, default=1)
    ap.add_argument("--no-install", action="store_true", help="do not run perf/install-peers")
    ap.add_argument("--out", default=OUT, help="output folder (default perf/out)")
    ap.add_argument("--strict", action="store_true",
                    help="exit with status 2 when an issue-7 target is MISSED")
    args = ap.parse_args()
    args.duration = args.duration or (3 if args.quick else 5)
    args.runs = args.runs or (1 if args.quick else 3)

    if not args.no_install:
        subprocess.run([os.path.join(ROOT, "perf", "install-peers")], check=True)
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/usr/bin"

    fa = FasterAPI(args.workers, args.py_workers)
    servers = [fa, Nginx(args.nginx_workers), UWSGI(args.peer_procs), Gunicorn(args.peer_procs),
               Uvicorn(args.peer_procs)]
    if args.only:
        want = {}
        for item in args.only.split(","):
            srv, _, case = item.partition(":")
            want.setdefault(srv, set())
            if case:
                want[srv].add(case)
        unknown = set(want) - {s.name for s in servers}
        if unknown:
            sys.exit(f"bench: --only: unknown server(s) {', '.join(sorted(unknown))}")
        servers = [s for s in servers if s.name in want]
        for s in servers:
            if want[s.name]:
                bad = want[s.name] - set(s.cases)
                if bad:
                    sys.exit(f"bench: --only: {s.name} has no case {', '.join(sorted(bad))} "
                             f"(it has {', '.join(s.cases)})")
                s.cases = tuple(c for c in s.cases if c in want[s.name])

    results, memory, failed = {}, [], []
    memory_after = {}     # FasterAPI case -> [memory() right after its load, per run]
    memory_rest = []      # FasterAPI memory() 3 s after the last load, per run
    with tempfile.TemporaryDirectory(prefix="fa-bench-") as tmp:
        os.chmod(tmp, 0o755)
        lua = Lua(tmp)
        for run in range(args.runs):
            for s in servers:
                d = tempfile.mkdtemp(dir=tmp, prefix=s.name)
                os.chmod(d, 0o755)   # nginx's workers run as www-data
                log(f"run {run + 1}/{args.runs}: {s.label}")
                try:
                    s.start(d)
                except RuntimeError as e:
                    log(f"{s.name} did not start: {e}")
                    failed.append(f"run {run + 1}: {s.name} did not start: {e}")
                    continue
                try:
                    for case in s.cases:
                        try:
                            probe(s, case)
                            r = load(s.port, case, s.path(case), args, s.proc.pid, lua)
                            results.setdefault((s.name, case), []).append(r)
                            if s is fa:
                                memory_after.setdefault(case, []).append(fa.memory())
                            log(f"  {case:11} {r['rps']:>10,.0f} req/s  p99 {r['p99']:.2f} ms  "
                                f"{r['cpu_us']:.2f} CPU µs/req  (server {r['server_cores']:.2f}, "
                                f"wrk {r['wrk_cores']:.2f}, others {r['other_cores']:.2f} cores)")
                        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                            log(f"  {case}: {e}")
                            failed.append(f"run {run + 1}: {s.name} {case}: {e}")
                    if s is fa:
                        memory.append(fa.memory())
                        # Idle: the workers give the segment pages of the
                        # bursts back within ~2 s (shm/chunk.c, fa_arena_idle_trim).
                        time.sleep(3)
                        memory_rest.append(fa.memory())
                finally:
                    s.stop()
        bare = bare_interpreter_kb() if any(s is fa for s in servers) else None

    head = (f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s (pipelined: depth "
            f"{args.depth}), median of {args.runs} run{'s' if args.runs > 1 else ''}"
            f"{' (min–max)' if args.runs > 1 else ''}, {os.cpu_count()} cores, loopback")
    others = [v["other_cores"] for vals in results.values() for v in vals]
    if others:
        head += (f"; other processes kept {statistics.median(others):.2f} cores busy (median over "
                 f"rows; > 0.25 flags a row: its requests/s and latency are not reliable, its CPU "
                 f"per request much more so)")
    lines = [head, ""] + table(servers, results, args)
    tg = targets(results, memory, bare, fa, args, memory_after.get("json"), memory_rest)
    lines += ["", "| target (issue 7) | result | ratio | detail |", "|---|---|---|---|"]
    lines += [f"| {n} | {ok} | {r} | {d} |" for n, ok, r, d in tg]
    if memory:
        def mib(key, sub):
            xs = [x.get(key, {}).get(sub) for x in memory if x.get(key, {}).get(sub) is not None]
            return f"{statistics.median(xs) / 1024:.1f}" if xs else "-"
        lines += ["", "| FasterAPI process (after the load) | RSS MiB | PSS MiB | of which shm MiB |",
                  "|---|---:|---:|---:|"]
        for key, label in (("master", "master"), ("http", "HTTP worker"), ("py", "Python worker")):
            lines.append(f"| {label} | {mib(key, 'rss')} | {mib(key, 'pss')} | {mib(key, 'shmem')} |")
        if bare:
            lines.append(f"| bare embedded interpreter + app imported (fasterapi-pyworker "
                         f"--describe, peak) | {bare / 1024:.1f} | | |")
        lines += ["", "RSS counts every page of the shared segment that a process touched, in each "
                  "process that touched it; PSS splits shared pages between their users."]
    text = "\n".join(lines)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump({"args": vars(args), "results": {f"{k[0]}:{k[1]}": v for k, v in results.items()},
                   "memory": memory, "memory_after": memory_after, "memory_rest": memory_rest,
                   "bare_kb": bare,
                   "labels": {s.name: s.label for s in servers},
                   "targets": tg}, f, indent=1)
    chart(servers, results, os.path.join(args.out, "bench.png"))
    print(f"\nwritten: {args.out}/bench.md, bench.json, bench.png", file=sys.stderr)
    # Every answer of every server was checked (probe) and wrk must see no
    # error: a benchmark of wrong answers is a failure, not a figure.
    for (name, case), vals in results.items():
        bad = sum(v["non2xx"] + v["sock_errors"] for v in vals)
        if bad:
            failed.append(f"{name} {case}: {bad} non-2xx answers or socket errors under load")
    if failed:
        sys.exit("bench: FAILED:\n  " + "\n  ".join(failed))
    missed = [n for n, ok, _, _ in tg if ok == "MISSED"]
    if args.strict and missed:
        print("bench: targets missed: " + "; ".join(missed), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
