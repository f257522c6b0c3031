"""HTTP status codes as constants (FastAPI's `status`): status.HTTP_404_NOT_FOUND."""

import http as _http

for _s in _http.HTTPStatus:
    globals()[f"HTTP_{_s.value}_{_s.name}"] = _s.value
del _s

# Names Starlette spells differently from http.HTTPStatus.
HTTP_413_REQUEST_ENTITY_TOO_LARGE = 413
HTTP_414_REQUEST_URI_TOO_LONG = 414
HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE = 416
HTTP_418_IM_A_TEAPOT = 418
HTTP_422_UNPROCESSABLE_ENTITY = 422
HTTP_422_UNPROCESSABLE_CONTENT = 422
HTTP_413_CONTENT_TOO_LARGE = 413
HTTP_416_RANGE_NOT_SATISFIABLE = 416

__all__ = sorted(name for name in globals() if name.startswith("HTTP_"))
