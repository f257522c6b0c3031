"""A real FastAPI app (Debian's python3-fastapi: apps/fastapi_app.py)
served by the real server as ASGI: routing, path/query parameters, a
pydantic body (422), HTTPException, errors, and the lifespan (startup,
shutdown; a failing startup stops start-up with its message).

FastAPI must be importable: if it is not, these tests fail (apt-get install
python3-fastapi), unless FASTERAPI_ALLOW_SKIP is set."""

import json
import os
import time

import pytest

try:
    import fastapi  # noqa: F401
except ImportError:
    if os.environ.get("FASTERAPI_ALLOW_SKIP"):
        pytest.skip("fastapi is not installed (FASTERAPI_ALLOW_SKIP is set)",
                    allow_module_level=True)
    raise ImportError("these tests need FastAPI: apt-get install python3-fastapi "
                      "(or set FASTERAPI_ALLOW_SKIP=1 to skip them)")


@pytest.fixture(scope="module")
def srv(module_server):
    return module_server("fastapi_app:app")      # auto: FastAPI.__call__ is async, 3 args


def post_json(srv, path, obj):
    return srv.request("POST", path, body=json.dumps(obj).encode(),
                       headers=[("Content-Type", "application/json")])


def test_routing(srv):
    r = srv.get("/")
    assert r.status == 200 and r.json() == {"hello": "fastapi"}
    assert r.header("content-type") == "application/json"
    assert srv.get("/nope").status == 404


def test_path_and_query_params(srv):
    assert srv.get("/items/7?q=abc&limit=3").json() == {"item_id": 7, "q": "abc", "limit": 3}
    assert srv.get("/items/7").json() == {"item_id": 7, "q": None, "limit": 10}
    r = srv.get("/items/seven")
    assert r.status == 422
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_json_body_and_validation(srv):
    r = post_json(srv, "/items", {"name": "pen", "price": 1.5, "tags": ["a"]})
    assert r.status == 201 and r.json() == {"name": "pen", "price": 1.5, "tags": ["a"]}
    r = post_json(srv, "/items", {"name": "pen", "price": "cheap"})
    assert r.status == 422
    assert r.json()["detail"][0]["loc"] == ["body", "price"]
    r = srv.request("POST", "/items", body=b"{not json", headers=[("Content-Type",
                                                                    "application/json")])
    assert r.status == 422


def test_http_exception_and_crash(srv):
    r = srv.get("/missing")
    assert r.status == 404 and r.json() == {"detail": "no such thing"}
    assert srv.get("/crash").status == 500
    srv.wait_log("RuntimeError: fastapi handler failed")
    assert srv.get("/").status == 200


def test_openapi_of_the_fastapi_app(srv):
    r = srv.get("/openapi.json")
    assert r.status == 200 and "/items/{item_id}" in r.json()["paths"]


def test_lifespan__startup_ran_in_the_worker(srv):
    data = srv.get("/lifespan").json()
    assert data["events"] == ["startup"]
    assert data["started"] == data["pid"]


def test_lifespan__shutdown_runs_at_stop(server, tmp_path):
    path = tmp_path / "shutdown.txt"
    os.environ["FA_TEST_FASTAPI_SHUTDOWN_FILE"] = str(path)
    try:
        srv = server("fastapi_app:app", "--py-workers", "1")
    finally:
        del os.environ["FA_TEST_FASTAPI_SHUTDOWN_FILE"]
    pid = srv.get("/lifespan").json()["pid"]
    srv.stop()
    assert path.read_text() == "shutdown %d\n" % pid


def test_lifespan__startup_failure_stops_start_up_with_its_message(cli):
    os.environ["FA_TEST_FASTAPI_STARTUP_FAIL"] = "1"
    try:
        res = cli("run", "fastapi_app:app", "--app-dir", cli.apps_dir, "--bind", "127.0.0.1:0",
                  "--py-workers", "1", timeout=60)
    finally:
        del os.environ["FA_TEST_FASTAPI_STARTUP_FAIL"]
    err = res.stderr.decode(errors="replace") + res.stdout.decode(errors="replace")
    assert res.returncode != 0
    assert "ASGI lifespan startup failed" in err
    assert "cannot reach the database at startup" in err


def test_def_handlers_reuse_anyio_threads(srv):
    """FastAPI's def handlers go through anyio's thread pool, whose threads
    live as long as anyio's root task: the worker makes that a task of its
    own lifetime, so 30 requests reuse a thread or two instead of starting
    one each (a thread per request cost 1.6 x uvicorn's CPU)."""
    tids = {srv.get("/thread").json()["tid"] for _ in range(30)}
    assert len(tids) <= 3, tids


def test_stop_is_prompt_after_def_handlers(server):
    """anyio's worker threads are not daemons and live as long as their root
    task, the worker's own: the worker ends it before the interpreter waits
    for its threads, so SIGTERM stops the server at once, not after the
    graceful timeout's kill."""
    srv = server("fastapi_app:app", "--py-workers", "1", "--graceful-timeout", "10")
    for _ in range(5):
        assert srv.get("/thread").status == 200
    t0 = time.monotonic()
    assert srv.stop() == 0
    assert time.monotonic() - t0 < 5
    assert "killing" not in srv.log().lower(), srv.log()
