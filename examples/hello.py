"""A small FasterAPI app: plain text, JSON, typed parameters, a body echo,
async handlers and HTTP errors.

    fasterapi run examples.hello:app --bind 127.0.0.1:8000

    curl localhost:8000/plaintext
    curl localhost:8000/users/7?verbose=true
    curl -d 'hi' -H 'content-type: text/plain' localhost:8000/echo
    curl -d '{"name": "pen"}' localhost:8000/items
"""

import asyncio

from fasterapi import App, HTTPException, JSONResponse, Request, Response

app = App()

ITEMS = {1: {"id": 1, "name": "book"}}


@app.get("/plaintext")
def plaintext():
    return "Hello, World!"


@app.get("/json")
def json_hello():
    return {"message": "Hello, World!"}


@app.get("/users/{user_id}")
def get_user(user_id: int, verbose: bool = False):
    # /users/abc is answered 422 before this runs.
    user = {"id": user_id}
    if verbose:
        user["verbose"] = True
    return user


@app.post("/echo")
def echo(request: Request):
    content_type = request.headers.get("content-type", "application/octet-stream")
    return Response(request.get_data(), headers={"content-type": content_type})


@app.get("/items/{item_id}")
async def get_item(item_id: int):
    item = ITEMS.get(item_id)
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    return item


@app.post("/items")
async def create_item(request: Request):
    try:
        data = await request.json()
    except ValueError:   # json.JSONDecodeError; uncaught it would be a 500
        raise HTTPException(400, "the body is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise HTTPException(400, 'expected a JSON object with a "name" string')
    item = {"id": max(ITEMS) + 1, "name": data["name"]}
    ITEMS[item["id"]] = item
    return JSONResponse(item, status_code=201)


@app.get("/sleep")
async def sleep(ms: float = 10.0):
    # Really waits: the worker's event loop runs until the timer fires.
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}
