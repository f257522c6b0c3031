"""Native handlers beside Python ones: the routes under /fast are C
functions from libfast.so (fast.c), answered by the HTTP worker without
Python; /py/hello is the same greeting written in Python.

    make -C examples/native
    fasterapi run app:app --app-dir examples/native
    curl 'localhost:8000/fast/hello/Ada?greeting=Bonjour'
    curl 'localhost:8000/py/hello/Ada?greeting=Bonjour'
"""
from fasterapi import App

app = App()

LIB = "./libfast.so"      # relative to the app directory (--app-dir)

app.native("GET", "/fast/plaintext", library=LIB, symbol="plaintext")
app.native("GET", "/fast/hello/{name}", library=LIB, symbol="hello")
app.native("POST", "/fast/echo", library=LIB, symbol="echo")


@app.native("GET", "/fast/teapot", library=LIB)
def teapot():
    """Answered by the C function `teapot` (the decorator form): this body never runs."""


@app.get("/py/hello/{name}")
def py_hello(name: str, greeting: str = "Hello"):
    return {"greeting": greeting, "name": name, "bytes": len(name.encode())}


app.static("/health", b"ok", content_type="text/plain")
