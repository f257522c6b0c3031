"""Batched routes: many requests, one handler call.

    from fasterapi import BatchPolicy, FastAPI
    from pydantic import BaseModel

    class Item(BaseModel):
        x: float

    app = FastAPI()

    @app.post("/predict", batch=BatchPolicy(max_size=32, max_wait_ms=2))
    def predict(items: list[Item]) -> list[float]:
        return model(items)          # one call for up to 32 requests

The contract (FastAPI has no precedent):

- The handler has exactly ONE parameter, annotated `list[T]`. T is what
  that parameter would be on a normal route: a pydantic model, dataclass,
  TypedDict or dict is the JSON body of one request; a scalar (int, str,
  ...) a query parameter, or a path parameter when the pattern has
  `{name}`; markers work as usual, in the default or in Annotated
  (`items: Annotated[list[int], Header()]` reads one header per
  request). Each request is bound on its own, before it joins a batch, so
  a bad request gets its own 422 and never reaches the handler.
- The handler (`def` or `async def`) receives the list of those values, in
  arrival order, and returns a list (or tuple) of as many results, in the
  same order: result i answers request i, rendered as a normal handler's
  return value (dict, pydantic model, Response, ...; status_code=,
  response_model= and a return annotation `-> list[R]` apply per request,
  to R). An item that is an exception instance is raised for that request
  alone (`HTTPException(404)` gives that request a 404).
- A result of the wrong length or type, or an exception raised by the
  handler, fails every request of the batch with 500, logged once with the
  route and the sizes (an HTTPException raised by the handler answers
  every request of the batch with it, unlogged).
- A batch runs as soon as max_size requests wait, otherwise max_wait_ms
  after its first request arrived. A request whose client went away
  before its batch ran is left out of it.
- Batching happens per Python worker: requests that are in flight
  together in one worker (async routes are deferred, PROTOCOL.md) share a
  batch. A sync handler runs on the worker's event loop thread, blocking
  the worker while it runs as a sync handler does, unless the worker has
  a thread pool (--py-threads): then it runs there and the worker goes on
  taking requests (and filling the next batch) meanwhile.
- The handler runs in a context of its own (ContextVars at their
  defaults), not in that of any one request of the batch.
- OpenAPI documents one request (T) and one response (R), not the lists.

How: the route's endpoint is an `async def` with the signature of one
request (`name: T`), made here; the binding code compiles it like any
other handler. It puts its value in the route's Batcher and awaits a
future that the Batcher resolves when the batch has run.
"""

import asyncio
import contextvars
import inspect
import math
import sys
import traceback
import typing

from . import aio, convert
from .exceptions import HTTPException, RequestValidationError
from .params import Depends, Param
from .responses import PlainTextResponse

__all__ = ["BatchPolicy", "Batcher", "batched_endpoint", "item_signature"]


class BatchPolicy:
    """How a batched route groups its requests: at most max_size per
    handler call; a batch that is not full runs max_wait_ms after its
    first request (0: at the next turn of the event loop). See the module
    docstring for what the handler receives and returns."""

    __slots__ = ("max_size", "max_wait_ms")

    def __init__(self, max_size=32, max_wait_ms=2.0):
        if type(max_size) is not int or max_size < 1:
            raise ValueError(f"BatchPolicy(max_size={max_size!r}): max_size must be an int "
                             f">= 1 (the most requests one handler call receives)")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, (int, float)) or \
                not math.isfinite(max_wait_ms) or max_wait_ms < 0:
            raise ValueError(f"BatchPolicy(max_wait_ms={max_wait_ms!r}): max_wait_ms must be a "
                             f"finite number >= 0 (milliseconds a batch waits for more "
                             f"requests after its first)")
        self.max_size = max_size
        self.max_wait_ms = max_wait_ms

    def __repr__(self):
        return f"BatchPolicy(max_size={self.max_size}, max_wait_ms={self.max_wait_ms})"

    def __eq__(self, other):
        return isinstance(other, BatchPolicy) and (self.max_size, self.max_wait_ms) == \
            (other.max_size, other.max_wait_ms)

    def __hash__(self):
        return hash((self.max_size, self.max_wait_ms))


# ------------------------------------------------------------------ signature

def _list_arg(ann):
    """T for list[T] / typing.List[T]; None for anything else."""
    if typing.get_origin(ann) is list:
        args = typing.get_args(ann)
        if len(args) == 1:
            return args[0]
    return None


def _label(handler, where):
    from .binding import handler_name
    return f"{where} ({handler_name(handler)})"


