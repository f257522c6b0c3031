"""/openapi.json and /docs (Swagger UI, served from the files installed
with the package in static/, so the page works offline).

add_routes(app) registers, unless turned off with openapi_url=None or
docs_url=None (or taken by the app's own routes):
    GET {openapi_url}                      the document (app.openapi())
    GET {docs_url}                         the Swagger UI page
    GET {docs_url}/swagger-ui-bundle.js    \\
    GET {docs_url}/swagger-ui.css           > FileResponse (sent by the HTTP worker)
    GET {docs_url}/favicon.png             /
"""

import html
import json
import os

from .responses import FileResponse, HTMLResponse, JSONResponse

__all__ = ["add_routes", "get_swagger_ui_html", "STATIC_DIR"]

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

_ASSETS = {"swagger-ui-bundle.js": "swagger-ui-bundle.js", "swagger-ui.css": "swagger-ui.css",
           "favicon.png": "favicon-32x32.png"}


def get_swagger_ui_html(*, openapi_url, title, swagger_js_url, swagger_css_url,
                        swagger_favicon_url, swagger_ui_parameters=None):
    """The Swagger UI page as a str (FastAPI's function returns it in an
    HTMLResponse; wrap it with HTMLResponse(...) for the same)."""
    params = {"dom_id": "#swagger-ui", "layout": "BaseLayout", "deepLinking": True,
              "showExtensions": True, "showCommonExtensions": True, "validatorUrl": None}
    params.update(swagger_ui_parameters or {})
    settings = "".join(f"\n        {json.dumps(k)}: {json.dumps(v)}," for k, v in params.items())
    page = f"""<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<link type="text/css" rel="stylesheet" href="{html.escape(swagger_css_url)}">
<link rel="shortcut icon" href="{html.escape(swagger_favicon_url)}">
<title>{html.escape(title)}</title>
</head>
<body>
<div id="swagger-ui">
</div>
<script src="{html.escape(swagger_js_url)}"></script>
<script>
const ui = SwaggerUIBundle({{
        url: {json.dumps(openapi_url)},{settings}
        presets: [
            SwaggerUIBundle.presets.apis,
            SwaggerUIBundle.SwaggerUIStandalonePreset
        ],
    }})
</script>
</body>
</html>
"""
    return page


def _taken(app, path):
    return any(r.path == path and r.method == "GET" for r in app.routes)


def add_routes(app):
    openapi_url = app.openapi_url
    if openapi_url and not _taken(app, openapi_url):
        def openapi():
            return JSONResponse(app.openapi())
        app._add_route(openapi_url, ["GET"], openapi, {"include_in_schema": False})
    docs_url = app.docs_url
    if openapi_url and docs_url and not _taken(app, docs_url):
        base = docs_url.rstrip("/")
        page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{base}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{base}/swagger-ui.css",
                                   swagger_favicon_url=f"{base}/favicon.png",
                                   swagger_ui_parameters=app.swagger_ui_parameters)

        def swagger_ui_html():
            return HTMLResponse(page)
        app._add_route(docs_url, ["GET"], swagger_ui_html, {"include_in_schema": False})
        for name, filename in _ASSETS.items():
            path = f"{base}/{name}"
            if _taken(app, path):
                continue

            def asset(_file=os.path.join(STATIC_DIR, filename)):
                return FileResponse(_file)
            app._add_route(path, ["GET"], asset, {"include_in_schema": False})
