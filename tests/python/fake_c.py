"""A stand-in for the deferred-request API of `_fasterapi` (PROTOCOL.md,
"Deferred and streamed responses"), for unit tests of the package: it keeps
the requests in Python, checks that each call is allowed when it is made,
and lets a test play the client (read parts, go away) and the serve loop
(loop_step until something happened). The real thing is proved by the
black-box tests."""

import time

from fasterapi import aio


class Req:
    def __init__(self, rid, on_disconnect):
        self.rid = rid
        self.on_disconnect = on_disconnect
        self.result = None       # respond()'s result
        self.status = None       # start()'s
        self.headers = None
        self.parts = []
        self.unread = 0          # parts the client did not take yet
        self.ended = False       # send(more=False)
        self.aborted = False
        self.gone = False
        self.finished = False

    @property
    def body(self):
        return b"".join(self.parts)


class FakeC:
    def __init__(self, room=16, concurrency=100):
        self.room = room
        self.limit = concurrency
        self.reqs = {}
        self.next_rid = 1
        self.in_dispatch = False
        self.deferred_now = None
        self.wakes = 0

    # ---- the API the package calls
    def defer(self, on_disconnect=None):
        if not self.in_dispatch:
            raise RuntimeError("defer() outside dispatch")
        if self.deferred_now is not None:
            raise RuntimeError("defer() twice")
        rid = self.next_rid
        self.next_rid += 1
        self.reqs[rid] = Req(rid, on_disconnect)
        self.deferred_now = rid
        return rid

    def _open(self, rid):
        req = self.reqs.get(rid)
        if req is None or req.finished:
            raise ValueError(f"rid {rid}: finished or unknown")
        return req

    def respond(self, rid, result):
        req = self._open(rid)
        assert req.status is None, "respond() after start()"
        assert isinstance(result, tuple) and len(result) in (3, 4), result
        req.result = result
        req.finished = True
        if len(result) == 4 and result[3] is not None:
            result[3]()

    def start(self, rid, status, headers):
        req = self._open(rid)
        assert req.status is None, "start() twice"
        assert all(type(n) is str and type(v) is str for n, v in headers), headers
        req.status, req.headers = status, list(headers)

    def send(self, rid, data, more=True, block=True):
        req = self._open(rid)
        assert req.status is not None, "send() before start()"
        if req.gone:
            return False
        if req.unread >= self.room:
            assert not block, "send(block=True) with no room would block forever here"
            return False
        req.parts.append(bytes(data))
        req.unread += 1
        if not more:
            req.ended = req.finished = True
        return True

    def abort(self, rid):
        req = self._open(rid)
        req.aborted = req.finished = True

    def writable(self, rid):
        req = self._open(rid)
        return not req.gone and req.unread < self.room

    def disconnected(self, rid):
        return self._open(rid).gone

    def pending(self):
        return sum(not r.finished for r in self.reqs.values())

    def concurrency(self):
        return self.limit

    def wake_loop(self):
        self.wakes += 1

    # ---- the test's side
    def dispatch(self, dispatch, *args):
        """Calls dispatch as the serve loop does: (result, rid) where rid is
        the request's id if dispatch deferred it, else None."""
        self.in_dispatch, self.deferred_now = True, None
        try:
            result = dispatch(*args)
        finally:
            self.in_dispatch = False
        rid = self.deferred_now
        if rid is None:
            assert isinstance(result, tuple), result
        else:
            assert result is None, result
        return result, rid

    def disconnect(self, rid):
        req = self.reqs[rid]
        req.gone = True
        if not req.finished and req.on_disconnect is not None:
            req.on_disconnect()

    def read(self, rid):
        self.reqs[rid].unread = 0

    def run(self, until, timeout=5.0):
        """loop_step() until until() is true; fails after timeout."""
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "timed out"
            if not aio.loop_step():
                time.sleep(0.001)
