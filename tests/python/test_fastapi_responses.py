"""Issue 5, responses: the response classes, cookies, status_code=,
response_model / return annotations, BackgroundTasks and the after() hook,
and JSON bodies left for the C encoder."""

import dataclasses
import os
from typing import Optional, TypedDict

import pytest

from fasterapi import (App, BackgroundTasks, Depends, FileResponse, HTMLResponse, JSONResponse,
                       PlainTextResponse, RedirectResponse, Response, responses, status)
from fasterapi.background import BackgroundTask


def test_html_plain_text_and_redirect(make_client):
    app = App()
    app.get("/h")(lambda: HTMLResponse("<h1>é</h1>"))
    app.get("/t")(lambda: PlainTextResponse("plain", status_code=202))
    app.get("/r")(lambda: RedirectResponse("/new place?a=1"))
    app.get("/r301")(lambda: RedirectResponse("https://example.org/x", status_code=301))
    client = make_client(app)
    assert client.get("/h") == (200, [("content-type", "text/html; charset=utf-8")],
                                "<h1>é</h1>".encode())
    assert client.get("/t") == (202, [("content-type", "text/plain; charset=utf-8")], b"plain")
    assert client.get("/r") == (307, [("location", "/new%20place?a=1")], b"")
    assert client.get("/r301").header("location") == "https://example.org/x"


def test_file_response__sendfile_header_and_no_body(make_client, tmp_path):
    page = tmp_path / "report.pdf"
    page.write_bytes(b"%PDF-1.4 data")
    app = App()
    app.get("/f")(lambda: FileResponse(str(page)))
    app.get("/d")(lambda: FileResponse(page, filename="résumé.pdf", media_type="application/x-t"))
    app.get("/missing")(lambda: FileResponse(tmp_path / "nope.txt"))
    client = make_client(app)
    reply = client.get("/f")
    assert reply.status == 200 and reply.body == b""
    assert reply.header("x-fasterapi-sendfile") == str(page)
    assert reply.header("content-type") == "application/pdf"
    assert reply.header("etag").startswith('"') and reply.header("last-modified").endswith("GMT")
    assert reply.header("content-length") is None
    reply = client.get("/d")
    assert reply.header("content-type") == "application/x-t"
    assert reply.header("content-disposition") == \
        "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf"


def test_file_response__missing_file_is_a_500(make_client, tmp_path, capsys):
    app = App()
    app.get("/missing")(lambda: FileResponse(tmp_path / "nope.txt"))
    assert make_client(app).get("/missing").status == 500
    assert "does not exist" in capsys.readouterr().err


def test_file_response__relative_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.css").write_text("x")
    r = FileResponse("a.css")
    assert r.path == os.path.join(str(tmp_path), "a.css")
    assert r.headers["content-type"] == "text/css; charset=utf-8"


def test_set_cookie_and_delete_cookie(make_client):
    app = App()

    @app.get("/login")
    def login(response: Response):
        response.set_cookie("session", "abc", max_age=60, httponly=True)
        response.set_cookie("pref", "a b", path="/x", samesite="strict", secure=True)
        return {"ok": True}

    @app.get("/logout")
    def logout():
        r = PlainTextResponse("bye")
        r.delete_cookie("session")
        return r

    client = make_client(app)
    reply = client.get("/login")
    assert reply.json() == {"ok": True}
    cookies = [v for n, v in reply.headers if n == "set-cookie"]
    assert cookies == ["session=abc; Max-Age=60; Path=/; HttpOnly; SameSite=lax",
                       'pref="a b"; Path=/x; Secure; SameSite=strict']
    cookie = client.get("/logout").header("set-cookie")
    assert cookie.startswith("session=; Max-Age=0; expires=") and cookie.endswith(
        "GMT; Path=/; SameSite=lax")


def test_status_code_on_the_decorator(make_client):
    app = App()
    app.post("/items", status_code=201)(lambda: {"id": 1})
    app.delete("/items", status_code=status.HTTP_204_NO_CONTENT)(lambda: None)
    app.get("/explicit", status_code=201)(lambda: JSONResponse({"a": 1}, status_code=200))
    client = make_client(app)
    assert client.post("/items") == (201, [("content-type", "application/json")], b'{"id":1}')
    assert client.delete("/items") == (204, [], b"")
    assert client.get("/explicit").status == 200


