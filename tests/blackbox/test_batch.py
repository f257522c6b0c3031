"""Batched routes (batch=BatchPolicy(...)) over real sockets: requests in
flight together in one Python worker are answered by one handler call
(tests/blackbox/apps/batch_app.py records the size of every call). That
needs deferred requests (pyworker/PROTOCOL.md): many in flight per worker."""
import json
import re
import signal
import time

SPEC = "batch_app:app"
ARGS = ("--workers", "1", "--py-workers", "1")


def item(x):
    return json.dumps({"x": x}).encode()


def fire(srv, path, bodies):
    """Sends every request, each on its own connection, before reading any
    response; returns the responses in order and the seconds it took."""
    t0 = time.monotonic()
    conns = [srv.raw() for _ in bodies]
    try:
        for c, body in zip(conns, bodies):
            c.request("POST", path, body, [("Content-Type", "application/json")])
        replies = [c.read_response() for c in conns]
    finally:
        for c in conns:
            c.close()
    return replies, time.monotonic() - t0


def sizes(srv, name):
    r = srv.get("/sizes/" + name)
    assert r.status == 200, r
    return r.json()["sizes"]


def test_batch__concurrent_requests_share_handler_calls(server):
    srv = server(SPEC, *ARGS)
    replies, _ = fire(srv, "/double", [item(k) for k in range(32)])
    for k, r in enumerate(replies):
        assert r.status == 200, r
        doc = r.json()
        assert (doc["x"], doc["y"]) == (k, 2 * k)
        assert 1 <= doc["batch"] <= 8
    calls = sizes(srv, "double")
    assert sum(calls) == 32
    assert max(calls) <= 8, calls
    assert max(calls) > 1, f"every request had a handler call of its own: {calls}"
    assert len(calls) < 32


def test_batch__wrong_length_fails_every_request_of_the_batch(server):
    srv = server(SPEC, *ARGS)
    replies, _ = fire(srv, "/short", [item(k) for k in range(6)])
    for r in replies:
        assert (r.status, r.body) == (500, b"Internal Server Error"), r
    calls = sizes(srv, "short")
    assert sum(calls) == 6
    pattern = re.compile(r"POST /short \(batch_app\.short\): the batch handler returned (\d+) "
                         r"results for a batch of (\d+) requests?; .*answering 500 to all "
                         r"(\d+)")
    deadline = time.monotonic() + 5
    while True:
        lines = pattern.findall(srv.log())
        if len(lines) >= len(calls) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # Logged once per batch (not per request), with the sizes.
    assert [(int(a), int(b), int(c)) for a, b, c in lines] == [(n - 1, n, n) for n in calls]
    assert "Traceback" not in srv.log()
    # The worker goes on serving.
    assert srv.get("/features").status == 200


def test_batch__max_wait_expiry_answers_a_lone_request(server):
    srv = server(SPEC, *ARGS)
    replies, elapsed = fire(srv, "/alone", [item(5)])
    assert replies[0].status == 200, replies[0]
    assert replies[0].json() == {"x": 5, "batch": 1}
    assert 0.15 <= elapsed < 3.0, elapsed
    assert sizes(srv, "alone") == [1]


def test_batch__bad_request_is_422_and_never_reaches_the_handler(server):
    srv = server(SPEC, *ARGS)
    replies, _ = fire(srv, "/double", [item(1), b'{"x": "one"}', b"not json", item(3)])
    assert [r.status for r in replies] == [200, 422, 422, 200]
    assert replies[1].json()["detail"][0]["loc"] == ["body", "x"]
    assert [r.json()["y"] for r in (replies[0], replies[3])] == [2, 6]
    assert sum(sizes(srv, "double")) == 2


def test_batch__openapi_documents_one_request(server):
    srv = server(SPEC, *ARGS)
    doc = srv.get("/openapi.json").json()
    body = doc["paths"]["/double"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/Item"}


def test_batch__a_client_gone_before_its_batch_ran_is_left_out(server):
    srv = server(SPEC, *ARGS)
    gone, stays = srv.raw(), srv.raw()
    try:
        gone.request("POST", "/alone", item(1), [("Content-Type", "application/json")])
        stays.request("POST", "/alone", item(2), [("Content-Type", "application/json")])
        gone.close()              # well within the batch's 150 ms wait
        r = stays.read_response()
    finally:
        stays.close()
    assert r.status == 200 and r.json() == {"x": 2, "batch": 1}, r
    assert sizes(srv, "alone") == [1]
    assert srv.get("/features").status == 200


def test_batch__a_waiting_batch_is_answered_during_a_graceful_stop(server):
    srv = server(SPEC, *ARGS)
    c = srv.raw()
    try:
        c.request("POST", "/alone", item(9), [("Content-Type", "application/json")])
        time.sleep(0.03)          # in the batch, 120 ms before it runs
        srv.send_signal(signal.SIGTERM)
        r = c.read_response()
    finally:
        c.close()
    assert r.status == 200 and r.json() == {"x": 9, "batch": 1}, r
    assert srv.wait_exit() == 0
