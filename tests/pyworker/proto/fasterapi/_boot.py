"""PROTOCOL.md's entry points, reduced to their contract: the app module
names its own route table (ROUTES) and dispatch function, and may define
shutdown(). The event loop hooks are the plainest that PROTOCOL.md allows."""
import asyncio
import importlib
import os

LOOP = asyncio.new_event_loop()
_reader = None


def loop_step():
    LOOP.call_soon(LOOP.stop)
    LOOP.run_forever()
    return bool(LOOP._ready or LOOP._scheduled)


def _woken(fd):
    try:
        os.read(fd, 8)
    except BlockingIOError:
        pass
    LOOP.stop()


def loop_wait(fd, timeout):
    global _reader
    if _reader != fd:
        LOOP.add_reader(fd, _woken, fd)
        _reader = fd
    handle = LOOP.call_later(timeout, LOOP.stop)
    LOOP.run_forever()
    handle.cancel()

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
