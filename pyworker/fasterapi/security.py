"""Security helpers with FastAPI's names. Each is a dependency: use it with
Depends(...) or Security(...). Only what reads a credential from the request
is here; the OpenAPI document lists them as security schemes.

    oauth2 = OAuth2PasswordBearer(tokenUrl="token")

    @app.get("/me")
    def me(token: str = Depends(oauth2)): ...
"""

import base64
import binascii

from .exceptions import HTTPException
from .request import Request

__all__ = ["SecurityScopes", "HTTPBearer", "HTTPAuthorizationCredentials", "HTTPBasic",
           "HTTPBasicCredentials", "OAuth2PasswordBearer", "OAuth2PasswordRequestForm",
           "APIKeyHeader", "APIKeyQuery", "APIKeyCookie"]


class SecurityScopes:
    """The scopes that Security(..., scopes=[...]) markers above a
    dependency asked for (FastAPI's SecurityScopes)."""

    def __init__(self, scopes=None):
        self.scopes = list(scopes or ())
        self.scope_str = " ".join(self.scopes)


class _Scheme:
    scheme_name = None
    model = None

    def _fail(self, status=403, detail="Not authenticated", headers=None):
        if self.auto_error:
            raise HTTPException(status, detail, headers=headers)
        return None


class HTTPAuthorizationCredentials:
    def __init__(self, scheme, credentials):
        self.scheme = scheme
        self.credentials = credentials

    def __repr__(self):
        return f"HTTPAuthorizationCredentials(scheme={self.scheme!r})"


class HTTPBasicCredentials:
    def __init__(self, username, password):
        self.username = username
        self.password = password


class HTTPBearer(_Scheme):
    def __init__(self, *, bearerFormat=None, scheme_name=None, description=None,
                 auto_error=True):
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error
        self.model = {"type": "http", "scheme": "bearer"}
        if bearerFormat:
            self.model["bearerFormat"] = bearerFormat
        if description:
            self.model["description"] = description

    def __call__(self, request: Request):
        value = request.headers.get("authorization")
        scheme, _, credentials = (value or "").partition(" ")
        if not value or not credentials:
            return self._fail(403, "Not authenticated")
        if scheme.lower() != "bearer":
            return self._fail(403, "Invalid authentication credentials")
        return HTTPAuthorizationCredentials(scheme, credentials.strip())


class HTTPBasic(_Scheme):
    def __init__(self, *, scheme_name=None, realm=None, description=None, auto_error=True):
        self.scheme_name = scheme_name or type(self).__name__
        self.realm = realm
        self.auto_error = auto_error
        self.model = {"type": "http", "scheme": "basic"}
        if description:
            self.model["description"] = description

    def __call__(self, request: Request):
        value = request.headers.get("authorization")
        scheme, _, param = (value or "").partition(" ")
        challenge = {"WWW-Authenticate": f'Basic realm="{self.realm}"' if self.realm
                     else "Basic"}
        if not value or scheme.lower() != "basic":
            return self._fail(401, "Not authenticated", challenge)
        try:
            username, colon, password = base64.b64decode(param).decode("ascii").partition(":")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            colon = ""
        if not colon:
            return self._fail(401, "Invalid authentication credentials", challenge)
        return HTTPBasicCredentials(username, password)


class OAuth2PasswordBearer(_Scheme):
    def __init__(self, tokenUrl, scheme_name=None, scopes=None, description=None,
                 auto_error=True):
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error
        self.model = {"type": "oauth2", "flows": {"password": {"tokenUrl": tokenUrl,
                                                               "scopes": scopes or {}}}}
        if description:
            self.model["description"] = description

    def __call__(self, request: Request):
        value = request.headers.get("authorization")
        scheme, _, token = (value or "").partition(" ")
        if not value or scheme.lower() != "bearer":
            return self._fail(401, "Not authenticated", {"WWW-Authenticate": "Bearer"})
        return token


class _APIKey(_Scheme):
    where = None

    def __init__(self, *, name, scheme_name=None, description=None, auto_error=True):
        self.name = name
        self.scheme_name = scheme_name or type(self).__name__
        self.auto_error = auto_error
        self.model = {"type": "apiKey", "in": self.where, "name": name}
        if description:
            self.model["description"] = description

    def _get(self, request):
        raise NotImplementedError

    def __call__(self, request: Request):
        value = self._get(request)
        if not value:
            return self._fail(403, "Not authenticated")
        return value


class APIKeyHeader(_APIKey):
    where = "header"

    def _get(self, request):
        return request.headers.get(self.name)


class APIKeyQuery(_APIKey):
    where = "query"

    def _get(self, request):
        return request.query_params.get(self.name)


class APIKeyCookie(_APIKey):
    where = "cookie"

    def _get(self, request):
        return request.cookies.get(self.name)


class OAuth2PasswordRequestForm:
    """The form of an OAuth2 password flow token request (a dependency)."""

    def __init__(self, username, password, scope="", grant_type=None, client_id=None,
                 client_secret=None):
        self.username = username
        self.password = password
        self.scopes = scope.split()
        self.grant_type = grant_type
        self.client_id = client_id
        self.client_secret = client_secret


def _form_signature():
    # Form() markers set here, not in the signature, to keep params import-free above.
    import inspect
    from .params import Form
    sig = inspect.signature(OAuth2PasswordRequestForm.__init__)
    params = [p.replace(default=Form() if p.default is p.empty else Form(p.default),
                        annotation=str if p.default is p.empty or isinstance(p.default, str)
                        else (str | None))
              for p in list(sig.parameters.values())[1:]]
    OAuth2PasswordRequestForm.__signature__ = sig.replace(parameters=params)


_form_signature()
