"""The worker's event loop and how coroutines run on it.

run_coroutine(coro, suspends, context) finishes a coroutine and returns its
result; dispatch uses it for async handlers and the general path, after()
for async background tasks and yield-dependency cleanups, _boot for the
lifespan.
"""

import asyncio
import sys
from asyncio import events as _events

__all__ = ["run_coroutine", "event_loop"]


# ------------------------------------------------------------------ coroutines
#
# For now a worker runs one request at a time and no event loop runs between
# requests. A coroutine handler that cannot suspend (its body has no await,
# async with or async for: see app._may_suspend) is finished with one
# send(None). One that can is run as a Task whose first step runs at once in
# the caller (what Python 3.12 calls an eager task): usually it completes in
# that step (awaiting request.json() does not suspend), and only when it
# really waits does the loop run until it is done. Being a real Task, it has
# asyncio.current_task() (asyncio.timeout, TaskGroup need it), and a future it
# awaits belongs to the loop that will resume it. Either way the coroutine
# runs in the request's own context (see dispatch). While a step runs the loop is marked as running, so that
# get_running_loop() and create_task() work in the handler.
#
# Known limit until the worker runs its loop continuously: a task the handler
# starts and does not await runs only while some later handler waits.

_loop = None


def event_loop():
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        asyncio.set_event_loop(_loop)
    return _loop


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
            del self   # see run_coroutine: this frame is on a failed step's traceback
else:   # another Python: a plain Task, run by the loop from the start
    _EagerTask = None


def run_coroutine(coro, suspends, context):
    """Runs a handler's coroutine to completion in `context` and returns its
    result (or raises its exception). suspends: False if it cannot."""
    loop = _loop or event_loop()
    if not suspends:
        _events._set_running_loop(loop)
        try:
            context.run(coro.send, None)
        except StopIteration as done:
            return done.value
        finally:
            _events._set_running_loop(None)
        coro.close()   # cannot happen: app._may_suspend saw no await in its code
        raise RuntimeError(f"{coro.__qualname__}: a coroutine without await suspended")
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
    # Not task.result(): the exception's traceback reaches (through f_back)
    # every frame that was on the stack, this one included; if one of them
    # still refers to the task when the exception escapes, the cycle task ->
    # exception -> traceback -> frames -> task keeps the request's frames,
    # and dispatch's body view, alive until the next garbage collection.
    exc = task.exception()
    if exc is None:
        return task.result()
    del task
    try:
        raise exc
    finally:
        del exc
