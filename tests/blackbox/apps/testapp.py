"""The black-box tests' app: one route per behaviour under test."""
import hashlib
import os
import random
import time

from fasterapi import App, HTTPException, JSONResponse, Request, Response

app = App()


# Neither an App nor callable (a plain function would be served as a WSGI app).
not_an_app = {"routes": []}


# ---- workers ----------------------------------------------------------------

@app.get("/pid")
def pid():
    return {"pid": os.getpid()}


@app.get("/boom")
def boom():
    raise RuntimeError("boom for the black-box test")


@app.get("/nope")
def nope():
    raise HTTPException(404, "nope")


# ---- return types ------------------------------------------------------------

@app.get("/ret/str")
def ret_str():
    return "just text"


@app.get("/ret/bytes")
def ret_bytes():
    return b"\x00\x01raw\xff"


@app.get("/ret/dict")
def ret_dict():
    return {"a": 1, "b": [1, 2], "c": None}


@app.get("/ret/list")
def ret_list():
    return [1, "two", None, True]


@app.get("/ret/response")
def ret_response():
    return Response(b"<doc/>", status_code=202, headers={"X-Custom": "yes"},
                    media_type="application/xml")


@app.get("/ret/json201")
def ret_json201():
    return JSONResponse({"created": True}, status_code=201)


# ---- the request -------------------------------------------------------------

@app.route("/inspect/{kind}/{item}", methods=["GET", "POST"])
def inspect(request: Request):
    return {
        "method": request.method,
        "path": request.url.path,
        "tags": request.query_params.getlist("tag"),
        "q": request.query_params.get("q"),
        "path_params": dict(request.path_params),
        "h_lower": request.headers.get("x-test-header"),
        "h_upper": request.headers["X-TEST-HEADER"],
        "h_mixed": request.headers.get("X-Test-Header"),
        "h_missing": request.headers.get("x-not-sent"),
        "client": request.client.host,
    }


@app.get("/bind/{kind}/{num}")
def bind(kind: str, num: int, req):
    """Path parameters by name, and the request by the name `req`."""
    return {"kind": kind, "num": num, "method": req.method}


@app.post("/body/async")
async def body_async(request: Request):
    data = await request.body()
    return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.post("/body/sync")
def body_sync(request: Request):
    data = request.get_data()
    return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.post("/json/async")
async def json_async(request: Request):
    return {"got": await request.json()}


@app.post("/json/sync")
def json_sync(request: Request):
    return {"got": request.get_json()}


@app.get("/big")
def big(n: int, seed: int):
    """n pseudo-random bytes from seed; the test makes the same ones."""
    data = random.Random(seed).randbytes(n)
    return Response(data, media_type="application/octet-stream",
                    headers={"X-Sha256": hashlib.sha256(data).hexdigest()})


# ---- parameters ----------------------------------------------------------------

@app.get("/conv")
def conv(i: int, f: float, b: bool, s: str, d: int = 7, name: str = "anon"):
    return {"i": i, "f": f, "b": b, "s": s, "d": d, "name": name,
            "types": [type(x).__name__ for x in (i, f, b, s, d, name)]}


@app.get("/seq/{i}")
def seq(i: int, delay_ms: int = 0):
    """Answers late when asked, so pipelined answers finish out of order."""
    if delay_ms:
        time.sleep(delay_ms / 1000)
    return {"i": i, "pid": os.getpid()}


# ---- methods -------------------------------------------------------------------

@app.route("/multi", methods=["GET", "POST"])
def multi(request: Request):
    return {"method": request.method}


@app.get("/verbs")
def verbs_get():
    return {"verb": "get"}


@app.post("/verbs")
def verbs_post():
    return {"verb": "post"}


@app.put("/verbs")
def verbs_put():
    return {"verb": "put"}


@app.patch("/verbs")
def verbs_patch():
    return {"verb": "patch"}


@app.delete("/verbs")
def verbs_delete():
    return {"verb": "delete"}