def item_signature(handler, where):
    """The signature of one request for a batch handler: its one parameter
    `name: list[T]` becomes `name: T` (Annotated metadata and a marker
    default kept), its return annotation `list[R]` becomes R (anything else
    is dropped). TypeError saying what to write for any other handler."""
    label = _label(handler, where)
    name = getattr(handler, "__name__", "handler")
    example = (f"write it as `def {name}(items: list[Item]) -> list[Result]`, where Item is "
               f"what one request gives (a pydantic model or dataclass for its JSON body, or a "
               f"scalar for a query parameter), and return one result per item, in order")
    if not callable(handler):
        raise TypeError(f"{label}: batch= needs a callable handler")
    try:
        signature = inspect.signature(handler, eval_str=True)
    except (NameError, SyntaxError, TypeError, ValueError) as exc:
        raise TypeError(f"{label}: cannot read the batch handler's signature: {exc}") from exc
    params = list(signature.parameters.values())
    if len(params) != 1 or params[0].kind in (inspect.Parameter.VAR_POSITIONAL,
                                              inspect.Parameter.VAR_KEYWORD):
        raise TypeError(f"{label}: a batch handler takes exactly one parameter, the list of "
                        f"the requests' values; it has {len(params)} ({signature}): {example}")
    p = params[0]
    inner, metadata = convert.strip_annotated(p.annotation)
    item = _list_arg(inner)
    if item is None:
        got = "no annotation" if p.annotation is inspect.Parameter.empty else \
            f"{convert.type_label(p.annotation)}"
        raise TypeError(f"{label}: the batch handler's parameter {p.name!r} must be annotated "
                        f"list[T] (the values of the batch's requests), got {got}: {example}")
    if isinstance(p.default, Depends) or any(isinstance(m, Depends) for m in metadata):
        raise TypeError(f"{label}: the batch handler's parameter {p.name!r} cannot be a "
                        f"Depends(): put dependencies in dependencies=[...]; {example}")
    default = p.default
    if default is not inspect.Parameter.empty and not isinstance(default, Param):
        raise TypeError(f"{label}: the batch handler's parameter {p.name!r} cannot have a "
                        f"default (each request gives one value); {example}")
    ann = typing.Annotated[(item, *metadata)] if metadata else item
    ret = _list_arg(convert.strip_annotated(signature.return_annotation)[0])
    param = inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                              annotation=ann)
    return inspect.Signature([param], return_annotation=inspect.Signature.empty
                             if ret is None else ret)


# Sources one request's value may come from (binding.Field.source).
_ALLOWED_SOURCES = frozenset(("path", "query", "header", "cookie", "body"))


def check_plan(plan, endpoint, where):
    """TypeError if the batched endpoint's parameter is bound from
    something a batch cannot hold past the request (a Request, a form or a
    file upload). The parameter's Field is the plan's last (the route's
    dependencies come first)."""
    field = plan.fields[-1]
    if field.source not in _ALLOWED_SOURCES:
        raise TypeError(f"{_label(endpoint.__batcher__.handler, where)}: a batch handler's "
                        f"items can be JSON bodies, path, query, header or cookie values, not "
                        f"{field.source} (parameter {field.name!r})")


# ------------------------------------------------------------------ batcher

class _Failed:
    """Resolves the futures of a batch that failed as a whole (logged once)."""

    def __repr__(self):
        return "<batch failed>"


_FAILED = _Failed()


def _is_coroutine_callable(fn):
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(inspect.unwrap(fn)):
        return True
    call = getattr(fn, "__call__", None)
    return not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


