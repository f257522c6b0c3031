"""Imports fine when the app is described, dies at once in every serving
Python worker: the master must give up instead of restarting forever."""
import os

import _fasterapi
from fasterapi import App

app = App()


@app.get("/")
def root():
    return "never served"


if _fasterapi.worker_info()["slot"] >= 0:
    os._exit(3)