def test_response_parameter_sets_status_and_headers(make_client):
    app = App()

    @app.get("/p")
    def p(response: Response):
        response.status_code = 202
        response.headers["X-Extra"] = "1"
        return {"a": 1}

    reply = make_client(app).get("/p")
    assert reply.status == 202 and reply.header("x-extra") == "1"
    assert reply.json() == {"a": 1}


# ------------------------------------------------------------------ response_model

@dataclasses.dataclass
class UserOut:
    name: str
    email: Optional[str] = None


class Row:
    def __init__(self):
        self.name, self.email, self.password = "ann", "a@x", "secret"


class PointOut(TypedDict):
    x: int


def test_response_model__filters_dicts_and_objects(make_client):
    app = App()

    @app.get("/dict", response_model=UserOut)
    def from_dict():
        return {"name": "bo", "password": "secret"}

    @app.get("/obj", response_model=UserOut)
    def from_object():
        return Row()

    @app.get("/list", response_model=list[UserOut])
    def many():
        return [Row(), {"name": "c", "email": None, "x": 1}]

    @app.get("/annotated")
    def annotated() -> PointOut:
        return {"x": "3", "y": 4}

    @app.get("/exclude-none", response_model=UserOut, response_model_exclude_none=True)
    def exclude_none():
        return {"name": "d"}

    client = make_client(app)
    assert client.get("/dict").json() == {"name": "bo", "email": None}
    assert client.get("/obj").json() == {"name": "ann", "email": "a@x"}
    assert client.get("/list").json() == [{"name": "ann", "email": "a@x"},
                                          {"name": "c", "email": None}]
    assert client.get("/annotated").json() == {"x": 3}
    assert client.get("/exclude-none").json() == {"name": "d"}


def test_response_model__invalid_output_is_a_500_with_the_errors_logged(make_client, capsys):
    app = App()

    @app.get("/bad", response_model=UserOut)
    def bad():
        return {"email": "x"}

    assert make_client(app).get("/bad").status == 500
    err = capsys.readouterr().err
    assert "ResponseValidationError" in err and "('response', 'name')" in err


def test_response_model__none_and_response_annotations_are_not_validated(make_client):
    app = App()

    @app.get("/none", response_model=None)
    def none() -> UserOut:
        return {"anything": 1}

    @app.get("/resp")
    def resp() -> Response:
        return PlainTextResponse("x")

    client = make_client(app)
    assert client.get("/none").json() == {"anything": 1}
    assert client.get("/resp").text == "x"
    assert app.routes[0].serializer is None and app.routes[1].serializer is None


def test_response_model__pydantic(make_client):
    pd = pytest.importorskip("pydantic")

    class Public(pd.BaseModel):
        id: int
        name: str

    class Private(pd.BaseModel):
        id: int
        name: str
        secret: str

    app = App()

    @app.get("/u", response_model=Public)
    def u():
        return Private(id=1, name="n", secret="s")

    @app.get("/direct")
    def direct():
        return Public(id=2, name="m")

    client = make_client(app)
    assert client.get("/u").json() == {"id": 1, "name": "n"}
    assert client.get("/direct").json() == {"id": 2, "name": "m"}


def test_return_values_go_through_jsonable_encoder(make_client):
    import datetime
    import uuid

    app = App()
    app.get("/dc")(lambda: UserOut("x"))
    app.get("/mixed")(lambda: {"when": datetime.date(2024, 1, 2), "id": uuid.UUID(int=1),
                               "tags": {"a"}})
    client = make_client(app)
    assert client.get("/dc").json() == {"name": "x", "email": None}
    assert client.get("/mixed").json() == {"when": "2024-01-02",
                                           "id": "00000000-0000-0000-0000-000000000001",
                                           "tags": ["a"]}


# ------------------------------------------------------------------ background tasks

