"""--access-log FILE|- with --access-log-format combined|json: one line per
completed response, whole lines even with several workers writing."""
import json
import re
import threading
import time

import pytest

COMBINED = re.compile(
    r'^(?P<host>\S+) - - \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [-+]\d{4})\] '
    r'"(?P<request>[^"\\]*(?:\\.[^"\\]*)*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'"(?P<referer>[^"\\]*(?:\\.[^"\\]*)*)" "(?P<ua>[^"\\]*(?:\\.[^"\\]*)*)"$')


def _lines(path, n, timeout=5.0):
    """The log's lines once there are at least n (the write comes right after
    the response's last byte, so it may trail the client by a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="latin-1") if path.exists() else ""
        lines = text.splitlines()
        if len(lines) >= n or time.monotonic() >= deadline:
            assert text == "" or text.endswith("\n"), "a partial line: %r" % text[-200:]
            return lines
        time.sleep(0.05)


def test_combined(server, tmp_path):
    log = tmp_path / "access.log"
    srv = server("kinds_app:app", "--py-workers", "1", "--access-log", str(log))
    srv.request("GET", "/py/hello?x=1", headers=[("Referer", "http://example.com/a"), ("User-Agent", "tester/1.0")])
    srv.request("GET", "/health")
    srv.request("HEAD", "/health")
    srv.request("GET", "/nowhere", headers=[("User-Agent", 'quote " back \\ slash')])
    srv.request("POST", "/health", b"abc")
    with srv.raw() as c:
        c.send(b"GET /x HTTP/1.1\r\n\r\n")      # no Host: 400
        assert c.read_response().status == 400
    lines = _lines(log, 6)
    assert len(lines) == 6, lines
    m = [COMBINED.match(l) for l in lines]
    assert all(m), lines
    assert [x["status"] for x in m] == ["200", "200", "200", "404", "405", "400"]
    assert m[0]["host"] == "127.0.0.1"
    assert m[0]["request"] == "GET /py/hello?x=1 HTTP/1.1"
    assert m[0]["bytes"] == str(len(b'{"x":"hello"}'))
    assert m[0]["referer"] == "http://example.com/a" and m[0]["ua"] == "tester/1.0"
    assert m[1]["request"] == "GET /health HTTP/1.1" and m[1]["bytes"] == "2"
    assert m[1]["referer"] == "-" and m[1]["ua"] == "-"
    assert m[2]["request"] == "HEAD /health HTTP/1.1" and m[2]["bytes"] == "0"
    assert m[3]["ua"] == 'quote \\" back \\\\ slash'
    assert m[4]["request"] == "POST /health HTTP/1.1"
    assert m[5]["request"] == "-"          # refused before its head was complete
    # the time is now, local time with its offset
    t = time.strptime(m[0]["time"], "%d/%b/%Y:%H:%M:%S %z")
    assert abs(time.mktime(t) - time.time()) < 120 + abs(time.timezone) + 3600


def test_json(server, tmp_path):
    log = tmp_path / "access.jsonl"
    srv = server("kinds_app:app", "--py-workers", "1", "--access-log", str(log), "--access-log-format", "json")
    srv.request("GET", "/py/a%20b?q=1", headers=[("User-Agent", "caf\xe9 \"x\"")])
    srv.request("GET", "/teapot")
    srv.request("GET", "/missing")
    with srv.raw() as c:
        c.send(b"GARBAGE\r\n\r\n")
        assert c.read_response().status == 400
    lines = _lines(log, 4)
    recs = [json.loads(l) for l in lines]
    assert len(recs) == 4, lines
    keys = ["time", "host", "method", "target", "protocol", "status", "bytes", "referer", "user_agent",
            "duration_ms", "route"]
    for rec in recs:
        assert list(rec) == keys, rec
        assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[-+]\d{2}:\d{2}$", rec["time"]), rec
        assert isinstance(rec["duration_ms"], float) and 0 <= rec["duration_ms"] < 10000
    a, b, c_, d = recs
    assert a["method"] == "GET" and a["target"] == "/py/a%20b?q=1" and a["protocol"] == "HTTP/1.1"
    assert a["status"] == 200 and a["route"] == "/py/{x}" and a["referer"] is None
    assert a["user_agent"] == "caf\xe9 \"x\""
    assert a["bytes"] == len(json.dumps({"x": "a b"}, separators=(",", ":")))
    assert b["status"] == 418 and b["route"] == "/teapot" and b["bytes"] == len(b'{"short":"stout"}')
    assert c_["status"] == 404 and c_["route"] is None
    assert d["status"] == 400


def test_one_line_per_response_pipelined_and_keepalive(server, tmp_path, tools):
    log = tmp_path / "access.log"
    srv = server("kinds_app:app", "--py-workers", "1", "--access-log", str(log))
    with srv.raw() as c:
        c.send(b"".join(tools.build_request("GET", p, port=srv.port) for p in ["/health", "/py/1", "/teapot"] * 10))
        for _ in range(30):
            c.read_response()
    lines = _lines(log, 30)
    assert len(lines) == 30
    assert [COMBINED.match(l)["request"].split()[1] for l in lines] == ["/health", "/py/1", "/teapot"] * 10


def test_several_workers_whole_lines(server, tmp_path):
    log = tmp_path / "access.log"
    srv = server("kinds_app:app", "--workers", "3", "--py-workers", "2", "--access-log", str(log),
                 "--access-log-format", "json")
    n_threads, per = 12, 40
    long_ua = "x" * 3000     # lines of several KiB, still one write each

    def client(k):
        with srv.raw() as c:
            for i in range(per):
                c.request("GET", "/py/%d-%d" % (k, i) if i % 2 else "/health", headers=[("User-Agent", long_ua)])
                c.read_response()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    lines = _lines(log, n_threads * per, timeout=10)
    assert len(lines) == n_threads * per
    targets = set()
    for l in lines:
        rec = json.loads(l)             # every line whole
        assert rec["user_agent"] == long_ua
        targets.add(rec["target"])
    assert len(targets) == n_threads * per // 2 + 1


def test_stdout(server):
    srv = server("kinds_app:app", "--py-workers", "1", "--access-log", "-")
    srv.request("GET", "/health", headers=[("User-Agent", "to-stdout")])
    assert srv.wait_log(r'127\.0\.0\.1 - - \[[^]]+\] "GET /health HTTP/1\.1" 200 2 "-" "to-stdout"'), srv.log()


def test_no_access_log_by_default(server, tmp_path):
    srv = server("kinds_app:app", "--py-workers", "1")
    srv.request("GET", "/health", headers=[("User-Agent", "not-logged")])
    time.sleep(0.2)
    assert "not-logged" not in srv.log()


def test_timeout_408_is_logged(server, tmp_path):
    log = tmp_path / "access.log"
    srv = server("kinds_app:app", "--py-workers", "1", "--access-log", str(log), "--header-timeout", "1")
    with srv.raw() as c:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        assert c.read_response().status == 408
    lines = _lines(log, 1)
    assert len(lines) == 1
    m = COMBINED.match(lines[0])
    assert m and m["status"] == "408" and m["request"] == "-", lines
