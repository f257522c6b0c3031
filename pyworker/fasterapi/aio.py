"""The worker's event loop, deferred requests and streamed responses.

The C serve loop drives one asyncio loop per worker (PROTOCOL.md, "The
event loop hooks"): _boot exports loop_step() and loop_wait() from here. A
request whose handler has to wait is deferred (`_fasterapi.defer`): dispatch
returns None at once, the worker takes other requests, and the request is
finished later from the loop (`respond`, or `start` + `send` for a stream,
or `abort`). Up to --py-concurrency requests are in flight per worker.

Coroutines. A handler's coroutine that cannot suspend (its body has no
await, async with or async for: see routing._may_suspend) is finished with
one send(None). One that can is run as a Task whose first step runs at once
in the caller (what Python 3.12 calls an eager task): usually it completes
in that step (awaiting request.json() does not suspend) and dispatch answers
inline, the fast path; only when it really waits is the request deferred
and the task left to the loop (step()). Being a real Task, it has
asyncio.current_task() (asyncio.timeout, TaskGroup need it), and a future it
awaits belongs to the loop that will resume it. While a step runs in
dispatch the loop is marked as running, so that get_running_loop() and
create_task() work in the handler; what the handler scheduled runs in the
next loop_step() (wake_loop).

--py-threads N (FASTERAPI_PY_THREADS): plain def handlers run on a pool of N
threads (defer_to_thread); their results come back to the loop thread with
call_soon_threadsafe, since only that thread may finish a request.

Outside a serve loop that has the deferred API (unit tests, which may set
_c to a fake), coroutines are finished in the call (run_coroutine), streams
are collected into one body and nothing is deferred.
"""

import asyncio
import os
import sys
import threading
import traceback
import weakref
from asyncio import events as _events

try:
    import _fasterapi
except ImportError:
    _fasterapi = None

__all__ = ["run_coroutine", "event_loop", "step", "run_soon", "defer", "defer_task",
           "defer_to_thread", "stream", "start", "send", "wake", "park", "loop_step",
           "loop_wait", "Deferred", "can_defer", "outcome", "threads", "executor",
           "in_thread", "drain", "stream_from_thread", "kick"]

# The C side's deferred-request API, or None (see the module doc).
_c = _fasterapi if _fasterapi is not None and hasattr(_fasterapi, "defer") else None

_loop = None


def event_loop():
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop


def can_defer():
    """True inside a serve loop that can defer requests and stream."""
    return _c is not None


def wake():
    """Tells the C side that something was scheduled on the loop from
    outside it, so that it runs now rather than at the next request."""
    if _c is not None and _events._get_running_loop() is None:
        _c.wake_loop()


# ------------------------------------------------------------------ coroutines

if sys.version_info[:2] == (3, 11) and hasattr(getattr(asyncio.tasks, "_PyTask", None),
                                               "_Task__step"):
    class _EagerTask(asyncio.tasks._PyTask):
        """A Task whose first step runs in the constructor (3.11's pure-Python
        Task with call_soon(__step) replaced by a direct call). Construct it
        with the loop marked as running."""

        def __init__(self, coro, loop, context):
            asyncio.futures._PyFuture.__init__(self, loop=loop)
            self._name = "fasterapi-handler"
            self._num_cancels_requested = 0
            self._must_cancel = False
            self._fut_waiter = None
            self._coro = coro
            self._context = context
            asyncio.tasks._register_task(self)
            context.run(self._Task__step)
            del self   # see outcome(): this frame is on a failed step's traceback
else:   # another Python: a plain Task, run by the loop from the start
    _EagerTask = None


def outcome(future):
    """The result of a finished asyncio or concurrent future, or its
    exception raised (CancelledError if it was cancelled).

    Not future.result(): the exception's traceback reaches (through f_back)
    every frame that was on the stack, this one included; if one of them
    still refers to the future when the exception escapes, the cycle future
    -> exception -> traceback -> frames -> future keeps the request's frames,
    and dispatch's body view, alive until the next garbage collection. The
    callers' frames that hold the future are on that traceback too:
    _complete() drops it once the exception was handled."""
    exc = future.exception()
    if exc is None:
        return future.result()
    del future
    try:
        raise exc
    finally:
        del exc


