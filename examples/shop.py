"""A FastAPI-style app: what a FastAPI user writes, with the import changed.

Typed path, query and header parameters, a dataclass body validated from
JSON (422 in FastAPI's shape), a form with a file upload, dependencies with
a yield cleanup, background tasks, a router, middlewares, an exception
handler, a lifespan, response_model filtering, /openapi.json and /docs, and
routes answered in C without Python (static).

    fasterapi run examples.shop:app --bind 127.0.0.1:8000

    curl localhost:8000/health
    curl 'localhost:8000/items?limit=2&tag=red&tag=blue'
    curl -H 'x-token: secret' -d '{"name": "pen", "price": 1.5}' localhost:8000/items
    curl -F 'file=@README.md' -F 'note=hi' localhost:8000/uploads
    open http://localhost:8000/docs

Tested through the real server with fasterapi.testing.TestClient:

    from fasterapi.testing import TestClient
    with TestClient("examples.shop:app") as client:
        assert client.get("/items/1").json()["name"] == "book"
"""

import contextlib
import dataclasses
import enum
import time
from typing import Annotated, Optional

from fasterapi import (APIRouter, BackgroundTasks, CORSMiddleware, Depends, FastAPI, Form,
                       Header, HTTPException, JSONResponse, Query, Request, UploadFile, status)


@dataclasses.dataclass
class ItemIn:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ItemOut:
    id: int
    name: str
    price: float


class Sort(str, enum.Enum):
    name = "name"
    price = "price"


DB = {1: {"id": 1, "name": "book", "price": 12.0, "tags": ["paper"], "cost": 7.0}}
AUDIT = []


@contextlib.asynccontextmanager
async def lifespan(app):
    # Runs in each Python worker before it takes requests; the code after
    # yield when the worker is retired or the server stops.
    yield {"started": time.time()}


app = FastAPI(title="Shop", version="1.0", lifespan=lifespan)
app.add_middleware(CORSMiddleware, allow_origins=["*"])
app.static("/health", b"ok")            # answered by the HTTP worker, no Python


@app.middleware("http")
async def timing(request: Request, call_next):
    start = time.perf_counter()
    response = await call_next(request)
    response.headers["x-process-time"] = f"{(time.perf_counter() - start) * 1e6:.0f}us"
    return response


class OutOfStock(Exception):
    pass


@app.exception_handler(OutOfStock)
def out_of_stock(request: Request, exc: OutOfStock):
    return JSONResponse({"detail": f"{exc} is out of stock"}, status_code=409)


def db_session():
    session = {"open": True}
    try:
        yield session
    finally:
        session["open"] = False          # runs after the response is sent


def require_token(x_token: Annotated[str, Header()]):
    if x_token != "secret":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "bad token")


items = APIRouter(prefix="/items", tags=["items"])


@items.get("", response_model=list[ItemOut])
def list_items(limit: Annotated[int, Query(ge=1, le=100)] = 10, sort: Sort = Sort.name,
               tag: Annotated[list[str], Query()] = []):
    rows = [r for r in DB.values() if not tag or set(tag) & set(r["tags"])]
    return sorted(rows, key=lambda r: r[sort.value])[:limit]


@items.get("/{item_id}", response_model=ItemOut)
def get_item(item_id: int, session=Depends(db_session)):
    item = DB.get(item_id)
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    return item                          # "cost" and "tags" are filtered out


@items.post("", status_code=201, response_model=ItemOut,
            dependencies=[Depends(require_token)])
def create_item(item: ItemIn, tasks: BackgroundTasks):
    new = {"id": max(DB) + 1, **dataclasses.asdict(item), "cost": 0.0}
    DB[new["id"]] = new
    tasks.add_task(AUDIT.append, f"created {new['id']}")   # after the response
    return new


@items.post("/{item_id}/buy")
def buy(item_id: int):
    raise OutOfStock(DB.get(item_id, {}).get("name", f"item {item_id}"))


app.include_router(items)


@app.post("/uploads")
async def upload(file: UploadFile, note: Annotated[Optional[str], Form()] = None):
    data = await file.read()
    return {"filename": file.filename, "bytes": len(data), "note": note}


@app.get("/audit")
def audit():
    return AUDIT
