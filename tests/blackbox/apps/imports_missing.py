"""An app whose own import fails: the server must stop at start-up."""
import fasterapi_blackbox_no_such_dependency  # noqa: F401

from fasterapi import App

app = App()
