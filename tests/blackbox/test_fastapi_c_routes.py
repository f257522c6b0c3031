"""Issue 3, Python side, through the real server: app.static(),
app.native() (both forms) and app.mount_static() registered in Python and
answered by the HTTP worker, mixed with a Python route."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRCDIR = Path(__file__).resolve().parents[2]
if str(SRCDIR / "pyworker") not in sys.path:
    sys.path.insert(0, str(SRCDIR / "pyworker"))

from fasterapi.testing import TestClient  # noqa: E402

APPS = Path(__file__).resolve().parent / "apps"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    work = tmp_path_factory.mktemp("c_routes")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) to build the native handler", pytrace=False)
    subprocess.run([cc, "-shared", "-fPIC", "-I", str(SRCDIR / "include"), "-o",
                    str(work / "libtestnative.so"), str(APPS / "c_routes_native.c")], check=True)
    files = work / "public"
    (files / "css").mkdir(parents=True)
    (files / "index.html").write_text("<p>index</p>")
    (files / "css" / "site.css").write_text("body{}")
    app_dir = work / "app"
    app_dir.mkdir()
    shutil.copy(APPS / "c_routes_app.py", app_dir)
    # A library path relative to the app dir, as users write "./libfast.so".
    os.environ["FA_TEST_NATIVE_LIB"] = "../libtestnative.so"
    os.environ["FA_TEST_FILES"] = str(files)
    try:
        with TestClient("c_routes_app:app", app_dir=app_dir) as c:
            yield c
    finally:
        os.environ.pop("FA_TEST_NATIVE_LIB", None)
        os.environ.pop("FA_TEST_FILES", None)


def test_static_routes(client):
    reply = client.get("/health")
    assert (reply.status_code, reply.content) == (200, b"ok")
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    reply = client.get("/robots.txt")
    assert reply.text == "User-agent: *\nDisallow: /private\n"
    assert reply.headers["content-type"] == "text/plain"
    assert reply.headers["cache-control"] == "max-age=3600"


def test_native_routes_both_forms(client):
    assert client.get("/native/xyz").json() == {"native": True, "a": "xyz"}
    reply = client.get("/deco")
    assert reply.text == "from the decorator form"


def test_mounted_directory(client):
    assert client.get("/files/index.html").text == "<p>index</p>"
    reply = client.get("/files/css/site.css")
    assert reply.text == "body{}" and reply.headers["content-type"].startswith("text/css")
    assert client.get("/files/nope.txt").status_code == 404


def test_python_route_beside_them(client):
    assert client.get("/py/4").json() == {"python": 4}
    assert client.get("/py/x").status_code == 422
