"""--metrics PATH: a route of its own kind (FA_ROUTE_METRICS) answered by
the HTTP worker with the Prometheus text of the segment's counters."""
import re
import time


def test_metrics_route(server, tools):
    srv = server("kinds_app:app", "--py-workers", "1", "--metrics", "/metrics")
    for _ in range(3):
        assert srv.get("/health").status == 200
    r = srv.get("/metrics")
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain; version=0.0.4")
    tools.check_common_headers(r)
    text = r.body.decode()
    assert re.search(r"^fasterapi_up 1$", text, re.M), text
    assert "# TYPE " in text
    head = srv.request("HEAD", "/metrics")
    assert head.status == 200 and head.body == b"" and int(head.header("content-length")) > 0
    assert srv.request("POST", "/metrics", b"").status == 405
    # other routes are untouched
    assert srv.get("/teapot").status == 418


def test_metrics_path_taken_by_the_app_stops_start_up(server):
    srv = server("kinds_app:app", "--py-workers", "1", "--metrics", "/health", wait=False)
    deadline = time.monotonic() + 20
    while srv.proc.poll() is None and time.monotonic() < deadline:
        assert "serving" not in srv.log(), srv.log()
        time.sleep(0.05)
    srv.checked = True
    assert srv.wait_exit() != 0
    err = srv.log()
    assert "--metrics /health" in err and "duplicate" in err, err
