"""Issue 3's routes served in C, beside Python routes, for
test_fastapi_c_routes.py. FA_TEST_NATIVE_LIB: the built c_routes_native.c
(a path relative to the app dir, --app-dir); FA_TEST_FILES: a directory to
mount."""

import os

from fasterapi import FastAPI

app = FastAPI()

app.static("/health", b"ok")
app.static("/robots.txt", "User-agent: *\nDisallow: /private\n", content_type="text/plain",
           headers={"Cache-Control": "max-age=3600"})
app.native("GET", "/native/{a}", library=os.environ["FA_TEST_NATIVE_LIB"], symbol="add_handler")


@app.native("GET", "/deco", library=os.environ["FA_TEST_NATIVE_LIB"])
def decorated():
    """Served by the C function `decorated`."""


app.mount_static("/files", os.environ["FA_TEST_FILES"])


@app.get("/py/{n}")
def py(n: int):
    return {"python": n}
