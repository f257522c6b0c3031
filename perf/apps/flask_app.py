"""A small real Flask app (Debian's python3-flask), served unchanged by two
WSGI servers in perf/wsgi_asgi.py (issue 8):

    fasterapi run flask_app:app --interface wsgi --app-dir perf/apps
    gunicorn --worker-class sync --chdir perf/apps flask_app:app

The routes and bodies are perf/apps/bench_app.py's (the same as bench.py's
other servers), written the way a Flask user writes them:

    GET  /plaintext                 "Hello, World!" (text/plain)
    GET  /json                      {"message":"Hello, World!"} (jsonify)
    GET  /users/<int:user_id>?verbose=true
                                    {"id":7,"verbose":true}: int converter in
                                    the route, ?verbose= read as a bool
    POST /echo                      the request body back, same content-type
    GET  /bytes64k                  65536 bytes (application/octet-stream)
"""

from flask import Flask, Response, jsonify, request

app = Flask(__name__)
# jsonify's default in Flask 2.2 (not debug): compact separators, no key
# sorting change needed for these bodies; the trailing newline is Flask's.
app.json.sort_keys = False

BODY_64K = b"x" * 65536
_TRUE = {"1", "true", "on", "yes", "t", "y"}


@app.get("/plaintext")
def plaintext():
    return Response("Hello, World!", mimetype="text/plain")


@app.get("/json")
def json_hello():
    return jsonify(message="Hello, World!")


@app.get("/users/<int:user_id>")
def get_user(user_id):
    user = {"id": user_id}
    if request.args.get("verbose", "false").lower() in _TRUE:
        user["verbose"] = True
    return jsonify(user)


@app.post("/echo")
def echo():
    return Response(request.get_data(),
                    content_type=request.headers.get("Content-Type", "application/octet-stream"))


@app.get("/bytes64k")
def bytes64k():
    return Response(BODY_64K, mimetype="application/octet-stream")
