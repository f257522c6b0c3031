"""FasterAPI: FastAPI-style handlers served by a C server.

    from fasterapi import FastAPI, Query

    app = FastAPI()

    @app.get("/users/{user_id}")
    def get_user(user_id: int, verbose: bool = Query(False)):
        return {"id": user_id}

Run with `fasterapi run module:app`. The server imports the module in each
Python worker and calls fasterapi._boot (see pyworker/PROTOCOL.md). The
names are FastAPI's, so porting an app is mostly changing the import; see
docs/fastapi-compat.md for what differs.
"""

from . import status
from .app import App
from .background import BackgroundTasks
from .batch import BatchPolicy
from .encoders import jsonable_encoder
from .exceptions import HTTPException, RequestValidationError, ResponseValidationError
from .forms import FormData, UploadFile
from .middleware import CORSMiddleware, GZipMiddleware, Middleware
from .params import Body, Cookie, Depends, File, Form, Header, Path, Query, Security
from .request import Request
from .responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse,
                        RedirectResponse, Response, StreamingResponse)
from .routing import APIRouter

FastAPI = App

__all__ = ["App", "FastAPI", "APIRouter", "Request", "Response", "JSONResponse",
           "PlainTextResponse", "HTMLResponse", "RedirectResponse", "FileResponse",
           "StreamingResponse",
           "HTTPException", "RequestValidationError", "ResponseValidationError", "Depends",
           "Security", "Query", "Path", "Header", "Cookie", "Body", "Form", "File", "UploadFile",
           "FormData", "BackgroundTasks", "BatchPolicy", "CORSMiddleware", "GZipMiddleware",
           "Middleware",
           "jsonable_encoder", "status"]
