#!/usr/bin/python3
"""perf/bench.py - FasterAPI against peers, side by side, in one run.

Each server is started in turn on loopback, loaded with wrk, and stopped.
Per row: requests/s, p50/p99 latency, and server CPU microseconds per
request: the CPU time of the whole server process tree over the run
(/proc/PID/schedstat, nanoseconds) divided by the requests wrk completed.
That figure stays meaningful when wrk shares the machine's cores.
Each row is the median of --runs runs, with the min-max range.

    /usr/bin/python3 perf/bench.py [--duration 10] [--runs 3] [--connections 64]

Needs wrk and nginx (scripts/install-deps --perf) and a built tree.
"""
import argparse
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
BUILD = os.environ.get("FASTERAPI_BUILDDIR", ROOT)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_http(port, path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer {path}")


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ns(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


def parse_wrk(out):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s)", s)
        v, u = float(m.group(1)), m.group(2)
        return v / 1000 if u == "us" else v if u == "ms" else v * 1000
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = dur(re.search(r"50%\s+(\S+)", out).group(1))
    p99 = dur(re.search(r"99%\s+(\S+)", out).group(1))
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return reqs, rps, p50, p99, errors


def load(port, path, args, pids):
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
           f"http://127.0.0.1:{port}{path}"]
    subprocess.run(["wrk", "-t1", "-c8", "-d1s", f"http://127.0.0.1:{port}{path}"],
                   capture_output=True, check=True)  # warm-up
    before = cpu_ns(pids)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    cpu = cpu_ns(pids) - before
    reqs, rps, p50, p99, errors = parse_wrk(out)
    if errors:
        raise RuntimeError(f"{errors} errors from wrk against {path}:\n{out}")
    return {"rps": rps, "p50": p50, "p99": p99, "cpu_us": cpu / 1000 / max(reqs, 1)}


class FasterAPI:
    def __init__(self, workers, py_workers):
        self.label = f"fasterapi ({workers} HTTP + {py_workers} Python worker)"
        self.workers, self.py_workers = workers, py_workers

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "fasterapi"), "run", "hello:app", "--app-dir",
             os.path.join(ROOT, "examples"), "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(self.workers), "--py-workers", str(self.py_workers),
             "--name", f"bench{os.getpid()}"], stderr=subprocess.DEVNULL)
        wait_http(self.port, "/json")
        time.sleep(0.5)
        return self.port, tree(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)


class Nginx:
    BODY = '{"message":"Hello, World!"}'

    def __init__(self, workers):
        self.label = f"nginx ({workers} worker, return 200)"
        self.workers = workers

    def start(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="fa-nginx-")
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""
worker_processes {self.workers};
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{self.port};
        location = /json {{ default_type application/json; return 200 '{self.BODY}'; }}
        location = /plaintext {{ default_type text/plain; return 200 'Hello, World!'; }}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir], stderr=subprocess.DEVNULL)
        wait_http(self.port, "/json")
        time.sleep(0.3)
        return self.port, tree(self.proc.pid)

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def fmt(vals, key, f="{:.0f}"):
    xs = sorted(v[key] for v in vals)
    med = statistics.median(xs)
    return f"{f.format(med)} ({f.format(xs[0])}-{f.format(xs[-1])})", med


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"bench: {tool} is missing: scripts/install-deps --perf")
    os.environ["PATH"] += ":/usr/sbin"
    rows = [(FasterAPI(1, 1), "/json"), (Nginx(1), "/json")]
    results = {}
    for server, path in rows:
        results[server.label] = []
    for run in range(args.runs):
        for server, path in rows:
            port, pids = server.start()
            try:
                results[server.label].append(load(port, path, args, pids))
            finally:
                server.stop()
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, median of {args.runs} runs (min-max), "
          f"{os.cpu_count()} cores\n")
    print("| server | path | requests/s | p50 ms | p99 ms | server CPU µs/request |")
    print("|---|---|---|---|---|---|")
    meds = {}
    for server, path in rows:
        vals = results[server.label]
        rps, _ = fmt(vals, "rps")
        p50, _ = fmt(vals, "p50", "{:.2f}")
        p99, _ = fmt(vals, "p99", "{:.2f}")
        cpu, meds[server.label] = fmt(vals, "cpu_us", "{:.1f}")
        print(f"| {server.label} | {path} | {rps} | {p50} | {p99} | {cpu} |")
    fa, ng = meds[rows[0][0].label], meds[rows[1][0].label]
    print(f"\nPython /json costs {fa / ng:.2f} x nginx's CPU per request in the same run.")


if __name__ == "__main__":
    main()
