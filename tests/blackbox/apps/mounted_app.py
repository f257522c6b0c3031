"""A fasterapi App with native/static routes in front of a WSGI app and of
an ASGI app (fasterapi.wsgi.mount / fasterapi.asgi.mount)."""

from fasterapi import App
from fasterapi import asgi, wsgi


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi fallback " + environ["PATH_INFO"].encode("latin-1")]


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        raise RuntimeError("no lifespan here")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"asgi fallback " +
                scope["path"].encode()})


front_wsgi = App(openapi_url=None)
front_wsgi.static("/health", b"ok from C\n")


@front_wsgi.get("/py/{x}")
def py(x: int):
    return {"x": x, "from": "fasterapi"}


wsgi.mount(front_wsgi, wsgi_app)

front_asgi = App(openapi_url=None)
front_asgi.static("/health", b"ok from C\n")
asgi.mount(front_asgi, asgi_app)
