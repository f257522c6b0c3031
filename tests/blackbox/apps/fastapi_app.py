"""A real FastAPI app (Debian's python3-fastapi) for
tests/blackbox/test_asgi_fastapi.py: routing, path/query parameters, a
pydantic body (422 on errors), lifespan startup/shutdown."""

import os
from typing import List, Optional

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

EVENTS = []


app = FastAPI()   # Debian 12's FastAPI 0.92 has no lifespan= yet: on_event


@app.on_event("startup")
async def startup():
    if os.environ.get("FA_TEST_FASTAPI_STARTUP_FAIL"):
        raise RuntimeError("cannot reach the database at startup")
    EVENTS.append("startup")
    app.state.started = os.getpid()


@app.on_event("shutdown")
def shutdown():
    path = os.environ.get("FA_TEST_FASTAPI_SHUTDOWN_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"shutdown {os.getpid()}\n")


class Item(BaseModel):
    name: str
    price: float
    tags: List[str] = []


@app.get("/")
async def root():
    return {"hello": "fastapi"}


@app.get("/thread")
def thread():
    """A def handler: FastAPI runs it on anyio's thread pool. The native id
    of the thread (Linux does not hand out a dead thread's id again soon)."""
    import threading
    return {"tid": threading.get_native_id()}


@app.get("/items/{item_id}")
def read_item(item_id: int, q: Optional[str] = None, limit: int = 10):
    return {"item_id": item_id, "q": q, "limit": limit}


@app.post("/items", status_code=201)
async def create_item(item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags}


@app.get("/missing")
async def missing():
    raise HTTPException(status_code=404, detail="no such thing")


@app.get("/crash")
async def crash():
    raise RuntimeError("fastapi handler failed")


@app.get("/lifespan")
async def lifespan_info(request: Request):
    return {"events": EVENTS, "started": getattr(request.app.state, "started", None),
            "pid": os.getpid()}
