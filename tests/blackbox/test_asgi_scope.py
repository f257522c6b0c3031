"""ASGI 3 through the real server: apps/asgi_scope.py answers its http scope,
checked key by key against the ASGI spec (HTTP connection scope, version
2.3); receive/send, more_body, http.disconnect, errors and the lifespan
protocol per Python worker over sockets."""

import os
import time

import pytest


@pytest.fixture(scope="module")
def shutdown_file(tmp_path_factory):
    return str(tmp_path_factory.mktemp("asgi") / "shutdown.txt")


DISCONNECT_FILE = []


@pytest.fixture(scope="module")
def srv(module_server, shutdown_file, tmp_path_factory):
    DISCONNECT_FILE[:] = [str(tmp_path_factory.mktemp("asgi") / "disc")]
    os.environ["FA_TEST_ASGI_SHUTDOWN_FILE"] = shutdown_file
    os.environ["FA_TEST_ASGI_DISCONNECT_FILE"] = DISCONNECT_FILE[0]
    try:
        return module_server("asgi_scope:app", "--py-workers", "2")     # auto: async, 3 args
    finally:
        os.environ.pop("FA_TEST_ASGI_SHUTDOWN_FILE", None)
        os.environ.pop("FA_TEST_ASGI_DISCONNECT_FILE", None)


def unbytes(v):
    return v["bytes"]


def test_scope__every_required_key(srv):
    r = srv.request("POST", "/caf%C3%A9/a%2Fb?x=1&y=%20", body=b"the body",
                    headers=[("Content-Type", "text/plain"), ("X-Dup", "one"),
                             ("X-Dup", "two"), ("X-Mixed-Case", "V")])
    assert r.status == 200, r.body
    s = r.json()
    assert s["type"] == "http"
    assert s["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert s["http_version"] == "1.1"
    assert s["method"] == "POST"
    assert s["scheme"] == "http"
    assert s["path"] == "/café/a/b"
    assert s["_types"]["path"] == "str"
    assert unbytes(s["raw_path"]) == "/caf%C3%A9/a%2Fb"
    assert unbytes(s["query_string"]) == "x=1&y=%20"
    assert s["root_path"] == ""
    headers = [(unbytes(n), unbytes(v)) for n, v in
               (pair["items"] for pair in s["headers"]["items"])]
    assert ("content-type", "text/plain") in headers
    assert [v for n, v in headers if n == "x-dup"] == ["one", "two"]    # not joined
    assert ("x-mixed-case", "V") in headers                            # names lower case
    assert ("host", "127.0.0.1:%d" % srv.port) in headers
    assert s["client"]["items"][0] == "127.0.0.1" and 0 < s["client"]["items"][1] < 65536
    assert s["server"]["items"] == ["127.0.0.1", srv.port]
    assert isinstance(s["state"], dict)
    assert s["_messages"] == [{"type": "http.request", "body": {"bytes": "the body"},
                               "more_body": False}]


def test_scope__lifespan_state_is_copied_into_requests(srv):
    s = srv.get("/").json()
    assert s["state"]["started_pid"] in srv.py_workers()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_reaches_the_app(srv, method):
    r = srv.request(method, "/deep/er/path")
    assert r.status == 200 and r.json()["method"] == method


def test_head__get_route_no_body(srv):
    r = srv.request("HEAD", "/")
    assert r.status == 200 and r.body == b""


def test_send__more_body_chunks_are_streamed(srv):
    r = srv.get("/chunks")
    assert r.status == 200 and r.body == b"chunk0 chunk1 chunk2 end"
    assert r.header("transfer-encoding") == "chunked" and r.header("content-length") is None
    assert r.header_all("x-multi") == ["1", "2"]


def test_receive__disconnect_after_the_response(srv):
    r = srv.request("POST", "/disconnect", body=b"echo me")
    assert r.body == b"echo me"
    path = DISCONNECT_FILE[0]
    deadline = time.monotonic() + 5
    got = ""
    while not got and time.monotonic() < deadline:     # the app may be writing it
        time.sleep(0.02)
        if os.path.exists(path):
            with open(path) as f:
                got = f.read()
    assert got == "http.disconnect"


def test_errors__500_and_the_worker_lives(srv):
    pids = srv.py_workers()
    r = srv.get("/error")
    assert r.status == 500
    srv.wait_log("RuntimeError: boom from the ASGI app")
    assert srv.get("/").status == 200
    assert srv.py_workers() == pids


def test_root_path(module_server):
    s = module_server("asgi_scope:app", "--interface", "asgi", "--root-path", "/api").get(
        "/api/v1?q").json()
    assert s["root_path"] == "/api"
    assert s["path"] == "/api/v1"
    assert unbytes(s["raw_path"]) == "/api/v1"


def test_callable_instance_is_detected_as_asgi(module_server):
    s = module_server("asgi_scope:instance", "--py-workers", "1").get("/").json()
    assert s["type"] == "http"


def test_lifespan__shutdown_runs_in_every_python_worker(server, tmp_path):
    path = tmp_path / "shutdown.txt"
    os.environ["FA_TEST_ASGI_SHUTDOWN_FILE"] = str(path)
    try:
        srv = server("asgi_scope:app", "--py-workers", "2")
    finally:
        del os.environ["FA_TEST_ASGI_SHUTDOWN_FILE"]
    pids = sorted(srv.py_workers())
    assert len(pids) == 2
    srv.stop()
    lines = sorted(path.read_text().splitlines())
    assert lines == sorted("shutdown %d" % p for p in pids)


def test_lifespan__startup_failure_stops_start_up_with_its_message(cli):
    os.environ["FA_TEST_ASGI_STARTUP_FAIL"] = "1"
    try:
        res = cli("run", "asgi_scope:app", "--app-dir", cli.apps_dir, "--bind", "127.0.0.1:0",
                  "--py-workers", "1", timeout=60)
    finally:
        del os.environ["FA_TEST_ASGI_STARTUP_FAIL"]
    err = res.stderr.decode(errors="replace") + res.stdout.decode(errors="replace")
    assert res.returncode != 0
    assert "ASGI lifespan startup failed: the database is not there" in err