def step(coro, suspends, context):
    """Runs a handler's coroutine in `context` as far as it goes now.

    Returns (None, result) if it finished (raises its exception if it
    failed), or (task, None) if it waits on the loop: the caller defers the
    request until the task is done (defer_task). suspends: False if it
    cannot. Outside a serve loop (can_defer() false) it is finished here."""
    loop = _loop or event_loop()
    if not suspends:
        _events._set_running_loop(loop)
        try:
            context.run(coro.send, None)
        except StopIteration as done:
            result = done.value
        else:
            coro.close()   # cannot happen: routing._may_suspend saw no await in its code
            raise RuntimeError(f"{coro.__qualname__}: a coroutine without await suspended")
        finally:
            _events._set_running_loop(None)
        if loop._ready:
            wake()   # the handler created a task, or resolved a future
        return None, result
    if _c is None:
        return None, run_coroutine(coro, True, context)
    if _EagerTask is None:
        task = loop.create_task(coro, context=context)
        return task, None
    _events._set_running_loop(loop)
    try:
        task = _EagerTask(coro, loop, context)
    finally:
        _events._set_running_loop(None)
    if not task.done():
        return task, None
    if loop._ready:
        wake()
    exc = task.exception()
    if exc is None:
        return None, task.result()
    del task     # see outcome()
    try:
        raise exc
    finally:
        del exc


def run_coroutine(coro, suspends, context):
    """Runs a coroutine to completion in `context` and returns its result
    (or raises its exception): the app's lifespan, and every coroutine
    outside a serve loop. Never call it while the loop runs (in a handler,
    a task's callback): use step() and defer_task(), or run_soon()."""
    loop = _loop or event_loop()
    if not suspends:
        return step(coro, False, context)[1]
    if _EagerTask is None:
        task = loop.create_task(coro, context=context)
    else:
        _events._set_running_loop(loop)
        try:
            task = _EagerTask(coro, loop, context)
        finally:
            _events._set_running_loop(None)
    if not task.done():
        waiter = loop.create_future()   # run_until_complete(task) would raise with task in a frame
        task.add_done_callback(lambda _: waiter.set_result(None))
        loop.run_until_complete(waiter)
    exc = task.exception()
    if exc is None:
        return task.result()
    del task     # see outcome()
    try:
        raise exc
    finally:
        del exc


