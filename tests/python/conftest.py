"""Shared helpers: drive an App through fasterapi._boot exactly as
fasterapi-pyworker does (describe, load, then dispatch per request)."""

import itertools
import json
import json as _json
import re
import sys
import types
from collections import namedtuple
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
for entry in (str(ROOT), str(ROOT / "pyworker")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from fasterapi import _boot  # noqa: E402

_module_ids = itertools.count()
_PARAM = re.compile(r"\{[^/]*\}")


class Reply(namedtuple("Reply", "status headers body")):
    """dispatch's (status, headers, body), with helpers. after: the 4th
    element dispatch returned (already called, as the C side does), or
    None."""

    after = None

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode()

    def header(self, name):
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return values[0] if values else None


class Client:
    """An App behind _boot: spec, route table and dispatch."""

    def __init__(self, app, modules):
        name = f"_fa_test_app_{next(_module_ids)}"
        module = types.ModuleType(name)
        module.app = app
        sys.modules[name] = module
        modules.append(name)
        self.spec = f"{name}:app"
        self.table = _boot.describe(self.spec)
        self.ids = {(m, p): rid for rid, m, p, *_ in self.table}
        self.dispatch = _boot.load(self.spec)

    def request(self, method, pattern, params=(), query="", headers=(), body=b"",
                client=("127.0.0.1", 50000), json=None, run_after=True):
        """Calls dispatch for the route (method, pattern); HEAD uses the GET
        route, as the C router does. params: raw path values, in order.
        json: a body to send as application/json. A 4th element (after) is
        called once the reply is built, as the C side does once the
        response is published (unless run_after=False)."""
        if json is not None:
            body = _json.dumps(json).encode()
            headers = [("content-type", "application/json"), *headers]
        route_method = "GET" if method == "HEAD" and ("HEAD", pattern) not in self.ids else method
        route_id = self.ids[(route_method, pattern)]
        values = iter(params)
        path = _PARAM.sub(lambda m: next(values), pattern)
        result = self.dispatch(route_id, method, path, query, tuple(params),
                               [(n.lower(), v) for n, v in headers], client, body)
        assert isinstance(result, tuple) and len(result) in (3, 4)
        status, out_headers, out_body = result[:3]
        assert type(status) is int and type(out_body) is bytes
        assert all(type(n) is str and type(v) is str for n, v in out_headers)
        reply = Reply(status, out_headers, out_body)
        if len(result) == 4:
            assert callable(result[3])
            reply.after = result[3]
            if run_after:
                result[3]()
        return reply

    def get(self, pattern, params=(), **kw):
        return self.request("GET", pattern, params, **kw)

    def post(self, pattern, params=(), **kw):
        return self.request("POST", pattern, params, **kw)

    def put(self, pattern, params=(), **kw):
        return self.request("PUT", pattern, params, **kw)

    def delete(self, pattern, params=(), **kw):
        return self.request("DELETE", pattern, params, **kw)


@pytest.fixture
def make_client():
    """make_client(app) -> Client; the app's module is removed afterwards."""
    modules = []
    yield lambda app: Client(app, modules)
    for name in modules:
        sys.modules.pop(name, None)
