"""perf/batch.py's app: the same vectorisable endpoint batched and not.

    POST /batched    batch=BatchPolicy(max_size=FA_BATCH_MAX_SIZE,
                     max_wait_ms=FA_BATCH_MAX_WAIT_MS): one model call per batch
    POST /unbatched  the same work, one model call per request
    GET  /stats      {"batched": [calls, requests], "unbatched": [calls, requests]}
    GET  /plaintext  readiness probe

Body: {"x": [16 floats]}; result: the score of each item (a dot product
with fixed weights). A "model call" has a fixed cost of FA_BATCH_COST_US
microseconds (default 200) per call, whatever the batch size: FA_BATCH_COST
spin (default) burns CPU for it, as an inference call does, sleep sleeps
(an I/O-bound call: a remote model). That fixed cost is what batching
amortises.
"""

import dataclasses
import os
import time

from fasterapi import BatchPolicy, FastAPI, PlainTextResponse

COST_NS = int(float(os.environ.get("FA_BATCH_COST_US", "200")) * 1000)
SPIN = os.environ.get("FA_BATCH_COST", "spin") == "spin"
MAX_SIZE = int(os.environ.get("FA_BATCH_MAX_SIZE", "32"))
MAX_WAIT_MS = float(os.environ.get("FA_BATCH_MAX_WAIT_MS", "2"))
WEIGHTS = [0.5 + 0.01 * i for i in range(16)]

app = FastAPI()
STATS = {"batched": [0, 0], "unbatched": [0, 0]}


@dataclasses.dataclass
class Item:
    x: list[float]


def model_call():
    if SPIN:
        end = time.perf_counter_ns() + COST_NS
        while time.perf_counter_ns() < end:
            pass
    elif COST_NS:
        time.sleep(COST_NS / 1e9)


def score(item):
    return sum(w * v for w, v in zip(WEIGHTS, item.x))


@app.post("/batched", batch=BatchPolicy(max_size=MAX_SIZE, max_wait_ms=MAX_WAIT_MS))
def batched(items: list[Item]) -> list[float]:
    model_call()
    STATS["batched"][0] += 1
    STATS["batched"][1] += len(items)
    return [score(i) for i in items]


@app.post("/unbatched")
def unbatched(item: Item) -> float:
    model_call()
    STATS["unbatched"][0] += 1
    STATS["unbatched"][1] += 1
    return score(item)


@app.get("/stats")
def stats():
    return STATS


@app.get("/plaintext")
def plaintext():
    return PlainTextResponse("ok")
