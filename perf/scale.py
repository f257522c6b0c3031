#!/usr/bin/python3
"""perf/scale.py: checks the scaling model of perf/SCALING.md on this machine.

    FASTERAPI_BUILDDIR=/tmp/build /usr/bin/python3 perf/scale.py [--duration 5]
        [--combos 1+1,1+2,2+1,2+2] [--path /json] [--connections 64] [--nginx] [--md FILE]

Starts `fasterapi run hello:app --app-dir examples --workers H --py-workers P` for
each combination H+P in turn, loads `--path` (default /json) with `wrk -t1 -c64`
(1 s warm-up, then --duration seconds), and measures separately the CPU time
(/proc/PID/task/TID/schedstat) of the HTTP workers (+ the master), of the Python
workers and of wrk, each divided by the requests wrk completed:

    c_h   HTTP-worker CPU µs per request (+ the master's, which is ~0)
    c_p   Python-worker CPU µs per request
    c_l   wrk's CPU µs per request (the load generator shares the cores)

The model: requests/s ≈ min(H/c_h, P/c_p, T/c_l, cores/(c_h + c_p + c_l)), with T = 1
wrk thread. The predictions for every combination use the costs measured in the
first combination (1+1); the table then gives predicted vs measured requests/s and
each run's own costs. It also gives what the rest of the machine used meanwhile
(other people's jobs, from /proc/stat) and /proc/loadavg, and a second prediction
with the cores left over by them (cores - other).

--nginx puts nginx (1 worker, keep-alive upstream, as in examples/deploy/nginx.conf)
in front, the instance on a Unix socket; nginx's CPU per request is counted with the
load generator's (c_load) and shown on its own. wrk and nginx: perf/install-peers.
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the colleague's harness: process tree, schedstat, wrk parsing)

ROOT = bench.ROOT
BUILD = bench.BUILD
EXAMPLES = os.path.join(ROOT, "examples")
EXPECTED = {"/json": b'{"message":"Hello, World!"}', "/plaintext": b"Hello, World!"}


def log(msg):
    print(f"scale: {msg}", file=sys.stderr, flush=True)


def roles(master, ngx=None):
    """{'http': [pids], 'py': [pids], 'master': [pid], 'nginx': [pids]} of a running
    instance (and of nginx in front, if any)."""
    table = bench.proc_table()
    out = {"master": [master], "http": [], "py": [], "nginx": bench.tree(ngx.pid) if ngx else []}
    for p in bench.tree(master):
        if p == master:
            continue
        exe = table.get(p, (0, "", ""))[2]
        out["py" if exe == "fasterapi-pyworker" else "http"].append(p)
    return out


def wait_workers(master, h, p, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = roles(master)
        if len(r["http"]) >= h and len(r["py"]) >= p:
            return r
        time.sleep(0.1)
    raise RuntimeError(f"expected {h} HTTP + {p} Python workers, found {roles(master)}")


def run_combo(h, p, args, tmp):
    exe = os.path.join(BUILD, "fasterapi")
    if not os.access(exe, os.X_OK):
        raise SystemExit(f"{exe} is missing: build first (FASTERAPI_BUILDDIR={BUILD})")
    port = bench.free_port()
    logf = open(os.path.join(tmp, f"fa-{h}-{p}.log"), "wb")
    sock = os.path.join(tmp, f"fa-{h}-{p}.sock")
    bind = f"unix:{sock}" if args.nginx else f"127.0.0.1:{port}"
    proc = subprocess.Popen([exe, "run", "hello:app", "--app-dir", EXAMPLES,
                             "--bind", bind, "--workers", str(h),
                             "--py-workers", str(p), "--name", f"scale{os.getpid()}_{h}_{p}"],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    ngx = None
    try:
        if args.nginx:
            deadline = time.time() + 20
            while not os.path.exists(sock):
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"fasterapi did not bind {sock}")
                time.sleep(0.05)
            ngx = start_nginx(tmp, sock, port)
        bench.wait_http(port, args.path, proc)
        status, body = bench.fetch(port, "GET", args.path)
        if status != 200 or (args.path in EXPECTED and body != EXPECTED[args.path]):
            raise RuntimeError(f"{args.path} answered {status} {body!r}")
        r = wait_workers(proc.pid, h, p)
        url = f"http://127.0.0.1:{port}{args.path}"
        base = ["wrk", f"-t{args.threads}", f"-c{args.connections}", "--latency", "--timeout", "5s"]
        subprocess.run(base + ["-d1s", url], capture_output=True, check=True)   # warm-up
        r = roles(proc.pid, ngx)
        cpu0 = {k: bench.cpu_ns(v) for k, v in r.items()}
        busy0, t0, ru0 = bench.busy_ns(), time.monotonic(), os.times()
        out = subprocess.run(base + [f"-d{args.duration}s", url],
                             capture_output=True, text=True, check=True).stdout
        ru1, wall = os.times(), time.monotonic() - t0
        busy1 = bench.busy_ns()
        cpu1 = {k: bench.cpu_ns(v) for k, v in roles(proc.pid, ngx).items()}
        with open("/proc/loadavg") as f:
            loadavg = " ".join(f.read().split()[:3])
        reqs, rps, p50, p99, non2xx, sock = bench.parse_wrk(out)
        if non2xx or sock:
            log(f"{h}+{p}: {non2xx} non-2xx answers, {sock} socket errors")
        wrk_ns = (ru1.children_user + ru1.children_system - ru0.children_user - ru0.children_system) * 1e9
        d = {k: max(0, cpu1[k] - cpu0[k]) for k in cpu0}   # a pid that vanished would go negative
        server_ns = d["http"] + d["master"] + d["py"]
        if args.nginx:   # nginx is the load generator's side: count it with wrk
            wrk_ns += d["nginx"]
        other = max(0.0, (busy1 - busy0 - server_ns - wrk_ns) / 1e9 / wall)
        n = max(reqs, 1)
        return {"h": h, "p": p, "rps": rps, "requests": reqs, "p50": p50, "p99": p99,
                "c_h": (d["http"] + d["master"]) / 1000 / n, "c_p": d["py"] / 1000 / n,
                "c_l": wrk_ns / 1000 / n, "cpu_us": server_ns / 1000 / n,
                "c_n": d["nginx"] / 1000 / n,
                "server_cores": server_ns / 1e9 / wall, "wrk_cores": wrk_ns / 1e9 / wall,
                "other_cores": other, "loadavg": loadavg}
    finally:
        if ngx is not None:
            ngx.send_signal(signal.SIGQUIT)
            try:
                ngx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ngx.kill()
                ngx.wait()
        proc.terminate()
        try:
            rc = proc.wait(timeout=20)
            if rc != 0:
                log(f"{h}+{p}: fasterapi exited with status {rc}")
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()


NGINX_CONF = """daemon off;
worker_processes 1;
%(user)s
pid %(dir)s/nginx.pid;
error_log %(dir)s/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(dir)s/ngx-body;
    proxy_temp_path %(dir)s/ngx-proxy;
    fastcgi_temp_path %(dir)s/ngx-fastcgi;
    uwsgi_temp_path %(dir)s/ngx-uwsgi;
    scgi_temp_path %(dir)s/ngx-scgi;
    upstream fasterapi { server unix:%(sock)s; keepalive 64; }
    server {
        listen 127.0.0.1:%(port)d;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://fasterapi;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
        }
    }
}
"""


def start_nginx(tmp, sock, port):
    """nginx (1 worker) on 127.0.0.1:port in front of the instance's socket, as in
    examples/deploy/nginx.conf."""
    conf = os.path.join(tmp, f"nginx-{port}.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF % {"user": "user root;" if os.geteuid() == 0 else "", "dir": tmp,
                              "sock": sock, "port": port})
    return subprocess.Popen(["/usr/sbin/nginx", "-c", conf, "-p", tmp, "-e",
                             os.path.join(tmp, "nginx-error.log")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def predict(h, p, c, cores, threads, c_n=0.0):
    """requests/s from the model; c = (c_h, c_p, c_l) in µs, c_n the part of c_l
    that is nginx's (one worker), if any. Also names the bound."""
    c_h, c_p, c_l = c
    bounds = {"HTTP": h / c_h, "Python": p / c_p, "wrk": threads / (c_l - c_n),
              "cores": cores / (c_h + c_p + c_l)}
    if c_n:
        bounds["nginx"] = 1 / c_n
    name = min(bounds, key=bounds.get)
    return bounds[name] * 1e6, name


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--combos", default="1+1,1+2,2+1,2+2",
                    help="H+P combinations, comma-separated; the first one calibrates the model")
    ap.add_argument("--path", default="/json", help="route of examples/hello.py to load (/json)")
    ap.add_argument("--duration", type=int, default=5, help="seconds per measured run (5)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    ap.add_argument("--cores", type=int, default=os.cpu_count())
    ap.add_argument("--nginx", action="store_true",
                    help="put nginx (1 worker, upstream keepalive) in front, the instance on a Unix "
                         "socket: c_nginx is its CPU per request, counted with the load generator's")
    ap.add_argument("--md", help="also write the markdown table to this file")
    args = ap.parse_args()

    import shutil
    for tool in ["wrk"] + (["/usr/sbin/nginx"] if args.nginx else []):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run perf/install-peers (Debian packages wrk, nginx)")
    combos = [tuple(int(x) for x in c.split("+")) for c in args.combos.split(",")]
    with open("/proc/loadavg") as f:
        load_start = f.read().strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="fa-scale-") as tmp:
        for h, p in combos:
            log(f"{h} HTTP + {p} Python workers: wrk -t{args.threads} -c{args.connections} "
                f"-d{args.duration}s {args.path}")
            results.append(run_combo(h, p, args, tmp))
    cal = results[0]
    c = (cal["c_h"], cal["c_p"], cal["c_l"])

    lines = [
        f"`FASTERAPI_BUILDDIR={BUILD} /usr/bin/python3 perf/scale.py --duration {args.duration} "
        f"--path {args.path}{' --nginx' if args.nginx else ''}` ({args.cores} cores, wrk -t{args.threads} -c{args.connections}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; /proc/loadavg at start: {load_start})",
        "",
        f"Model costs from the {cal['h']}+{cal['p']} run: c_h = {c[0]:.2f} µs, c_p = {c[1]:.2f} µs, "
        f"c_load (wrk{' + nginx' if args.nginx else ''}) = {c[2]:.2f} µs per request"
        + (f" (nginx's part: {cal['c_n']:.2f} µs)." if args.nginx else "."),
        "",
        "| H+P | predicted req/s, idle cores (bound) | predicted, cores left by others | measured req/s | "
        "measured / predicted (cores left) | c_h µs | c_p µs | c_load µs | server CPU µs/req | cores: server / load / others | "
        "p99 ms | loadavg |" + (" of c_load: nginx µs |" if args.nginx else ""),
        "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.nginx else ""),
    ]
    for r in results:
        pred, bound = predict(r["h"], r["p"], c, args.cores, args.threads, cal["c_n"])
        avail = max(0.1, args.cores - r["other_cores"])
        pred2, bound2 = predict(r["h"], r["p"], c, avail, args.threads, cal["c_n"])
        lines.append(
            f"| {r['h']}+{r['p']} | {pred:,.0f} ({bound}) | {pred2:,.0f} ({bound2}, {avail:.2f} cores) | "
            f"{r['rps']:,.0f} | {r['rps'] / pred2:.2f} | {r['c_h']:.2f} | {r['c_p']:.2f} | {r['c_l']:.2f} | "
            f"{r['cpu_us']:.2f} | {r['server_cores']:.2f} / {r['wrk_cores']:.2f} / {r['other_cores']:.2f} | "
            f"{r['p99']:.2f} | {r['loadavg']} |" + (f" {r['c_n']:.2f} |" if args.nginx else ""))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