class Batcher:
    """The requests of one batched route waiting for their handler call.

    submit(value) -> future, from a coroutine on the worker's event loop
    (the loop is the running one). The future gets the request's result,
    the exception to raise for it, or _FAILED (answer 500: the failure was
    logged). Only the loop's thread touches a Batcher. Counters for tests
    and tools: calls (handler calls made), sizes (the size of each call,
    the last 1000).
    """

    def __init__(self, handler, policy, where, threaded=None):
        self.handler = handler
        # A plain def runs on the --py-threads pool when there is one.
        self.threaded = not _is_coroutine_callable(handler) if threaded is None else threaded
        self.max_size = policy.max_size
        self.delay = policy.max_wait_ms / 1000.0
        self.where = where
        self.calls = 0
        self.sizes = []
        self._values = []
        self._futures = []
        self._timer = None
        self._tasks = set()     # running async batches: the loop keeps only weak refs

    def submit(self, value):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._values.append(value)
        self._futures.append(future)
        n = len(self._values)
        if n >= self.max_size:
            self._close(loop)
        elif n == 1:
            if self.delay > 0:
                self._timer = loop.call_later(self.delay, self._expire, loop)
            else:
                self._timer = loop.call_soon(self._expire, loop)
        return future

    def _expire(self, loop):
        self._timer = None
        if self._values:
            self._close(loop)

    def _close(self, loop):
        """Takes the waiting requests as one batch and runs it at the next
        turn of the loop (not inside the submit that filled it: that
        request's own task is still in its first step)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        values, futures = self._values, self._futures
        self._values, self._futures = [], []
        # A context of its own: not that of the request that closed the batch.
        loop.call_soon(self._run, values, futures, context=contextvars.Context())

    def _run(self, values, futures):
        live = [i for i, f in enumerate(futures) if not f.done()]
        if len(live) < len(futures):     # cancelled: the client went away
            values = [values[i] for i in live]
            futures = [futures[i] for i in live]
        if not futures:
            return
        self.calls += 1
        self.sizes.append(len(futures))
        if len(self.sizes) > 1000:
            del self.sizes[:500]
        if self.threaded and aio.threads():
            # --py-threads: the loop goes on taking requests (and filling
            # the next batch) while the handler runs, e.g. a model call
            # that releases the GIL.
            work = asyncio.get_running_loop().run_in_executor(aio.executor(), self.handler,
                                                              values)
            self._start(self._finish(work, futures))
            return
        try:
            results = self.handler(values)
        except (KeyboardInterrupt, SystemExit):
            self._fail_all(futures, None)
            raise
        except BaseException as exc:
            self._raised(futures, exc)
            return
        if inspect.isawaitable(results):
            self._start(self._finish(results, futures))
            return
        self._deliver(results, futures)

    def _start(self, coro):
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, awaitable, futures):
        try:
            results = await awaitable
            if inspect.isawaitable(results):    # a def that returned a coroutine, threaded
                results = await results
        except asyncio.CancelledError:
            self._fail_all(futures, None)
            raise
        except BaseException as exc:
            self._raised(futures, exc)
            return
        self._deliver(results, futures)

    def _deliver(self, results, futures):
        n = len(futures)
        if not isinstance(results, (list, tuple)) or len(results) != n:
            got = f"{len(results)} results" if isinstance(results, (list, tuple)) else \
                f"a {type(results).__qualname__}"
            self._log(f"the batch handler returned {got} for a batch of {n} request"
                      f"{'s' if n != 1 else ''}; it must return a list of {n} result"
                      f"{'s' if n != 1 else ''}, one per request, in order; answering 500 to "
                      f"all {n}")
            self._fail_all(futures, _FAILED)
            return
        for future, result in zip(futures, results):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _raised(self, futures, exc):
        n = len(futures)
        if isinstance(exc, (HTTPException, RequestValidationError)):
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        self._log(f"the batch handler raised for a batch of {n} request{'s' if n != 1 else ''}, "
                  f"answering 500 to all {n}:", exc)
        self._fail_all(futures, _FAILED)

    def _fail_all(self, futures, value):
        for future in futures:
            if not future.done():
                if value is None:
                    future.cancel()
                else:
                    future.set_result(value)

    def _log(self, message, exc=None):
        print(f"fasterapi: {self.where}: {message}", file=sys.stderr)
        if exc is not None:
            traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()


# ------------------------------------------------------------------ endpoint

def batched_endpoint(handler, policy, where):
    """The endpoint a batched route registers instead of `handler`: an
    `async def` taking one request's value (signature from item_signature)
    and returning that request's result. Its __batcher__ is the route's
    Batcher."""
    if not isinstance(policy, BatchPolicy):
        raise TypeError(f"{_label(handler, where)}: batch= takes a BatchPolicy(max_size=..., "
                        f"max_wait_ms=...), got {type(policy).__name__}")
    signature = item_signature(handler, where)
    call = handler
    param = next(iter(inspect.signature(handler).parameters.values()))
    if param.kind is inspect.Parameter.KEYWORD_ONLY:
        def call(values, _name=param.name):
            return handler(**{_name: values})
    batcher = Batcher(call, policy, _label(handler, where),
                      threaded=not _is_coroutine_callable(handler))

    async def endpoint(value):
        result = await batcher.submit(value)
        if result is _FAILED:
            return PlainTextResponse("Internal Server Error", status_code=500)
        return result

    for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(endpoint, attr, getattr(handler, attr))
        except (AttributeError, TypeError):
            pass
    endpoint.__signature__ = signature
    name = next(iter(signature.parameters))
    endpoint.__annotations__ = {name: signature.parameters[name].annotation}
    if signature.return_annotation is not inspect.Signature.empty:
        endpoint.__annotations__["return"] = signature.return_annotation
    endpoint.__batcher__ = batcher
    return endpoint
