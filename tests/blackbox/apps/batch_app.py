"""Batched routes for tests/blackbox/test_batch.py: each records the size of
every handler call, per Python worker (GET /sizes/{name} reads them)."""
import os

from pydantic import BaseModel

from fasterapi import App, BatchPolicy

try:
    import _fasterapi
except ImportError:
    _fasterapi = None

app = App()

SIZES = {"double": [], "short": [], "alone": []}


class Item(BaseModel):
    x: int


@app.get("/features")
def features():
    """What this worker can do: deferred responses make batching across
    requests possible (PROTOCOL.md)."""
    return {"defer": hasattr(_fasterapi, "defer"), "pid": os.getpid()}


@app.get("/sizes/{name}")
def sizes(name: str):
    return {"sizes": SIZES[name], "pid": os.getpid()}


@app.post("/double", batch=BatchPolicy(max_size=8, max_wait_ms=200))
def double(items: list[Item]):
    SIZES["double"].append(len(items))
    return [{"x": i.x, "y": 2 * i.x, "batch": len(items)} for i in items]


@app.post("/short", batch=BatchPolicy(max_size=8, max_wait_ms=200))
def short(items: list[Item]):
    SIZES["short"].append(len(items))
    return [i.x for i in items][1:]


@app.post("/alone", batch=BatchPolicy(max_size=64, max_wait_ms=150))
def alone(items: list[Item]):
    SIZES["alone"].append(len(items))
    return [{"x": i.x, "batch": len(items)} for i in items]
