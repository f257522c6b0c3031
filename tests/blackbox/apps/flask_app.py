"""A real Flask app (Debian's python3-flask) for tests/blackbox/test_wsgi_flask.py."""

import os

from flask import Flask, abort, jsonify, request, send_file, url_for

app = Flask(__name__)


@app.get("/")
def index():
    return "hello from flask"


@app.get("/users/<int:user_id>")
def user(user_id):
    return jsonify(id=user_id, verbose=request.args.get("verbose", "0"))


@app.post("/json")
def echo_json():
    data = request.get_json()
    return jsonify(got=data, type=request.content_type), 201


@app.post("/form")
def form():
    return jsonify(name=request.form["name"], tags=request.form.getlist("tag"))


@app.post("/upload")
def upload():
    f = request.files["file"]
    content = f.read()
    return jsonify(filename=f.filename, size=len(content), head=content[:10].decode("latin-1"),
                   note=request.form.get("note"))


@app.get("/boom")
def boom():
    raise RuntimeError("flask handler failed")


@app.get("/forbidden")
def forbidden():
    abort(403)


@app.get("/url")
def url():
    return jsonify(url=url_for("user", user_id=3), root=request.root_path,
                   path=request.path, full=request.url)


@app.get("/download")
def download():
    return send_file(os.path.abspath(__file__), mimetype="text/x-python")


@app.route("/methods", methods=["PUT", "PATCH", "DELETE"])
def methods():
    return jsonify(method=request.method, body=request.get_data(as_text=True))


@app.get("/cookie")
def cookie():
    resp = jsonify(seen=request.cookies.get("flavour"))
    resp.set_cookie("flavour", "oat")
    return resp


@app.get("/stream")
def stream():
    def gen():
        for i in range(3):
            yield f"line {i}\n"
    return app.response_class(gen(), mimetype="text/plain")
