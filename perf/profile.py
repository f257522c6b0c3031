#!/usr/bin/python3
"""perf/profile.py - where FasterAPI's time per request goes, per process.

    /usr/bin/python3 perf/profile.py [--case json] [--duration 5] [--connections 64]
                                     [--tracer perf|strace] [--no-callgrind]

Starts FasterAPI (1 HTTP + 1 Python worker, perf/apps/bench_app.py), loads
one route with wrk and reports, per process (master, HTTP worker, Python
worker), per request:

  syscalls       by name: `perf trace -s` (kernel tracepoints, barely slows
                 the server; the default) or `strace -c -f` (ptrace: every
                 syscall stops the process, so the batching differs from a
                 real run; --tracer strace)
  CPU µs         from /proc/PID/task/*/schedstat, untraced run
  ctx switches   voluntary + involuntary, from /proc/PID/status
  instructions   callgrind, with the server started under valgrind
                 (--trace-children=yes for the exec'd Python worker); counters
                 zeroed after a warm-up and dumped after the load
                 (valgrind --instr-atstart=no, then callgrind_control --instr=on
                 and off around the load), so start-up is excluded; plus each
                 process's top functions. Under valgrind the server runs
                 ~50x slower, so fewer requests go by and the split between
                 spinning and sleeping differs: the counts include whatever
                 spinning the processes did.

Cases as in perf/bench.py: native, plaintext, json, users, echo, 64k, async.
Output: markdown on stdout, also written to perf/out/profile-CASE.md.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the same servers, cases, wrk parsing)

ROLES = (("master", "master"), ("http", "HTTP worker"), ("py", "Python worker"))


def log(msg):
    print(f"profile: {msg}", file=sys.stderr, flush=True)


def roles(master):
    table = bench.proc_table()
    out = {"master": master}
    for p in bench.tree(master):
        exe = table.get(p, (0, "", ""))[2]
        comm = table.get(p, (0, "", ""))[1]
        if p == master:
            continue
        if "pyworker" in exe or "pyworker" in comm:
            out.setdefault("py", p)
        elif exe in ("fasterapi", "memcheck-amd64-linux", "callgrind-amd64-linux") or "fasterapi" in comm:
            out.setdefault("http", p)
    return out


def ctx_switches(pid):
    n = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        n += int(line.split()[1])
    except OSError:
        pass
    return n


def wrk(port, case, path, args, lua, duration=None):
    url = f"http://127.0.0.1:{port}{path}"
    script = ["-s", lua.post] if case == "echo" else []
    cmd = ["wrk", "-t1", f"-c{args.connections}", f"-d{duration or args.duration}s", "--latency",
           "--timeout", "10s"] + script + [url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return bench.parse_wrk(out)[0]


def parse_trace_summary(text, tracer):
    """{pid: {syscall: calls}} from perf trace -s, or {0: {...}} from strace -c."""
    out = {}
    if tracer == "perf":
        pid = None
        for line in text.splitlines():
            m = re.match(r"\s*\S.* \((\d+)\), \d+ events", line)
            if m:
                pid = int(m.group(1))
                out.setdefault(pid, {})
                continue
            m = re.match(r"\s+([a-z_0-9]+)\s+(\d+)\s+(\d+)\s+[\d.]+", line)
            if m and pid is not None:
                out[pid][m.group(1)] = out[pid].get(m.group(1), 0) + int(m.group(2))
    else:
        for line in text.splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)$", line)
            if m:
                out.setdefault(0, {})[m.group(2)] = int(m.group(1))
    return out


def syscall_profile(fa, case, path, args, lua, tmp):
    pids = roles(fa.proc.pid)
    result = {}
    if args.tracer == "perf":
        outf = os.path.join(tmp, "trace.txt")
        tids = []
        for pid in pids.values():
            tids += [t for t in os.listdir(f"/proc/{pid}/task")]
        tr = subprocess.Popen(["perf", "trace", "-s", "-o", outf, "-t", ",".join(tids)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        reqs = wrk(fa.port, case, path, args, lua)
        tr.send_signal(signal.SIGINT)
        tr.wait()
        with open(outf) as f:
            per_tid = parse_trace_summary(f.read(), "perf")
        tid_role = {}
        for role, pid in pids.items():
            for t in os.listdir(f"/proc/{pid}/task"):
                tid_role[int(t)] = role
        for tid, calls in per_tid.items():
            role = tid_role.get(tid)
            if role:
                agg = result.setdefault(role, {})
                for k, v in calls.items():
                    agg[k] = agg.get(k, 0) + v
    else:
        procs = {}
        for role, pid in pids.items():
            outf = os.path.join(tmp, f"strace-{role}.txt")
            procs[role] = (subprocess.Popen(["strace", "-c", "-f", "-o", outf, "-p", str(pid)],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), outf)
        time.sleep(1.0)
        reqs = wrk(fa.port, case, path, args, lua)
        for role, (p, outf) in procs.items():
            p.send_signal(signal.SIGINT)
            p.wait()
            with open(outf) as f:
                result[role] = parse_trace_summary(f.read(), "strace").get(0, {})
    return reqs, result


def cpu_profile(fa, case, path, args, lua):
    pids = roles(fa.proc.pid)
    before = {r: (bench.cpu_ns([p]), ctx_switches(p)) for r, p in pids.items()}
    reqs = wrk(fa.port, case, path, args, lua)
    after = {r: (bench.cpu_ns([p]), ctx_switches(p)) for r, p in pids.items()}
    return reqs, {r: ((after[r][0] - before[r][0]) / 1000 / reqs, (after[r][1] - before[r][1]) / reqs)
                  for r in pids}


def callgrind_profile(case, path, args, lua, tmp):
    """Ir per request per process, the server under valgrind. The dumps are
    kept in perf/out/callgrind-CASE/ for callgrind_annotate or kcachegrind."""
    out_dir = os.path.join(bench.OUT, f"callgrind-{case}")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    port = bench.free_port()
    exe = os.path.join(bench.BUILD, "fasterapi")
    log_f = open(os.path.join(tmp, "cg-server.log"), "wb")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
         f"--callgrind-out-file={out_dir}/cg.%p.out", exe, "run", "bench_app:app",
         "--app-dir", bench.APPS, "--bind", f"127.0.0.1:{port}", "--workers", "1", "--py-workers", "1",
         "--name", f"prof{os.getpid()}", "--timeout", "0"],
        stdout=log_f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        bench.wait_http(port, "/plaintext", proc, timeout=120)
        time.sleep(1)
        wrk(port, case, path, args, lua, duration=2)   # warm-up
        ours = [str(p) for p in bench.tree(proc.pid)]   # not anybody else's valgrind
        for p in ours:
            subprocess.run(["callgrind_control", "--instr=on", p], capture_output=True)
        reqs = wrk(port, case, path, args, lua, duration=args.cg_duration)
        for p in ours:
            subprocess.run(["callgrind_control", "--instr=off", p], capture_output=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log_f.close()
    result = {}
    # Instrumentation was on only during the measured load (start-up and
    # shutdown run uninstrumented): the files written at exit hold just that.
    for f in glob.glob(os.path.join(out_dir, "cg.*.out")):
        with open(f, errors="replace") as fh:
            head = fh.read(4096)
        cmd = re.search(r"^cmd: (.*)$", head, re.M)
        cmd = cmd.group(1) if cmd else ""
        if "--describe" in cmd:
            continue                    # the master's start-up route-table run
        ann = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no", f],
                             capture_output=True, text=True).stdout
        with open(f, errors="replace") as fh:
            m = re.search(r"^totals: (\d+)", fh.read(), re.M)
        total = int(m.group(1)) if m else 0
        top = []
        for line in ann.splitlines():
            mm = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(.*?)(?: \[(.*)\])?$", line)
            if mm and mm.group(2) != "PROGRAM TOTALS" and len(top) < 8:
                top.append((int(mm.group(1).replace(",", "")) / max(reqs, 1),
                            f"{mm.group(2)} [{os.path.basename(mm.group(3) or '?')}]"))
        result[f] = (cmd, total / max(reqs, 1), top)
    return reqs, result


def classify_dumps(result):
    """Names the callgrind dumps: the Python worker by its command, the master
    and the HTTP worker (same command) by the larger count: the HTTP worker."""
    named, fa = {}, []
    for f, (cmd, per, top) in result.items():
        if "pyworker" in cmd:
            named["py"] = (per, top)
        else:
            fa.append((per, top))
    fa.sort(key=lambda x: -x[0])
    if fa:
        named["http"] = fa[0]
    if len(fa) > 1:
        named["master"] = fa[1]
    return named


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", default="json", choices=[c for c in bench.CASES if not c.startswith("pipeline")])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--cg-duration", type=int, default=10, help="seconds of load under callgrind")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--tracer", choices=("perf", "strace"), default="perf")
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--no-install", action="store_true")
    args = ap.parse_args()
    if not args.no_install:
        subprocess.run([os.path.join(bench.ROOT, "perf", "install-peers")], check=True)
    if args.tracer == "perf" and subprocess.run(["perf", "trace", "-s", "true"], capture_output=True).returncode:
        log("perf trace does not work here: using strace -c -f")
        args.tracer = "strace"

    lines = []
    with tempfile.TemporaryDirectory(prefix="fa-profile-") as tmp:
        lua = bench.Lua(tmp)
        fa = bench.FasterAPI(1, 1)
        fa.start(tmp)
        try:
            path = fa.path(args.case)
            bench.probe(fa, args.case)
            wrk(fa.port, args.case, path, args, lua, duration=1)
            log("CPU and context switches (untraced)")
            n_cpu, cpu = cpu_profile(fa, args.case, path, args, lua)
            log(f"syscalls ({args.tracer})")
            n_sys, sysc = syscall_profile(fa, args.case, path, args, lua, tmp)
        finally:
            fa.stop()
        cg = {}
        if not args.no_callgrind:
            log("instructions (the server under callgrind: slow)")
            n_cg, raw = callgrind_profile(args.case, path, args, lua, tmp)
            cg = classify_dumps(raw)

    lines.append(f"FasterAPI 1 HTTP + 1 Python worker, {bench.CASES[args.case][3]} ({path}), "
                 f"wrk -t1 -c{args.connections} -d{args.duration}s; per request:")
    lines.append("")
    lines.append("| process | CPU µs | context switches | syscalls | instructions (callgrind) |")
    lines.append("|---|---:|---:|---:|---:|")
    for role, label in ROLES:
        c = cpu.get(role, (0, 0))
        s = sum(sysc.get(role, {}).values()) / max(n_sys, 1)
        i = cg.get(role, (None,))[0]
        lines.append(f"| {label} | {c[0]:.2f} | {c[1]:.3f} | {s:.3f} | "
                     f"{'-' if i is None else f'{i:,.0f}'} |")
    lines.append("")
    lines.append(f"Syscalls per request by name ({'perf trace -s' if args.tracer == 'perf' else 'strace -c -f'}, "
                 f"{n_sys:,} requests):")
    lines.append("")
    lines.append("| process | syscall | per request |")
    lines.append("|---|---|---:|")
    for role, label in ROLES:
        for name, n in sorted(sysc.get(role, {}).items(), key=lambda kv: -kv[1]):
            if n / max(n_sys, 1) >= 0.001:
                lines.append(f"| {label} | {name} | {n / n_sys:.3f} |")
    if cg:
        lines.append("")
        lines.append(f"Top functions per process (callgrind, self instructions per request, "
                     f"{n_cg:,} requests under valgrind):")
        lines.append("")
        lines.append("| process | function | instructions/request |")
        lines.append("|---|---|---:|")
        for role, label in ROLES:
            if role in cg:
                for v, fn in cg[role][1]:
                    lines.append(f"| {label} | {fn} | {v:,.0f} |")
    text = "\n".join(lines)
    print(text)
    os.makedirs(bench.OUT, exist_ok=True)
    with open(os.path.join(bench.OUT, f"profile-{args.case}.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
