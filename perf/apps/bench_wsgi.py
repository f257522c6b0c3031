"""perf/apps/bench_app.py's logic as a plain WSGI app, for uWSGI and gunicorn.

Same routes, same bodies, same content types; /users/{user_id} converts the
path parameter to int (422 otherwise) and reads ?verbose= as a bool, as the
typed handler does. No framework: this is the cheapest Python a WSGI server
can run, which is what the comparison wants.
"""

import json
from urllib.parse import parse_qsl

BODY_64K = b"x" * 65536
_TRUE = {"1", "true", "on", "yes", "t", "y"}
_FALSE = {"0", "false", "off", "no", "f", "n"}


def _send(start_response, status, ctype, body):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return _send(start_response, status, "application/json", body)


def _users(environ, start_response, raw_id):
    try:
        user_id = int(raw_id)
    except ValueError:
        return _json(start_response, {"detail": [{"type": "int_parsing", "loc": ["path", "user_id"],
                                                  "input": raw_id}]}, "422 Unprocessable Entity")
    verbose = False
    query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    if "verbose" in query:
        v = query["verbose"].lower()
        if v not in _TRUE and v not in _FALSE:
            return _json(start_response, {"detail": [{"type": "bool_parsing",
                                                      "loc": ["query", "verbose"], "input": v}]},
                         "422 Unprocessable Entity")
        verbose = v in _TRUE
    user = {"id": user_id}
    if verbose:
        user["verbose"] = True
    return _json(start_response, user)


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    if method in ("GET", "HEAD"):
        if path == "/plaintext":
            return _send(start_response, "200 OK", "text/plain; charset=utf-8", b"Hello, World!")
        if path == "/json":
            return _json(start_response, {"message": "Hello, World!"})
        if path.startswith("/users/") and path.count("/") == 2 and len(path) > 7:
            return _users(environ, start_response, path[7:])
        if path == "/bytes64k":
            return _send(start_response, "200 OK", "application/octet-stream", BODY_64K)
    elif method == "POST" and path == "/echo":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n) if n else b""
        return _send(start_response, "200 OK",
                     environ.get("CONTENT_TYPE") or "application/octet-stream", body)
    return _json(start_response, {"detail": "Not Found"}, "404 Not Found")


app = application
