"""Exceptions a handler raises to answer with an error (FastAPI's names).

HTTPException becomes {"detail": detail} with its status; RequestValidationError
is what a binding plan raises when parameters do not convert (a 422). Any other
exception from a handler becomes a 500 (see _boot.dispatch).
"""

import http

__all__ = ["HTTPException", "RequestValidationError", "ResponseValidationError"]


class HTTPException(Exception):
    """Answer with `status_code` and the JSON body {"detail": detail}.

    detail: anything JSON can encode; None means the standard reason phrase
    ("Not Found" for 404), as in Starlette. headers: a mapping added to the
    response. For a status that has no body (1xx, 204, 205, 304) only the
    status and headers are sent, as FastAPI does.
    """

    def __init__(self, status_code, detail=None, headers=None):
        if detail is None:
            try:
                detail = http.HTTPStatus(status_code).phrase
            except ValueError:
                detail = ""
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers

    def __str__(self):
        return f"{self.status_code}: {self.detail}"

    def __repr__(self):
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class RequestValidationError(Exception):
    """Parameters that did not convert: answered 422 with {"detail": errors}.

    errors: a list of dicts shaped like pydantic's (type, loc, msg, input),
    one per bad field, path parameters first, then query parameters.
    """

    def __init__(self, errors):
        super().__init__(errors)
        self._errors = errors

    def errors(self):
        return self._errors

    def __str__(self):
        return f"{len(self._errors)} validation error(s): {self._errors!r}"


class ResponseValidationError(Exception):
    """A handler's result that does not fit its response_model (or return
    annotation): answered 500, as in FastAPI, with the errors logged."""

    def __init__(self, errors, *, body=None):
        super().__init__(errors)
        self._errors = errors
        self.body = body

    def errors(self):
        return self._errors

    def __str__(self):
        lines = [f"{len(self._errors)} validation error(s) in the response:"]
        for e in self._errors:
            lines.append(f"  {e['type']} at {tuple(e['loc'])}: {e['msg']} (input: {e['input']!r})")
        return "\n".join(lines)