def _log_failure(what, task):
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        print(f"fasterapi: {what} raised:", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()


def run_soon(coro, context, what):
    """Runs coro on the loop without waiting for it (work after a response:
    async background tasks, the cleanup of yield dependencies); what it
    raises is logged as "fasterapi: {what} raised". Outside a serve loop it
    is finished here (and raises)."""
    if _c is None:
        return run_coroutine(coro, True, context)
    loop = _loop or event_loop()
    task = loop.create_task(coro, context=context)
    _soon.add(task)
    task.add_done_callback(lambda t: (_soon.discard(t), _log_failure(what, t)))
    wake()
    return None


_soon = set()   # run_soon()'s tasks not done yet


def drain():
    """Runs the loop until the work run_soon() started is done: called when
    the worker stops (_boot.shutdown), before the app's shutdown, so that
    background tasks are not lost with the process."""
    if _soon:
        loop = _loop or event_loop()
        loop.run_until_complete(asyncio.wait(set(_soon)))


# ------------------------------------------------------------------ deferred requests

_current = None     # the Deferred being completed on the loop (see _complete)
_waiting = False    # loop_wait() is running the loop


class Deferred:
    """A request that dispatch deferred: its rid, whether its client is
    gone, and `cancel`, what stops its work when the client goes (a task's
    cancel). Every finish goes through here, once; a second is ignored."""

    __slots__ = ("rid", "gone", "cancel", "open")

    def __init__(self):
        self.rid = None
        self.gone = False
        self.cancel = None
        self.open = True

    def _disconnected(self):
        # on_disconnect: called by the C side (client gone, or --timeout).
        self.gone = True
        cancel = self.cancel
        if cancel is not None:
            self.cancel = None
            cancel()

    def respond(self, result):
        """Finishes with a dispatch result (3- or 4-tuple); after a
        disconnect, aborts instead (the response would go nowhere)."""
        if not self.open:
            return
        if self.gone:
            self.abort()
            return
        self.open = False
        _c.respond(self.rid, result)

    def abort(self):
        if not self.open:
            return
        self.open = False
        _c.abort(self.rid)

    def closed(self):
        """The last part was sent (send(..., more=False))."""
        self.open = False


def defer():
    """The Deferred of the request being answered: inside dispatch, defers
    it (_fasterapi.defer, only once per request); on the loop, while a
    deferred request's result is rendered (a StreamingResponse returned by
    an async handler), the one already deferred."""
    d = _current
    if d is None:
        d = Deferred()
        d.rid = _c.defer(d._disconnected)
    return d


def _complete(d, complete, arg):
    """Finishes d with complete(arg), a dispatch result, or None when
    complete() finished d itself (a stream it started). complete() handles
    the handler's errors (a 500); what escapes is a bug, logged, and the
    request aborted."""
    global _current
    _current = d
    try:
        result = complete(arg)
        if not arg.cancelled() and arg.exception() is not None:
            arg.exception().__traceback__ = None    # handled: see outcome()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        print("fasterapi: completing a deferred request raised (aborting it):",
              file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        d.abort()
        return
    finally:
        _current = None
    if result is not None:
        d.respond(result)


def defer_task(task, complete):
    """Defers the request being dispatched until task is done; then
    complete(task) gives its result (see _complete). The client going away
    cancels the task. Returns the Deferred."""
    d = defer()
    d.cancel = task.cancel
    task.add_done_callback(lambda t: _complete(d, complete, t))
    return d


_threads = 0
_executor = None


def threads():
    """--py-threads: the size of the handler thread pool (0: none)."""
    return _threads if _c is not None else 0


def _read_threads():
    global _threads
    value = os.environ.get("FASTERAPI_PY_THREADS", "") or "0"
    try:
        _threads = int(value)
    except ValueError:
        _threads = -1
    if not 0 <= _threads <= 1024:
        raise ValueError(f"FASTERAPI_PY_THREADS: expected a whole number from 0 to 1024, got "
                         f"{value!r}")


_read_threads()


def executor():
    global _executor
    if _executor is None:
        from concurrent.futures import ThreadPoolExecutor
        _executor = ThreadPoolExecutor(max(_threads, 1), thread_name_prefix="fasterapi-handler")
    return _executor


async def in_thread(fn, *args):
    """fn(*args) on the thread pool, in a copy of the current context (as
    Starlette's run_in_threadpool): the general path's plain def handlers."""
    from contextvars import copy_context
    return await asyncio.get_running_loop().run_in_executor(executor(), copy_context().run,
                                                            fn, *args)


def defer_to_thread(fn, complete):
    """Defers the request being dispatched: fn(d) runs on the thread pool
    (d: its Deferred), then complete(future) on the loop thread (see
    _complete). A thread cannot be stopped: a client that goes away only
    turns the response into an abort."""
    d = defer()
    loop = _loop or event_loop()
    future = executor().submit(fn, d)
    future.add_done_callback(
        lambda f: loop.call_soon_threadsafe(_complete, d, complete, f))
    return d


async def _call(fn, *args):
    return fn(*args)


def stream_from_thread(d, status, headers, parts, close, where):
    """Sends a stream from a pool thread (a WSGI app under --py-threads):
    each call runs on the loop thread while this thread waits for it, so a
    part is taken from `parts` only once the previous one was sent (the
    backpressure of send()). close() once it ended; what parts raises cuts
    the response and is logged."""
    loop = _loop
    run = lambda coro: asyncio.run_coroutine_threadsafe(coro, loop).result()  # noqa: E731
    try:
        run(_call(start, d, status, headers))
        for data in parts:
            if data and not run(send(d, data)):
                return
        run(send(d, b"", more=False))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        _log_stream_error(where)
    finally:
        try:
            if close is not None:
                close()
        finally:
            run(_call(d.abort))      # nothing once the stream was closed


# ------------------------------------------------------------------ the loop hooks

_doorbell = None    # the fd loop_wait watches (added to the selector once)


def _ring(fd):
    try:
        os.read(fd, 8)
    except (BlockingIOError, InterruptedError):
        pass
    if _waiting:
        _loop.stop()


def _has_work(loop, serving=True):
    if loop._ready or loop._scheduled:
        return True
    if serving and _c is not None and _c.pending():
        return True
    # Callbacks on file descriptors other than the loop's own self-pipe and
    # the doorbell (a handler's add_reader, a socket a task awaits).
    if len(loop._selector.get_map()) > 1 + (_doorbell is not None):
        return True
    for task in asyncio.all_tasks(loop):
        if task not in _parked:
            return True
    return False


_parked = weakref.WeakSet()


def park(task):
    """Marks a task that waits for the whole life of the worker (an ASGI
    app's lifespan) as no work: it alone never makes loop_step() say that
    the loop has work, which would keep the C side calling it."""
    _parked.add(task)


def loop_step():
    """Runs what is ready on the loop now, without blocking (one iteration),
    and returns whether it still has work: ready callbacks, timers, open
    deferred requests, unfinished tasks (PROTOCOL.md)."""
    loop = _loop or event_loop()
    loop.call_soon(loop.stop)
    loop.run_forever()
    return _has_work(loop)


_anyio_root = None   # the task below (the loop keeps tasks by weak reference only)


def _pin_anyio_root(loop):
    """anyio (under Starlette and FastAPI: their `def` handlers and
    run_in_threadpool go through anyio.to_thread) ties its worker threads to a
    "root task" and stops them when that task ends. Found by its heuristics
    on this loop, which has no long-lived task, the root task is each
    request's own: a thread started and stopped per request (measured: one
    clone per request, up to 18 threads contending for the GIL, 1.6 x the CPU
    of uvicorn). A parked task that lives as long as the worker is made the
    root instead, so the pool's threads are reused. Nothing without anyio."""
    if "anyio" not in sys.modules:
        return
    try:    # anyio imports its backend at first use: now, to reach the root
        import anyio._backends._asyncio as backend
    except Exception:   # noqa: BLE001 - not the anyio this knows
        return
    root = getattr(backend, "_root_task", None)
    if root is None or not hasattr(root, "set"):
        return

    async def _forever():
        try:    # RunVar.set must run in a task (sniffio finds the library)
            root.set(asyncio.current_task())
        except Exception:   # noqa: BLE001 - another anyio: its own heuristics then
            return
        await loop.create_future()

    global _anyio_root
    if _anyio_root is not None:     # load() again (tests): one root is enough
        return
    _anyio_root = loop.create_task(_forever(), name="fasterapi-anyio-root")
    park(_anyio_root)
    # anyio's threads are not daemons: they end with their root task, which
    # must therefore end before the interpreter waits for its threads.
    threading._register_atexit(_unpin_anyio_root)


def _unpin_anyio_root():
    """Ends the parked root task, so that anyio stops its worker threads (its
    done callbacks), before the interpreter joins them at exit."""
    global _anyio_root
    task, _anyio_root = _anyio_root, None
    if task is None or task.done():
        return
    loop = task.get_loop()
    if loop.is_closed() or loop.is_running():
        return
    task.cancel()
    try:
        loop.run_until_complete(asyncio.wait([task]))
    except Exception:   # noqa: BLE001 - exiting: nothing better to do
        pass


def kick():
    """Runs the first steps of what the app's startup left on the loop (a
    lifespan's periodic task) and, if work remains, asks the C side to keep
    running the loop: called once the app is loaded, before serving."""
    loop = _loop or event_loop()
    _pin_anyio_root(loop)
    loop.call_soon(loop.stop)
    loop.run_forever()
    if _has_work(loop, serving=False):
        wake()


def loop_wait(fd, timeout):
    """Runs the loop until fd (the worker's doorbell eventfd) is readable,
    then reads it, or until timeout seconds passed (None or < 0: no limit).
    The C side rings that doorbell itself when a finished request frees a
    place under --py-concurrency."""
    global _waiting, _doorbell
    loop = _loop or event_loop()
    if _doorbell != fd:
        if _doorbell is not None:
            loop.remove_reader(_doorbell)
        loop.add_reader(fd, _ring, fd)
        _doorbell = fd
    timer = loop.call_later(timeout, loop.stop) \
        if timeout is not None and timeout >= 0 else None
    _waiting = True
    try:
        loop.run_forever()
    finally:
        _waiting = False
        if timer is not None:
            timer.cancel()


# ------------------------------------------------------------------ streams

def _as_bytes(part, charset):
    if isinstance(part, bytes):
        return part
    if isinstance(part, str):
        return part.encode(charset)
    if isinstance(part, (bytearray, memoryview)):
        return bytes(part)
    raise TypeError(f"a streamed response's iterator yielded {type(part).__name__}, not bytes "
                    f"or str")


def start(d, status, headers):
    """Starts d's streamed response (the parts follow with send())."""
    _c.start(d.rid, status, headers)


async def send(d, data, more=True):
    """Sends a part of d's stream once there is room (polling, so the loop
    runs meanwhile). True if sent; False if the client is gone (or the
    request timed out): the caller stops and aborts. more=False sends the
    last part and closes d."""
    delay = 0.001
    rid = d.rid
    while not d.gone:
        if _c.send(rid, data, more, False):
            if not more:
                d.closed()
            return True
        if _c.disconnected(rid):
            d.gone = True
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.016)
    return False


