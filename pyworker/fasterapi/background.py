"""BackgroundTasks (Starlette's names): work that runs after the response.

A handler asks for one by annotation (tasks: BackgroundTasks) or passes one
to a Response (background=...). dispatch hands the C side an after()
callable with the response; the C side calls it once the response is
published, and after() runs the tasks in order, then the cleanup of yield
dependencies (async ones on the worker's loop, while it serves other
requests). A task that raises is logged; the ones after it still run.
"""

import inspect

__all__ = ["BackgroundTask", "BackgroundTasks"]


class BackgroundTask:
    def __init__(self, func, *args, **kwargs):
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = inspect.iscoroutinefunction(func) or \
            inspect.iscoroutinefunction(getattr(func, "__call__", None))

    def __call__(self):
        """Runs the task; returns a coroutine for an async one."""
        return self.func(*self.args, **self.kwargs)


class BackgroundTasks(BackgroundTask):
    def __init__(self, tasks=None):
        self.tasks = list(tasks) if tasks else []

    def add_task(self, func, *args, **kwargs):
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    def __call__(self):
        raise TypeError("BackgroundTasks are run by the server after the response")

    def __len__(self):
        return len(self.tasks)

    def __bool__(self):
        return True


def tasks_of(background):
    """The BackgroundTask list of a Response's background (None, one task
    or BackgroundTasks)."""
    if background is None:
        return []
    if isinstance(background, BackgroundTasks):
        return list(background.tasks)
    return [background]


def make_after(tasks, exits, context, where):
    """The after() callable handed to the C side with a response: runs the
    tasks in order in `context`, then closes the yield dependencies in
    `exits` (see binding.close_exits). Never raises: each error is printed
    with `where` ("GET /path: route 3 (...)") and the rest still runs.

    Sync tasks run in the call. From the first async one on, the rest runs
    as a task on the worker's loop (aio.run_soon), so that the worker
    serves other requests while it waits; after() may be called while the
    loop runs (a deferred request's response), where nothing may block on
    the loop."""
    import sys
    import traceback
    from .aio import run_soon

    def log(what):
        print(f"fasterapi: {where}: {what}:", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()

    def failed(task):
        log(f"background task {getattr(task.func, '__qualname__', task.func)!r} raised")

    async def rest(pending, first, remaining):
        # pending: the coroutine of `first`, already called.
        if pending is not None:
            try:
                await pending
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                failed(first)
        for task in remaining:     # already in `context`
            try:
                result = task()
                if inspect.iscoroutine(result):
                    await result
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                failed(task)
        if exits:
            from .binding import close_exits
            try:
                await close_exits(exits, None)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                log("the cleanup of a yield dependency raised")

    def after():
        for i, task in enumerate(tasks):
            if getattr(task, "is_async", False):
                run_soon(rest(None, None, tasks[i:]), context, f"{where}: background tasks")
                return
            try:
                result = context.run(task)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                failed(task)
                continue
            if inspect.iscoroutine(result):
                run_soon(rest(result, task, tasks[i + 1:]), context,
                         f"{where}: background tasks")
                return
        if exits:
            run_soon(rest(None, None, ()), context, f"{where}: the cleanup of a yield dependency")
    return after
