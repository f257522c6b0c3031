"""fasterapi.security: credentials read by dependencies, FastAPI's answers
when they are missing, and the OpenAPI security schemes."""

import base64

from fasterapi import App, Depends, Security
from fasterapi.security import (APIKeyHeader, HTTPBasic, HTTPBearer, OAuth2PasswordBearer,
                                OAuth2PasswordRequestForm, SecurityScopes)


def _app():
    app = App()
    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"read": "Read"})
    bearer = HTTPBearer(auto_error=False)
    api_key = APIKeyHeader(name="X-API-Key")
    basic = HTTPBasic()

    @app.get("/token-user")
    def token_user(token: str = Depends(oauth2)):
        return {"token": token}

    @app.get("/optional")
    def optional(creds=Depends(bearer)):
        return {"creds": None if creds is None else [creds.scheme, creds.credentials]}

    @app.get("/key")
    def key(k: str = Depends(api_key)):
        return {"key": k}

    @app.get("/basic")
    def basic_user(c=Depends(basic)):
        return [c.username, c.password]

    def scoped(scopes: SecurityScopes, token: str = Depends(oauth2)):
        return scopes.scopes

    @app.get("/scoped")
    def scoped_route(s=Security(scoped, scopes=["read"])):
        return {"scopes": s}

    @app.post("/token")
    def login(form: OAuth2PasswordRequestForm = Depends()):
        return {"user": form.username, "scopes": form.scopes}

    return app


def test_security__credentials_and_fastapi_errors(make_client):
    client = make_client(_app())
    assert client.get("/token-user", headers=[("Authorization", "Bearer abc")]).json() == \
        {"token": "abc"}
    reply = client.get("/token-user")
    assert (reply.status, reply.json(), reply.header("www-authenticate")) == (
        401, {"detail": "Not authenticated"}, "Bearer")
    assert client.get("/optional").json() == {"creds": None}
    assert client.get("/optional", headers=[("Authorization", "Bearer t")]).json() == \
        {"creds": ["Bearer", "t"]}
    assert client.get("/key", headers=[("X-API-Key", "k1")]).json() == {"key": "k1"}
    assert client.get("/key").status == 403
    auth = base64.b64encode(b"ann:pw").decode()
    assert client.get("/basic", headers=[("Authorization", f"Basic {auth}")]).json() == \
        ["ann", "pw"]
    assert client.get("/basic").status == 401
    assert client.get("/scoped", headers=[("Authorization", "Bearer x")]).json() == \
        {"scopes": ["read"]}


def test_security__password_form(make_client):
    client = make_client(_app())
    reply = client.post("/token", headers=[("content-type", "application/x-www-form-urlencoded")],
                        body=b"username=ann&password=pw&scope=read+write")
    assert reply.json() == {"user": "ann", "scopes": ["read", "write"]}
    assert client.post("/token", headers=[
        ("content-type", "application/x-www-form-urlencoded")], body=b"username=ann"
    ).json()["detail"][0]["loc"] == ["body", "password"]


def test_security__openapi_schemes():
    doc = _app().openapi()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"] == {
        "type": "oauth2", "flows": {"password": {"tokenUrl": "token", "scopes": {"read": "Read"}}}}
    assert schemes["APIKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert doc["paths"]["/token-user"]["get"]["security"] == [{"OAuth2PasswordBearer": []}]
    assert doc["paths"]["/scoped"]["get"]["security"] == [{"OAuth2PasswordBearer": ["read"]}]
