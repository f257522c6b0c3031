"""The black-box tests' app for the routes served in C beside Python ones:
static responses, native handlers and mounted directories.

Environment (set by the tests before the server starts):
  FA_TEST_NATIVE_LIB   the built native_test.c (absolute); no native routes without it
  FA_TEST_FILES_DIR    a directory to mount at /files; no files route without it
  FA_TEST_NATIVE_SYMBOL  an extra native route GET /n/extra with this symbol (start-up tests)
"""
import os

from fasterapi import App, FileResponse, Request, Response

app = App()

app.static("/health", b"ok", content_type="text/plain")
app.static("/teapot", b'{"short":"stout"}', content_type="application/json", status_code=418,
           headers={"X-Tea": "earl grey", "Cache-Control": "no-store"})
app.static("/nothing", b"", status_code=204)
app.static("/big-static", b"0123456789abcdef" * 20000, content_type="application/octet-stream")

NATIVE = os.environ.get("FA_TEST_NATIVE_LIB")
if NATIVE:
    app.native("GET", "/n/echo/{a}/{b}", library=NATIVE, symbol="n_inspect")
    app.native("GET", "/n/inspect", library=NATIVE, symbol="n_inspect")
    app.native("POST", "/n/echo", library=NATIVE, symbol="n_echo")
    app.native("GET", "/n/big", library=NATIVE, symbol="n_big")
    app.native("GET", "/n/created", library=NATIVE, symbol="n_created")
    app.native("GET", "/n/bad-header", library=NATIVE, symbol="n_bad_header")
    app.native("GET", "/n/bad-name", library=NATIVE, symbol="n_bad_name")
    app.native("GET", "/n/fails", library=NATIVE, symbol="n_fails")
    app.native("GET", "/n/json-open", library=NATIVE, symbol="n_json_open")
    if os.environ.get("FA_TEST_NATIVE_SYMBOL"):
        app.native("GET", "/n/extra", library=NATIVE, symbol=os.environ["FA_TEST_NATIVE_SYMBOL"])

FILES = os.environ.get("FA_TEST_FILES_DIR")
if FILES:
    app.mount_static("/files", FILES)


@app.get("/py/{x}")
def py(x: str):
    return {"x": x}


@app.post("/py/echo")
async def py_echo(req: Request):
    return Response(await req.body(), media_type="application/octet-stream")


@app.get("/py/file/{name}")
def py_file(name: str):
    return FileResponse(os.path.join(FILES or "/nonexistent", name))
