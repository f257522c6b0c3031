"""Native handlers (include/fasterapi.h): examples/native built with its
Makefile and served beside Python routes; what a handler sees and sends
(tests/blackbox/apps/native_test.c through kinds_app.py); handlers that
misbehave get a 500 and a log line naming the route; a missing library or
symbol stops start-up with a message naming both."""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRCDIR = HERE.parents[1]


def build_test_lib(out_dir):
    """native_test.c -> out_dir/libnative_test.so, with this tree's header."""
    lib = Path(out_dir) / "libnative_test.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-I", str(SRCDIR / "include"),
                    "-o", str(lib), str(HERE / "apps" / "native_test.c")], check=True)
    return lib


@pytest.fixture(scope="module")
def native_env(tmp_path_factory):
    """FA_TEST_NATIVE_LIB for kinds_app.py, for as long as the module's
    server runs (its Python workers import the app too)."""
    lib = build_test_lib(tmp_path_factory.mktemp("native"))
    old = os.environ.get("FA_TEST_NATIVE_LIB")
    os.environ["FA_TEST_NATIVE_LIB"] = str(lib)
    yield lib
    if old is None:
        os.environ.pop("FA_TEST_NATIVE_LIB", None)
    else:
        os.environ["FA_TEST_NATIVE_LIB"] = old


@pytest.fixture(scope="module")
def kinds(native_env, module_server):
    return module_server("kinds_app:app", "--workers", "1", "--py-workers", "1", "--max-body", "1m")


# ---- examples/native -----------------------------------------------------------

@pytest.fixture(scope="module")
def example(module_server, tools, tmp_path_factory):
    """examples/native built by its own Makefile (into a temporary directory,
    so that a read-only source tree works too) and served."""
    out = tmp_path_factory.mktemp("example")
    src = tools.examples_dir / "native"
    subprocess.run(["make", "-s", "-C", str(src), "OUT=%s/" % out], check=True)
    assert (out / "libfast.so").exists()
    shutil.copy(src / "app.py", out / "app.py")
    return module_server("app:app", "--workers", "1", "--py-workers", "1", app_dir=out)


def test_example_plaintext(example, tools):
    r = example.get("/fast/plaintext")
    assert r.status == 200, r
    assert r.body == b"Hello, World!"
    assert r.header("content-type") == "text/plain; charset=utf-8"
    tools.check_common_headers(r)


def test_example_native_and_python_agree(example, tools):
    for name, query in [("Ada", "greeting=Bonjour"), ("caf%C3%A9%20x", ""), ("a+b", "greeting=%22hi%22")]:
        target = "/hello/%s%s" % (name, "?" + query if query else "")
        fast = example.get("/fast" + target)
        slow = example.get("/py" + target)
        assert fast.status == slow.status == 200, (fast, slow)
        assert fast.header("content-type") == "application/json"
        assert fast.json() == slow.json(), (fast.body, slow.body)
        tools.check_common_headers(fast)


def test_example_echo_and_teapot(example):
    r = example.request("POST", "/fast/echo", b"\x00bytes\xff", [("Content-Type", "application/x-raw")])
    assert r.status == 200, r
    assert r.body == b"\x00bytes\xff"
    assert r.header("content-type") == "application/x-raw"
    assert r.header("x-echo-length") == "some"
    r = example.get("/fast/teapot")
    assert r.status == 418, r
    assert r.json() == {"detail": "I'm a teapot"}


def test_example_side_by_side_on_one_connection(example, tools):
    """Native, Python and static answers pipelined on one connection come
    back whole and in order."""
    reqs = [("GET", "/fast/plaintext"), ("GET", "/py/hello/x"), ("GET", "/health"),
            ("GET", "/fast/hello/y"), ("GET", "/nope"), ("HEAD", "/fast/plaintext"),
            ("GET", "/fast/teapot")] * 5
    with example.raw() as c:
        c.send(b"".join(tools.build_request(m, p, port=example.port) for m, p in reqs))
        for m, p in reqs:
            r = c.read_response(head=(m == "HEAD"))
            if p == "/fast/plaintext":
                assert r.status == 200 and r.header("content-length") == "13"
                assert r.body == (b"" if m == "HEAD" else b"Hello, World!")
            elif p == "/py/hello/x":
                assert r.json()["name"] == "x"
            elif p == "/fast/hello/y":
                assert r.json()["name"] == "y"
            elif p == "/health":
                assert r.body == b"ok"
            elif p == "/nope":
                assert r.status == 404
            else:
                assert r.status == 418


def test_example_makefile_uses_the_source_header_without_pkg_config(tools, tmp_path):
    """No fasterapi.pc on PKG_CONFIG_PATH: the fallback -I finds include/."""
    env = dict(os.environ, PKG_CONFIG_PATH=str(tmp_path), PKG_CONFIG_LIBDIR=str(tmp_path))
    subprocess.run(["make", "-s", "-C", str(tools.examples_dir / "native"), "OUT=%s/" % tmp_path],
                   check=True, env=env)
    assert (tmp_path / "libfast.so").exists()
    # nothing to resolve from the server: the API is reached through req/res
    out = subprocess.run(["nm", "-D", "--undefined-only", str(tmp_path / "libfast.so")],
                         capture_output=True, text=True, check=True).stdout
    assert " fa_" not in out, out


# ---- what a handler sees and sends ---------------------------------------------------

