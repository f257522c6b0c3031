"""A WSGI app (PEP 3333) that answers its whole environ as JSON, for
tests/blackbox/test_wsgi_environ.py. Values that are not JSON (wsgi.input,
wsgi.errors, wsgi.file_wrapper) are described; the body read through
wsgi.input in several ways is included."""

import json
import os
import sys


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/file":
        f = open(os.environ.get("FA_TEST_WSGI_FILE", __file__), "rb")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/filelike":
        import io
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO\n" * 3), 7)
    if path == "/write":
        write = start_response("201 Created", [("Content-Type", "text/plain"),
                                               ("X-Two", "a"), ("X-Two", "b")])
        write(b"written ")
        return [b"and ", b"returned"]
    if path == "/error":
        raise RuntimeError("boom from the WSGI app")
    if path == "/exc_info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"replaced"]
    if path == "/close":
        return Closing(start_response)
    if path == "/closed":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(Closing.closed).encode()]
    if path == "/close_error":
        return Closing(start_response, fail=True)
    inp = environ["wsgi.input"]
    mode = environ.get("QUERY_STRING", "")
    if "lines" in mode:
        body = {"readline": inp.readline().decode("latin-1"),
                "readlines": [l.decode("latin-1") for l in inp.readlines()]}
    elif "iter" in mode:
        body = [l.decode("latin-1") for l in inp]
    else:
        first = inp.read(3)
        body = (first + inp.read()).decode("latin-1")
    out = {}
    for key, value in environ.items():
        if key == "wsgi.input":
            out[key] = "input"
        elif key == "wsgi.errors":
            out[key] = "stderr" if value is sys.stderr else repr(value)
        elif key == "wsgi.file_wrapper":
            out[key] = "callable" if callable(value) else repr(value)
        elif isinstance(value, (str, int, bool, type(None))):
            out[key] = value
        elif isinstance(value, tuple):
            out[key] = list(value)
        else:
            out[key] = repr(value)
    out["_types"] = {k: type(v).__name__ for k, v in environ.items()}
    out["_body"] = body
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


class Closing:
    closed = 0

    def __init__(self, start_response, fail=False):
        self.start_response = start_response
        self.fail = fail

    def __iter__(self):
        self.start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"part1 "
        if self.fail:
            raise RuntimeError("failing iterable")
        yield b"part2"

    def close(self):
        type(self).closed += 1
