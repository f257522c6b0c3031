"""PROTOCOL.md's entry points, reduced to their contract: the app module
names its own route table (ROUTES) and dispatch function, and may define
shutdown()."""
import importlib

_app = None


def _load(spec):
    global _app
    module, _, attr = spec.partition(":")
    _app = importlib.import_module(module)
    return getattr(_app, attr)


def describe(spec):
    _load(spec)
    return list(_app.ROUTES)


LAZY_HEADERS = False


def load(spec):
    global LAZY_HEADERS
    dispatch = _load(spec)
    LAZY_HEADERS = getattr(_app, "LAZY_HEADERS", False)
    return dispatch


def shutdown():
    _app.shutdown()
