"""The default exception handlers (FastAPI's names), for custom handlers
that log and then answer as usual:

    @app.exception_handler(HTTPException)
    async def logged(request, exc):
        log(exc)
        return await http_exception_handler(request, exc)
"""

from .encoders import jsonable_encoder
from .responses import JSONResponse, Response, body_allowed

__all__ = ["http_exception_handler", "request_validation_exception_handler"]


async def http_exception_handler(request, exc):
    headers = getattr(exc, "headers", None)
    if not body_allowed(exc.status_code):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def request_validation_exception_handler(request, exc):
    return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
