"""Issue 5's features in one app, served by the real server in
tests/blackbox/test_fastapi_features.py. Run with one Python worker, so
that state kept in module globals (EVENTS) is seen by the next request."""

import contextlib
import dataclasses
import datetime
import enum
import os
import uuid
from typing import Annotated, Literal, Optional

from fasterapi import (APIRouter, BackgroundTasks, Body, Cookie, CORSMiddleware, Depends,
                       FastAPI, FileResponse, Form, GZipMiddleware, Header, HTMLResponse,
                       HTTPException, JSONResponse, PlainTextResponse, Query, RedirectResponse,
                       Request, Response, UploadFile, status)

EVENTS = []
SHUTDOWN_FILE = os.environ.get("FA_TEST_SHUTDOWN_FILE")
HERE = os.path.dirname(os.path.abspath(__file__))


@contextlib.asynccontextmanager
async def lifespan(app):
    EVENTS.append("startup")
    yield {"started_at": "boot", "pid": os.getpid()}
    if SHUTDOWN_FILE:
        with open(SHUTDOWN_FILE, "a") as f:
            f.write(f"shutdown {os.getpid()}\n")


app = FastAPI(title="Features", version="1.2.3", lifespan=lifespan)
app.add_middleware(GZipMiddleware, minimum_size=200)
app.add_middleware(CORSMiddleware, allow_origins=["https://front.example"],
                   allow_methods=["GET", "POST"], allow_headers=["x-token"])


@app.middleware("http")
async def stamp(request, call_next):
    response = await call_next(request)
    response.headers["x-stamp"] = request.method
    return response


class Teapot(Exception):
    pass


@app.exception_handler(Teapot)
async def teapot_handler(request, exc):
    return JSONResponse({"teapot": str(exc)}, status_code=418)


class Size(str, enum.Enum):
    small = "small"
    large = "large"


@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ItemOut:
    name: str
    price: float


@app.get("/events")
def events():
    return EVENTS


@app.get("/state")
def state(request: Request):
    return {"started_at": request.state.started_at, "pid": request.state.pid,
            "mine": request.state.pid == os.getpid()}


@app.get("/typed/{n}")
def typed(n: int, size: Size = Size.small, mode: Literal["a", "b"] = "a",
          tag: Annotated[list[str], Query()] = [], page: int = Query(1, ge=1),
          x_token: Optional[str] = Header(None), session: Optional[str] = Cookie(None)):
    return {"n": n, "size": size, "mode": mode, "tag": tag, "page": page, "token": x_token,
            "session": session}


@app.post("/items", status_code=status.HTTP_201_CREATED, response_model=ItemOut)
def create_item(item: Item):
    return item


@app.post("/embed")
def embed(item: Item = Body(embed=True)):
    return {"name": item.name}


@app.post("/form")
def form(username: str = Form(), age: int = Form()):
    return {"username": username, "age": age}


@app.post("/upload")
async def upload(file: UploadFile, label: str = Form("none")):
    data = await file.read()
    return {"filename": file.filename, "size": len(data), "type": file.content_type,
            "label": label, "head": data[:5].decode("latin-1")}


def db_session():
    EVENTS.append("db open")
    try:
        yield "db"
    finally:
        EVENTS.append("db close")


def current_user(x_user: str = Header(), db=Depends(db_session)):
    return {"user": x_user, "db": db}


@app.get("/me")
def me(user=Depends(current_user), db=Depends(db_session)):
    EVENTS.append("handler")
    return user


@app.post("/notify/{who}")
def notify(who: str, tasks: BackgroundTasks):
    tasks.add_task(EVENTS.append, f"notified {who}")
    return {"queued": who}


@app.delete("/events", status_code=204)
def clear_events():
    EVENTS.clear()


@app.get("/teapot")
def teapot():
    raise Teapot("short and stout")


@app.get("/missing")
def missing():
    raise HTTPException(404, "no such thing", headers={"X-Why": "gone"})


@app.get("/html", response_class=HTMLResponse)
def html():
    return "<h1>hi</h1>"


@app.get("/text")
def text():
    return PlainTextResponse("plain text")


@app.get("/redirect")
def redirect():
    return RedirectResponse("/text")


@app.get("/cookie")
def cookie(response: Response):
    response.set_cookie("session", "s3cr3t", httponly=True)
    return {"set": True}


@app.get("/file")
def file():
    return FileResponse(os.path.join(HERE, "fastapi_features.py"))


@app.get("/file/missing")
def file_missing():
    return FileResponse(os.path.join(HERE, "no-such-file.txt"))


@app.get("/big")
def big():
    return {"data": "abc" * 500}


@app.get("/values")
def values():
    return {"when": datetime.datetime(2024, 5, 6, 7, 8, 9), "id": uuid.UUID(int=5),
            "size": Size.large, "item": ItemOut("x", 1.5)}


users = APIRouter(prefix="/users", tags=["users"])


@users.get("/{user_id}")
def get_user(user_id: int):
    return {"id": user_id}


app.include_router(users, prefix="/v1")
