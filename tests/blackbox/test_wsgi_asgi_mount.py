"""Static, native-kind and fasterapi routes in front of a WSGI or ASGI app
(fasterapi.wsgi.mount / fasterapi.asgi.mount: apps/mounted_app.py): the
App's routes are served by it (static ones in C), every other path by the
mounted app."""

import pytest


@pytest.mark.parametrize("spec, kind", [("mounted_app:front_wsgi", "wsgi"),
                                        ("mounted_app:front_asgi", "asgi")])
def test_static_route_in_front_and_fallback(module_server, spec, kind):
    srv = module_server(spec, "--py-workers", "1")
    r = srv.get("/health")
    assert (r.status, r.body) == (200, b"ok from C\n")
    r = srv.get("/other/page")
    assert (r.status, r.body) == (200, b"%s fallback /other/page" % kind.encode())
    r = srv.get("/")
    assert r.body == b"%s fallback /" % kind.encode()
    r = srv.request("POST", "/health")            # the App has no POST /health
    assert r.body == b"%s fallback /health" % kind.encode()


def test_fasterapi_python_route_in_front(module_server):
    srv = module_server("mounted_app:front_wsgi", "--py-workers", "1")
    assert srv.get("/py/5").json() == {"x": 5, "from": "fasterapi"}
    assert srv.get("/py/5/more").body == b"wsgi fallback /py/5/more"
