"""Shared helpers: drive an App through fasterapi._boot exactly as
fasterapi-pyworker does (describe, load, then dispatch per request)."""

import itertools
import json
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
    """dispatch's (status, headers, body), with helpers."""

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
        self.ids = {(m, p): rid for rid, m, p, _ in self.table}
        self.dispatch = _boot.load(self.spec)

    def request(self, method, pattern, params=(), query="", headers=(), body=b"",
                client=("127.0.0.1", 50000)):
        """Calls dispatch for the route (method, pattern); HEAD uses the GET
        route, as the C router does. params: raw path values, in order."""
        route_method = "GET" if method == "HEAD" and ("HEAD", pattern) not in self.ids else method
        route_id = self.ids[(route_method, pattern)]
        values = iter(params)
        path = _PARAM.sub(lambda m: next(values), pattern)
        result = self.dispatch(route_id, method, path, query, tuple(params),
                               [(n.lower(), v) for n, v in headers], client, body)
        assert isinstance(result, tuple) and len(result) == 3
        status, out_headers, out_body = result
        assert type(status) is int and type(out_body) is bytes
        assert all(type(n) is str and type(v) is str for n, v in out_headers)
        return Reply(status, out_headers, out_body)

    def get(self, pattern, params=(), **kw):
        return self.request("GET", pattern, params, **kw)

    def post(self, pattern, params=(), **kw):
        return self.request("POST", pattern, params, **kw)


@pytest.fixture
def make_client():
    """make_client(app) -> Client; the app's module is removed afterwards."""
    modules = []
    yield lambda app: Client(app, modules)
    for name in modules:
        sys.modules.pop(name, None)