def test_request_as_the_handler_sees_it(kinds):
    r = kinds.request("GET", "/n/echo/a%20b/c%2Fd?q=x+y%21&z", headers=[("X-Test", "yes"), ("Accept", "*/*")])
    assert r.status == 200, r
    assert r.header("content-type") == "application/json"
    got = r.json()
    assert got["method"] == "GET"
    assert got["route"] == "/n/echo/{a}/{b}"
    assert got["path"] == "/n/echo/a%20b/c%2Fd"
    assert got["query"] == "q=x+y%21&z"
    assert got["a"] == "a b" and got["b"] == "c/d"
    assert got["q"] == "x y!"
    assert got["x_test"] == "yes"
    assert got["headers"] == ["host", "x-test", "accept"]
    assert got["body_len"] == 0
    assert got["client"] == "127.0.0.1"
    assert got["pi"] == 3.141592653589793


def test_head_to_a_native_route(kinds):
    get = kinds.get("/n/inspect")
    head = kinds.request("HEAD", "/n/inspect")
    assert head.status == 200 and head.body == b""
    # same handler, same length (the Host header differs in nothing that counts)
    assert abs(int(head.header("content-length")) - len(get.body)) <= 1


@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 100000, 1024 * 1024])
def test_whole_body_reaches_the_handler(kinds, size):
    body = os.urandom(size)
    r = kinds.request("POST", "/n/echo", body)
    assert r.status == 200, r
    assert r.body == body


def test_chunked_body_reaches_the_handler(kinds, tools):
    body = os.urandom(70000)
    with kinds.raw() as c:
        c.request("POST", "/n/echo", tools.chunked(body, 1000), [("Transfer-Encoding", "chunked")])
        r = c.read_response()
        assert r.status == 200, r
        assert r.body == body
        # the connection goes on
        c.request("GET", "/n/created")
        assert c.read_response().status == 201


def test_body_arriving_in_pieces(kinds):
    body = b"abcdefghij" * 1000
    with kinds.raw() as c:
        head = ("POST /n/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)).encode()
        c.send(head)
        for i in range(0, len(body), 3000):
            time.sleep(0.02)
            c.send(body[i:i + 3000])
        r = c.read_response()
        assert r.body == body


def test_body_over_max_body_is_413(kinds):
    with kinds.raw() as c:
        c.send(b"POST /n/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (2 * 1024 * 1024))
        r = c.read_response()
        assert r.status == 413, r
        assert c.closed_by_server()


def test_expect_100_continue(kinds):
    with kinds.raw() as c:
        c.send(b"POST /n/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        c.sock.settimeout(5)
        first = c.sock.recv(100)
        assert first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), first
        c.buf = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello"


def test_large_response_built_with_writes(kinds):
    r = kinds.get("/n/big")
    assert r.status == 200
    lines = r.body.split(b"\n")
    assert len(r.body) == 1024 * 1024
    assert lines[0] == b"0" * 63 and lines[16383] == b"%063d" % 16383


def test_status_and_headers(kinds, tools):
    r = kinds.get("/n/created")
    assert r.status == 201, r
    assert r.header("location") == "/n/thing/1"
    assert r.body == b"made"
    tools.check_common_headers(r)


@pytest.mark.parametrize("path,why", [
    ("/n/bad-header", "CR, LF or NUL"),
    ("/n/bad-name", "not a token"),
    ("/n/fails", "returned -3"),
    ("/n/json-open", "left open"),
])
def test_misbehaving_handler_is_500_and_logged(kinds, path, why):
    with kinds.raw() as c:
        c.request("GET", path)
        r = c.read_response()
        assert r.status == 500, r
        assert r.json() == {"detail": "Internal Server Error"}
        assert b"evil" not in r.raw_head and r.header("x-injected") is None
        assert b"should not be seen" not in r.body and b"partial" not in r.body
        # the worker lives on, and so does the connection
        c.request("GET", "/n/created")
        assert c.read_response().status == 201
    assert kinds.wait_log(r"route GET %s: native handler \w+: .*%s.*500|route GET %s: native handler \w+ %s"
                          % (re.escape(path), re.escape(why), re.escape(path), re.escape(why))), kinds.log()


def test_native_routes_do_not_need_python(kinds):
    """With the only Python worker stopped, native and static routes answer."""
    py = list(kinds.py_workers())
    assert len(py) == 1
    os.kill(py[0], 19)   # SIGSTOP
    try:
        assert kinds.get("/n/created", timeout=3).status == 201
        assert kinds.get("/health", timeout=3).body == b"ok"
    finally:
        os.kill(py[0], 18)   # SIGCONT
    assert kinds.get("/py/x").json() == {"x": "x"}


# ---- start-up ------------------------------------------------------------------------

def _run_expecting_failure(cli, tools, env_updates):
    old = {k: os.environ.get(k) for k in env_updates}
    os.environ.update(env_updates)
    try:
        port = tools.free_port()
        res = cli("run", "kinds_app:app", "--app-dir", tools.apps_dir, "--bind", "127.0.0.1:%d" % port,
                  "--name", tools.unique_name(), "--py-workers", "1")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return res


def test_missing_library_stops_start_up_naming_both(cli, tools, tmp_path):
    missing = str(tmp_path / "libnothere.so")
    res = _run_expecting_failure(cli, tools, {"FA_TEST_NATIVE_LIB": missing})
    err = res.stderr.decode()
    assert res.returncode != 0, err
    assert missing in err and "n_inspect" in err, err
    assert "serving" not in err


def test_missing_symbol_stops_start_up_naming_both(cli, tools, tmp_path):
    lib = build_test_lib(tmp_path)
    res = _run_expecting_failure(cli, tools, {"FA_TEST_NATIVE_LIB": str(lib),
                                              "FA_TEST_NATIVE_SYMBOL": "no_such_handler"})
    err = res.stderr.decode()
    assert res.returncode != 0, err
    assert "no_such_handler" in err and str(lib) in err and "GET /n/extra" in err, err
    assert "serving" not in err
