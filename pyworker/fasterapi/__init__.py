"""FasterAPI: FastAPI-style handlers served by a C server.

    from fasterapi import App, Request, JSONResponse, HTTPException

    app = App()

    @app.get("/users/{user_id}")
    def get_user(user_id: int, verbose: bool = False):
        return {"id": user_id}

Run with `fasterapi run module:app`. The server imports the module in each
Python worker and calls fasterapi._boot (see pyworker/PROTOCOL.md).
"""

from .app import App
from .exceptions import HTTPException, RequestValidationError
from .request import Request
from .responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

FastAPI = App

__all__ = ["App", "FastAPI", "Request", "Response", "JSONResponse", "PlainTextResponse",
           "HTMLResponse", "HTTPException", "RequestValidationError"]
