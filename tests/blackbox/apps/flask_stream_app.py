"""A real Flask app (Debian's python3-flask) for
tests/blackbox/test_wsgi_streaming.py: generators streamed with
stream_with_context, one with a Content-Length, one that runs until the
client goes away (notes it in FA_TEST_STREAM_DIR), SERVER_PROTOCOL, and a
blocking view (for --py-threads)."""

import os
import time

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


def _note(name, text):
    with open(os.path.join(os.environ["FA_TEST_STREAM_DIR"], name), "a") as f:
        f.write(text + "\n")


@app.get("/stream")
def stream():
    @stream_with_context
    def parts():
        who = request.args.get("who", "nobody")   # the request context is still there
        for i in range(3):
            yield f"{who} {i}\n"
    return Response(parts(), mimetype="text/plain")


@app.get("/sized")
def sized():
    def parts():
        yield b"12345"
        yield b"67890"
    return Response(parts(), mimetype="text/plain", headers={"Content-Length": "10"})


@app.get("/forever")
def forever():
    tag = request.args["tag"]

    def parts():
        try:
            while True:
                yield b"tick\n"
                time.sleep(0.02)
        finally:
            _note(tag, "closed")
    return Response(parts(), mimetype="text/plain")


@app.get("/protocol")
def protocol():
    return {"protocol": request.environ["SERVER_PROTOCOL"]}


@app.get("/sleep")
def sleep():
    time.sleep(float(request.args.get("t", "0.5")))
    return {"multithread": request.environ["wsgi.multithread"]}
