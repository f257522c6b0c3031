"""The app behind nginx in test_nginx_upstream.py: says which instance answered."""
import os

from fasterapi import App

app = App()

# The Python worker is a child of the instance's master: its parent's pid names
# the instance (and changes when the instance is restarted).
MASTER = str(os.getppid())

app.static("/health", b"ok", content_type="text/plain")


@app.get("/pid")
def pid():
    return "instance " + MASTER


@app.post("/work")
def work(request, ms: int = 20):
    """A non-idempotent request that takes a while: nginx must not retry it,
    so one cut by a restart would show as a failure."""
    import time
    time.sleep(ms / 1000)
    return "instance %s %d" % (MASTER, len(request.get_data()))


@app.get("/slow")
def slow(ms: int = 1000):
    import time
    time.sleep(ms / 1000)
    return "slept"