def test_background_tasks__run_by_after_in_order(make_client):
    done = []

    async def notify(who):
        done.append(f"notify {who}")

    app = App()

    @app.post("/send/{who}")
    def send(who: str, tasks: BackgroundTasks):
        tasks.add_task(done.append, f"log {who}")
        tasks.add_task(notify, who=who)
        return {"queued": True}

    client = make_client(app)
    reply = client.post("/send/{who}", ["ann"], run_after=False)
    assert reply.json() == {"queued": True} and done == []
    reply.after()
    assert done == ["log ann", "notify ann"]


def test_background_tasks__a_failing_task_is_logged_and_the_rest_run(make_client, capsys):
    done = []

    def boom():
        raise RuntimeError("task failed")

    app = App()

    @app.get("/t")
    def t(tasks: BackgroundTasks):
        tasks.add_task(boom)
        tasks.add_task(done.append, "after boom")
        return "ok"

    assert make_client(app).get("/t").text == "ok"
    assert done == ["after boom"]
    assert "RuntimeError: task failed" in capsys.readouterr().err


def test_background__on_a_response_in_the_fast_path(make_client):
    done = []
    app = App()
    app.get("/r")(lambda: PlainTextResponse("x", background=BackgroundTask(done.append, 1)))
    app.get("/plain")(lambda: "no after")
    client = make_client(app)
    reply = client.get("/r")
    assert reply.after is not None and done == [1]
    assert client.get("/plain").after is None


def test_background_and_yield_cleanup_share_one_after(make_client):
    events = []

    def dep():
        yield "d"
        events.append("cleanup")

    app = App()

    @app.get("/x")
    def x(tasks: BackgroundTasks, d=Depends(dep)):
        tasks.add_task(events.append, "task")
        return "x"

    make_client(app).get("/x")
    assert events == ["task", "cleanup"]


# ------------------------------------------------------------------ JSON for the C encoder

def test_c_json__objects_are_returned_unencoded(make_client, monkeypatch):
    monkeypatch.setattr(responses, "C_JSON", True)
    app = App()
    app.get("/d")(lambda: {"a": [1, "é"]})
    app.get("/l")(lambda: [1, 2])
    app.get("/j")(lambda: JSONResponse({"b": 2}, status_code=201))
    app.get("/read")(lambda: _read_body(JSONResponse({"c": 3})))
    app.get("/s")(lambda: "text")
    app.post("/created", status_code=201)(lambda: {"id": 1})
    dispatch = make_client(app).dispatch
    call = lambda rid: dispatch(rid, "GET", "/", "", (), [], ("h", 1), b"")  # noqa: E731
    body = {"a": [1, "é"]}
    assert call(0) == (200, [("content-type", "application/json")], body)
    assert call(1)[2] == [1, 2]
    assert call(2) == (201, [("content-type", "application/json")], {"b": 2})
    assert call(3)[2] == b'{"c":3}'          # a body already encoded stays bytes
    assert call(4)[2] == b"text"
    assert call(5) == (201, [("content-type", "application/json")], {"id": 1})


def _read_body(response):
    assert response.body == b'{"c":3}'
    return response


def test_c_json__off_without_the_pyworker_module():
    assert responses.C_JSON is False   # no _fasterapi here: json.dumps in Python


def test_response_parameter_is_not_merged_into_a_returned_response(make_client):
    app = App()

    @app.get("/r")
    def r(response: Response):
        response.headers["x-sub"] = "1"
        return PlainTextResponse("own")

    reply = make_client(app).get("/r")
    assert reply.text == "own" and reply.header("x-sub") is None


def test_body_iterator_for_starlette_style_middlewares(make_client):
    app = App()

    @app.middleware("http")
    async def read_body(request, call_next):
        response = await call_next(request)
        body = b"".join([chunk async for chunk in response.body_iterator])
        return PlainTextResponse(f"{len(body)} bytes", headers={"x-orig": response.media_type})

    app.get("/j")(lambda: {"k": "v"})
    reply = make_client(app).get("/j")
    assert reply.text == "9 bytes" and reply.header("x-orig") == "application/json"