def _log_stream_error(where):
    print(f"fasterapi: {where}: the streamed response's iterator raised (the response is "
          f"cut):", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()


def _close_sync(iterator):
    close = getattr(iterator, "close", None)
    if close is not None:
        try:
            close()
        except ValueError:
            pass    # "generator already executing": its next() still runs in a thread


def _run_after(after):
    if after is not None:
        after()


def _drive_inline(d, status, headers, iterator, charset, after, where):
    """Sends a sync iterator's parts as they come, blocking the worker while
    the client has no room (send(block=True)): a sync handler's stream."""
    rid = d.rid
    try:
        _c.start(rid, status, headers)
        for part in iterator:
            data = _as_bytes(part, charset)
            if data and not _c.send(rid, data, True, True):
                d.gone = True
                d.abort()
                return
        _c.send(rid, b"", False, True)
        d.closed()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        _log_stream_error(where)
        d.abort()
    finally:
        _close_sync(iterator)
        _run_after(after)


async def _sync_parts(iterator):
    """The parts of a sync iterator, each next() on the thread pool when
    there is one (it may block), else on the loop."""
    if not threads():
        for part in iterator:
            yield part
        return
    loop = asyncio.get_running_loop()
    end = object()
    while True:
        part = await loop.run_in_executor(executor(), next, iterator, end)
        if part is end:
            return
        yield part


async def _drive(d, status, headers, content, charset, where):
    """The task that sends an iterator's parts, polling for room."""
    parts = content if hasattr(content, "__aiter__") else _sync_parts(iter(content))
    try:
        _c.start(d.rid, status, headers)
        async for part in parts:
            data = _as_bytes(part, charset)
            if data and not await send(d, data):
                return
        await send(d, b"", more=False)
    except asyncio.CancelledError:
        pass          # the client went away (on_disconnect cancelled us)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:
        _log_stream_error(where)
    finally:
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()
        if parts is not content:
            _close_sync(content)


def _stream_done(d, after):
    # Also when the task was cancelled before its first step (then _drive's
    # try never ran): a stream not closed is cut.
    try:
        d.abort()
    finally:
        _run_after(after)


async def _collect(content, charset):
    parts = []
    if hasattr(content, "__aiter__"):
        async for part in content:
            parts.append(_as_bytes(part, charset))
    else:
        for part in content:
            parts.append(_as_bytes(part, charset))
    return b"".join(parts)


def stream(status, headers, content, charset, after, where):
    """Starts a streamed response of the request being answered (see
    defer()) with the parts of content, a sync or async iterable of bytes
    or str; after() runs once it ended. Returns None, dispatch's answer for
    it; outside a serve loop, the whole response as a triple instead.

    A sync iterable inside dispatch is sent inline (blocking the worker,
    as its sync handler did); anything else by a task on the loop, which
    the client going away cancels (the iterator's finally runs)."""
    if _c is None:
        from contextvars import copy_context
        body = run_coroutine(_collect(content, charset), True, copy_context())
        return (status, headers, body, after) if after is not None else (status, headers, body)
    in_dispatch = _current is None
    d = defer()
    if in_dispatch and not hasattr(content, "__aiter__") and not threads():
        _drive_inline(d, status, headers, iter(content), charset, after, where)
        return None
    loop = _loop or event_loop()
    from contextvars import copy_context
    task = loop.create_task(_drive(d, status, headers, content, charset, where),
                            context=copy_context())
    task.add_done_callback(lambda _: _stream_done(d, after))
    d.cancel = task.cancel
    return None
